//! The four API tools end to end: the real server (`dpxdt_server::serve` on
//! 127.0.0.1:0, with its capture and diff workers and real Chromium), real
//! pages on loopback, the tools' real binaries, and the results checked
//! through `dpxdt_client`.
//!
//! One server (and so one browser) serves every test of this binary; each
//! test makes its own build, so tests do not see each other's releases.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use dpxdt_core::api::ReleaseStatusResponse;
use dpxdt_core::{ReleaseKey, ReleaseStatus, RunStatus};
use dpxdt_e2e::PageServer;

use crate::support;

use support::{Build, TestServer};

/// The shared server of this test binary, with its workers (and so one browser).
fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(true))
}

async fn new_build(name: &str) -> Build {
    server().new_build(name).await
}

/// The CI variables the tools read their branch and commit from; the tests
/// set them only where they mean to, whatever CI runs them.
const CI_VARS: [&str; 5] = [
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "GITHUB_SHA",
    "CI_COMMIT_REF_NAME",
    "CI_COMMIT_SHA",
];

trait BuildExt {
    async fn run(&self, tool: &str, args: &[&str]) -> Output {
        self.run_env(tool, args, &[]).await
    }
    async fn run_env(&self, tool: &str, args: &[&str], env: &[(&str, &str)]) -> Output;
    fn key(&self, name: &str, number: i64) -> ReleaseKey;
    async fn status(&self, name: &str, number: i64) -> ReleaseStatusResponse;
    async fn mark_good(&self, name: &str, number: i64);
}

impl BuildExt for Build {
    /// Runs a tool's binary against the server with this build's key
    /// (given through the environment, as CI would), and `env`.
    async fn run_env(&self, tool: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let exe = match tool {
            "site_diff" => env!("CARGO_BIN_EXE_site_diff"),
            "url_pair_diff" => env!("CARGO_BIN_EXE_url_pair_diff"),
            "diff_my_images" => env!("CARGO_BIN_EXE_diff_my_images"),
            "diff_my_urls" => env!("CARGO_BIN_EXE_diff_my_urls"),
            other => panic!("no tool {other}"),
        };
        let mut command = tokio::process::Command::new(exe);
        for var in CI_VARS {
            command.env_remove(var);
        }
        command
            .envs(env.iter().copied())
            .arg(format!("--release_server_prefix={}", server().api))
            .arg(format!("--upload_build_id={}", self.id))
            .args(["--poll_interval_ms", "100", "--wait_timeout", "120"])
            .args(args)
            .env("DPXDT_CLIENT_ID", &self.key_id)
            .env("DPXDT_CLIENT_SECRET", &self.secret)
            .output()
            .await
            .unwrap()
    }

    fn key(&self, name: &str, number: i64) -> ReleaseKey {
        ReleaseKey {
            build_id: self.id,
            release_name: name.into(),
            release_number: number,
        }
    }

    async fn status(&self, name: &str, number: i64) -> ReleaseStatusResponse {
        self.client
            .release_status(&self.key(name, number))
            .await
            .unwrap()
    }

    async fn mark_good(&self, name: &str, number: i64) {
        let status = self
            .client
            .update_release(&self.key(name, number), ReleaseStatus::Good)
            .await
            .unwrap();
        assert_eq!(status, ReleaseStatus::Good);
    }
}

fn count(status: &ReleaseStatusResponse, wanted: RunStatus) -> u64 {
    status
        .runs
        .iter()
        .filter(|c| c.status == wanted)
        .map(|c| c.count)
        .sum()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code, and that stdout's first line is the release page.
fn assert_exit(out: &Output, code: i32) -> Vec<String> {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// Asserts the exit code and that the summary line (the second) says `says`.
fn assert_summary(out: &Output, code: i32, says: &str) -> Vec<String> {
    let lines = assert_exit(out, code);
    assert!(
        lines.get(1).is_some_and(|l| l.contains(says)),
        "the summary does not say {says:?}: {lines:?}"
    );
    lines
}

/// Writes a PNG filled with one colour, with a block of another colour.
fn write_png(path: &Path, block: [u8; 4]) {
    let (w, h) = (64u32, 48u32);
    let mut data = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let inside = (10..30).contains(&x) && (10..20).contains(&y);
            data.extend_from_slice(if inside {
                &block
            } else {
                &[240, 240, 240, 255]
            });
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
}

fn write_json(dir: &Path, name: &str, value: serde_json::Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

#[tokio::test]
async fn diff_my_images_compares_with_the_last_good_release() {
    let build = new_build("images").await;
    let dir = tempfile::tempdir().unwrap();
    let (red, blue) = (dir.path().join("red.png"), dir.path().join("blue.png"));
    write_png(&red, [200, 0, 0, 255]);
    write_png(&blue, [0, 0, 200, 255]);
    let log = dir.path().join("log.txt");
    std::fs::write(&log, "captured by selenium\n").unwrap();

    let first = write_json(
        dir.path(),
        "first.json",
        serde_json::json!([
            {"name": "home", "run_failed": false, "image_path": red, "log_path": log,
             "url": "http://example.com/"},
            {"name": "about", "run_failed": false, "image_path": red, "url": "http://example.com/about"}
        ]),
    );
    let json_arg = format!("--tests_json_path={}", first.display());
    let out = build
        .run(
            "diff_my_images",
            &["--upload_release_name=nightly", &json_arg, "--wait"],
        )
        .await;
    let lines = assert_exit(&out, 0);
    assert!(lines[0].starts_with("http://"), "{lines:?}");
    assert!(
        lines[1].contains("reviewing (no differences); 2 runs: 2 no_diff_needed"),
        "{lines:?}"
    );
    let status = build.status("nightly", 1).await;
    assert_eq!(status.status, ReleaseStatus::Reviewing);
    assert_eq!(count(&status, RunStatus::NoDiffNeeded), 2);
    build.mark_good("nightly", 1).await;

    // The baseline is now release 1: its "home" run has the red image and the log.
    let baseline = build
        .client
        .find_run(build.id, "home")
        .await
        .unwrap()
        .unwrap();
    let red_bytes = std::fs::read(&red).unwrap();
    let image = baseline.image.unwrap();
    assert_eq!(
        build.client.download(build.id, &image).await.unwrap(),
        red_bytes
    );
    let log_id = baseline.log.unwrap();
    assert_eq!(
        build.client.download(build.id, &log_id).await.unwrap(),
        b"captured by selenium\n"
    );

    let second = write_json(
        dir.path(),
        "second.json",
        serde_json::json!([
            {"name": "home", "image_path": red},
            {"name": "about", "image_path": blue}
        ]),
    );
    let json_arg = format!("--tests_json_path={}", second.display());
    let out = build
        .run(
            "diff_my_images",
            &["--upload_release_name=nightly", &json_arg, "--wait"],
        )
        .await;
    assert_summary(&out, 1, "#2: reviewing (differences to review)");
    let status = build.status("nightly", 2).await;
    assert_eq!(count(&status, RunStatus::DiffFound), 1, "{status:?}");
    assert_eq!(count(&status, RunStatus::DiffNotFound), 1, "{status:?}");
}

/// A release from a pull request's CI job names its branch and commit (read
/// from GitHub's variables, or given as flags) and is compared with the
/// default branch's last good release until its own branch has one.
#[tokio::test]
async fn diff_my_images_sends_the_ci_branch_and_compares_with_the_default_branch() {
    use dpxdt_core::api::BaselineReason;
    let build = new_build("branches").await;
    let dir = tempfile::tempdir().unwrap();
    let (red, blue) = (dir.path().join("red.png"), dir.path().join("blue.png"));
    write_png(&red, [200, 0, 0, 255]);
    write_png(&blue, [0, 0, 200, 255]);
    let tests = |image: &Path, name: &str| {
        let file = write_json(
            dir.path(),
            name,
            serde_json::json!([{"name": "home", "image_path": image}]),
        );
        format!("--tests_json_path={}", file.display())
    };
    let main = tests(&red, "main.json");
    let push = [("GITHUB_HEAD_REF", ""), ("GITHUB_REF_NAME", "main")];
    let out = build
        .run_env(
            "diff_my_images",
            &["--upload_release_name=m", &main, "--wait"],
            &push,
        )
        .await;
    assert_exit(&out, 0);
    assert_eq!(build.status("m", 1).await.branch.as_deref(), Some("main"));
    build.mark_good("m", 1).await;

    let pr = [
        ("GITHUB_HEAD_REF", "feature/login"),
        ("GITHUB_REF_NAME", "7/merge"),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
    ];
    let feature = tests(&blue, "feature.json");
    let out = build
        .run_env(
            "diff_my_images",
            &["--upload_release_name=f", &feature, "--wait"],
            &pr,
        )
        .await;
    assert_summary(&out, 1, "#1: reviewing (differences to review)");
    let status = build.status("f", 1).await;
    assert_eq!(status.branch.as_deref(), Some("feature/login"));
    assert_eq!(
        status.commit_sha.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    let home = &status.baselines[0];
    assert_eq!(
        (home.reason, home.release_name.as_deref()),
        (Some(BaselineReason::DefaultBranch), Some("m"))
    );

    // Flags win over the environment; a bad commit is refused with exit 2.
    let out = build
        .run_env(
            "diff_my_images",
            &["--upload_release_name=g", &feature, "--commit-sha=xyz"],
            &pr,
        )
        .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("commit_sha must be 7 to 64 hex digits"),
        "{err}"
    );
}

#[tokio::test]
async fn diff_my_images_reports_a_failed_run_and_exits_2_with_wait() {
    let build = new_build("images-failed").await;
    let dir = tempfile::tempdir().unwrap();
    let json = write_json(
        dir.path(),
        "t.json",
        serde_json::json!([{"name": "broken", "run_failed": true, "url": "http://x/"}]),
    );
    let json_arg = format!("--tests_json_path={}", json.display());
    let out = build
        .run(
            "diff_my_images",
            &["--upload_release_name=r", &json_arg, "--wait"],
        )
        .await;
    assert_summary(&out, 2, "(failed); 1 runs: 1 failed");
    assert_eq!(count(&build.status("r", 1).await, RunStatus::Failed), 1);
}

#[tokio::test]
async fn bad_input_gives_one_clear_line_and_exit_2() {
    let build = new_build("bad-input").await;
    let dir = tempfile::tempdir().unwrap();
    let missing_image = write_json(
        dir.path(),
        "missing.json",
        serde_json::json!([{"name": "a", "image_path": dir.path().join("nope.png")}]),
    );
    let malformed = dir.path().join("malformed.json");
    std::fs::write(&malformed, "[{\"name\": ").unwrap();
    let good_png = dir.path().join("ok.png");
    write_png(&good_png, [1, 2, 3, 255]);
    let good = write_json(
        dir.path(),
        "good.json",
        serde_json::json!([{"name": "a", "image_path": good_png}]),
    );

    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![format!("--tests_json_path={}", missing_image.display())],
            "nope.png",
        ),
        (
            vec![format!("--tests_json_path={}", malformed.display())],
            "is not a JSON list of tests",
        ),
        (
            vec![format!(
                "--tests_json_path={}",
                dir.path().join("absent.json").display()
            )],
            "cannot read tests file",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = build.run("diff_my_images", &args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(want),
            "{stderr}"
        );
    }

    // Wrong credentials: the server's refusal, in one line.
    let json_arg = format!("--tests_json_path={}", good.display());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_diff_my_images"))
        .arg(format!("--release_server_prefix={}", server().api))
        .arg(format!("--upload_build_id={}", build.id))
        .args(["--release_client_id", &build.key_id])
        .args(["--release_client_secret", "wrong"])
        .arg(&json_arg)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot create release") && stderr.contains("401"),
        "{stderr}"
    );

    // An unreachable server: named, after the retries.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_diff_my_images"))
        .arg(format!(
            "--release_server_prefix=http://127.0.0.1:{port}/api"
        ))
        .arg("--upload_build_id=1")
        .arg(&json_arg)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach the server at http://127.0.0.1:{port}/api/create_release"
        )),
        "{stderr}"
    );
}

/// A three-page site under `/site/` whose about page can change.
fn site(about_colour: &str) -> PageServer {
    let pages = PageServer::start();
    let page = |body: &str| {
        format!("<html><body style='margin:0;font:16px sans-serif'>{body}</body></html>")
    };
    pages.set_html(
        "/site/",
        &page(r#"<h1>Home</h1><a href="about.html">about</a> <a href="news.html#top">news</a> <a href="/elsewhere">out</a>"#),
    );
    pages.set_html(
        "/site/news.html",
        &page(r#"<p>news</p><a href="/site/">home</a>"#),
    );
    set_about(&pages, about_colour);
    pages
}

fn set_about(pages: &PageServer, colour: &str) {
    pages.set_html(
        "/site/about.html",
        &format!(
            "<html><body style='margin:0'><div style='width:200px;height:100px;background:{colour}'></div></body></html>"
        ),
    );
}

#[tokio::test]
async fn site_diff_captures_every_page_and_diffs_against_the_last_good_release() {
    let build = new_build("site").await;
    let pages = site("green");
    let start = pages.url("/site/");
    let out = build
        .run(
            "site_diff",
            &["--upload_release_name=site", "--wait", &start],
        )
        .await;
    assert_summary(&out, 0, "3 runs: 3 no_diff_needed");
    let status = build.status("site", 1).await;
    assert_eq!(status.runs.iter().map(|c| c.count).sum::<u64>(), 3);
    build.mark_good("site", 1).await;
    for name in ["/site/", "/site/about.html", "/site/news.html"] {
        let found = build.client.find_run(build.id, name).await.unwrap();
        assert!(
            found.and_then(|f| f.image).is_some(),
            "{name} has a screenshot"
        );
    }

    set_about(&pages, "red");
    let out = build
        .run(
            "site_diff",
            &["--upload_release_name=site", "--wait", &start],
        )
        .await;
    assert_summary(&out, 1, "3 runs: 1 diff_found, 2 diff_not_found");
}

#[tokio::test]
async fn site_diff_strict_stops_on_a_page_answering_500_before_creating_a_release() {
    let build = new_build("site-500").await;
    let pages = site("green");
    pages.set(
        "/site/news.html",
        dpxdt_e2e::Page::html("boom").with_status(500),
    );
    let out = build
        .run(
            "site_diff",
            &[
                "--upload_release_name=broken",
                "--strict",
                &pages.url("/site/"),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("/site/news.html answered 500 Internal Server Error"),
        "{stderr}"
    );
    let err = build
        .client
        .release_status(&build.key("broken", 1))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
}

#[tokio::test]
async fn url_pair_diff_and_diff_my_urls_capture_both_sides() {
    let build = new_build("pairs").await;
    let pages = site("green");
    let other = site("red");
    let (new, same, changed) = (
        pages.url("/site/about.html"),
        pages.url("/site/about.html"),
        other.url("/site/about.html"),
    );
    let out = build
        .run(
            "url_pair_diff",
            &["--upload_release_name=pair", "--wait", &new, &same],
        )
        .await;
    assert_summary(&out, 0, "1 runs: 1 diff_not_found");
    let out = build
        .run(
            "url_pair_diff",
            &["--upload_release_name=pair", "--wait", &new, &changed],
        )
        .await;
    assert_summary(&out, 1, "pair\" #2");
    assert_eq!(
        count(&build.status("pair", 2).await, RunStatus::DiffFound),
        1
    );

    let dir = tempfile::tempdir().unwrap();
    let json = write_json(
        dir.path(),
        "urls.json",
        serde_json::json!([
            {"name": "same", "run_url": new, "run_config": {"viewportSize": {"width": 400, "height": 300}},
             "ref_url": same, "ref_config": {"viewportSize": {"width": 400, "height": 300}}},
            {"name": "css", "run_url": new, "run_config": {"injectCss": "div { background: blue !important; }"},
             "ref_url": same, "ref_config": {}}
        ]),
    );
    let json_arg = format!("--tests_json_path={}", json.display());
    let out = build
        .run(
            "diff_my_urls",
            &["--upload_release_name=urls", "--wait", &json_arg],
        )
        .await;
    assert_summary(&out, 1, "2 runs: 1 diff_found, 1 diff_not_found");
}

#[tokio::test]
async fn site_diff_passes_basic_auth_and_injected_css_js_to_the_captures() {
    let build = new_build("site-auth").await;
    let pages = PageServer::start();
    let locked = |html: &str| dpxdt_e2e::Page::html(html).with_basic_auth("ann", "pw");
    pages.set(
        "/auth/",
        locked(r#"<h1>members</h1><a href="inner.html">inner</a>"#),
    );
    pages.set("/auth/inner.html", locked("<p>inner</p>"));
    let out = build
        .run(
            "site_diff",
            &[
                "--upload_release_name=auth",
                "--http_username=ann",
                "--http_password=pw",
                "--wait",
                &pages.url("/auth/"),
            ],
        )
        .await;
    assert_summary(&out, 0, "2 runs: 2 no_diff_needed");
    let expected = format!("Basic {}", dpxdt_e2e::base64(b"ann:pw"));
    for path in ["/auth/", "/auth/inner.html"] {
        let seen = pages.requests_for(path);
        let browser_authed = seen.iter().any(|r| {
            r.header("user-agent")
                .is_some_and(|ua| ua.contains("Chrome"))
                && r.header("authorization") == Some(expected.as_str())
        });
        assert!(browser_authed, "Chromium sent the credentials for {path}");
    }

    // Injected CSS and JavaScript change what is captured: both pages differ
    // from the now-good first release.
    build.mark_good("auth", 1).await;
    let out = build
        .run(
            "site_diff",
            &[
                "--upload_release_name=auth",
                "--http_username=ann",
                "--http_password=pw",
                "--inject_css=p { font-size: 40px; }",
                "--inject_js=document.querySelector('h1') && (document.querySelector('h1').textContent = 'changed');",
                "--wait",
                &pages.url("/auth/"),
            ],
        )
        .await;
    assert_summary(&out, 1, "2 runs: 2 diff_found");
}
