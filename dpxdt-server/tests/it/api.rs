//! The HTTP API over real HTTP on 127.0.0.1:0: every endpoint's success and
//! refusals, cross-build denial, API key revocation, upload limits, the
//! report_run → diff → reviewing flow, concurrent reports, and a capture
//! worker that drops a task whose lease it lost.

use crate::common;

use std::time::Duration;

use common::{Call, Key, TestServer, admin, png};
use dpxdt_server::workers::{DiffWorker, Link};
use serde_json::Value;

fn release_form<'a>(build: &'a str, name: &'a str, number: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("build_id", build),
        ("release_name", name),
        ("release_number", number),
    ]
}

async fn status_of(s: &TestServer, key: &Key, build: &str, name: &str, number: &str) -> Value {
    let (code, body) = s
        .get(
            Some(key),
            "release_status",
            &release_form(build, name, number),
        )
        .await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// A server and a build "site" whose key may also give verdicts.
async fn server_with_verdict_key() -> (TestServer, String, Key) {
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("site").await;
    s.allow_key_verdicts(&build);
    (s, build, key)
}

fn count(status: &Value, run_status: &str) -> u64 {
    status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == run_status)
        .map(|r| r["count"].as_u64().unwrap())
        .unwrap_or(0)
}

/// Requests refused before any work: no or wrong credentials, unknown
/// endpoints and methods, superuser-only endpoints, things that do not
/// exist, and malformed values. Each is a JSON error naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_before_any_work_are_json_errors() {
    let (s, build, key) = server_with_verdict_key().await;
    let (adm, wrong) = (admin(), Key(common::ADMIN_ID.into(), "nope".into()));
    let (k, a) = (Some(&key), Some(&adm));
    let b = build.as_str();
    let no_colon = format!("Basic {}", dpxdt_e2e::base64(b"just-an-id"));
    let missing = release_form(b, "nope", "1");
    let with = |extra: &[(&'static str, &'static str)]| [missing.clone(), extra.to_vec()].concat();
    let task = [("payload", "{}"), ("task_id", "1"), ("owner", "w")];
    let mut calls = vec![
        // Authentication: missing, wrong or malformed credentials are 401.
        Call::post(None, "create_release", &[("build_id", "1")])
            .is(401)
            .says("API key"),
        Call::post(Some(&wrong), "create_build", &[("name", "x")]).is(401),
    ];
    for header in [
        "Bearer abc",
        "Basic !!!not-base64",
        no_colon.as_str(),
        "Basic",
    ] {
        calls.push(
            Call::post(None, "create_build", &[("name", "x")])
                .with_auth(header)
                .is(401),
        );
    }
    calls.extend([
        // Routing: unknown endpoints 404, wrong methods 405.
        Call::post(a, "no_such_thing", &[])
            .is(404)
            .says("no API endpoint /api/no_such_thing"),
        Call::get(a, "report_run", &[])
            .is(405)
            .says("/api/report_run does not accept GET"),
        Call::get(a, "work_queue/capture/lease", &[]).is(405),
        Call::post(k, "download", &[]).is(405),
        Call::method(reqwest::Method::PUT, k, "create_release").is(405),
        // Only superusers create builds and keys or touch the work queue.
        Call::post(k, "create_build", &[("name", "x")]).is(403),
        Call::post(k, "create_api_key", &[("build_id", b)]).is(403),
        Call::post(
            k,
            "work_queue/capture/lease",
            &[("owner", "w"), ("count", "1"), ("timeout", "5")],
        )
        .is(403),
    ]);
    for action in ["add", "heartbeat", "finish", "cancel"] {
        calls.push(Call::post(k, &format!("work_queue/capture/{action}"), &task).is(403));
    }
    calls.extend([
        Call::post(a, "work_queue/No Such!/add", &[("payload", "{}")])
            .is(400)
            .says("queue name"),
        Call::post(
            a,
            "work_queue/jobs/heartbeat",
            &[
                ("task_id", "999"),
                ("owner", "w"),
                ("message", "m"),
                ("index", "1"),
            ],
        )
        .is(404),
        // Things that do not exist are 404.
        Call::post(
            a,
            "create_release",
            &[("build_id", "999"), ("release_name", "r"), ("url", "u")],
        )
        .is(404),
        Call::post(a, "create_api_key", &[("build_id", "999")]).is(404),
        Call::get(k, "release_status", &missing).is(404),
        Call::post(k, "runs_done", &missing).is(404),
        Call::post(k, "update_release", &with(&[("status", "good")])).is(404),
        Call::post(
            k,
            "request_run",
            &with(&[("run_name", "/"), ("url", "http://x/"), ("config", "{}")]),
        )
        .is(404),
        // Bad values are 400 and name the field.
        Call::post(k, "create_release", &[("build_id", b)])
            .is(400)
            .says("release_name"),
        Call::post(
            k,
            "create_release",
            &[("build_id", "abc"), ("release_name", "r"), ("url", "u")],
        )
        .is(400),
        Call::post(a, "create_build", &[("name", " ")]).is(400),
        Call::get(k, "release_status", &release_form(b, "r", "one"))
            .is(400)
            .says("release_number"),
        Call::get(k, "download", &[("build_id", b)]).is(400),
    ]);
    s.expect(&calls).await;
    let (code, body) = s
        .upload(&adm, "999", "a.png", png(1, 1, [1, 1, 1, 255], None))
        .await;
    assert_eq!(code, 404, "{body}");
    assert!(s.artifact_files().is_empty(), "nothing stored for no build");
    s.stop().await;
}

/// A release from creation to the verdict: attempts are numbered, reports
/// need uploaded images, `runs_done` moves it on and closes it to reports,
/// and the good release is the baseline `find_run` and `download` serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_goes_from_reports_to_a_verdict_and_becomes_the_baseline() {
    let (s, build, key) = server_with_verdict_key().await;
    let (k, b) = (Some(&key), build.as_str());
    let new_release = [
        ("build_id", b),
        ("release_name", "r"),
        ("url", "http://ci/1"),
    ];
    let (code, body) = s.post(k, "create_release", &new_release).await;
    assert_eq!(
        (code, &body["release_number"]),
        (200, &Value::from(1)),
        "{body}"
    );
    let (code, body) = s.post(k, "create_release", &new_release).await;
    assert_eq!(
        (code, &body["release_number"]),
        (200, &Value::from(2)),
        "{body}"
    );

    let (code, up) = s
        .upload(&key, b, "a.png", png(4, 4, [255, 0, 0, 255], None))
        .await;
    assert_eq!(
        (code, &up["content_type"]),
        (200, &Value::from("image/png")),
        "{up}"
    );
    let image = up["sha1sum"].as_str().unwrap().to_string();
    let missing = "906d3259c103f6fcba4e8164a4dc3ae0d1a685d9";
    let run = |number: &'static str, extra: &[(&'static str, &'static str)]| {
        [
            release_form(b, "r", number),
            vec![("run_name", "/")],
            extra.to_vec(),
        ]
        .concat()
    };
    let mut report = run("2", &[("url", "http://example.com/")]);
    report.push(("image", &image));
    s.expect(&[
        Call::post(k, "report_run", &run("9", &[])).is(404),
        Call::post(k, "report_run", &run("2", &[("image", missing)]))
            .is(400)
            .says("not uploaded"),
        Call::post(k, "report_run", &run("2", &[("image", "../../etc/passwd")])).is(400),
        Call::post(k, "report_run", &report),
        // Nothing is good yet, so there is no baseline.
        Call::post(k, "find_run", &[("build_id", b), ("run_name", "/")]).is(404),
    ])
    .await;

    // runs_done moves the release on; later reports are refused.
    let (code, body) = s.post(k, "runs_done", &release_form(b, "r", "2")).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["results_url"].as_str().unwrap().starts_with(&s.base),
        "{body}"
    );
    let st = status_of(&s, &key, b, "r", "2").await;
    assert_eq!(st["status"], "reviewing");
    assert_eq!(count(&st, "no_diff_needed"), 1);
    // Attempt 1 was superseded by attempt 2 while receiving.
    assert_eq!(status_of(&s, &key, b, "r", "1").await["status"], "bad");
    let verdict =
        |status: &'static str| [release_form(b, "r", "2"), vec![("status", status)]].concat();
    s.expect(&[
        Call::post(k, "report_run", &report).is(409),
        Call::post(k, "runs_done", &release_form(b, "r", "1")).is(409),
        Call::post(k, "update_release", &verdict("great")).is(400),
        Call::post(k, "update_release", &verdict("good")),
    ])
    .await;

    // The good release is the baseline; its bytes are served to its build.
    let (code, body) = s
        .post(k, "find_run", &[("build_id", b), ("run_name", "/")])
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["image"], image.as_str());
    assert_eq!(body["release_number"], 2);
    let (code, bytes) = s
        .get(k, "download", &[("sha1sum", &image), ("build_id", b)])
        .await;
    assert_eq!(code, 200);
    assert_eq!(bytes, png(4, 4, [255, 0, 0, 255], None));
    s.expect(&[
        Call::get(k, "download", &[("sha1sum", missing), ("build_id", b)]).is(404),
        Call::get(k, "download", &[("sha1sum", "../x"), ("build_id", b)]).is(400),
    ])
    .await;
    s.stop().await;
}

/// `request_run` checks its config and URL, queues one capture for the new
/// page (the good release's run is the reference), and repeating it queues
/// nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_run_validates_its_input_and_queues_one_capture() {
    let (s, build, key) = server_with_verdict_key().await;
    let (k, b) = (Some(&key), build.as_str());
    // A good release with a run "/p" as the baseline.
    let new_release = [
        ("build_id", b),
        ("release_name", "r"),
        ("url", "http://ci/1"),
    ];
    s.post(k, "create_release", &new_release).await;
    let (_, up) = s
        .upload(&key, b, "a.png", png(4, 4, [255, 0, 0, 255], None))
        .await;
    let image = up["sha1sum"].as_str().unwrap().to_string();
    let mut report = release_form(b, "r", "1");
    report.extend([("run_name", "/p"), ("image", &image)]);
    let mut good = release_form(b, "r", "1");
    good.push(("status", "good"));
    s.expect(&[
        Call::post(k, "report_run", &report),
        Call::post(k, "runs_done", &release_form(b, "r", "1")),
        Call::post(k, "update_release", &good),
        Call::post(k, "create_release", &new_release),
    ])
    .await;

    let rr = |name: &'static str, url: &'static str, config: Option<&'static str>| {
        let mut form = release_form(b, "r", "2");
        form.extend([("run_name", name), ("url", url)]);
        form.extend(config.map(|c| ("config", c)));
        form
    };
    let viewport = "{\"viewportSize\": {\"width\": 800, \"height\": 600}}";
    s.expect(&[
        Call::post(
            k,
            "request_run",
            &rr("/p", "http://127.0.0.1:9/p", Some("{\"viewportSize\": 3}")),
        )
        .is(400)
        .says("config"),
        Call::post(
            k,
            "request_run",
            &rr("/p", "file:///etc/passwd", Some("{}")),
        )
        .is(400),
    ])
    .await;
    let (code, body) = s
        .post(
            k,
            "request_run",
            &rr("/p", "http://127.0.0.1:9/p", Some(viewport)),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["config"].as_str().unwrap().len(), 40);
    let lease = || async {
        s.client(&admin())
            .lease("capture", "t", 10, Duration::from_secs(30))
            .await
            .unwrap()
    };
    let leased = lease().await;
    assert_eq!(leased.len(), 1, "one capture, of the new page only");
    let task: dpxdt_core::api::CaptureTask = serde_json::from_str(&leased[0].payload).unwrap();
    assert_eq!(
        (task.url.as_str(), task.is_ref),
        ("http://127.0.0.1:9/p", false)
    );
    // Repeating the request is accepted and queues nothing new.
    s.expect(&[Call::post(
        k,
        "request_run",
        &rr("/p", "http://127.0.0.1:9/p", Some(viewport)),
    )])
    .await;
    assert!(lease().await.is_empty());
    // Without a config the run uses {}, as the original did.
    let no_config = rr("/q", "http://127.0.0.1:9/q", None);
    let (code, body) = s.post(k, "request_run", &no_config).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["config"].as_str(),
        Some("bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f"),
        "the sha1 of {{}}: {body}"
    );
    s.stop().await;
}

/// `request_run` with a config that has modes creates one run per mode,
/// `<run>@<mode>`, each captured (both sides) with the mode's fields over
/// the configs; a bad mode is a 400 naming the mode and field, and a
/// request whose runs do not all fit stores none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_run_with_modes_creates_one_run_per_mode_or_none() {
    let s = TestServer::start(|c| c.limits.runs_per_release = 3).await;
    let (build, key) = s.build_with_key("modes").await;
    let (k, b) = (Some(&key), build.as_str());
    s.post(
        k,
        "create_release",
        &[("build_id", b), ("release_name", "r"), ("url", "u")],
    )
    .await;
    let config = r#"{"viewportSize": {"width": 800, "height": 600},
        "modes": [{"name": "light"}, {"name": "dark", "colorScheme": "dark"}]}"#;
    let request = |name: &'static str, config: &'static str| {
        let mut form = release_form(b, "r", "1");
        form.extend([
            ("run_name", name),
            ("url", "http://127.0.0.1:9/new"),
            ("config", config),
            ("ref_url", "http://127.0.0.1:9/old"),
            // One config for both sides, as url_pair_diff sends it.
            ("ref_config", config),
        ]);
        form
    };
    let (code, body) = s.post(k, "request_run", &request("/p", config)).await;
    assert_eq!(code, 200, "{body}");
    let runs = body["runs"].as_array().unwrap();
    let names: Vec<_> = runs
        .iter()
        .map(|r| r["run_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/p@light", "/p@dark"], "{body}");
    assert_eq!(runs[1]["mode"], "dark");
    assert_eq!(body["run_name"], "/p@light", "the first run, as before");
    assert_eq!(body["config"], runs[0]["config"]);
    assert_ne!(runs[0]["config"], runs[1]["config"]);

    // Each run's config is stored: the mode's fields over the request's.
    let stored = |id: &Value| {
        let id = id.as_str().unwrap().to_string();
        let s = &s;
        async move {
            let (code, bytes) = s
                .get(k, "download", &[("sha1sum", &id), ("build_id", b)])
                .await;
            assert_eq!(code, 200);
            dpxdt_core::CaptureConfig::from_json(std::str::from_utf8(&bytes).unwrap()).unwrap()
        }
    };
    let dark = stored(&runs[1]["config"]).await;
    assert_eq!(dark.color_scheme.as_deref(), Some("dark"));
    assert_eq!(dark.viewport().width, 800);
    assert!(dark.modes.is_empty());
    let dark_ref = stored(&runs[1]["ref_config"]).await;
    assert_eq!(dark_ref.color_scheme.as_deref(), Some("dark"));

    // Two captures per run (new page and reference), each with its mode.
    let leased = s
        .client(&admin())
        .lease("capture", "t", 10, Duration::from_secs(30))
        .await
        .unwrap();
    let mut tasks: Vec<(String, bool, Option<String>)> = leased
        .iter()
        .map(|t| {
            let task: dpxdt_core::api::CaptureTask = serde_json::from_str(&t.payload).unwrap();
            let config = dpxdt_core::CaptureConfig::from_json(&task.config_json).unwrap();
            (task.run_name, task.is_ref, config.color_scheme)
        })
        .collect();
    tasks.sort();
    let dark = Some("dark".to_string());
    assert_eq!(
        tasks,
        [
            ("/p@dark".into(), false, dark.clone()),
            ("/p@dark".into(), true, dark),
            ("/p@light".into(), false, None),
            ("/p@light".into(), true, None),
        ]
    );
    // Repeating the request is accepted and changes nothing.
    let (code, again) = s.post(k, "request_run", &request("/p", config)).await;
    assert_eq!((code, &again["runs"]), (200, &body["runs"]));

    let runs_now = || async {
        let status = status_of(&s, &key, b, "r", "1").await;
        status["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(runs_now().await, 2);
    s.expect(&[
        Call::post(
            k,
            "request_run",
            &request(
                "/q",
                r#"{"modes": [{"name": "a"}, {"name": "dark", "colorScheme": "blue"}]}"#,
            ),
        )
        .is(400)
        .says("mode \"dark\": invalid capture config: colorScheme"),
        Call::post(
            k,
            "request_run",
            &request("/q", r#"{"modes": [{"name": "a"}, {"name": "a"}]}"#),
        )
        .is(400)
        .says("two modes"),
        // The reference may repeat the config's modes, not have others.
        Call::post(k, "request_run", &{
            let mut form = request("/q", config);
            form.retain(|(f, _)| *f != "ref_config");
            form.push(("ref_config", r#"{"modes": [{"name": "other"}]}"#));
            form
        })
        .is(400)
        .says("ref_config"),
        // Three runs at most: two more modes do not fit, and neither is stored.
        Call::post(k, "request_run", &request("/q", config))
            .is(413)
            .says("--max-runs-per-release 3"),
    ])
    .await;
    assert_eq!(runs_now().await, 2, "nothing stored by a refused request");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_curl_example_works_verbatim_as_multipart() {
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("readme").await;
    let (code, _) = s
        .post(
            Some(&key),
            "create_release",
            &[
                ("build_id", &build),
                ("release_name", "2013-06-16 17:35:03.327710"),
                ("url", "u"),
            ],
        )
        .await;
    assert_eq!(code, 200);
    let (_, up) = s
        .upload(&key, &build, "log.txt", b"capture log".to_vec())
        .await;
    assert_eq!(up["content_type"], "text/plain");
    let log = up["sha1sum"].as_str().unwrap().to_string();
    // curl -u key:secret -F build_id=1 -F run_name=... -F release_number=1 -F log=... -F release_name=...
    let form = reqwest::multipart::Form::new()
        .text("build_id", build.clone())
        .text("run_name", "/static/dummy/dummy_page1.html")
        .text("release_number", "1")
        .text("log", log)
        .text("release_name", "2013-06-16 17:35:03.327710");
    let resp = s
        .http
        .post(s.url("report_run"))
        .basic_auth(&key.0, Some(&key.1))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["success"], true);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_for_one_build_is_refused_on_another_everywhere() {
    let s = TestServer::start(|_| {}).await;
    let (a, key_a) = s.build_with_key("a").await;
    let (b, key_b) = s.build_with_key("b").await;
    s.post(
        Some(&key_b),
        "create_release",
        &[("build_id", &b), ("release_name", "r"), ("url", "u")],
    )
    .await;
    let (_, up) = s
        .upload(&key_b, &b, "b.png", png(2, 2, [0, 0, 255, 255], None))
        .await;
    let b_image = up["sha1sum"].as_str().unwrap().to_string();
    let rel = release_form(&b, "r", "1");
    let with = |extra: &[(&'static str, &'static str)]| [rel.clone(), extra.to_vec()].concat();
    let ka = Some(&key_a);
    let image = b_image.as_str();
    s.expect(&[
        Call::post(
            ka,
            "create_release",
            &[("build_id", &b), ("release_name", "x"), ("url", "u")],
        )
        .is(403),
        Call::post(ka, "find_run", &[("build_id", &b), ("run_name", "/")]).is(403),
        Call::post(ka, "report_run", &with(&[("run_name", "/")])).is(403),
        Call::post(ka, "runs_done", &rel).is(403),
        Call::post(ka, "update_release", &with(&[("status", "bad")])).is(403),
        Call::post(
            ka,
            "request_run",
            &with(&[("run_name", "/"), ("url", "http://x/"), ("config", "{}")]),
        )
        .is(403),
        Call::get(ka, "release_status", &rel).is(403),
        // B's artifact with A's key: refused whichever build_id is named.
        Call::get(ka, "download", &[("sha1sum", image), ("build_id", &b)]).is(403),
        Call::get(ka, "download", &[("sha1sum", image), ("build_id", &a)]).is(404),
        // B's key still works.
        Call::get(
            Some(&key_b),
            "download",
            &[("sha1sum", image), ("build_id", &b)],
        ),
    ])
    .await;
    let (code, _) = s
        .upload(&key_a, &b, "x.png", png(1, 1, [1, 2, 3, 255], None))
        .await;
    assert_eq!(code, 403);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_malformed_upload_is_refused_and_stores_nothing() {
    let limit = 256 * 1024;
    let s = TestServer::start(|c| c.upload_limit = limit).await;
    let (build, key) = s.build_with_key("big").await;
    let (code, body) = s
        .upload(&key, &build, "big.bin", vec![7u8; limit as usize + 1])
        .await;
    assert_eq!(code, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    assert!(s.artifact_files().is_empty());
    assert_eq!(
        std::fs::read_dir(s.dir.path().join("tmp")).unwrap().count(),
        0
    );
    // Not multipart; no file.
    let resp = s
        .http
        .post(s.url("upload"))
        .basic_auth(&key.0, Some(&key.1))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let form = reqwest::multipart::Form::new().text("build_id", build.clone());
    let resp = s
        .http
        .post(s.url("upload"))
        .basic_auth(&key.0, Some(&key.1))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(s.artifact_files().is_empty());
    // Exactly the limit is fine, and stored once however often it is sent.
    let (code, body) = s
        .upload(&key, &build, "ok.bin", vec![7u8; limit as usize])
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["content_type"], "application/octet-stream");
    s.upload(&key, &build, "again.bin", vec![7u8; limit as usize])
        .await;
    assert_eq!(s.artifact_files().len(), 1);
    s.stop().await;
}

each_backend! {
    async fn reported_images_are_diffed_and_the_release_reaches_reviewing(backend) {
        let s = TestServer::start(|c| backend.apply(c)).await;
        let (build, key) = s.build_with_key("flow").await;
        s.allow_key_verdicts(&build);
        let client = s.client(&key);
        let base_png = png(32, 16, [250, 250, 250, 255], None);
        let changed_png = png(32, 16, [250, 250, 250, 255], Some([255, 0, 0, 255]));
        // Release 1: first images, no reference: straight to reviewing, then good.
        let r1 = client
            .create_release(dpxdt_core::BuildId(build.parse().unwrap()), "main", "u")
            .await
            .unwrap();
        let key1 = dpxdt_core::ReleaseKey {
            build_id: r1.build_id,
            release_name: "main".into(),
            release_number: r1.release_number,
        };
        let image = client
            .upload_bytes(r1.build_id, "a.png", base_png.clone())
            .await
            .unwrap()
            .sha1sum;
        for name in ["/same", "/changed"] {
            let req = dpxdt_core::api::ReportRunRequest {
                build_id: r1.build_id,
                release_name: "main".into(),
                release_number: 1,
                run_name: name.into(),
                image: Some(image.clone()),
                ..Default::default()
            };
            client.report_run(&req).await.unwrap();
        }
        client.runs_done(&key1).await.unwrap();
        let mut verdict = release_form(&build, "main", "1");
        verdict.push(("status", "good"));
        assert_eq!(s.post(Some(&key), "update_release", &verdict).await.0, 200);

        // Release 2: references from find_run, new images uploaded.
        let r2 = client
            .create_release(r1.build_id, "main", "u")
            .await
            .unwrap();
        assert_eq!(r2.release_number, 2);
        let changed = client
            .upload_bytes(r1.build_id, "b.png", changed_png)
            .await
            .unwrap()
            .sha1sum;
        for (name, new) in [("/same", &image), ("/changed", &changed)] {
            let found = client.find_run(r1.build_id, name).await.unwrap().unwrap();
            let req = dpxdt_core::api::ReportRunRequest {
                build_id: r1.build_id,
                release_name: "main".into(),
                release_number: 2,
                run_name: name.into(),
                image: Some(new.clone()),
                ref_image: found.image,
                ref_url: found.url,
                ..Default::default()
            };
            client.report_run(&req).await.unwrap();
        }
        let key2 = dpxdt_core::ReleaseKey {
            release_number: 2,
            ..key1.clone()
        };
        client.runs_done(&key2).await.unwrap();
        let st = status_of(&s, &key, &build, "main", "2").await;
        assert_eq!(st["status"], "processing");
        assert_eq!(count(&st, "needs_diff"), 2);

        // Drive the diff worker to idle.
        let worker = DiffWorker::new(Link::Http(s.client(&admin())), Duration::from_secs(30));
        let mut steps = 0;
        while worker.run_once().await.unwrap() {
            steps += 1;
        }
        assert_eq!(steps, 2);
        let st = status_of(&s, &key, &build, "main", "2").await;
        assert_eq!(st["status"], "reviewing", "{st}");
        assert_eq!(count(&st, "diff_found"), 1, "{st}");
        assert_eq!(count(&st, "diff_not_found"), 1, "{st}");
        // The diff image is a PNG the build can download.
        let store = s.store();
        let run = store
            .blocking(|c| {
                let rel = dpxdt_server::storage::get_release(c, r1.build_id, "main", 2)?;
                dpxdt_server::storage::get_run(c, rel.id, "/changed")
            })
            .unwrap()
            .unwrap();
        assert!(run.distortion.unwrap() > 0.0);
        let diff_id = dpxdt_core::ArtifactId::parse(run.diff_image.as_deref().unwrap()).unwrap();
        let diff = client.download(r1.build_id, &diff_id).await.unwrap();
        assert!(diff.starts_with(b"\x89PNG"));
        // The bytes are where the backend keeps them, and only there.
        assert!(s.blobs().exists_async(&diff_id).await.unwrap());
        let hex = diff_id.as_str();
        let on_disk = s.dir.path().join("artifacts").join(&hex[..2]).join(&hex[2..]).exists();
        assert_eq!(on_disk, backend == common::Backend::Dir);
        // The API serves artifacts as the UI does: the id is the ETag, and a
        // client that has it gets 304 without the bytes.
        let url = format!(
            "{}?build_id={}&sha1sum={diff_id}",
            s.url("download"),
            r1.build_id
        );
        let first = s
            .http
            .get(&url)
            .basic_auth(&key.0, Some(&key.1))
            .send()
            .await
            .unwrap();
        assert_eq!(first.headers()["etag"], format!("\"{diff_id}\"").as_str());
        assert_eq!(first.headers()["x-content-type-options"], "nosniff");
        let again = s
            .http
            .get(&url)
            .basic_auth(&key.0, Some(&key.1))
            .header("if-none-match", format!("\"{diff_id}\""))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 304);
        assert!(again.bytes().await.unwrap().is_empty());
        s.stop().await;
    }
}

each_backend! {
    /// The in-process workers call into the store instead of their own
    /// HTTP API, under its rules: they read and write only for tasks they
    /// hold, their uploads have the API's size limit, and their diff ends
    /// the run as the HTTP worker's does.
    async fn in_process_workers_call_the_store_under_the_api_rules(backend) {
        let s = TestServer::start(|c| {
            backend.apply(c);
            c.upload_limit = 4096;
        })
        .await;
        let (build, key) = s.build_with_key("local").await;
        let client = s.client(&key);
        let build_id = dpxdt_core::BuildId(build.parse().unwrap());
        let store = s.store();
        let local = dpxdt_server::workers::Local::new(store.clone(), Default::default(), 4096);
        let link = Link::Local(local);
        let old = client
            .upload_bytes(build_id, "a.png", png(32, 16, [250, 250, 250, 255], None))
            .await
            .unwrap()
            .sha1sum;
        let new = client
            .upload_bytes(build_id, "b.png", png(32, 16, [250, 250, 250, 255], Some([0, 0, 0, 255])))
            .await
            .unwrap()
            .sha1sum;
        // No task held: no reading, no writing.
        let refused = link.download(build_id, &old).await.unwrap_err();
        assert!(refused.to_string().contains("hold no lease"), "{refused}");
        let refused = link.upload(build_id, "x.txt", b"x".to_vec()).await.unwrap_err();
        assert!(refused.to_string().contains("hold no lease"), "{refused}");

        client.create_release(build_id, "r", "u").await.unwrap();
        let req = dpxdt_core::api::ReportRunRequest {
            build_id,
            release_name: "r".into(),
            release_number: 1,
            run_name: "/page".into(),
            image: Some(new.clone()),
            ref_image: Some(old.clone()),
            ..Default::default()
        };
        client.report_run(&req).await.unwrap();
        let release = dpxdt_core::ReleaseKey {
            build_id,
            release_name: "r".into(),
            release_number: 1,
        };
        client.runs_done(&release).await.unwrap();
        // Holding the diff task: the task's images may be read, the build
        // written to within the limit, and only so.
        let leased = link
            .lease(dpxdt_core::api::DIFF_QUEUE, "probe", 1, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(leased.len(), 1);
        assert_eq!(link.download(build_id, &new).await.unwrap(), png(32, 16, [250, 250, 250, 255], Some([0, 0, 0, 255])));
        let unrelated = client.upload_bytes(build_id, "c.txt", b"other".to_vec()).await.unwrap().sha1sum;
        let refused = link.download(build_id, &unrelated).await.unwrap_err();
        assert!(refused.to_string().contains("needs artifact"), "{refused}");
        let refused = link.upload(build_id, "big.txt", vec![b'x'; 5000]).await.unwrap_err();
        assert!(refused.to_string().contains("limit of 4096 bytes"), "{refused}");
        let stored = link.upload(build_id, "note.txt", b"note".to_vec()).await.unwrap();
        assert_eq!(client.download(build_id, &stored).await.unwrap(), b"note");
        let task = leased[0].task_id;
        link.finish(dpxdt_core::api::DIFF_QUEUE, task, "someone-else", Some("x"))
            .await
            .unwrap_err();
        link.finish(dpxdt_core::api::DIFF_QUEUE, task, "probe", Some("probe gave up"))
            .await
            .unwrap();

        // The task comes back and a diff worker on the same link does it.
        let worker = DiffWorker::new(link, Duration::from_secs(30));
        while worker.run_once().await.unwrap() {}
        let st = client.release_status(&release).await.unwrap();
        assert_eq!(st.status.as_str(), "reviewing");
        let owners = common::count(
            &store,
            "SELECT COUNT(*) FROM task WHERE status = 'done' AND owner LIKE 'in-process/diff-%'",
        );
        assert_eq!(owners, 1);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reports_to_one_release_lose_nothing_and_duplicate_nothing() {
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("busy").await;
    let client = s.client(&key);
    let b = dpxdt_core::BuildId(build.parse().unwrap());
    client.create_release(b, "r", "u").await.unwrap();
    let image = client
        .upload_bytes(b, "a.png", png(2, 2, [9, 9, 9, 255], None))
        .await
        .unwrap()
        .sha1sum;
    let log = client
        .upload_bytes(b, "a.txt", b"log".to_vec())
        .await
        .unwrap()
        .sha1sum;
    // 40 clients, 10 run names: each run gets its image and its log from
    // different clients at the same time.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = client.clone();
        let (image, log) = (image.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            let mut req = dpxdt_core::api::ReportRunRequest {
                build_id: b,
                release_name: "r".into(),
                release_number: 1,
                run_name: format!("/page/{}", i % 10),
                ..Default::default()
            };
            if (i / 10) % 2 == 0 {
                req.image = Some(image);
            } else {
                req.log = Some(log);
            }
            client.report_run(&req).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let st = status_of(&s, &key, &build, "r", "1").await;
    assert_eq!(count(&st, "no_diff_needed"), 10, "{st}");
    let total: u64 = st["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 10);
    let store = s.store();
    let runs = store
        .blocking(|c| {
            let rel = dpxdt_server::storage::get_release(c, b, "r", 1)?;
            dpxdt_server::storage::list_runs(c, rel.id)
        })
        .unwrap();
    assert_eq!(runs.len(), 10);
    assert!(runs.iter().all(|r| r.image.is_some() && r.log.is_some()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_work_queue_over_http() {
    use dpxdt_core::api::HeartbeatRequest;
    let s = TestServer::start(|_| {}).await;
    let c = s.client(&admin());
    let lease = Duration::from_secs(30);
    let a = c.add_task("jobs", "{\"n\": 1}", Some(1)).await.unwrap();
    let b = c.add_task("jobs", "{\"n\": 2}", None).await.unwrap();
    let got = c.lease("jobs", "w1", 1, lease).await.unwrap();
    assert_eq!((got[0].task_id, got[0].payload.as_str()), (a, "{\"n\": 1}"));
    let hb = |index: i64, owner: &str| HeartbeatRequest {
        task_id: a,
        owner: owner.into(),
        message: format!("step {index}"),
        index,
        timeout: None,
    };
    c.heartbeat("jobs", &hb(2, "w1")).await.unwrap();
    c.heartbeat("jobs", &hb(1, "w1")).await.unwrap(); // late: ignored
    let err = c.heartbeat("jobs", &hb(3, "w2")).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    let err = c.finish("jobs", a, "w2", None).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    // One attempt only: a failure gives the task up.
    c.finish("jobs", a, "w1", Some("boom")).await.unwrap();
    let got = c.lease("jobs", "w1", 5, lease).await.unwrap();
    assert_eq!(got.iter().map(|t| t.task_id).collect::<Vec<_>>(), [b]);
    c.cancel_task("jobs", b).await.unwrap();
    assert_eq!(
        c.cancel_task("jobs", b).await.unwrap_err().status(),
        Some(409)
    );
    assert_eq!(
        c.finish("jobs", b, "w1", None).await.unwrap_err().status(),
        Some(409)
    );
    assert!(c.lease("jobs", "w1", 5, lease).await.unwrap().is_empty());
    let (code, body) = s
        .post(
            Some(&admin()),
            "work_queue/jobs/lease",
            &[("owner", "w"), ("count", "1")],
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("timeout"),
        "{body}"
    );
    let (code, _) = s.post(Some(&admin()), "work_queue/jobs/explode", &[]).await;
    assert_eq!(code, 404);
    s.stop().await;
}

/// Every endpoint, each with parameters that would pass for `build`'s key.
fn every_endpoint(build: &str) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let b = || ("build_id", build.to_string());
    let rel = |extra: &[(&'static str, &str)]| {
        let mut v = vec![
            b(),
            ("release_name", "r".to_string()),
            ("release_number", "1".to_string()),
        ];
        v.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        v
    };
    vec![
        (
            "create_release",
            vec![
                b(),
                ("release_name", "r".into()),
                ("url", "http://ci/".into()),
            ],
        ),
        ("find_run", vec![b(), ("run_name", "/".into())]),
        (
            "request_run",
            rel(&[("run_name", "/"), ("url", "http://x/"), ("config", "{}")]),
        ),
        ("report_run", rel(&[("run_name", "/")])),
        ("runs_done", rel(&[])),
        ("update_release", rel(&[("status", "bad")])),
        (
            "review_run",
            rel(&[("run_name", "/"), ("verdict", "approve")]),
        ),
        ("comment", rel(&[("run_name", "/"), ("text", "hello")])),
        ("create_build", vec![("name", "other".into())]),
        ("create_api_key", vec![b()]),
        ("revoke_api_key", vec![b(), ("api_key", "x".into())]),
        (
            "work_queue/capture/lease",
            vec![
                ("owner", "w".into()),
                ("count", "1".into()),
                ("timeout", "5".into()),
            ],
        ),
    ]
}

/// Asserts that `key` is refused with 401 on every endpoint, upload and GETs included.
async fn assert_refused_everywhere(s: &TestServer, key: &Key, build: &str, image: &str) {
    let mut calls: Vec<Call> = every_endpoint(build)
        .iter()
        .map(|(endpoint, form)| {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Call::post(Some(key), endpoint, &form)
                .is(401)
                .says("revoked")
        })
        .collect();
    calls.extend([
        Call::get(Some(key), "release_status", &release_form(build, "r", "1")).is(401),
        Call::get(
            Some(key),
            "download",
            &[("sha1sum", image), ("build_id", build)],
        )
        .is(401),
    ]);
    s.expect(&calls).await;
    let (code, _) = s
        .upload(key, build, "x.png", png(1, 1, [9, 9, 9, 255], None))
        .await;
    assert_eq!(code, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_revoked_over_the_api_by_their_build_or_a_superuser() {
    let s = TestServer::start(|_| {}).await;
    let (a, key_a) = s.build_with_key("a").await;
    let (b, key_b) = s.build_with_key("b").await;
    let admin_client = s.client(&admin());
    let build_a = dpxdt_core::BuildId(a.parse().unwrap());
    let new_key = |purpose: &'static str| {
        let c = admin_client.clone();
        async move {
            let k = c.create_api_key(build_a, Some(purpose)).await.unwrap();
            Key(k.api_key, k.api_secret)
        }
    };
    let (second, third) = (new_key("second").await, new_key("third").await);
    s.post(
        Some(&key_a),
        "create_release",
        &[("build_id", &a), ("release_name", "r"), ("url", "u")],
    )
    .await;
    let (_, up) = s
        .upload(&key_a, &a, "a.png", png(2, 2, [0, 9, 0, 255], None))
        .await;
    let image = up["sha1sum"].as_str().unwrap().to_string();
    let revoke = |key: &Key, build: &str, target: &str| {
        let (key, build, target) = (key.clone(), build.to_string(), target.to_string());
        let s = &s;
        async move {
            s.post(
                Some(&key),
                "revoke_api_key",
                &[("build_id", &build), ("api_key", &target)],
            )
            .await
        }
    };

    // Refusals: no key, a missing field, another build (403), a key outside
    // the named build or a superuser key (404: nothing said about them).
    assert_eq!(
        s.post(
            None,
            "revoke_api_key",
            &[("build_id", &a), ("api_key", &second.0)]
        )
        .await
        .0,
        401
    );
    let (code, body) = s
        .post(Some(&key_a), "revoke_api_key", &[("build_id", &a)])
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("api_key"),
        "{body}"
    );
    let (code, body) = revoke(&key_a, &b, &key_b.0).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["success"], false);
    // A build key names no key but itself (403 whatever the other key is).
    for other in [key_b.0.as_str(), common::ADMIN_ID, "no-such-key"] {
        assert_eq!(revoke(&key_a, &a, other).await.0, 403, "{other}");
    }
    assert_eq!(revoke(&admin(), &a, &key_b.0).await.0, 404);
    assert_eq!(revoke(&admin(), &a, common::ADMIN_ID).await.0, 404);
    assert_eq!(revoke(&admin(), &a, "no-such-key").await.0, 404);
    // None of that revoked anything.
    for key in [&second, &admin()] {
        let rel = release_form(&a, "r", "1");
        assert_eq!(s.get(Some(key), "release_status", &rel).await.0, 200);
    }
    let create_b = [
        ("build_id", b.as_str()),
        ("release_name", "r"),
        ("url", "u"),
    ];
    assert_eq!(
        s.post(Some(&key_b), "create_release", &create_b).await.0,
        200
    );

    // A build key may not revoke a sibling (one leaked key must not lock
    // the build's other clients out); the sibling works on.
    let (code, body) = revoke(&key_a, &a, &second.0).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("only itself"),
        "{body}"
    );
    let rel = release_form(&a, "r", "1");
    assert_eq!(s.get(Some(&second), "release_status", &rel).await.0, 200);

    // A superuser key revokes any key of the build: refused everywhere at once.
    let (code, body) = revoke(&admin(), &a, &second.0).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (
            &body["success"],
            &body["api_key"],
            body["build_id"].to_string()
        ),
        (
            &Value::Bool(true),
            &Value::String(second.0.clone()),
            a.clone()
        )
    );
    assert_refused_everywhere(&s, &second, &a, &image).await;
    assert_eq!(revoke(&admin(), &a, &second.0).await.0, 404, "only once");

    // A superuser revokes through dpxdt-client; the typed client sees 401 after.
    let done = admin_client
        .revoke_api_key(build_a, &third.0)
        .await
        .unwrap();
    assert_eq!((done.build_id, done.api_key.as_str()), (build_a, &*third.0));
    let err = s
        .client(&third)
        .create_release(build_a, "r", "u")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    let err = s
        .client(&key_a)
        .revoke_api_key(dpxdt_core::BuildId(b.parse().unwrap()), &key_b.0)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");

    // A key may revoke itself (e.g. after it leaked).
    assert_eq!(revoke(&key_a, &a, &key_a.0).await.0, 200);
    assert_refused_everywhere(&s, &key_a, &a, &image).await;
    // Build B's key was never touched; the revocations are in the build's log.
    assert_eq!(
        s.get(Some(&key_b), "release_status", &release_form(&b, "r", "1"))
            .await
            .0,
        200
    );
    let build_a = a.parse::<i64>().unwrap();
    let logged: Vec<String> = s
        .store()
        .blocking(|c| {
            let rows = c.query_rows(
                "SELECT message FROM admin_log WHERE log_type = 'revoke_api_key' AND build_id = ?1
                 ORDER BY id",
                [build_a],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect::<Result<_, _>>()?)
        })
        .unwrap();
    assert_eq!(logged, [second.0, third.0, key_a.0.clone()]);
    s.stop().await;
}

/// POSTs a form with a raw `Authorization` header value.
/// Transitions the release state machine does not allow are 409, and
/// leave the release as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machine_refuses_transitions_it_does_not_allow() {
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("site").await;
    s.allow_key_verdicts(&build);
    let k = Some(&key);
    s.post(
        k,
        "create_release",
        &[("build_id", &build), ("release_name", "r"), ("url", "u")],
    )
    .await;
    let rel = release_form(&build, "r", "1");
    let with = |extra: &[(&'static str, &'static str)]| [rel.clone(), extra.to_vec()].concat();
    let run = [("run_name", "/"), ("url", "http://x/"), ("config", "{}")];
    let ref_config = [run.as_slice(), &[("ref_config", "{}")]].concat();
    let bad_ref = [ref_config.as_slice(), &[("ref_url", "file:///etc/passwd")]].concat();
    let late = [
        ("run_name", "/late"),
        ("url", "http://x/"),
        ("config", "{}"),
    ];
    s.expect(&[
        // While receiving: no verdict "good", no going back to reviewing.
        Call::post(k, "update_release", &with(&[("status", "good")])).is(409),
        Call::post(k, "update_release", &with(&[("status", "reviewing")])).is(409),
        Call::post(k, "request_run", &with(&ref_config)).is(400),
        Call::post(k, "request_run", &with(&bad_ref))
            .is(400)
            .says("ref_url"),
        Call::post(k, "runs_done", &rel),
        // Reviewing: no new runs; bad once, not twice; good after bad.
        Call::post(k, "request_run", &with(&late)).is(409),
        Call::post(k, "update_release", &with(&[("status", "bad")])),
        Call::post(k, "update_release", &with(&[("status", "bad")])).is(409),
        Call::post(k, "update_release", &with(&[("status", "good")])),
    ])
    .await;
    s.stop().await;
}

#[cfg(feature = "capture")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_whose_release_is_marked_bad_is_dropped_at_the_next_heartbeat() {
    use std::sync::Arc;
    use std::time::Instant;

    use dpxdt_core::api::RequestRunRequest;
    use dpxdt_core::capture::{CaptureFuture, Capturer};
    use dpxdt_core::{BuildId, CaptureConfig, ReleaseKey, ReleaseStatus};
    use dpxdt_server::workers::CaptureWorker;

    /// A page that never finishes loading: says when its capture started,
    /// then never answers.
    struct Hanging(tokio::sync::mpsc::UnboundedSender<String>);
    impl Capturer for Hanging {
        fn capture<'a>(&'a self, url: &'a str, _: &'a CaptureConfig) -> CaptureFuture<'a> {
            let _ = self.0.send(url.to_string());
            Box::pin(std::future::pending())
        }
    }

    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("site").await;
    s.allow_key_verdicts(&build);
    let build = BuildId(build.parse().unwrap());
    let client = s.client(&key);
    let r = client.create_release(build, "main", "u").await.unwrap();
    let release = ReleaseKey {
        build_id: build,
        release_name: "main".into(),
        release_number: r.release_number,
    };
    client
        .request_run(&RequestRunRequest {
            build_id: build,
            release_name: "main".into(),
            release_number: release.release_number,
            run_name: "/never".into(),
            url: "http://staging.example/never".into(),
            config: "{}".into(),
            ref_url: None,
            ref_config: None,
        })
        .await
        .unwrap();
    client.runs_done(&release).await.unwrap();
    let (started, mut capturing) = tokio::sync::mpsc::unbounded_channel();
    let lease = Duration::from_secs(1);
    let worker = Arc::new(CaptureWorker::with_capturer(
        Link::Http(s.client(&admin())),
        lease,
        Arc::new(Hanging(started)),
    ));
    let step = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run_once().await }
    });
    assert_eq!(
        capturing.recv().await.as_deref(),
        Some("http://staging.example/never")
    );
    // A person gives up on the release: its tasks are canceled, and the
    // worker stops at its next heartbeat instead of waiting for a page
    // that never loads and reporting into a decided release.
    let marked = Instant::now();
    assert_eq!(
        client
            .update_release(&release, ReleaseStatus::Bad)
            .await
            .unwrap(),
        ReleaseStatus::Bad
    );
    let did_work = tokio::time::timeout(Duration::from_secs(10), step)
        .await
        .expect("the worker kept capturing a canceled task")
        .unwrap()
        .unwrap();
    assert!(did_work);
    assert!(marked.elapsed() < lease * 3, "{:?}", marked.elapsed());
    let (status, error): (String, Option<String>) = s
        .store()
        .blocking(|c| {
            Ok(c.query_row(
                "SELECT status, last_error FROM task WHERE queue = 'capture'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .unwrap();
    assert_eq!((status.as_str(), error), ("canceled", None));
    drop(worker);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_attempt_of_a_processing_release_cancels_the_old_attempts_tasks() {
    use dpxdt_core::api::{CaptureTask, RequestRunRequest};
    use dpxdt_core::{BuildId, ReleaseKey};

    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("site").await;
    let build = BuildId(build.parse().unwrap());
    let client = s.client(&key);
    let worker = s.client(&admin());
    let request = |number: i64, url: &str| RequestRunRequest {
        build_id: build,
        release_name: "main".into(),
        release_number: number,
        run_name: "/".into(),
        url: url.into(),
        config: "{}".into(),
        ref_url: Some("http://127.0.0.1:9/ref".into()),
        ref_config: None,
    };
    let key_of = |number: i64| ReleaseKey {
        build_id: build,
        release_name: "main".into(),
        release_number: number,
    };
    let first = client.create_release(build, "main", "u").await.unwrap();
    let first = key_of(first.release_number);
    client
        .request_run(&request(first.release_number, "http://127.0.0.1:9/one"))
        .await
        .unwrap();
    client.runs_done(&first).await.unwrap();
    let st = client.release_status(&first).await.unwrap();
    assert_eq!(st.status.as_str(), "processing");
    // One of the two captures is leased (in flight), the other still queued.
    let leased = worker
        .lease("capture", "w1", 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);

    // The next attempt supersedes it: bad, and both of its tasks canceled.
    let second = client.create_release(build, "main", "u").await.unwrap();
    let second = key_of(second.release_number);
    assert_eq!(second.release_number, first.release_number + 1);
    let st = client.release_status(&first).await.unwrap();
    assert_eq!(st.status.as_str(), "bad");
    let err = worker
        .finish("capture", leased[0].task_id, "w1", None)
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(409),
        "the leased task was canceled: {err}"
    );
    client
        .request_run(&request(second.release_number, "http://127.0.0.1:9/two"))
        .await
        .unwrap();
    let tasks = worker
        .lease("capture", "w2", 10, Duration::from_secs(60))
        .await
        .unwrap();
    let urls: Vec<(String, i64)> = tasks
        .iter()
        .map(|t| {
            let t: CaptureTask = serde_json::from_str(&t.payload).unwrap();
            (t.url, t.release_number)
        })
        .collect();
    assert_eq!(urls.len(), 2, "{urls:?}");
    assert!(
        urls.iter().all(|(_, n)| *n == second.release_number),
        "only the new attempt's captures are handed out: {urls:?}"
    );
    s.stop().await;
}

/// Regression: a form of 10,000 pairs with one bad value used to take
/// seconds of CPU (each field was left out in turn to find the bad one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_of_thousands_of_pairs_is_refused_before_it_is_decoded() {
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("many").await;
    let many: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("f{i}"), "x".to_string()))
        .chain([("release_number".to_string(), "not a number".to_string())])
        .collect();
    let form: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Without a key: refused before the body is read at all. The server may
    // answer and close while the client is still sending, so the client sees
    // either the 401 or the connection cut; never another answer.
    match s.http.post(s.url("report_run")).form(&form).send().await {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 401),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    let (code, body) = s.post(Some(&key), "report_run", &form).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"], "more than 100 parameters", "{body}");
    let long = "n".repeat(65);
    let (code, body) = s
        .post(Some(&key), "report_run", &[(long.as_str(), "1")])
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("longer than 64 bytes"),
        "{body}"
    );

    // A bad value among unknown fields is still named, in one pass.
    let mut some: Vec<(&str, &str)> = form[..50].to_vec();
    some.extend([
        ("build_id", build.as_str()),
        ("release_name", "r"),
        ("release_number", "seven"),
        ("run_name", "/"),
    ]);
    let (code, body) = s.post(Some(&key), "report_run", &some).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter release_number"),
        "{body}"
    );
    s.stop().await;
}

/// Regression: `/api/upload` read every text part whole and kept no count,
/// so 20,000 large text fields beside the file held hundreds of MiB. Its
/// text parts are now counted and bounded like any form's parameters; only
/// the file part may be large, and a refused upload stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploads_text_parts_are_counted_and_bounded() {
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("fields").await;
    let send = |form: reqwest::multipart::Form| {
        let req = s
            .http
            .post(s.url("upload"))
            .basic_auth(&key.0, Some(&key.1))
            .multipart(form);
        async move {
            let resp = req.send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.unwrap())
        }
    };
    let file =
        || reqwest::multipart::Part::bytes(png(2, 2, [1, 2, 3, 255], None)).file_name("a.png");
    let mut many = reqwest::multipart::Form::new().text("build_id", build.clone());
    for i in 0..200 {
        many = many.text(format!("f{i}"), "x");
    }
    let (code, body) = send(many.part("file", file())).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"], "more than 100 parameters", "{body}");
    let big = reqwest::multipart::Form::new()
        .text("build_id", build.clone())
        .text("note", "x".repeat(64 * 1024))
        .part("file", file());
    let (code, body) = send(big).await;
    assert_eq!(code, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("\"note\" is longer than"),
        "{body}"
    );
    // Nothing was stored by either; a plain upload still works.
    let count = |s: &TestServer| common::count(&s.store(), "SELECT COUNT(*) FROM artifact");
    assert_eq!(count(&s), 0);
    let ok = reqwest::multipart::Form::new()
        .text("build_id", build.clone())
        .part("file", file());
    let (code, body) = send(ok).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(count(&s), 1);
    s.stop().await;
}

/// Regression: `javascript:` and `data:` links were stored and shown on the
/// review pages as release and run links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_links_are_refused_and_free_text_is_kept() {
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("links").await;
    for url in [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:text/html,<script>x</script>",
    ] {
        let (code, body) = s
            .post(
                Some(&key),
                "create_release",
                &[("build_id", &build), ("release_name", "r"), ("url", url)],
            )
            .await;
        assert_eq!(code, 400, "{url}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("url: scheme"),
            "{body}"
        );
    }
    let (code, body) = s
        .post(
            Some(&key),
            "create_release",
            &[
                ("build_id", &build),
                ("release_name", "r"),
                ("url", "CI job 42"),
            ],
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let n = body["release_number"].to_string();
    let (code, body) = s
        .post(
            Some(&key),
            "report_run",
            &[
                ("build_id", build.as_str()),
                ("release_name", "r"),
                ("release_number", &n),
                ("run_name", "/a"),
                ("url", "http://example.com/a"),
                ("ref_url", "javascript:alert(document.cookie)"),
            ],
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("ref_url: scheme"),
        "{body}"
    );
    s.stop().await;
}

/// A worker key made the way `dpxdt-server create-worker-key` makes one.
fn worker_key(s: &TestServer) -> Key {
    let store = s.store();
    let k = store
        .blocking(|c| dpxdt_server::storage::create_worker_key(c, "test worker"))
        .unwrap();
    Key(k.id, k.secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_key_works_only_on_the_tasks_it_holds() {
    use dpxdt_core::api::{HeartbeatRequest, ReportRunRequest};
    use dpxdt_core::{ArtifactId, BuildId};
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("site").await;
    let (other, other_key) = s.build_with_key("other").await;
    let (wk, wk2) = (worker_key(&s), worker_key(&s));
    let (w, w2) = (s.client(&wk), s.client(&wk2));
    let bid = BuildId(build.parse().unwrap());
    let other_id = BuildId(other.parse().unwrap());
    for (b, k) in [(&build, &key), (&other, &other_key)] {
        assert_eq!(
            s.post(
                Some(k),
                "create_release",
                &[
                    ("build_id", b.as_str()),
                    ("release_name", "r"),
                    ("url", "u")
                ]
            )
            .await
            .0,
            200
        );
        let mut rr = release_form(b, "r", "1");
        rr.extend([
            ("run_name", "/a"),
            ("url", "http://staging.invalid/a"),
            ("config", "{}"),
        ]);
        assert_eq!(s.post(Some(k), "request_run", &rr).await.0, 200);
    }
    let other_png = s
        .upload(
            &other_key,
            &other,
            "x.png",
            png(2, 2, [0, 0, 255, 255], None),
        )
        .await;
    assert_eq!(other_png.0, 200);
    let other_png = ArtifactId::parse(other_png.1["sha1sum"].as_str().unwrap()).unwrap();
    let report = |b: BuildId, run: &str| ReportRunRequest {
        build_id: b,
        release_name: "r".into(),
        release_number: 1,
        run_name: run.into(),
        run_failed: Some("the page was down".into()),
        ..Default::default()
    };
    let status = |e: dpxdt_client::ClientError| e.status();

    // Nothing outside the queue's lease, heartbeat and finish, and
    // nothing for a build before it holds a task of it.
    for (path, form) in every_endpoint(&build) {
        if path.starts_with("work_queue/") {
            continue;
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let code = if path == "download" || path == "release_status" {
            s.get(Some(&wk), path, &form).await.0
        } else {
            s.post(Some(&wk), path, &form).await.0
        };
        assert!(matches!(code, 403 | 400), "{path}: {code}");
    }
    let (code, body) = s
        .post(Some(&wk), "work_queue/capture/add", &[("payload", "{}")])
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("worker key may not add"),
        "{body}"
    );
    assert_eq!(
        status(w.report_run(&report(bid, "/a")).await.unwrap_err()),
        Some(403)
    );
    let png_bytes = png(2, 2, [255, 0, 0, 255], None);
    assert_eq!(
        status(
            w.upload_bytes(bid, "a.png", png_bytes.clone())
                .await
                .unwrap_err()
        ),
        Some(403)
    );

    // It leases one task (of whichever build); it may then work on that
    // run only.
    let leased = w
        .lease("capture", "w", 1, Duration::from_secs(60))
        .await
        .unwrap();
    let task: dpxdt_core::api::CaptureTask = serde_json::from_str(&leased[0].payload).unwrap();
    let (mine, theirs) = if task.build_id == bid {
        (bid, other_id)
    } else {
        (other_id, bid)
    };
    assert_eq!(
        status(w.report_run(&report(mine, "/b")).await.unwrap_err()),
        Some(403)
    );
    assert_eq!(
        status(w.report_run(&report(theirs, "/a")).await.unwrap_err()),
        Some(403)
    );
    assert_eq!(
        status(
            w.upload_bytes(theirs, "a.png", png_bytes.clone())
                .await
                .unwrap_err()
        ),
        Some(403)
    );
    // It reads what its task names (the run's config), and no other
    // artifact of that build or another.
    assert!(!w.download(mine, &task.config).await.unwrap().is_empty());
    assert_eq!(
        status(w.download(other_id, &other_png).await.unwrap_err()),
        Some(403),
        "an artifact of build {other_id} that no held task names"
    );
    w.upload_bytes(mine, "a.png", png_bytes.clone())
        .await
        .unwrap();
    // Another worker key cannot heartbeat or finish it, even under the same owner name.
    let hb = HeartbeatRequest {
        task_id: leased[0].task_id,
        owner: "w".into(),
        message: "capturing".into(),
        index: 1,
        timeout: None,
    };
    assert_eq!(
        status(w2.heartbeat("capture", &hb).await.unwrap_err()),
        Some(409)
    );
    assert_eq!(
        status(
            w2.finish("capture", leased[0].task_id, "w", None)
                .await
                .unwrap_err()
        ),
        Some(409)
    );
    w.heartbeat("capture", &hb).await.unwrap();
    w.report_run(&report(mine, "/a")).await.unwrap();
    w.finish("capture", leased[0].task_id, "w", None)
        .await
        .unwrap();
    // Finished: the lease is gone and so is the permission.
    assert_eq!(
        status(w.upload_bytes(mine, "a.png", png_bytes).await.unwrap_err()),
        Some(403)
    );
    // A build key cannot use the queue at all.
    let (code, body) = s
        .post(
            Some(&key),
            "work_queue/capture/lease",
            &[("owner", "x"), ("count", "1"), ("timeout", "10")],
        )
        .await;
    assert_eq!(code, 403, "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_people_give_verdicts_unless_the_build_lets_its_keys() {
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("site").await;
    let mut release = vec![
        ("build_id", build.as_str()),
        ("release_name", "r"),
        ("url", "u"),
    ];
    assert_eq!(s.post(Some(&key), "create_release", &release).await.0, 200);
    release.pop();
    release.push(("release_number", "1"));
    assert_eq!(s.post(Some(&key), "runs_done", &release).await.0, 200);
    let mut good = release.clone();
    good.push(("status", "good"));
    let (code, body) = s.post(Some(&key), "update_release", &good).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("people only"),
        "{body}"
    );
    assert_eq!(
        status_of(&s, &key, &build, "r", "1").await["status"],
        "reviewing"
    );
    // A superuser (a person's tool) may; the build's keys once it says so.
    s.allow_key_verdicts(&build);
    let (code, body) = s.post(Some(&key), "update_release", &good).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        status_of(&s, &key, &build, "r", "1").await["status"],
        "good"
    );
    let mut bad = release.clone();
    bad.push(("status", "bad"));
    assert_eq!(s.post(Some(&admin()), "update_release", &bad).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_build_limit_is_refused_with_a_clear_status_and_changes_nothing() {
    let s = TestServer::start(|c| {
        c.limits = dpxdt_server::storage::Limits {
            runs_per_release: 2,
            releases_per_hour: 3,
            build_bytes: 1000,
            queued_captures: 3,
        }
    })
    .await;
    let (build, key) = s.build_with_key("busy").await;
    let (other, other_key) = s.build_with_key("quiet").await;
    let release = |b: &str, name: &str| {
        vec![
            ("build_id", b.to_string()),
            ("release_name", name.to_string()),
            ("url", "u".to_string()),
        ]
    };
    let form = |v: &[(&'static str, String)]| -> Vec<(&'static str, String)> { v.to_vec() };
    let post = async |k: &Key, path: &str, v: Vec<(&str, String)>| {
        let v: Vec<(&str, &str)> = v.iter().map(|(a, b)| (*a, b.as_str())).collect();
        s.post(Some(k), path, &v).await
    };
    for name in ["r1", "r2", "r3"] {
        assert_eq!(
            post(&key, "create_release", release(&build, name)).await.0,
            200
        );
    }
    // The fourth release in an hour: 429 with Retry-After; another build is not affected.
    let resp = s
        .http
        .post(s.url("create_release"))
        .basic_auth(&key.0, Some(&key.1))
        .form(&release(&build, "r4"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&wait), "{wait}");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-releases-per-hour 3"),
        "{body}"
    );
    assert_eq!(
        post(&other_key, "create_release", release(&other, "r1"))
            .await
            .0,
        200
    );
    let missing = s
        .get(
            Some(&key),
            "release_status",
            &release_form(&build, "r4", "1"),
        )
        .await;
    assert_eq!(missing.0, 404, "r4 was not made");

    // Two runs per release; a third is 413, reporting an existing one again is fine.
    let run = |rel: &str, name: &str| {
        form(&[
            ("build_id", build.clone()),
            ("release_name", rel.to_string()),
            ("release_number", "1".to_string()),
            ("run_name", name.to_string()),
            ("url", "http://x/".to_string()),
        ])
    };
    assert_eq!(post(&key, "report_run", run("r1", "/a")).await.0, 200);
    assert_eq!(post(&key, "report_run", run("r1", "/b")).await.0, 200);
    let (code, body) = post(&key, "report_run", run("r1", "/c")).await;
    assert_eq!(code, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-runs-per-release 2"),
        "{body}"
    );
    assert_eq!(post(&key, "report_run", run("r1", "/a")).await.0, 200);
    let st = status_of(&s, &key, &build, "r1", "1").await;
    let counted: u64 = st["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 2, "{st}");

    // Three captures waiting at once: a run with a reference queues two.
    let capture = |rel: &str, name: &str, with_ref: bool| {
        let mut v = run(rel, name);
        v.push(("config", "{}".to_string()));
        if with_ref {
            v.push(("ref_url", "http://x/old".to_string()));
        }
        v
    };
    assert_eq!(
        post(&key, "request_run", capture("r2", "/x", true)).await.0,
        200
    );
    assert_eq!(
        post(&key, "request_run", capture("r2", "/y", false))
            .await
            .0,
        200
    );
    let (code, body) = post(&key, "request_run", capture("r3", "/z", false)).await;
    assert_eq!(code, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("3 captures waiting"),
        "{body}"
    );
    let st = status_of(&s, &key, &build, "r3", "1").await;
    assert!(
        st["runs"].as_array().unwrap().is_empty(),
        "nothing half-made: {st}"
    );

    // 1000 stored bytes per build: a small image fits, a big file does not,
    // and uploading what the build already owns costs nothing.
    let small = png(2, 2, [0, 0, 0, 255], None);
    assert_eq!(s.upload(&key, &build, "a.png", small.clone()).await.0, 200);
    let files_before = s.artifact_files().len();
    let (code, body) = s.upload(&key, &build, "big.bin", vec![7u8; 2000]).await;
    assert_eq!(code, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-build-bytes"),
        "{body}"
    );
    assert_eq!(s.artifact_files().len(), files_before, "nothing stored");
    assert_eq!(s.upload(&key, &build, "a.png", small).await.0, 200);
    assert_eq!(
        s.upload(&other_key, &other, "big.bin", vec![7u8; 900])
            .await
            .0,
        200
    );
    s.stop().await;
}

/// A create sent again with the same `Idempotency-Key` (a client retrying
/// after a lost answer) gets the first answer and creates nothing more;
/// the key cannot be reused for another request, and another key is a new
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_create_with_one_idempotency_key_creates_once() {
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("idem").await;
    // A create of release `name` in the build as spelled by `spelled`.
    let create_in = |spelled: &str, idem: &'static str, name: &'static str| {
        let req = s
            .http
            .post(s.url("create_release"))
            .basic_auth(&key.0, Some(&key.1))
            .header("Idempotency-Key", idem)
            .form(&[
                ("build_id", spelled),
                ("release_name", name),
                ("url", "http://ci/1"),
            ]);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let create = |idem, name| create_in(&build, idem, name);
    let (code, first) = create("k-1", "main").await;
    assert_eq!(code, 200, "{first}");
    let (code, again) = create("k-1", "main").await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again, first, "the repeat is answered with the first answer");
    // The build as parsed, not as spelled: `01` is build 1, so a repeat
    // naming it with a leading zero is the same request in the same scope.
    let (code, spelled) = create_in(&format!("0{build}"), "k-1", "main").await;
    assert_eq!(code, 200, "{spelled}");
    assert_eq!(spelled, first, "build 0{build} is build {build}");
    let (code, other) = create("k-2", "main").await;
    assert_eq!(code, 200, "{other}");
    assert_eq!(
        other["release_number"],
        first["release_number"].as_i64().unwrap() + 1
    );
    let (code, misuse) = create("k-1", "other").await;
    assert_eq!(code, 400, "{misuse}");
    assert!(
        misuse["error"]
            .as_str()
            .unwrap()
            .contains("different request"),
        "{misuse}"
    );
    // Two releases of "main" and none of "other" exist.
    let store = s.store();
    let b = dpxdt_core::BuildId(build.parse().unwrap());
    let count: i64 = store
        .blocking(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM release WHERE build_id = ?1",
                [b.0],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(count, 2);
    // A malformed key is refused before anything is created.
    let bad = "x".repeat(300);
    let resp = s
        .http
        .post(s.url("create_release"))
        .basic_auth(&key.0, Some(&key.1))
        .header("Idempotency-Key", bad)
        .form(&[
            ("build_id", build.as_str()),
            ("release_name", "bad"),
            ("url", "http://ci/1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Keys are per build: one superuser key may use the same key for
    // releases of two builds, and each gets its own release.
    let (other_build, _) = s.build_with_key("idem-other").await;
    for b in [&build, &other_build] {
        let resp = s
            .http
            .post(s.url("create_release"))
            .basic_auth(common::ADMIN_ID, Some(common::ADMIN_SECRET))
            .header("Idempotency-Key", "shared")
            .form(&[
                ("build_id", b.as_str()),
                ("release_name", "nightly"),
                ("url", "http://ci/2"),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "build {b}: {body}");
        assert_eq!(body["release_number"], 1, "build {b}: {body}");
    }
    s.stop().await;
}

each_backend! {
    /// `/healthz` answers while the process serves; `/readyz` is 503 while the
    /// artifact directory cannot take writes, naming the failing check but
    /// not what was seen, and 200 again once it can.
    async fn health_and_readiness_endpoints_for_load_balancers(backend) {
        let s = TestServer::start(|c| backend.apply(c)).await;
        let get = |path: &'static str| {
            let req = s.http.get(format!("{}/{path}", s.base));
            async move {
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap())
            }
        };
        assert_eq!(get("healthz").await, (200, "ok\n".to_string()));
        let ready = "database: ok\nmigrations: ok\nartifacts: ok\n".to_string();
        assert_eq!(get("readyz").await, (200, ready.clone()));
        let tmp = s.dir.path().join("tmp");
        std::fs::remove_dir_all(&tmp).unwrap();
        std::fs::write(&tmp, b"not a directory").unwrap();
        let (status, body) = get("readyz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("artifacts: FAILED\n"), "{body}");
        assert!(!body.contains(s.dir.path().to_str().unwrap()), "{body}");
        std::fs::remove_file(&tmp).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        assert_eq!(get("readyz").await, (200, ready));
        s.stop().await;
    }
}

/// Baselines per branch: a run is compared with the newest good release of
/// its own branch, else of the build's default branch (`main`; releases
/// that name no branch are on it). A feature branch's good release never
/// becomes main's baseline; main's next good release after the merge does.
/// `release_status` says what each run was compared with, and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baselines_follow_the_branch_and_fall_back_to_the_default_branch() {
    use dpxdt_core::api::{BaselineReason, CreateReleaseRequest, ReportRunRequest};
    let s = TestServer::start(|_| {}).await;
    let (build, key) = s.build_with_key("branches").await;
    s.allow_key_verdicts(&build);
    let client = s.client(&key);
    let b = dpxdt_core::BuildId(build.parse().unwrap());
    let mut images = Vec::new();
    for shade in 0..4u8 {
        let bytes = png(8, 8, [shade * 60, 0, 0, 255], None);
        images.push(
            client
                .upload_bytes(b, "p.png", bytes)
                .await
                .unwrap()
                .sha1sum,
        );
    }
    // A release on `branch` whose run /page has image `i` and no reference,
    // marked good; its name.
    let good = |name: &'static str, branch: Option<&'static str>, i: usize| {
        let (client, images, s, key, build) = (&client, &images, &s, &key, &build);
        async move {
            let created = client
                .create_release_with(&CreateReleaseRequest {
                    build_id: b,
                    release_name: name.into(),
                    url: "u".into(),
                    branch: branch.map(str::to_string),
                    commit_sha: Some("0123abcd".into()),
                })
                .await
                .unwrap();
            let report = ReportRunRequest {
                build_id: b,
                release_name: name.into(),
                release_number: created.release_number,
                run_name: "/page".into(),
                image: Some(images[i].clone()),
                ..Default::default()
            };
            client.report_run(&report).await.unwrap();
            client
                .runs_done(&dpxdt_core::ReleaseKey {
                    build_id: b,
                    release_name: name.into(),
                    release_number: created.release_number,
                })
                .await
                .unwrap();
            let mut verdict = release_form(build, name, "1");
            verdict.push(("status", "good"));
            assert_eq!(s.post(Some(key), "update_release", &verdict).await.0, 200);
        }
    };
    // (asked branch, expected release, reason) after each good release.
    let check = |table: &'static [(Option<&'static str>, &'static str, BaselineReason)]| {
        let client = &client;
        async move {
            for (branch, release, reason) in table {
                let found = client
                    .find_run_on(b, "/page", *branch)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    (found.release_name.as_str(), found.baseline),
                    (*release, Some(*reason)),
                    "baseline of a run on {branch:?}"
                );
            }
        }
    };
    use BaselineReason::{DefaultBranch, SameBranch};
    good("m1", None, 0).await;
    check(&[
        (None, "m1", SameBranch),
        (Some("main"), "m1", SameBranch),
        (Some("feature"), "m1", DefaultBranch),
    ])
    .await;
    good("f1", Some("feature"), 1).await;
    check(&[
        (Some("feature"), "f1", SameBranch),
        (None, "m1", SameBranch),
        (Some("main"), "m1", SameBranch),
        (Some("other"), "m1", DefaultBranch),
    ])
    .await;
    // The merge: main's next good release is every default-branch baseline.
    good("m2", Some("main"), 2).await;
    check(&[
        (None, "m2", SameBranch),
        (Some("other"), "m2", DefaultBranch),
        (Some("feature"), "f1", SameBranch),
    ])
    .await;

    // A release on the feature branch: its runs' references say where they
    // came from.
    let f2 = client
        .create_release_with(&CreateReleaseRequest {
            build_id: b,
            release_name: "f2".into(),
            url: "u".into(),
            branch: Some("feature".into()),
            commit_sha: Some("89abcdef0123456789abcdef0123456789abcdef".into()),
        })
        .await
        .unwrap();
    let on_f2 = |run: &str, reference: Option<usize>| ReportRunRequest {
        build_id: b,
        release_name: "f2".into(),
        release_number: f2.release_number,
        run_name: run.into(),
        image: Some(images[3].clone()),
        ref_image: reference.map(|i| images[i].clone()),
        distortion: reference.map(|_| 0.5),
        ..Default::default()
    };
    for req in [
        on_f2("/page", Some(1)),
        on_f2("/given", Some(0)),
        on_f2("/new", None),
    ] {
        client.report_run(&req).await.unwrap();
    }
    let status = client
        .release_status(&dpxdt_core::ReleaseKey {
            build_id: b,
            release_name: "f2".into(),
            release_number: f2.release_number,
        })
        .await
        .unwrap();
    assert_eq!(status.branch.as_deref(), Some("feature"));
    assert_eq!(
        status.commit_sha.as_deref(),
        Some("89abcdef0123456789abcdef0123456789abcdef")
    );
    let seen: Vec<_> = status
        .baselines
        .iter()
        .map(|x| {
            (
                x.run_name.as_str(),
                x.reason,
                x.release_name.as_deref(),
                x.branch.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("/given", Some(BaselineReason::Given), None, None),
            ("/new", None, None, None),
            ("/page", Some(SameBranch), Some("f1"), Some("feature")),
        ]
    );

    // Bad branches and commits are refused, naming the field, and create nothing.
    let k = Some(&key);
    let long = "b".repeat(256);
    let create = |field: &'static str, value: &str| {
        let mut form = vec![
            ("build_id", build.as_str()),
            ("release_name", "bad"),
            ("url", "u"),
        ];
        form.push((field, value));
        Call::post(k, "create_release", &form)
    };
    s.expect(&[
        create("branch", "a\u{1}b")
            .is(400)
            .says("branch must not contain control characters"),
        create("branch", &long)
            .is(400)
            .says("branch is 256 bytes, longer than 255"),
        create("branch", " ")
            .is(400)
            .says("branch must not be empty"),
        create("commit_sha", "abc12")
            .is(400)
            .says("commit_sha must be 7 to 64 hex digits"),
        create("commit_sha", "zzzzzzz")
            .is(400)
            .says("commit_sha must be 7 to 64 hex digits"),
        Call::post(
            k,
            "find_run",
            &[
                ("build_id", &build),
                ("run_name", "/page"),
                ("branch", "x\ny"),
            ],
        )
        .is(400)
        .says("branch must not contain control characters"),
    ])
    .await;
    let (status, body) = s
        .get(
            k,
            "release_status",
            &[
                ("build_id", &build),
                ("release_name", "bad"),
                ("release_number", "1"),
            ],
        )
        .await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    s.stop().await;
}

each_backend! {
    /// Garbage collection while the server runs: an upload of bytes the
    /// collector has already decided to delete, arriving after it looked and
    /// before it deletes (forced at its checkpoint, not timed), is never lost;
    /// the same bytes nobody uploads again are freed.
    async fn an_upload_racing_the_garbage_collector_is_never_lost(backend) {
        use dpxdt_server::storage::gc;
        let server = common::ui::UiServer::start(&[("alice", false)], |c| backend.apply(c)).await;
        let mut alice = server.login("alice").await;
        let build = alice.create_build("racy", false).await;
        let key = alice.create_key(build).await;
        let client = server.client(&key);
        let b = dpxdt_core::BuildId(build);
        let (raced, lone) = (
            b"bytes uploaded again".to_vec(),
            b"bytes nobody wants".to_vec(),
        );
        let mut ids = Vec::new();
        for bytes in [&raced, &lone] {
            ids.push(
                client
                    .upload_bytes(b, "x.bin", bytes.clone())
                    .await
                    .unwrap()
                    .sha1sum,
            );
        }
        // One old release refers to both; a newer one makes it expire.
        for (name, with) in [("old", true), ("new", false)] {
            let created = client.create_release(b, name, "u").await.unwrap();
            let report = dpxdt_core::api::ReportRunRequest {
                build_id: b,
                release_name: name.into(),
                release_number: created.release_number,
                run_name: "/a".into(),
                image: with.then(|| ids[0].clone()),
                log: with.then(|| ids[1].clone()),
                run_failed: (!with).then(|| "nothing".to_string()),
                ..Default::default()
            };
            client.report_run(&report).await.unwrap();
            client
                .runs_done(&dpxdt_core::ReleaseKey {
                    build_id: b,
                    release_name: name.into(),
                    release_number: created.release_number,
                })
                .await
                .unwrap();
        }
        server
            .store
            .blocking(|c| {
                c.execute("UPDATE release SET created = created - ?1", [86_400_000i64 * 400])?;
                c.execute("UPDATE artifact_owner SET seen = seen - 1000", [])?;
                Ok(())
            })
            .unwrap();
        let store = server.store.clone();
        let handle = tokio::runtime::Handle::current();
        let (upload_client, again, raced_id) = (client.clone(), raced.clone(), ids[0].clone());
        let report = tokio::task::spawn_blocking(move || {
            let opts = gc::GcOptions {
                defaults: gc::Policy {
                    keep_releases: 1,
                    keep_days: 1,
                },
                grace: std::time::Duration::ZERO,
                ..Default::default()
            };
            gc::collect(&store, &opts, &mut |doomed| {
                assert!(
                    doomed.contains(&raced_id),
                    "the collector means to delete it"
                );
                // The upload arrives now, through the real HTTP route.
                let up = handle.block_on(upload_client.upload_bytes(b, "again.bin", again.clone()));
                assert_eq!(up.unwrap().sha1sum, raced_id);
            })
            .unwrap()
        })
        .await
        .unwrap();
        assert_eq!((report.releases, report.artifacts), (1, 1), "{report:?}");
        assert_eq!(client.download(b, &ids[0]).await.unwrap(), raced);
        let gone = client.download(b, &ids[1]).await.unwrap_err();
        assert!(gone.is_not_found(), "{gone}");
        assert!(!server.store.artifacts().exists_async(&ids[1]).await.unwrap());
        assert!(server.store.artifacts().exists_async(&ids[0]).await.unwrap());
        server.stop().await;
    }
}

/// In a bucket: an upload larger than one part goes up as a multipart
/// upload (its ETag says how many parts), downloads whole, and an upload of
/// the same bytes again is recognised and stored once; the bucket's health
/// probe leaves nothing behind; and a server pointed at a bucket with wrong
/// credentials says so in `/readyz` and refuses uploads without storing a
/// row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_goes_to_the_bucket_in_parts_and_downloads_whole() {
    use object_store::ObjectStoreExt;
    let s = TestServer::start(|c| common::Backend::Scaled.apply(c)).await;
    let (build, key) = s.build_with_key("big").await;
    let client = s.client(&key);
    let b = dpxdt_core::BuildId(build.parse().unwrap());
    // 20 MiB of bytes that do not repeat in any one part.
    let big: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8)
        .collect();
    let id = client
        .upload_bytes(b, "big.bin", big.clone())
        .await
        .unwrap()
        .sha1sum;
    assert_eq!(client.download(b, &id).await.unwrap(), big);
    let again = client
        .upload_bytes(b, "again.bin", big.clone())
        .await
        .unwrap();
    assert_eq!(again.sha1sum, id);

    let garage = dpxdt_e2e::garage::shared();
    let dpxdt_server::storage::ArtifactsUrl::S3 { bucket, prefix } = &s.artifacts.url else {
        panic!("an S3 server");
    };
    let direct = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(&garage.endpoint)
        .with_region(dpxdt_e2e::garage::REGION)
        .with_access_key_id(&garage.key_id)
        .with_secret_access_key(&garage.secret)
        .with_allow_http(true)
        .build()
        .unwrap();
    let key_of = |id: &dpxdt_core::ArtifactId| {
        object_store::path::Path::from(format!(
            "{prefix}/{}/{}",
            &id.as_str()[..2],
            &id.as_str()[2..]
        ))
    };
    let meta = direct.head(&key_of(&id)).await.unwrap();
    assert_eq!(meta.size, 20 << 20);
    let etag = meta.e_tag.unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "three 8 MiB parts: {etag}"
    );
    // Health probes come and go.
    let ready = s
        .http
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let listed = s.blobs();
    let ids = tokio::task::spawn_blocking(move || listed.list().unwrap())
        .await
        .unwrap();
    assert_eq!(ids, vec![id.clone()], "one object, stored once");
    s.stop().await;

    // Wrong credentials: not ready, and an upload is refused without a row
    // (503: the store may be fixed; what it said stays in the log).
    let s = TestServer::start(|c| {
        common::Backend::Scaled.apply(c);
        c.artifacts.s3.secret_access_key = Some("0".repeat(64));
    })
    .await;
    let ready = s
        .http
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body = ready.text().await.unwrap();
    assert!(body.contains("artifacts: FAILED"), "{body}");
    assert!(!body.contains(&"0".repeat(64)), "{body}");
    let (build, key) = s.build_with_key("denied").await;
    let (status, body) = s
        .upload(&key, &build, "a.png", png(4, 4, [1, 2, 3, 255], None))
        .await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("did not take the bytes; try again later"),
        "{body}"
    );
    assert!(
        !error.contains("127.0.0.1") && !error.contains("403"),
        "{body}"
    );
    let store = s.store();
    let rows: i64 = store
        .blocking(|c| Ok(c.query_row("SELECT COUNT(*) FROM artifact", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(rows, 0);
    s.stop().await;
}

/// The data directory is the server's alone: directories 0700, files 0600
/// (the capture browser runs as another user on the same machine, and must
/// not read the database or another build's screenshots). A directory made
/// readable by an older version is closed at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_readable_by_the_server_alone() {
    use std::os::unix::fs::PermissionsExt;
    let outer = tempfile::tempdir().unwrap();
    let data = outer.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = data.clone();
    let s = TestServer::start(move |c| {
        c.data_dir = dir;
        c.database = dpxdt_server::storage::DatabaseUrl::DataDir;
        c.artifacts = dpxdt_server::storage::ArtifactsConfig::default();
    })
    .await;
    let (build, key) = s.build_with_key("private").await;
    let (code, body) = s
        .upload(&key, &build, "a.png", png(3, 3, [9, 9, 9, 255], None))
        .await;
    assert_eq!(code, 200, "{body}");
    let mut seen = Vec::new();
    let mut todo = vec![data.clone()];
    while let Some(dir) = todo.pop() {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    let sha1 = body["sha1sum"].as_str().unwrap();
    for wanted in [dpxdt_server::storage::DB_FILE, &sha1[2..]] {
        assert!(seen.iter().any(|f| f == wanted), "{wanted} not in {seen:?}");
    }
    s.stop().await;
}

/// An artifact bucket that does not answer makes an upload a 503 with
/// `Retry-After` and a message naming the store, so clients try again
/// later (it was a 500, which says "our bug"); nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_to_a_bucket_that_is_down_is_a_503_to_retry() {
    use dpxdt_server::storage::{ArtifactsConfig, ArtifactsUrl, S3Settings};
    // A loopback port nothing listens on: every request is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = TestServer::start(move |c| {
        c.artifacts = ArtifactsConfig {
            url: ArtifactsUrl::S3 {
                bucket: "down".into(),
                prefix: "p".into(),
            },
            s3: S3Settings {
                endpoint: Some(format!("http://127.0.0.1:{port}")),
                region: Some("garage".into()),
                access_key_id: Some("GKdown".into()),
                secret_access_key: Some("secret".into()),
                allow_http: true,
            },
        };
    })
    .await;
    let (build, key) = s.build_with_key("down").await;
    let form = reqwest::multipart::Form::new()
        .text("build_id", build.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(png(2, 2, [5, 5, 5, 255], None)).file_name("a.png"),
        );
    let resp = s
        .http
        .post(s.url("upload"))
        .basic_auth(&key.0, Some(&key.1))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: Value = resp.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("artifact store s3://down/p") && error.contains("try again"),
        "{body}"
    );
    assert_eq!(
        common::count(&s.store(), "SELECT COUNT(*) FROM artifact"),
        0
    );
    s.stop().await;
}

/// The value of the `/metrics` series `name` whose labels include every
/// one of `labels` (`queue="run-pdiff"`), summed over the others; 0 when
/// there is none.
fn series(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (metric, rest) = key.split_once('{').unwrap_or((key, ""));
            let wanted = metric == name && labels.iter().all(|want| rest.contains(want));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

each_backend! {
    /// `GET /metrics`: refused without a superuser key; with one, the
    /// queue's depth rises when a release needs diffs and falls as the
    /// worker does them, and the task, diff and request series count them.
    /// `--metrics-listen` serves the same without a key.
    async fn metrics_show_the_queue_rise_and_fall_and_count_the_work(backend) {
        let scrape_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let s = TestServer::start(|c| {
            backend.apply(c);
            c.metrics_listen = Some(scrape_port);
        })
        .await;
        let (build, key) = s.build_with_key("metrics").await;
        let url = format!("{}/metrics", s.base);
        let anonymous = s.http.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let build_key = s.http.get(&url).basic_auth(&key.0, Some(&key.1)).send().await.unwrap();
        assert_eq!(build_key.status(), 403);
        let scrape = || async {
            let resp = s
                .http
                .get(&url)
                .basic_auth(common::ADMIN_ID, Some(common::ADMIN_SECRET))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
            resp.text().await.unwrap()
        };
        let done = |text: &str| {
            series(text, "dpxdt_task_duration_seconds_count", &["queue=\"run-pdiff\"", "outcome=\"done\""])
        };
        let waiting = |text: &str| {
            series(text, "dpxdt_tasks", &["queue=\"run-pdiff\"", "state=\"waiting\""])
        };
        let before = scrape().await;
        assert_eq!(waiting(&before), 0.0, "{before}");

        let client = s.client(&key);
        let build_id = dpxdt_core::BuildId(build.parse().unwrap());
        let old = client
            .upload_bytes(build_id, "a.png", png(16, 16, [250, 250, 250, 255], None))
            .await
            .unwrap()
            .sha1sum;
        client.create_release(build_id, "r", "u").await.unwrap();
        for (i, dot) in [[0, 0, 0, 255], [255, 0, 0, 255]].into_iter().enumerate() {
            let new = client
                .upload_bytes(build_id, "b.png", png(16, 16, [250, 250, 250, 255], Some(dot)))
                .await
                .unwrap()
                .sha1sum;
            let req = dpxdt_core::api::ReportRunRequest {
                build_id,
                release_name: "r".into(),
                release_number: 1,
                run_name: format!("/page{i}"),
                image: Some(new),
                ref_image: Some(old.clone()),
                ..Default::default()
            };
            client.report_run(&req).await.unwrap();
        }
        let during = scrape().await;
        assert_eq!(waiting(&during), 2.0, "{during}");

        let worker = DiffWorker::new(Link::Http(s.client(&admin())), Duration::from_secs(30));
        while worker.run_once().await.unwrap() {}
        let after = scrape().await;
        assert_eq!(waiting(&after), 0.0, "{after}");
        assert_eq!(series(&after, "dpxdt_tasks", &["queue=\"run-pdiff\"", "state=\"done\""]), 2.0);
        // One recorder per process: other tests' tasks may count too.
        assert!(done(&after) >= done(&before) + 2.0, "{after}");
        assert!(series(&after, "dpxdt_diff_duration_seconds_count", &[]) >= 2.0);
        assert!(series(&after, "dpxdt_http_requests_total", &["route=\"report_run\"", "status=\"200\""]) >= 2.0);
        assert!(series(&after, "dpxdt_artifact_bytes_written_total", &[]) > 0.0);
        assert!(series(&after, "dpxdt_db_call_duration_seconds_count", &[]) > 0.0);

        // The private scrape address needs no key.
        let open = reqwest::get(format!("http://{scrape_port}/metrics")).await.unwrap();
        assert_eq!(open.status(), 200);
        assert!(open.headers().contains_key("x-request-id"));
        let elsewhere = reqwest::get(format!("http://{scrape_port}/api/openapi.json")).await.unwrap();
        assert_eq!(elsewhere.status(), 404, "the scrape address serves /metrics only");
        let text = open.text().await.unwrap();
        assert_eq!(series(&text, "dpxdt_tasks", &["queue=\"run-pdiff\"", "state=\"done\""]), 2.0);
        s.stop().await;
    }
}

/// Every reply names its request: the client's `X-Request-Id` when it is a
/// plain one, else a new id, on API answers and refusals, UI pages and the
/// fallback 404 alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reply_carries_a_request_id() {
    let s = TestServer::start(|_| {}).await;
    let id_of = |resp: &reqwest::Response| {
        resp.headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("no X-Request-Id on {}", resp.url()))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let mut seen = std::collections::HashSet::new();
    for path in [
        "/api/create_release",
        "/api/nothing",
        "/",
        "/no/such/page",
        "/healthz",
    ] {
        let resp = s.http.get(s.url(path)).send().await.unwrap();
        let id = id_of(&resp);
        assert_eq!(id.len(), 16, "{path}: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{path}: {id}");
        assert!(seen.insert(id), "{path}: an id used twice");
        let given = s
            .http
            .get(s.url(path))
            .header("x-request-id", "ci-run-42.7")
            .send()
            .await
            .unwrap();
        assert_eq!(id_of(&given), "ci-run-42.7", "{path}");
    }
    let forged = s
        .http
        .get(s.url("/api/nothing"))
        .header("x-request-id", "a\"} {\"level\":\"ERROR")
        .send()
        .await
        .unwrap();
    let id = id_of(&forged);
    assert_eq!(id.len(), 16, "a forged id is replaced: {id}");
    s.stop().await;
}

/// A run's verdict and comment thread over the API: approve, reject with a
/// reason (kept verbatim), clear; comments with and without a region. Bad
/// input, a key of another build and a release that has its verdict are
/// each refused with a message, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_take_verdicts_and_comments_over_the_api() {
    let (s, build, key) = server_with_verdict_key().await;
    let (_, other_key) = s.build_with_key("elsewhere").await;
    let (k, b) = (Some(&key), build.as_str());
    let new_release = [("build_id", b), ("release_name", "r"), ("url", "u")];
    assert_eq!(s.post(k, "create_release", &new_release).await.0, 200);
    let mut ids = Vec::new();
    for rgba in [[255, 0, 0, 255], [0, 0, 255, 255]] {
        let (code, up) = s.upload(&key, b, "x.png", png(4, 4, rgba, None)).await;
        assert_eq!(code, 200, "{up}");
        ids.push(up["sha1sum"].as_str().unwrap().to_string());
    }
    let (new, old) = (ids[0].as_str(), ids[1].as_str());
    let changed = [
        release_form(b, "r", "1"),
        vec![
            ("run_name", "/x"),
            ("image", new),
            ("ref_image", old),
            ("diff_image", new),
            ("distortion", "0.5"),
        ],
    ]
    .concat();
    let first = [
        release_form(b, "r", "1"),
        vec![("run_name", "/first"), ("image", new)],
    ]
    .concat();
    s.expect(&[
        Call::post(k, "report_run", &changed),
        Call::post(k, "report_run", &first),
    ])
    .await;
    assert_eq!(
        s.post(k, "runs_done", &release_form(b, "r", "1")).await.0,
        200
    );
    let on = |run: &'static str, extra: &[(&'static str, &'static str)]| {
        [
            release_form(b, "r", "1"),
            vec![("run_name", run)],
            extra.to_vec(),
        ]
        .concat()
    };

    let (code, body) = s
        .post(k, "review_run", &on("/x", &[("verdict", "approve")]))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "diff_approved");
    assert_eq!(body["review"]["verdict"], "approved");
    assert_eq!(body["review"]["by"], format!("API key {}", key.0));
    let reason = "<b>logo</b> moved 4 px";
    let (code, body) = s
        .post(
            k,
            "review_run",
            &on("/x", &[("verdict", "reject"), ("reason", reason)]),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["status"], "diff_found",
        "a rejection takes the approval back"
    );
    assert_eq!(body["review"]["verdict"], "rejected");
    assert_eq!(body["review"]["reason"], reason);

    let long_reason: &'static str = "x".repeat(2_001).leak();
    let long_text: &'static str = "y".repeat(10_001).leak();
    let other = Some(&other_key);
    s.expect(&[
        Call::post(k, "review_run", &on("/x", &[("verdict", "maybe")]))
            .is(400)
            .says("verdict"),
        Call::post(
            k,
            "review_run",
            &on("/x", &[("verdict", "approve"), ("reason", long_reason)]),
        )
        .is(400)
        .says("at most 2000 characters"),
        Call::post(k, "review_run", &on("/nothing", &[("verdict", "approve")])).is(404),
        Call::post(k, "review_run", &on("/first", &[("verdict", "clear")]))
            .is(409)
            .says("no verdict to take back"),
        Call::post(k, "review_run", &on("/first", &[("verdict", "approve")])).is(409),
        Call::post(other, "review_run", &on("/x", &[("verdict", "approve")])).is(403),
        Call::post(k, "comment", &on("/x", &[("text", "   ")]))
            .is(400)
            .says("empty"),
        Call::post(k, "comment", &on("/x", &[("text", long_text)]))
            .is(400)
            .says("at most 10000 characters"),
        Call::post(k, "comment", &on("/x", &[("text", "t"), ("region", "1:1")]))
            .is(400)
            .says("x1:y1-x2:y2"),
        Call::post(other, "comment", &on("/x", &[("text", "sneaky")])).is(403),
    ])
    .await;
    let store = s.store();
    assert_eq!(
        common::count(&store, "SELECT COUNT(*) FROM run WHERE review = 'rejected'"),
        1,
        "the refused approval changed nothing"
    );
    assert_eq!(common::count(&store, "SELECT COUNT(*) FROM run_comment"), 0);

    let (code, body) = s
        .post(
            k,
            "comment",
            &on(
                "/x",
                &[("text", "<script>x</script> is off"), ("region", "1:1-2:3")],
            ),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(body["comment_id"].as_i64().unwrap() > 0, "{body}");
    assert_eq!(
        common::count(
            &store,
            "SELECT COUNT(*) FROM run_comment WHERE body = '<script>x</script> is off' \
             AND region = '1:1-2:3'"
        ),
        1
    );

    // Clear: the run waits for review again, and the release can be marked.
    let (code, body) = s
        .post(k, "review_run", &on("/x", &[("verdict", "clear")]))
        .await;
    assert_eq!(
        (code, &body["status"]),
        (200, &Value::from("diff_found")),
        "{body}"
    );
    assert!(body.get("review").is_none(), "{body}");
    let good = [release_form(b, "r", "1"), vec![("status", "good")]].concat();
    assert_eq!(s.post(k, "update_release", &good).await.0, 200);
    s.expect(&[
        Call::post(k, "review_run", &on("/x", &[("verdict", "approve")]))
            .is(409)
            .says("already marked good"),
        // A thread stays open after the verdict.
        Call::post(k, "comment", &on("/x", &[("text", "shipped anyway")])),
    ])
    .await;
    // The typed client speaks both endpoints.
    let client = s.client(&key);
    let rk = dpxdt_core::ReleaseKey {
        build_id: dpxdt_core::BuildId(b.parse().unwrap()),
        release_name: "r".into(),
        release_number: 1,
    };
    let region = dpxdt_core::diff::Region {
        x1: 0,
        y1: 0,
        x2: 1,
        y2: 1,
    };
    let made = client
        .comment(&rk, "/x", "via the client", Some(region))
        .await
        .unwrap();
    assert!(made.comment_id > 0);
    let refused = client
        .review_run(&rk, "/x", dpxdt_core::api::RunVerdict::Approve, None)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("already marked good"),
        "{refused}"
    );

    // A build that takes verdicts from people only: comments, no verdicts.
    let (plain, plain_key) = s.build_with_key("people").await;
    let pk = Some(&plain_key);
    let rel = [
        ("build_id", plain.as_str()),
        ("release_name", "r"),
        ("url", "u"),
    ];
    assert_eq!(s.post(pk, "create_release", &rel).await.0, 200);
    let (code, up) = s
        .upload(&plain_key, &plain, "x.png", png(2, 2, [0, 0, 0, 255], None))
        .await;
    assert_eq!(code, 200, "{up}");
    let image = up["sha1sum"].as_str().unwrap().to_string();
    let run = [
        release_form(&plain, "r", "1"),
        vec![("run_name", "/"), ("image", image.as_str())],
    ]
    .concat();
    assert_eq!(s.post(pk, "report_run", &run).await.0, 200);
    let at = |extra: &[(&'static str, &'static str)]| {
        [
            release_form(&plain, "r", "1"),
            vec![("run_name", "/")],
            extra.to_vec(),
        ]
        .concat()
    };
    s.expect(&[
        Call::post(pk, "review_run", &at(&[("verdict", "reject")]))
            .is(403)
            .says("people only"),
        Call::post(pk, "comment", &at(&[("text", "looks fine")])),
        Call::post(Some(&admin()), "review_run", &at(&[("verdict", "reject")])),
    ])
    .await;
    s.stop().await;
}
