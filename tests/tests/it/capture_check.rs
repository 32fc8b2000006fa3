//! The cargo-test check API against a real page: `check_url` fails without
//! a reference (leaving the screenshot to accept), matches once it is
//! accepted, and fails with the triplet when the page changes.

use dpxdt_core::CaptureConfig;
use dpxdt_core::check::{CheckError, CheckOutcome, Checker};
use dpxdt_e2e::PageServer;

#[tokio::test]
async fn check_url_writes_matches_and_fails_on_change() {
    let server = PageServer::start();
    server.set_html(
        "/card",
        r#"<html><body style="margin:0"><div style="width:120px;height:60px;background:teal"></div></body></html>"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let checker = Checker::new().dir(dir.path()).update(false);
    let config =
        CaptureConfig::from_json(r#"{"viewportSize": {"width": 300, "height": 200}}"#).unwrap();
    let url = server.url("/card");

    // No reference: the check fails and leaves the screenshot to accept.
    let first = checker
        .check_url("ui/card", &url, &config)
        .await
        .unwrap_err();
    assert!(
        matches!(first, CheckError::MissingReference { .. }),
        "{first}"
    );
    assert!(!dir.path().join("ui/card.png").exists());
    let pending = dir.path().join("ui/card.new.png");
    let shot =
        dpxdt_core::diff::decode_png(&std::fs::read(&pending).unwrap(), "new", u64::MAX).unwrap();
    assert_eq!((shot.width(), shot.height()), (300, 200));

    let accepted = checker
        .clone()
        .update(true)
        .check_url("ui/card", &url, &config)
        .await
        .unwrap();
    assert!(
        matches!(accepted, CheckOutcome::NewReference { .. }),
        "{accepted:?}"
    );
    assert!(dir.path().join("ui/card.png").exists());
    assert!(!pending.exists());

    let again = checker.check_url("ui/card", &url, &config).await.unwrap();
    assert!(matches!(again, CheckOutcome::Matched { .. }), "{again:?}");

    server.set_html(
        "/card",
        r#"<html><body style="margin:0"><div style="width:120px;height:60px;background:orange"></div></body></html>"#,
    );
    let err = checker
        .check_url("ui/card", &url, &config)
        .await
        .unwrap_err();
    let CheckError::Different {
        report, new, diff, ..
    } = &err
    else {
        panic!("expected a difference, got {err}");
    };
    assert_eq!(report.changed_pixels, 120 * 60);
    assert!(new.exists() && diff.exists());
    assert!(err.to_string().contains("DPXDT_UPDATE=1"), "{err}");
}

/// The everyday form: a reference kept in the repository
/// (`tests/screenshots/boxes.png`), checked with one call.
#[tokio::test]
async fn a_reference_kept_in_the_repo_matches() {
    let server = PageServer::start();
    // Only solid boxes, no text: the same pixels on every machine.
    server.set_html(
        "/boxes",
        r#"<html><body style="margin:0">
        <div style="width:200px;height:100px;background:#1e90ff"></div>
        <div style="width:100px;height:50px;margin-left:50px;background:#ff8c00"></div>
        </body></html>"#,
    );
    let config =
        CaptureConfig::from_json(r#"{"viewportSize": {"width": 320, "height": 240}}"#).unwrap();
    let outcome = dpxdt_core::check::assert_url("boxes", &server.url("/boxes"), &config).await;
    assert!(
        matches!(
            outcome,
            CheckOutcome::Matched { .. } | CheckOutcome::Updated { .. }
        ),
        "the reference is committed, so this is a comparison: {outcome:?}"
    );
}

/// `Checker::browser` captures in that engine wherever a config names
/// none; a config that names its own engine keeps it.
#[tokio::test]
async fn the_checker_captures_in_the_engine_it_is_given() {
    let server = PageServer::start();
    server.set_html(
        "/engine",
        r#"<!doctype html><body style="margin:0"><script>
        document.body.style.background = CSS.supports('-moz-appearance', 'none') ? 'orange' : 'blue';
        </script></body>"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let checker = Checker::new()
        .dir(dir.path())
        .update(true)
        .browser(dpxdt_core::config::Engine::Firefox);
    let config = CaptureConfig::from_json(
        r#"{"viewportSize": {"width": 100, "height": 100},
            "modes": [{"name": "default"}, {"name": "chromium", "browser": "chromium"}]}"#,
    )
    .unwrap();
    checker
        .check_url("engine", &server.url("/engine"), &config)
        .await
        .unwrap();
    let pixel = |name: &str| {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        dpxdt_core::diff::decode_png(&bytes, name, u64::MAX)
            .unwrap()
            .pixel(50, 50)
    };
    assert_eq!(pixel("engine@default.png"), [255, 165, 0, 255], "Firefox");
    assert_eq!(
        pixel("engine@chromium.png"),
        [0, 0, 255, 255],
        "the mode's own engine"
    );
}
