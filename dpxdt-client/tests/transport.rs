//! The client's transport behaviour against a real HTTP server on loopback:
//! retries on 5xx, connection errors and timeouts (of requests safe to
//! repeat, creates with one Idempotency-Key), none on 4xx, the server's
//! message in the error, Basic auth, and content-address checks.

use std::time::Duration;

use dpxdt_client::{Client, ClientError};
use dpxdt_core::{ArtifactId, BuildId};
use dpxdt_e2e::{Page, PageServer, base64};

fn client(server: &PageServer, retries: u32) -> Client {
    Client::builder(&server.url("/api"))
        .api_key("key-id", "s3cret")
        .retries(retries)
        .backoff(Duration::from_millis(5))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn json(status: u16, body: &str) -> Page {
    Page::new("application/json", body).with_status(status)
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_the_server_message() {
    let server = PageServer::start();
    server.set(
        "/api/create_release",
        json(500, r#"{"success": false, "error": "database is locked"}"#),
    );
    let err = client(&server, 2)
        .create_release(BuildId(1), "r", "http://x")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.server_message(), Some("database is locked"));
    assert_eq!(
        err.to_string(),
        "create_release: server said 500: database is locked"
    );
    assert_eq!(server.requests_for("/api/create_release").len(), 3);
    // Every attempt carried the same Idempotency-Key, so the server can
    // answer a repeat from memory instead of creating a second release.
    let keys: Vec<String> = server
        .requests_for("/api/create_release")
        .iter()
        .map(|r| header(r, "idempotency-key").expect("an Idempotency-Key"))
        .collect();
    assert!(
        keys.iter().all(|k| k == &keys[0] && k.len() == 40),
        "{keys:?}"
    );
    // A second call is a new request: a new key.
    let _ = client(&server, 0)
        .create_release(BuildId(1), "r", "http://x")
        .await;
    let last = server.requests_for("/api/create_release").pop().unwrap();
    assert_ne!(header(&last, "idempotency-key").unwrap(), keys[0]);
}

fn header(r: &dpxdt_e2e::Request, name: &str) -> Option<String> {
    r.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

#[tokio::test]
async fn a_create_that_cannot_carry_a_key_is_sent_once() {
    let server = PageServer::start();
    server.set(
        "/api/create_api_key",
        json(503, r#"{"success": false, "error": "busy"}"#),
    );
    let err = client(&server, 4)
        .create_api_key(BuildId(1), Some("ci"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    let seen = server.requests_for("/api/create_api_key");
    assert_eq!(seen.len(), 1, "a lost answer must not mint a second key");
    assert!(header(&seen[0], "idempotency-key").is_none());
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = PageServer::start();
    server.set(
        "/api/runs_done",
        json(400, r#"{"success": false, "error": "release not found"}"#),
    );
    server.set(
        "/api/create_release",
        json(401, r#"{"success": false, "error": "bad api key"}"#),
    );
    let c = client(&server, 3);
    let key = dpxdt_core::ReleaseKey {
        build_id: BuildId(1),
        release_name: "r".into(),
        release_number: 1,
    };
    let err = c.runs_done(&key).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.server_message(), Some("release not found"));
    let err = c.create_release(BuildId(1), "r", "u").await.unwrap_err();
    assert!(err.is_auth(), "{err}");
    assert_eq!(server.requests_for("/api/runs_done").len(), 1);
    assert_eq!(server.requests_for("/api/create_release").len(), 1);
}

#[tokio::test]
async fn a_good_answer_is_decoded_and_the_api_key_is_sent_as_basic_auth() {
    let server = PageServer::start();
    server.set(
        "/api/create_release",
        json(
            200,
            r#"{"success": true, "build_id": 3, "release_name": "r", "release_number": 2, "url": "http://x"}"#,
        ),
    );
    let got = client(&server, 0)
        .create_release(BuildId(3), "r", "http://x")
        .await
        .unwrap();
    assert_eq!(got.release_number, 2);
    let seen = server.requests_for("/api/create_release");
    assert_eq!(seen[0].method, "POST");
    let expected = format!("Basic {}", base64(b"key-id:s3cret"));
    assert_eq!(seen[0].header("authorization"), Some(expected.as_str()));
    assert_eq!(
        seen[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn an_unreachable_server_is_retried_then_named() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::builder(&format!("http://127.0.0.1:{port}/api"))
        .retries(2)
        .backoff(Duration::from_millis(5))
        .build()
        .unwrap();
    let err = c.find_run(BuildId(1), "/").await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

#[tokio::test]
async fn a_hanging_server_times_out_after_the_retries() {
    let server = PageServer::start();
    server.set("/api/find_run", Page::html("").hanging());
    let c = Client::builder(&server.url("/api"))
        .retries(1)
        .backoff(Duration::from_millis(5))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = c.find_run(BuildId(1), "/").await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert_eq!(server.requests_for("/api/find_run").len(), 2);
}

#[tokio::test]
async fn downloads_are_checked_against_their_sha1() {
    let server = PageServer::start();
    let bytes = b"\x89PNG not really".to_vec();
    let id = ArtifactId::of_bytes(&bytes);
    server.set("/api/download", Page::new("image/png", bytes.clone()));
    let c = client(&server, 0);
    assert_eq!(c.download(BuildId(4), &id).await.unwrap(), bytes);
    let target = &server.requests_for("/api/download")[0].target;
    assert_eq!(
        target,
        &format!("/api/download?sha1sum={id}&build_id=4"),
        "query fields"
    );

    let other = ArtifactId::of_bytes(b"something else");
    let err = c.download(BuildId(4), &other).await.unwrap_err();
    assert!(
        matches!(err, ClientError::InvalidResponse { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn uploading_a_missing_file_names_the_file_and_sends_nothing() {
    let server = PageServer::start();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.png");
    let err = client(&server, 3)
        .upload_file(BuildId(1), &missing)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::File { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.png"), "{err}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn an_upload_answered_with_another_sha1_is_an_error() {
    let server = PageServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.png");
    std::fs::write(&path, b"image bytes").unwrap();
    let wrong = ArtifactId::of_bytes(b"other bytes");
    server.set(
        "/api/upload",
        json(
            200,
            &format!(
                r#"{{"success": true, "build_id": 1, "sha1sum": "{wrong}", "content_type": "image/png"}}"#
            ),
        ),
    );
    let err = client(&server, 0)
        .upload_file(BuildId(1), &path)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::InvalidResponse { .. }),
        "{err:?}"
    );
    let seen = server.requests_for("/api/upload");
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0]
            .header("content-type")
            .unwrap()
            .starts_with("multipart/form-data"),
        "{:?}",
        seen[0].headers
    );
}

#[tokio::test]
async fn bad_queue_names_are_refused_before_sending() {
    let server = PageServer::start();
    let err = client(&server, 0)
        .lease("../admin", "w", 1, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::InvalidArgument { .. }),
        "{err:?}"
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_failed_upload_is_retried_until_the_server_takes_it() {
    let server = PageServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shot.png");
    std::fs::write(&path, b"screenshot bytes").unwrap();
    let id = ArtifactId::of_bytes(b"screenshot bytes");
    server.set(
        "/api/upload",
        json(503, r#"{"success": false, "error": "disk busy"}"#),
    );
    let c = Client::builder(&server.url("/api"))
        .retries(5)
        .backoff(Duration::from_millis(100))
        .build()
        .unwrap();
    let upload = tokio::spawn({
        let c = c.clone();
        let path = path.clone();
        async move { c.upload_file(BuildId(1), &path).await }
    });
    // A second attempt proves the first one failed; then the server recovers.
    while server.requests_for("/api/upload").len() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.set(
        "/api/upload",
        json(
            200,
            &format!(
                r#"{{"success": true, "build_id": 1, "sha1sum": "{id}", "content_type": "image/png"}}"#
            ),
        ),
    );
    let uploaded = upload.await.unwrap().unwrap();
    assert_eq!(uploaded.sha1sum, id);
    assert!(server.requests_for("/api/upload").len() >= 2);
}
