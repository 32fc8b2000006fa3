//! The `site_diff` crawler on a small real site on loopback: cycles,
//! external links, fragments, ignored prefixes, a depth limit, a page behind
//! basic auth, a broken link and a page answering 500; through the library
//! and through the real `site_diff --list_pages` binary.

use std::process::Command;

use dpxdt_e2e::{Page, PageServer};
use dpxdt_tools::crawl::{CrawlError, CrawlOptions, crawl, parse_start_url};

/// A site under `/site/` with a cycle, fragments, an external link, a link
/// outside the prefix, an ignored directory, a chain three deep, a broken
/// link and a page behind basic auth.
fn site() -> PageServer {
    let server = PageServer::start();
    server.set_html(
        "/site/",
        r##"<a href="a.html">a</a> <a href="b.html#part">b</a> <a href="a.html#again">a again</a>
            <a href="#top">top</a> <a href="http://external.invalid/x">external</a>
            <a href="/other/page.html">outside</a> <a href="ignored/x.html">ignored</a>
            <a href="deep/1.html">deep</a> <a href="secret.html">secret</a>"##,
    );
    server.set_html(
        "/site/a.html",
        r#"<a href="/site/">home</a> <a href="c.html?q=1">c</a>"#,
    );
    server.set_html(
        "/site/b.html",
        r#"<a href="missing.html">broken</a> <a href="./a.html">a</a>"#,
    );
    server.set_html("/site/c.html", r#"<a href="/site/a.html">back</a>"#);
    server.set_html("/site/deep/1.html", r#"<a href="2.html">2</a>"#);
    server.set_html("/site/deep/2.html", r#"<a href="3.html">3</a>"#);
    server.set_html("/site/deep/3.html", "bottom");
    server.set_html("/site/ignored/x.html", "never fetched");
    server.set_html("/other/page.html", "never fetched");
    server.set(
        "/site/secret.html",
        Page::html("<p>secret</p>").with_basic_auth("user", "pw"),
    );
    server
}

fn options() -> CrawlOptions {
    CrawlOptions {
        ignore_prefixes: vec!["/site/ignored/".into()],
        basic_auth: Some(("user".into(), "pw".into())),
        ..CrawlOptions::default()
    }
}

fn paths(server: &PageServer, pages: &[url::Url]) -> Vec<String> {
    let base = server.base_url();
    pages
        .iter()
        .map(|p| p.as_str().strip_prefix(&base).unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn crawls_each_page_under_the_prefix_once() {
    let server = site();
    let start = parse_start_url(&server.url("/site/")).unwrap();
    let found = crawl(&start, &options()).await.unwrap();
    assert_eq!(
        paths(&server, &found.pages),
        [
            "/site/",
            "/site/a.html",
            "/site/b.html",
            "/site/deep/1.html",
            "/site/secret.html",
            "/site/c.html?q=1",
            "/site/deep/2.html",
            "/site/deep/3.html",
        ]
    );
    let skipped: Vec<_> = found
        .skipped
        .iter()
        .map(|(u, why)| (u.path().to_string(), why.clone()))
        .collect();
    assert_eq!(
        skipped,
        [(
            "/site/missing.html".to_string(),
            "404 Not Found".to_string()
        )]
    );
    for path in [
        "/site/",
        "/site/a.html",
        "/site/b.html",
        "/site/c.html",
        "/site/secret.html",
    ] {
        assert_eq!(server.requests_for(path).len(), 1, "{path} fetched once");
    }
    for never in ["/site/ignored/x.html", "/other/page.html"] {
        assert!(server.requests_for(never).is_empty(), "{never} fetched");
    }
}

#[tokio::test]
async fn the_depth_limit_stops_the_crawl() {
    let server = site();
    let start = parse_start_url(&server.url("/site/")).unwrap();
    let depth_0 = CrawlOptions {
        max_depth: Some(0),
        ..options()
    };
    let found = crawl(&start, &depth_0).await.unwrap();
    assert_eq!(paths(&server, &found.pages), ["/site/"]);

    let depth_1 = CrawlOptions {
        max_depth: Some(1),
        ..options()
    };
    let found = crawl(&start, &depth_1).await.unwrap();
    assert_eq!(
        paths(&server, &found.pages),
        [
            "/site/",
            "/site/a.html",
            "/site/b.html",
            "/site/deep/1.html",
            "/site/secret.html"
        ]
    );
    assert!(server.requests_for("/site/deep/2.html").is_empty());
}

#[tokio::test]
async fn a_page_behind_basic_auth_needs_the_right_credentials() {
    let server = site();
    let start = parse_start_url(&server.url("/site/")).unwrap();
    let no_auth = CrawlOptions {
        basic_auth: None,
        ..options()
    };
    let err = crawl(&start, &no_auth).await.unwrap_err().to_string();
    assert!(err.contains("/site/secret.html answered 401"), "{err}");
    assert!(err.contains("--http_username"), "{err}");

    let wrong = CrawlOptions {
        basic_auth: Some(("user".into(), "nope".into())),
        ..options()
    };
    let err = crawl(&start, &wrong).await.unwrap_err().to_string();
    assert!(err.contains("refused"), "{err}");
}

#[tokio::test]
async fn a_page_answering_500_stops_the_crawl_with_its_address() {
    let server = site();
    server.set("/site/b.html", Page::html("boom").with_status(500));
    let start = parse_start_url(&server.url("/site/")).unwrap();
    let err = crawl(&start, &options()).await.unwrap_err();
    assert!(matches!(err, CrawlError::Status { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} answered 500 Internal Server Error (linked from {})",
            server.url("/site/b.html"),
            server.url("/site/")
        )
    );
}

#[tokio::test]
async fn too_many_pages_is_an_error() {
    let server = site();
    let start = parse_start_url(&server.url("/site/")).unwrap();
    let small = CrawlOptions {
        max_pages: 3,
        ..options()
    };
    let err = crawl(&start, &small).await.unwrap_err().to_string();
    assert!(err.contains("more than 3 pages"), "{err}");
}

#[test]
fn site_diff_lists_pages_and_reports_a_500_in_one_line() {
    let server = site();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_site_diff"))
            .args(["--list_pages", "--crawl_depth=1", "--http_username=user"])
            .args(["--ignore_prefixes", "/site/ignored/,/site/deep/"])
            .args(extra)
            .arg(server.url("/site/"))
            .env("DPXDT_HTTP_PASSWORD", "pw")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<_> = stdout.lines().collect();
    assert_eq!(
        listed,
        [
            server.url("/site/"),
            server.url("/site/a.html"),
            server.url("/site/b.html"),
            server.url("/site/secret.html"),
        ]
    );

    server.set("/site/a.html", Page::html("boom").with_status(500));
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: crawl failed: ") && stderr.contains("/site/a.html answered 500"),
        "{stderr}"
    );
}

#[test]
fn site_diff_refuses_a_bad_start_url_and_a_missing_build_id() {
    let out = Command::new(env!("CARGO_BIN_EXE_site_diff"))
        .arg("ftp://example.com/")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("only http and https"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_site_diff"))
        .arg("http://127.0.0.1:9/")
        .env_remove("DPXDT_BUILD_ID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--upload_build_id"), "{stderr}");
}
