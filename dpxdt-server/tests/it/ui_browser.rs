//! The review UI driven in real headless Chromium (thirtyfour): log in,
//! open a release with diffs, step through runs with the keyboard, approve,
//! mark the release good; then create a build and an API key in the UI,
//! upload releases with that key, watch the diff worker bring them to
//! review, approve, mark good and see the next release diffed against it.
//! Screenshots of the main pages are checked against the UI's own
//! references with `dpxdt_core::check` (the project tests itself with itself).
#![cfg(feature = "capture")]

use std::future::Future;
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dpxdt_core::api::ReportRunRequest;
use dpxdt_core::check::{CheckOutcome, Checker};
use dpxdt_core::{BuildId, ReleaseKey};
use dpxdt_server::Config;
use dpxdt_server::storage::builds;
use dpxdt_server::storage::{self, users};
use futures_util::FutureExt;
use thirtyfour::prelude::*;

/// chromedriver for this test binary; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_chromedriver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = std::env::var("DPXDT_CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into());
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let status = format!("{}/status", driver.url);
    wait_until("chromedriver answers", || async {
        reqwest::get(&status)
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    driver
}

/// Polls `cond` every 50 ms until it holds (at most 20 s).
async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    let mut writer = enc.write_header().unwrap();
    let data: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .flat_map(|(x, y)| f(x, y))
        .collect();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
    out
}

async fn text(driver: &WebDriver, id: &str) -> String {
    match driver.find(By::Id(id)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn click(driver: &WebDriver, by: By) {
    driver.find(by).await.unwrap().click().await.unwrap();
}

async fn press(driver: &WebDriver, key: &str) {
    // Typed into the page's body, as a person on the page would.
    driver
        .find(By::Tag("body"))
        .await
        .unwrap()
        .send_keys(key)
        .await
        .unwrap();
}

/// Waits for every image to load and the caret to go, then checks a
/// viewport screenshot against the reference `ui/<name>`.
async fn check_screen(driver: &WebDriver, name: &str) {
    wait_until("images loaded", || async {
        driver
            .execute(
                "document.activeElement && document.activeElement.blur();
                 return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0);",
                Vec::new(),
            )
            .await
            .is_ok_and(|r| r.json() == &serde_json::Value::Bool(true))
    })
    .await;
    let shot = driver.screenshot_as_png().await.unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui_screenshots");
    match Checker::new().dir(dir).check_image(name, &shot) {
        Ok(CheckOutcome::Matched { .. }) => {}
        Ok(other) => eprintln!("{name}: {other:?}"),
        Err(e) => panic!("screenshot {name}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_a_release_with_the_keyboard_in_chromium() {
    // The server, with a user, a build and a release uploaded through the API.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    // The diff workers run (phase two needs them); no browser in the server.
    config.in_process_workers = true;
    config.worker.capture = false;
    config.worker.idle_pause = Duration::from_millis(100);
    let (store, _) = dpxdt_server::init_data_dir(&config).unwrap();
    dpxdt_server::ui::create_user(&store, "alice", "alice-password", false).unwrap();
    let alice = store
        .blocking(|c| users::find_user(c, "alice"))
        .unwrap()
        .unwrap();
    let build = store
        .blocking(|c| builds::create_owned_build(c, &alice, "shop desktop", false))
        .unwrap();
    let key = store
        .blocking(|c| storage::create_api_key(c, Some(build), "e2e"))
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dpxdt_server::serve_store(
        listener,
        store.clone(),
        config,
        async {
            let _ = stopped.await;
        },
    ));
    upload(&base, build, &key).await;

    let chromedriver = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(&std::env::var("DPXDT_CHROMIUM").unwrap_or("/usr/bin/chromium".into()))
        .unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1280,800",
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))
        .unwrap();
    let driver = WebDriver::new(chromedriver.url.clone(), caps)
        .await
        .unwrap();
    let result = AssertUnwindSafe(async {
        drive(&driver, &base, build).await;
        new_build_and_baseline(&driver, &base).await;
    })
    .catch_unwind()
    .await;
    let _ = driver.quit().await;
    drop(chromedriver);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), server).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    // What the browser did is stored: both diffs approved, the release good.
    let release = store
        .blocking(|c| storage::get_release(c, build, "2026-11-25-r01", 1))
        .unwrap();
    assert_eq!(release.status.as_str(), "good");
    let runs = store
        .blocking(|c| storage::list_runs(c, release.id))
        .unwrap();
    let approved = runs
        .iter()
        .filter(|r| r.status.map(|s| s.as_str()) == Some("diff_approved"))
        .count();
    assert_eq!(approved, 2);
}

/// Three runs: two with a diff (`/about`, `/home`), one the same (`/contact`).
async fn upload(base: &str, build: BuildId, key: &storage::NewApiKey) {
    let client = dpxdt_client::Client::builder(base)
        .api_key(&key.id, &key.secret)
        .retries(0)
        .build()
        .unwrap();
    let rel = client
        .create_release(build, "2026-11-25-r01", "https://ci.example/7")
        .await
        .unwrap();
    let page = |band: [u8; 3]| {
        png(320, 200, move |x, y| {
            if (40..80).contains(&y) && x > 20 {
                band
            } else if y < 20 {
                [40, 60, 90]
            } else {
                [250, 250, 250]
            }
        })
    };
    let reference = client
        .upload_bytes(build, "ref.png", page([200, 200, 200]))
        .await
        .unwrap();
    let new = client
        .upload_bytes(build, "new.png", page([30, 140, 60]))
        .await
        .unwrap();
    let outcome = dpxdt_core::diff::diff_png_bytes(
        &page([200, 200, 200]),
        &page([30, 140, 60]),
        &dpxdt_core::diff::DiffOptions::default(),
    )
    .unwrap();
    let diff_png = outcome.diff_png.expect("the pages differ");
    let diff = client
        .upload_bytes(build, "diff.png", diff_png)
        .await
        .unwrap();
    for (run, changed) in [("/about", true), ("/home", true), ("/contact", false)] {
        client
            .report_run(&ReportRunRequest {
                build_id: build,
                release_name: rel.release_name.clone(),
                release_number: rel.release_number,
                run_name: run.into(),
                url: Some(format!("https://shop.example{run}")),
                image: Some(if changed {
                    new.sha1sum.clone()
                } else {
                    reference.sha1sum.clone()
                }),
                ref_image: Some(reference.sha1sum.clone()),
                diff_image: changed.then(|| diff.sha1sum.clone()),
                distortion: Some(if changed {
                    outcome.report.distortion
                } else {
                    0.0
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    client
        .runs_done(&ReleaseKey {
            build_id: build,
            release_name: rel.release_name,
            release_number: rel.release_number,
        })
        .await
        .unwrap();
}

async fn drive(driver: &WebDriver, base: &str, build: BuildId) {
    driver.goto(format!("{base}/login")).await.unwrap();
    check_screen(driver, "login").await;
    driver
        .find(By::Id("name"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    driver
        .find(By::Id("password"))
        .await
        .unwrap()
        .send_keys("alice-password")
        .await
        .unwrap();
    click(driver, By::Id("login-submit")).await;
    wait_until("home page", || async {
        driver.find(By::Id("my-builds")).await.is_ok()
    })
    .await;
    check_screen(driver, "home").await;

    click(driver, By::LinkText("shop desktop")).await;
    wait_until("build page", || async {
        driver.find(By::Id("releases")).await.is_ok()
    })
    .await;
    click(driver, By::LinkText("2026-11-25-r01")).await;
    wait_until("release page", || async {
        text(driver, "release-status").await == "reviewing"
    })
    .await;
    check_screen(driver, "release").await;

    // j selects the first run (a diff: diffs come first), Enter opens it.
    press(driver, "j").await;
    press(driver, "\u{E007}").await;
    wait_until("first run", || async {
        text(driver, "run-name").await == "/about"
    })
    .await;
    check_screen(driver, "run").await;
    // j and k step between runs.
    press(driver, "j").await;
    wait_until("second run", || async {
        text(driver, "run-name").await == "/home"
    })
    .await;
    press(driver, "k").await;
    wait_until("back to the first", || async {
        text(driver, "run-name").await == "/about"
    })
    .await;
    // t cycles the views: overlay, blink, side by side.
    for view in ["overlay", "blink", "side"] {
        press(driver, "t").await;
        let viewer = driver.find(By::Id("viewer")).await.unwrap();
        assert_eq!(
            viewer.attr("data-current").await.unwrap().as_deref(),
            Some(view)
        );
    }
    // ? opens the help dialog.
    press(driver, "?").await;
    assert!(driver.find(By::Css("dialog#help[open]")).await.is_ok());
    press(driver, "?").await;
    // a approves and moves on to the next run.
    press(driver, "a").await;
    wait_until("approved, on to /home", || async {
        text(driver, "run-name").await == "/home"
    })
    .await;
    // The last diff approved: back to the release, approved runs listed.
    press(driver, "a").await;
    wait_until("release page", || async {
        driver.find(By::Id("group-diff_approved")).await.is_ok()
    })
    .await;
    assert!(driver.find(By::Id("group-diff_found")).await.is_err());
    // Open an approved run and go up again with u.
    press(driver, "j").await;
    press(driver, "\u{E007}").await;
    wait_until("an approved run", || async {
        text(driver, "run-status").await == "Approved"
    })
    .await;
    assert!(driver.find(By::Id("reject")).await.is_ok());
    press(driver, "u").await;
    wait_until("release page", || async {
        driver.find(By::Id("mark-good")).await.is_ok()
    })
    .await;
    click(driver, By::Id("mark-good")).await;
    wait_until("release good", || async {
        text(driver, "release-status").await == "good"
    })
    .await;
    let url = driver.current_url().await.unwrap();
    assert!(url.as_str().contains(&format!("build_id={build}")));
}

/// Reloads the page until `cond` holds (at most 20 s, as [`wait_until`]).
async fn reload_until<F, Fut>(driver: &WebDriver, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until(what, || {
        let holds = cond();
        async move {
            driver.refresh().await.unwrap();
            holds.await
        }
    })
    .await;
}

/// Phase two, in the browser of the logged-in owner: a build and its API key
/// made in the UI, two releases uploaded with that key and diffed by the
/// server's diff worker; the first approved and marked good in the UI is the
/// baseline of the second.
async fn new_build_and_baseline(driver: &WebDriver, base: &str) {
    // A new build from the header's link.
    click(driver, By::LinkText("New build")).await;
    let name = driver.find(By::Id("build-name")).await.unwrap();
    name.send_keys("shop mobile").await.unwrap();
    click(driver, By::Id("create-build")).await;
    wait_until("the new build's page", || async {
        driver.find(By::Id("create-key")).await.is_ok()
    })
    .await;
    let url = driver.current_url().await.unwrap();
    let build: i64 = url
        .query_pairs()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.parse().unwrap())
        .expect("the build page names its build");
    let build = BuildId(build);

    // An API key, its secret shown once.
    click(driver, By::Id("create-key")).await;
    wait_until("the new key", || async {
        driver.find(By::Id("new-key-secret")).await.is_ok()
    })
    .await;
    let key_id = text(driver, "new-key-id").await;
    let secret = text(driver, "new-key-secret").await;
    assert_eq!(key_id.len(), 32, "key id {key_id:?}");
    assert_eq!(secret.len(), 64, "secret {secret:?}");
    // Back on the build page (a GET, not the form's answer): the key is
    // listed, its secret gone.
    driver.goto(url.as_str()).await.unwrap();
    let keys = driver.find(By::Id("api-keys")).await.unwrap();
    assert!(keys.text().await.unwrap().contains(&key_id));
    assert!(
        driver.find(By::Id("new-key-secret")).await.is_err(),
        "the secret is shown only once"
    );

    // Release one, through the API with that key: /home changed against a
    // given reference (the diff worker finds it), /about without one.
    let client = dpxdt_client::Client::builder(base)
        .api_key(&key_id, &secret)
        .retries(0)
        .build()
        .unwrap();
    let page = |band: [u8; 3]| {
        png(200, 120, move |x, y| {
            if (30..60).contains(&y) && x > 10 {
                band
            } else {
                [250, 250, 250]
            }
        })
    };
    let grey = client
        .upload_bytes(build, "grey.png", page([200, 200, 200]))
        .await
        .unwrap()
        .sha1sum;
    let blue = client
        .upload_bytes(build, "blue.png", page([40, 80, 200]))
        .await
        .unwrap()
        .sha1sum;
    let report = |release: &dpxdt_core::api::CreateReleaseResponse,
                  run: &str,
                  image: &dpxdt_core::ArtifactId,
                  reference: Option<dpxdt_core::ArtifactId>| ReportRunRequest {
        build_id: build,
        release_name: release.release_name.clone(),
        release_number: release.release_number,
        run_name: run.into(),
        image: Some(image.clone()),
        ref_image: reference,
        ..Default::default()
    };
    let one = client
        .create_release(build, "m1", "https://ci.example/m1")
        .await
        .unwrap();
    client
        .report_run(&report(&one, "/home", &blue, Some(grey.clone())))
        .await
        .unwrap();
    client
        .report_run(&report(&one, "/about", &grey, None))
        .await
        .unwrap();
    client
        .runs_done(&ReleaseKey {
            build_id: build,
            release_name: one.release_name.clone(),
            release_number: one.release_number,
        })
        .await
        .unwrap();

    // The build page lists it; the release page shows it reach review once
    // the diff worker has found the change.
    driver.goto(url.as_str()).await.unwrap();
    click(driver, By::LinkText("m1")).await;
    reload_until(driver, "m1 reviewing", || async {
        text(driver, "release-status").await == "reviewing"
    })
    .await;
    assert!(driver.find(By::Id("group-diff_found")).await.is_ok());
    press(driver, "j").await;
    press(driver, "\u{E007}").await;
    wait_until("the /home run", || async {
        text(driver, "run-name").await == "/home"
    })
    .await;
    assert!(
        driver.find(By::Id("diff-image")).await.is_ok(),
        "the worker's diff image is shown"
    );
    press(driver, "a").await;
    wait_until("back on the release, approved", || async {
        driver.find(By::Id("group-diff_approved")).await.is_ok()
    })
    .await;
    click(driver, By::Id("mark-good")).await;
    wait_until("m1 good", || async {
        text(driver, "release-status").await == "good"
    })
    .await;

    // Release two: as a tool does, each run's reference is the run of the
    // same name in the last good release, which is now m1.
    let two = client
        .create_release(build, "m2", "https://ci.example/m2")
        .await
        .unwrap();
    for (run, image) in [("/home", &blue), ("/about", &blue)] {
        let baseline = client
            .find_run(build, run)
            .await
            .unwrap()
            .expect("m1 is good: its runs are the baseline");
        assert_eq!(baseline.release_name, "m1");
        client
            .report_run(&report(&two, run, image, baseline.image))
            .await
            .unwrap();
    }
    client
        .runs_done(&ReleaseKey {
            build_id: build,
            release_name: two.release_name.clone(),
            release_number: two.release_number,
        })
        .await
        .unwrap();
    driver
        .goto(format!(
            "{base}/release?build_id={}&name=m2&number={}",
            build.0, two.release_number
        ))
        .await
        .unwrap();
    reload_until(driver, "m2 reviewing", || async {
        text(driver, "release-status").await == "reviewing"
    })
    .await;
    // /home is unchanged against m1 (blue both times); /about changed
    // (grey in m1, blue now) and shows m1's grey image as its reference.
    let same = driver.find(By::Id("group-diff_not_found")).await.unwrap();
    assert!(same.text().await.unwrap().contains("/home"));
    let found = driver.find(By::Id("group-diff_found")).await.unwrap();
    assert!(found.text().await.unwrap().contains("/about"));
    press(driver, "j").await;
    press(driver, "\u{E007}").await;
    wait_until("the /about run of m2", || async {
        text(driver, "run-name").await == "/about"
    })
    .await;
    let reference = driver.find(By::Id("ref-image")).await.unwrap();
    let src = reference.attr("src").await.unwrap().unwrap_or_default();
    assert!(
        src.contains(grey.as_str()),
        "the reference is m1's /about image ({grey}), got {src}"
    );
}
