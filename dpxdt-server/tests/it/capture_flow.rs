//! The server-side capture flow with real Chromium: `request_run` with a
//! `ref_url`, `request_run` against the last good release, and a page that
//! fails to load — capture and diff workers driven to idle with `run_once`.
#![cfg(feature = "capture")]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestServer, admin};
use dpxdt_core::capture::{Browser, BrowserOptions};
use dpxdt_core::{BuildId, ReleaseKey};
use dpxdt_e2e::{Page, PageServer};
use dpxdt_server::workers::{CaptureWorker, DiffWorker, Link};

const CONFIG: &str = r#"{"viewportSize": {"width": 320, "height": 200}}"#;

fn counts(st: &dpxdt_core::api::ReleaseStatusResponse) -> Vec<(String, u64)> {
    let mut v: Vec<_> = st
        .runs
        .iter()
        .map(|r| (r.status.as_str().to_string(), r.count))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_runs_are_captured_diffed_and_reviewed() {
    let pages = PageServer::start();
    pages.set_html(
        "/old",
        "<html><body style='background:#fff'><h1>Hello</h1></body></html>",
    );
    pages.set_html(
        "/new",
        "<html><body style='background:#fff'><h1>Hello, world</h1></body></html>",
    );
    pages.set("/gone", Page::html("<h1>not here</h1>").with_status(404));

    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("captures").await;
    s.allow_key_verdicts(&build);
    let build = BuildId(build.parse().unwrap());
    let client = s.client(&key);
    let browser = Arc::new(Browser::launch(BrowserOptions::default()).await.unwrap());
    let capture = CaptureWorker::with_capturer(
        Link::Http(s.client(&admin())),
        Duration::from_secs(120),
        browser.clone(),
    );
    let diff = DiffWorker::new(Link::Http(s.client(&admin())), Duration::from_secs(60));
    let drive = || async {
        let mut captures = 0;
        while capture.run_once().await.unwrap() {
            captures += 1;
        }
        let mut diffs = 0;
        while diff.run_once().await.unwrap() {
            diffs += 1;
        }
        (captures, diffs)
    };
    let request = |key: &ReleaseKey, run: &str, url: String, ref_url: Option<String>| {
        dpxdt_core::api::RequestRunRequest {
            build_id: key.build_id,
            release_name: key.release_name.clone(),
            release_number: key.release_number,
            run_name: run.into(),
            url,
            config: CONFIG.into(),
            ref_config: ref_url.as_ref().map(|_| CONFIG.to_string()),
            ref_url,
        }
    };

    // Release 1: the new page against a reference page, both captured.
    let r1 = client.create_release(build, "main", "u").await.unwrap();
    let key1 = ReleaseKey {
        build_id: build,
        release_name: "main".into(),
        release_number: r1.release_number,
    };
    client
        .request_run(&request(
            &key1,
            "/page",
            pages.url("/new"),
            Some(pages.url("/old")),
        ))
        .await
        .unwrap();
    client.runs_done(&key1).await.unwrap();
    assert_eq!(drive().await, (2, 1));
    let st = client.release_status(&key1).await.unwrap();
    assert_eq!(st.status.as_str(), "reviewing");
    assert_eq!(counts(&st), [("diff_found".to_string(), 1)]);
    let mark_good = [
        ("build_id", build.to_string()),
        ("release_name", "main".to_string()),
        ("release_number", "1".to_string()),
        ("status", "good".to_string()),
    ];
    let form: Vec<(&str, &str)> = mark_good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(s.post(Some(&key), "update_release", &form).await.0, 200);

    // Release 2: no ref_url, so the good release's run is the reference;
    // a new run has no baseline; a 404 page fails its capture.
    let r2 = client.create_release(build, "main", "u").await.unwrap();
    let key2 = ReleaseKey {
        release_number: r2.release_number,
        ..key1.clone()
    };
    for (run, path) in [("/page", "/new"), ("/fresh", "/old"), ("/broken", "/gone")] {
        client
            .request_run(&request(&key2, run, pages.url(path), None))
            .await
            .unwrap();
    }
    client.runs_done(&key2).await.unwrap();
    assert_eq!(drive().await, (3, 1));
    let st = client.release_status(&key2).await.unwrap();
    assert_eq!(st.status.as_str(), "reviewing", "{st:?}");
    // The same page captured twice is no diff.
    assert_eq!(
        counts(&st),
        [
            ("diff_not_found".to_string(), 1),
            ("failed".to_string(), 1),
            ("no_diff_needed".to_string(), 1)
        ]
    );
    let found = client.find_run(build, "/page").await.unwrap().unwrap();
    assert_eq!(found.url.as_deref(), Some(pages.url("/new").as_str()));
    drop(capture);
    if let Ok(browser) = Arc::try_unwrap(browser) {
        browser.shutdown().await;
    }
    s.stop().await;
}

/// A release whose runs use two engines (modes of one page): one worker
/// with both engines captures it, and so do two workers with one engine
/// each, where each leases only its own engine's tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_in_two_engines_is_captured_by_one_worker_or_two() {
    use dpxdt_core::capture::Engine;
    let pages = PageServer::start();
    pages.set_html(
        "/engine",
        "<!doctype html><body><script>document.body.style.background = \
         CSS.supports('-moz-appearance', 'none') ? 'orange' : 'blue';</script></body>",
    );
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("engines").await;
    s.allow_key_verdicts(&build);
    let build = BuildId(build.parse().unwrap());
    let client = s.client(&key);
    let browser = Arc::new(Browser::launch(BrowserOptions::default()).await.unwrap());
    let worker = |engines: Vec<Engine>| {
        CaptureWorker::with_capturer(
            Link::Http(s.client(&admin())),
            Duration::from_secs(120),
            browser.clone(),
        )
        .browsers(engines)
    };
    let both = worker(vec![Engine::Chromium, Engine::Firefox]);
    let chromium = worker(vec![Engine::Chromium]);
    let firefox = worker(vec![Engine::Firefox]);
    let diff = DiffWorker::new(Link::Http(s.client(&admin())), Duration::from_secs(60));
    let config = r#"{"viewportSize": {"width": 320, "height": 200},
        "modes": [{"name": "chromium"}, {"name": "firefox", "browser": "firefox"}]}"#;
    let release = |n: i64| ReleaseKey {
        build_id: build,
        release_name: "main".into(),
        release_number: n,
    };
    let request = |key: &ReleaseKey| dpxdt_core::api::RequestRunRequest {
        build_id: key.build_id,
        release_name: key.release_name.clone(),
        release_number: key.release_number,
        run_name: "/engine".into(),
        url: pages.url("/engine"),
        config: config.into(),
        ref_config: Some(config.into()),
        ref_url: Some(pages.url("/engine")),
    };

    // One worker with both engines: both runs, new and reference.
    let r1 = client.create_release(build, "main", "u").await.unwrap();
    let key1 = release(r1.release_number);
    let made = client.request_run(&request(&key1)).await.unwrap();
    let names: Vec<&str> = made.runs.iter().map(|r| r.run_name.as_str()).collect();
    assert_eq!(names, ["/engine@chromium", "/engine@firefox"]);
    client.runs_done(&key1).await.unwrap();
    let mut captured = 0;
    while both.run_once().await.unwrap() {
        captured += 1;
    }
    assert_eq!(captured, 4, "two runs, each with its reference");
    while diff.run_once().await.unwrap() {}
    let st = client.release_status(&key1).await.unwrap();
    assert_eq!(st.status.as_str(), "reviewing");
    assert_eq!(counts(&st), [("diff_not_found".to_string(), 2)]);

    // Two workers with one engine each: the Chromium one leaves the
    // Firefox tasks alone, and the release waits for them.
    let r2 = client.create_release(build, "main", "u").await.unwrap();
    let key2 = release(r2.release_number);
    client.request_run(&request(&key2)).await.unwrap();
    client.runs_done(&key2).await.unwrap();
    let mut by_chromium = 0;
    while chromium.run_once().await.unwrap() {
        by_chromium += 1;
    }
    assert_eq!(by_chromium, 2);
    while diff.run_once().await.unwrap() {}
    let st = client.release_status(&key2).await.unwrap();
    assert_eq!(
        st.status.as_str(),
        "processing",
        "the Firefox run is not captured yet"
    );
    let mut by_firefox = 0;
    while firefox.run_once().await.unwrap() {
        by_firefox += 1;
    }
    assert_eq!(by_firefox, 2);
    while diff.run_once().await.unwrap() {}
    let st = client.release_status(&key2).await.unwrap();
    assert_eq!(st.status.as_str(), "reviewing");

    // Each run's screenshot shows its own engine.
    let good = [
        ("build_id", build.to_string()),
        ("release_name", "main".to_string()),
        ("release_number", key2.release_number.to_string()),
        ("status", "good".to_string()),
    ];
    let form: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(s.post(Some(&key), "update_release", &form).await.0, 200);
    for (run, colour) in [
        ("/engine@chromium", [0, 0, 255]),
        ("/engine@firefox", [255, 165, 0]),
    ] {
        let found = client.find_run(build, run).await.unwrap().expect("the run");
        let png = client
            .download(build, &found.image.expect("an image"))
            .await
            .unwrap();
        let img = dpxdt_core::diff::decode_png(&png, run, 1 << 20).unwrap();
        let p = img.pixel(100, 100);
        assert_eq!([p[0], p[1], p[2]], colour, "{run}");
    }
}
