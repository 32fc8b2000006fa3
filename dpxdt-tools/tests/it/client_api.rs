//! `dpxdt_client` against the real server (no workers, so queued tasks stay
//! where the test puts them): the work queue, artifacts, the baseline lookup
//! and the server's refusals arriving as typed errors with its message.

use std::sync::OnceLock;
use std::time::Duration;

use dpxdt_client::{Client, ClientError};
use dpxdt_core::api::{HeartbeatRequest, ReportRunRequest};
use dpxdt_core::{ArtifactId, BuildId, ReleaseKey, ReleaseStatus};

use crate::support;

use support::TestServer;

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(false))
}

#[tokio::test]
async fn a_task_goes_through_add_lease_heartbeat_and_finish() {
    let admin = server().admin();
    let queue = "client-api-test";
    let lease = Duration::from_secs(60);
    let id = admin.add_task(queue, r#"{"n": 1}"#, Some(2)).await.unwrap();

    let tasks = admin.lease(queue, "worker-a", 5, lease).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].task_id, id);
    assert_eq!(tasks[0].payload, r#"{"n": 1}"#);
    assert_eq!(tasks[0].lease_attempts, 1);
    assert!(
        admin
            .lease(queue, "worker-b", 5, lease)
            .await
            .unwrap()
            .is_empty(),
        "a leased task is not leased again"
    );

    let beat = |owner: &str, index| HeartbeatRequest {
        task_id: id,
        owner: owner.into(),
        message: "half way".into(),
        index,
        timeout: None,
    };
    admin.heartbeat(queue, &beat("worker-a", 1)).await.unwrap();
    let err = admin
        .heartbeat(queue, &beat("worker-b", 2))
        .await
        .unwrap_err();
    assert!(
        matches!(err.status(), Some(400..=499)),
        "another owner's heartbeat is refused: {err}"
    );
    let err = admin.finish(queue, id, "worker-b", None).await.unwrap_err();
    assert!(matches!(err.status(), Some(400..=499)), "{err}");

    admin.finish(queue, id, "worker-a", None).await.unwrap();
    assert!(
        admin
            .lease(queue, "worker-a", 5, lease)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_queue_is_for_superuser_keys_only() {
    let build = server().new_build("queue-refused").await;
    let err = build
        .client
        .lease("capture", "me", 1, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err}");
    assert!(!err.server_message().unwrap_or("").is_empty(), "{err}");
}

#[tokio::test]
async fn artifacts_round_trip_and_stay_in_their_build() {
    let build = server().new_build("artifacts").await;
    let dir = tempfile::tempdir().unwrap();
    // A few MiB streamed from disk, not held in memory by the client.
    let path = dir.path().join("big.bin");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let uploaded = build.client.upload_file(build.id, &path).await.unwrap();
    assert_eq!(uploaded.sha1sum, ArtifactId::of_bytes(&bytes));
    let again = build
        .client
        .upload_bytes(build.id, "big.bin", bytes.clone())
        .await
        .unwrap();
    assert_eq!(again.sha1sum, uploaded.sha1sum, "uploads are idempotent");
    assert_eq!(
        build
            .client
            .download(build.id, &uploaded.sha1sum)
            .await
            .unwrap(),
        bytes
    );

    let other = server().new_build("artifacts-other").await;
    let err = other
        .client
        .download(other.id, &uploaded.sha1sum)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    let err = other
        .client
        .download(build.id, &uploaded.sha1sum)
        .await
        .unwrap_err();
    assert!(err.is_auth(), "a key of another build is refused: {err}");
}

#[tokio::test]
async fn the_baseline_is_the_run_of_the_newest_good_release() {
    let build = server().new_build("baseline").await;
    let c = &build.client;
    assert!(c.find_run(build.id, "/home").await.unwrap().is_none());

    let image = c
        .upload_bytes(build.id, "home.png", b"not really a png".to_vec())
        .await
        .unwrap()
        .sha1sum;
    let created = c
        .create_release(build.id, "r", "http://ci/1")
        .await
        .unwrap();
    assert_eq!(created.release_number, 1);
    let key = ReleaseKey {
        build_id: build.id,
        release_name: "r".into(),
        release_number: 1,
    };
    c.report_run(&ReportRunRequest {
        build_id: build.id,
        release_name: "r".into(),
        release_number: 1,
        run_name: "/home".into(),
        url: Some("http://site/home".into()),
        image: Some(image.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let done = c.runs_done(&key).await.unwrap();
    assert!(done.results_url.contains("release"), "{}", done.results_url);
    let status = c.release_status(&key).await.unwrap();
    assert_eq!(status.status, ReleaseStatus::Reviewing);
    assert!(
        c.find_run(build.id, "/home").await.unwrap().is_none(),
        "not good yet"
    );

    c.update_release(&key, ReleaseStatus::Good).await.unwrap();
    let found = c.find_run(build.id, "/home").await.unwrap().unwrap();
    assert_eq!(found.image, Some(image));
    assert_eq!(found.release_number, 1);
    assert_eq!(found.url.as_deref(), Some("http://site/home"));

    let second = c
        .create_release(build.id, "r", "http://ci/2")
        .await
        .unwrap();
    assert_eq!(second.release_number, 2, "a used name gets the next number");
}

#[tokio::test]
async fn refusals_arrive_with_the_servers_message_and_are_not_retried() {
    let build = server().new_build("refusals").await;
    let key = ReleaseKey {
        build_id: build.id,
        release_name: "never created".into(),
        release_number: 1,
    };
    let err = build.client.runs_done(&key).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert!(
        err.to_string().starts_with("runs_done: server said 404: "),
        "{err}"
    );

    let wrong = Client::builder(&server().api)
        .api_key(&build.key_id, "not the secret")
        .build()
        .unwrap();
    let err = wrong.create_release(build.id, "r", "u").await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");

    let err = build
        .client
        .create_release(BuildId(build.id.0 + 1000), "r", "u")
        .await
        .unwrap_err();
    assert!(err.is_auth(), "a key works for its own build only: {err}");
    assert!(matches!(err, ClientError::Api { .. }));
    // The error names the server's id for the request, to quote to its
    // operator: the id its log lines carry.
    let id = err.request_id().expect("the server names the request");
    assert_eq!(id.len(), 16, "{id}");
    assert!(
        err.to_string().ends_with(&format!(" (request {id})")),
        "{err}"
    );
}
