//! `/api/openapi.json`: a valid OpenAPI 3.1 document whose paths and
//! methods are exactly the routes served, and whose schemas the server's
//! real replies, successes and refusals alike, satisfy.

use crate::common;

use common::{Key, TestServer, admin, png};
use serde_json::{Value, json};

/// The document, and a check of a reply against it.
struct Described {
    doc: Value,
}

impl Described {
    async fn fetch(s: &TestServer) -> Described {
        let resp = s.http.get(s.url("openapi.json")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "the description needs no key");
        assert_eq!(resp.headers()["content-type"], "application/json");
        Described {
            doc: resp.json().await.unwrap(),
        }
    }

    /// The schema `path` (e.g. `/api/find_run`) answers `method` with
    /// `status`, or its `default` answer.
    fn reply_schema(&self, path: &str, method: &str, status: u16) -> Value {
        let responses = &self.doc["paths"][path][method]["responses"];
        assert!(responses.is_object(), "{method} {path} is not described");
        let answer = match &responses[status.to_string()] {
            Value::Null => &responses["default"],
            found => found,
        };
        let schema = answer["content"]["application/json"]["schema"].clone();
        assert!(
            schema.is_object(),
            "{method} {path} has no JSON schema for {status}"
        );
        schema
    }

    /// The problems of `body` as a reply of `path` to `method` with
    /// `status`; empty when it fits.
    fn problems(&self, path: &str, method: &str, status: u16, body: &Value) -> Vec<String> {
        let mut schema = self.reply_schema(path, method, status);
        schema["components"] = self.doc["components"].clone();
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        validator
            .iter_errors(body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect()
    }

    /// Panics unless `body` fits.
    fn check(&self, path: &str, method: &str, (status, body): &(u16, Value)) {
        let problems = self.problems(path, method, *status, body);
        assert!(
            problems.is_empty(),
            "{method} {path} answered {status} {body}, which the description does not allow: \
             {problems:#?}"
        );
    }
}

/// The document is valid OpenAPI 3.1, each of its schemas is valid JSON
/// Schema, and its paths and methods are exactly what the server serves:
/// every described operation answers (with a superuser key and no fields:
/// a 400 naming a missing field, never a 404 or 405), and every other
/// method of a described path is refused with 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_is_valid_and_covers_every_route() {
    let s = TestServer::start(|_| {}).await;
    let d = Described::fetch(&s).await;
    let oas: Value =
        serde_json::from_str(include_str!("data/oas-3.1-schema.json")).expect("the OAS schema");
    let oas = jsonschema::draft202012::new(&oas).expect("the OAS schema compiles");
    let errors: Vec<String> = oas.iter_errors(&d.doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut broken = d.doc.clone();
    broken["paths"]["/api/find_run"]["post"]["responses"] = json!("none");
    assert!(!oas.is_valid(&broken), "the check can fail");
    for (name, schema) in d.doc["components"]["schemas"].as_object().unwrap() {
        let mut schema = schema.clone();
        schema["components"] = d.doc["components"].clone();
        jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("schema {name} is not valid JSON Schema: {e}"));
    }

    let adm = admin();
    let paths = d.doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 20, "{:?}", paths.keys().collect::<Vec<_>>());
    for (path, item) in paths {
        let served = path.replace("{queue}", "capture");
        let url = format!("{}{served}", s.base);
        for method in ["get", "post", "put", "delete"] {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = s
                .http
                .request(m, &url)
                .basic_auth(&adm.0, Some(&adm.1))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            if item.get(method).is_some() {
                assert!(
                    ![404, 405].contains(&status),
                    "{method} {path} is described but answers {status} {body}"
                );
            } else {
                assert_eq!(status, 405, "{method} {path} is not described: {body}");
            }
        }
    }
    let (status, body) = s.post(Some(&adm), "work_queue/capture/requeue", &[]).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("add, lease, heartbeat, finish, cancel"),
        "{body}"
    );
    s.stop().await;
}

/// A release's whole life through every JSON endpoint, each reply checked
/// against the description, refusals included; and a reply that breaks
/// the description is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_replies_match_the_description() {
    let s = TestServer::start(|_| {}).await;
    let d = Described::fetch(&s).await;
    let adm = admin();
    let created = s
        .post(Some(&adm), "create_build", &[("name", "described")])
        .await;
    d.check("/api/create_build", "post", &created);
    let build = created.1["build_id"].to_string();
    let b = build.as_str();
    let made_key = s
        .post(Some(&adm), "create_api_key", &[("build_id", b)])
        .await;
    d.check("/api/create_api_key", "post", &made_key);
    let key = Key(
        made_key.1["api_key"].as_str().unwrap().into(),
        made_key.1["api_secret"].as_str().unwrap().into(),
    );
    let k = Some(&key);
    let release = s
        .post(
            k,
            "create_release",
            &[
                ("build_id", b),
                ("release_name", "r"),
                ("url", "http://ci/1"),
            ],
        )
        .await;
    d.check("/api/create_release", "post", &release);
    let number = release.1["release_number"].to_string();
    let rel = [
        ("build_id", b),
        ("release_name", "r"),
        ("release_number", &number),
    ];
    let uploaded = s
        .upload(&key, b, "a.png", png(8, 8, [255, 0, 0, 255], None))
        .await;
    d.check("/api/upload", "post", &uploaded);
    let image = uploaded.1["sha1sum"].as_str().unwrap().to_owned();
    let mut report = rel.to_vec();
    report.extend([("run_name", "/a"), ("image", image.as_str())]);
    d.check(
        "/api/report_run",
        "post",
        &s.post(k, "report_run", &report).await,
    );
    let mut request = rel.to_vec();
    request.extend([
        ("run_name", "/b"),
        ("url", "http://site.test/b"),
        (
            "config",
            r#"{"modes": [{"name": "light"}, {"name": "dark", "colorScheme": "dark"}]}"#,
        ),
    ]);
    let requested = s.post(k, "request_run", &request).await;
    d.check("/api/request_run", "post", &requested);
    assert_eq!(
        requested.1["runs"].as_array().map(Vec::len),
        Some(2),
        "{requested:?}"
    );
    let not_found = s
        .post(k, "find_run", &[("build_id", b), ("run_name", "/a")])
        .await;
    assert_eq!(not_found.0, 404, "no good release yet: {not_found:?}");
    d.check("/api/find_run", "post", &not_found);

    let leased = s
        .post(
            Some(&adm),
            "work_queue/capture/lease",
            &[("owner", "w"), ("count", "1"), ("timeout", "60")],
        )
        .await;
    d.check("/api/work_queue/{queue}/lease", "post", &leased);
    let task = leased.1["tasks"][0]["task_id"].to_string();
    let beat = s
        .post(
            Some(&adm),
            "work_queue/capture/heartbeat",
            &[
                ("task_id", &task),
                ("owner", "w"),
                ("message", "m"),
                ("index", "1"),
            ],
        )
        .await;
    d.check("/api/work_queue/{queue}/heartbeat", "post", &beat);
    let finished = s
        .post(
            Some(&adm),
            "work_queue/capture/finish",
            &[("task_id", &task), ("owner", "w"), ("error", "gave up")],
        )
        .await;
    d.check("/api/work_queue/{queue}/finish", "post", &finished);
    let added = s
        .post(Some(&adm), "work_queue/extra/add", &[("payload", "{}")])
        .await;
    d.check("/api/work_queue/{queue}/add", "post", &added);
    let added_id = added.1["task_id"].to_string();
    let canceled = s
        .post(
            Some(&adm),
            "work_queue/extra/cancel",
            &[("task_id", &added_id)],
        )
        .await;
    d.check("/api/work_queue/{queue}/cancel", "post", &canceled);

    let done = s.post(k, "runs_done", &rel).await;
    d.check("/api/runs_done", "post", &done);
    for run in ["/b@light", "/b@dark"] {
        let mut failed = rel.to_vec();
        failed.extend([("run_name", run), ("run_failed", "no such site")]);
        let reported = s.post(k, "report_run", &failed).await;
        assert_eq!(reported.0, 200, "{reported:?}");
        d.check("/api/report_run", "post", &reported);
    }
    let (status, body) = s.get(k, "release_status", &rel).await;
    let status_reply = (status, serde_json::from_slice(&body).unwrap());
    d.check("/api/release_status", "get", &status_reply);
    d.check(
        "/api/release_status",
        "post",
        &s.post(k, "release_status", &rel).await,
    );
    let mut verdict = rel.to_vec();
    verdict.push(("status", "good"));
    let judged = s.post(Some(&adm), "update_release", &verdict).await;
    let now = s.post(k, "release_status", &rel).await;
    assert_eq!(judged.0, 200, "{judged:?} after {now:?}");
    d.check("/api/update_release", "post", &judged);
    let found = s
        .post(k, "find_run", &[("build_id", b), ("run_name", "/a")])
        .await;
    assert_eq!(found.0, 200, "{found:?}");
    d.check("/api/find_run", "post", &found);
    let revoked = s
        .post(k, "revoke_api_key", &[("build_id", b), ("api_key", &key.0)])
        .await;
    d.check("/api/revoke_api_key", "post", &revoked);
    let refused = s.post(k, "runs_done", &rel).await;
    assert_eq!(refused.0, 401, "{refused:?}");
    d.check("/api/runs_done", "post", &refused);

    // The checks can fail: a reply with a field of the wrong type, or
    // without a required one, does not fit.
    let mut wrong = created.1.clone();
    wrong["build_id"] = json!("seven");
    assert!(
        !d.problems("/api/create_build", "post", 200, &wrong)
            .is_empty()
    );
    let mut missing = found.1.clone();
    missing.as_object_mut().unwrap().remove("release_number");
    assert!(
        !d.problems("/api/find_run", "post", 200, &missing)
            .is_empty()
    );
    s.stop().await;
}
