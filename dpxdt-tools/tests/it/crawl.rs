//! The `site_diff` crawler on small real sites on loopback: cycles,
//! external links, fragments, ignored prefixes, a depth limit, a page behind
//! basic auth, broken links, redirect loops, a navigation built by a script
//! (rendered in Chromium), sitemaps; through the library and through the
//! real `site_diff --list_pages` binary.

use std::process::Command;
use std::sync::Arc;

use dpxdt_core::capture::{Browser, BrowserOptions};
use dpxdt_e2e::{Page, PageServer};
use dpxdt_tools::crawl::{CrawlError, CrawlOptions, crawl, parse_start_url};
use tokio::sync::OnceCell;

/// One browser for the whole test binary.
async fn browser() -> Arc<Browser> {
    static BROWSER: OnceCell<Arc<Browser>> = OnceCell::const_new();
    BROWSER
        .get_or_init(|| async {
            let options = BrowserOptions {
                sessions: 2,
                ..BrowserOptions::default()
            };
            Arc::new(Browser::launch(options).await.expect("launch chromium"))
        })
        .await
        .clone()
}

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
    assert!(found.skipped.is_empty(), "{:?}", found.skipped);
    let broken: Vec<_> = found.broken.iter().map(|b| b.to_string()).collect();
    assert_eq!(
        broken,
        [format!(
            "{} (linked from {}): 404 Not Found",
            server.url("/site/missing.html"),
            server.url("/site/b.html")
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
    let found = crawl(&start, &no_auth).await.unwrap();
    let broken = found
        .broken
        .iter()
        .find(|b| b.url.path() == "/site/secret.html");
    let reason = &broken
        .expect("secret.html is broken without credentials")
        .reason;
    assert!(
        reason.starts_with("401") && reason.contains("--http_username"),
        "{reason}"
    );

    let wrong = CrawlOptions {
        basic_auth: Some(("user".into(), "nope".into())),
        strict: true,
        ..options()
    };
    let err = crawl(&start, &wrong).await.unwrap_err().to_string();
    assert!(err.contains("/site/secret.html answered 401"), "{err}");
    assert!(err.contains("refused"), "{err}");
}

#[tokio::test]
async fn a_page_answering_500_is_a_broken_link_and_fatal_when_strict() {
    let server = site();
    server.set("/site/b.html", Page::html("boom").with_status(500));
    let start = parse_start_url(&server.url("/site/")).unwrap();
    let found = crawl(&start, &options()).await.unwrap();
    assert!(
        found
            .pages
            .iter()
            .any(|p| p.path() == "/site/c.html?q=1" || p.path() == "/site/c.html")
    );
    let broken: Vec<_> = found.broken.iter().map(|b| b.to_string()).collect();
    assert_eq!(
        broken,
        [format!(
            "{} (linked from {}): 500 Internal Server Error",
            server.url("/site/b.html"),
            server.url("/site/")
        )]
    );

    let strict = CrawlOptions {
        strict: true,
        ..options()
    };
    let err = crawl(&start, &strict).await.unwrap_err();
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
async fn the_crawl_stops_at_max_pages_and_says_what_it_left() {
    let server = site();
    let start = parse_start_url(&server.url("/site/")).unwrap();
    let small = CrawlOptions {
        max_pages: 3,
        ..options()
    };
    let found = crawl(&start, &small).await.unwrap();
    assert_eq!(found.pages.len(), 3);
    // deep/1.html and secret.html at the second level; c.html and missing.html,
    // linked from the pages crawled there.
    assert_eq!(found.not_visited, 4);
}

#[tokio::test]
async fn index_html_and_trailing_slashes_are_one_page_and_queries_are_kept() {
    let server = PageServer::start();
    server.set_html(
        "/s/",
        r#"<a href="index.html">self</a> <a href="./">self</a> <a href="sub/">sub</a>
           <a href="sub/index.html">sub again</a> <a href="sub">sub once more</a>
           <a href="sub/?page=2">page 2</a> <a href="/s/index.html#top">self</a>"#,
    );
    server.set_html("/s/index.html", "the same page");
    server.set_html("/s/sub/", r#"<a href="../">up</a>"#);
    server.set_html("/s/sub/index.html", "the same page");
    server.set_html("/s/sub", "the same page");
    let start = parse_start_url(&server.url("/s/")).unwrap();
    let found = crawl(&start, &CrawlOptions::default()).await.unwrap();
    assert_eq!(
        paths(&server, &found.pages),
        ["/s/", "/s/sub/", "/s/sub/?page=2"]
    );
}

#[tokio::test]
async fn redirect_loops_are_broken_links_and_a_looping_start_is_an_error() {
    let server = PageServer::start();
    server.set_html("/r/", r#"<a href="loop">loop</a> <a href="ok">ok</a>"#);
    server.set(
        "/r/loop",
        Page::html("")
            .with_status(302)
            .with_header("Location", "/r/loop"),
    );
    server.set_html("/r/ok", "fine");
    let start = parse_start_url(&server.url("/r/")).unwrap();
    let found = crawl(&start, &CrawlOptions::default()).await.unwrap();
    assert_eq!(paths(&server, &found.pages), ["/r/", "/r/ok"]);
    assert_eq!(found.broken.len(), 1);
    assert_eq!(found.broken[0].url.path(), "/r/loop");
    assert!(
        found.broken[0].reason.contains("redirects in a loop"),
        "{:?}",
        found.broken
    );

    let start = parse_start_url(&server.url("/r/loop")).unwrap();
    let err = crawl(&start, &CrawlOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/r/loop") && err.contains("redirects in a loop"),
        "{err}"
    );
}

/// A documentation site of 120 pages whose every link is written by a
/// script (as mdBook's sidebar is): the static HTML links nowhere.
fn scripted_site() -> PageServer {
    let server = PageServer::start();
    server.set(
        "/book/nav.js",
        Page::new(
            "text/javascript",
            r#"const nav = document.getElementById('nav');
            for (let i = 1; i <= 120; i++) {
              const a = document.createElement('a');
              a.href = '/book/chapter-' + i + '.html';
              a.textContent = 'Chapter ' + i;
              nav.appendChild(a);
            }"#,
        ),
    );
    let page = r#"<!doctype html><nav id="nav"></nav><script src="/book/nav.js"></script>"#;
    server.set_html("/book/", page);
    for i in 1..=120 {
        server.set_html(&format!("/book/chapter-{i}.html"), page);
    }
    server
}

#[tokio::test]
async fn a_navigation_built_by_a_script_is_crawled_completely() {
    let server = scripted_site();
    let start = parse_start_url(&server.url("/book/")).unwrap();
    let found = crawl(&start, &CrawlOptions::default()).await.unwrap();
    assert_eq!(
        found.pages.len(),
        1,
        "static HTML alone finds only the start page"
    );

    let rendered = CrawlOptions {
        browser: Some(browser().await),
        ..CrawlOptions::default()
    };
    let found = crawl(&start, &rendered).await.unwrap();
    assert_eq!(found.pages.len(), 121, "{:?}", found.warnings);
    assert!(found.broken.is_empty() && found.warnings.is_empty());
    for i in [1, 60, 120] {
        let path = format!("/book/chapter-{i}.html");
        assert_eq!(
            server.requests_for(&path).len(),
            2,
            "{path}: fetched once and rendered once"
        );
    }
}

fn sitemap(locs: impl IntoIterator<Item = String>) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">"#,
    );
    for loc in locs {
        xml.push_str(&format!("<url><loc>{loc}</loc></url>"));
    }
    xml + "</urlset>"
}

#[tokio::test]
async fn a_site_known_only_by_its_sitemap_is_crawled_completely() {
    let server = PageServer::start();
    server.set_html("/docs/", "<p>no links at all</p>");
    for i in 0..110 {
        server.set_html(&format!("/docs/p{i}.html"), "<p>a page</p>");
    }
    // /sitemap.xml, read without being asked, is an index of two sitemaps.
    server.set(
        "/sitemap.xml",
        Page::new(
            "application/xml",
            format!(
                r#"<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
                <sitemap><loc>{}</loc></sitemap><sitemap><loc>/maps/b.xml</loc></sitemap></sitemapindex>"#,
                server.url("/maps/a.xml")
            ),
        ),
    );
    server.set(
        "/maps/a.xml",
        Page::new(
            "application/xml",
            sitemap((0..60).map(|i| server.url(&format!("/docs/p{i}.html")))),
        ),
    );
    server.set(
        "/maps/b.xml",
        Page::new(
            "application/xml",
            sitemap(
                (60..110)
                    .map(|i| server.url(&format!("/docs/p{i}.html")))
                    .chain([server.url("/elsewhere/x.html")]),
            ),
        ),
    );
    let start = parse_start_url(&server.url("/docs/")).unwrap();
    let found = crawl(&start, &CrawlOptions::default()).await.unwrap();
    assert_eq!(found.pages.len(), 111, "{:?}", found.warnings);
    assert!(
        server.requests_for("/elsewhere/x.html").is_empty(),
        "outside the prefix"
    );
}

#[tokio::test]
async fn a_sitemap_that_is_missing_or_not_xml_is_a_clear_error() {
    let server = PageServer::start();
    server.set_html("/docs/", "<p>start</p>");
    server.set_html("/not-xml.xml", "<html><p>an HTML page</html>");
    server.set(
        "/wrong-root.xml",
        Page::new("application/xml", "<rss></rss>"),
    );
    let start = parse_start_url(&server.url("/docs/")).unwrap();
    for (path, expected) in [
        ("/missing.xml", "404 Not Found"),
        ("/not-xml.xml", "not XML"),
        (
            "/wrong-root.xml",
            "not a sitemap: the root element is <rss>",
        ),
    ] {
        let options = CrawlOptions {
            sitemaps: vec![url::Url::parse(&server.url(path)).unwrap()],
            ..CrawlOptions::default()
        };
        let err = crawl(&start, &options).await.unwrap_err();
        assert!(matches!(err, CrawlError::Sitemap { .. }), "{err:?}");
        let err = err.to_string();
        assert!(
            err.starts_with(&format!("sitemap {}: ", server.url(path))),
            "{err}"
        );
        assert!(err.contains(expected), "{err}");
    }
    // The /sitemap.xml nobody asked for may be anything: a note, not an error.
    server.set_html(
        "/sitemap.xml",
        "<html>a single-page app answers every path</html>",
    );
    let found = crawl(&start, &CrawlOptions::default()).await.unwrap();
    assert_eq!(found.pages.len(), 1);
    assert!(
        found
            .warnings
            .iter()
            .any(|w| w.contains("sitemap.xml") && w.contains("not used")),
        "{:?}",
        found.warnings
    );
}

#[test]
fn site_diff_lists_pages_and_reports_a_500_in_one_line() {
    let server = site();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_site_diff"))
            .args([
                "--list_pages",
                "--no-render",
                "--crawl_depth=1",
                "--http_username=user",
            ])
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
    assert!(
        out.status.success(),
        "a broken link is listed, not fatal: {out:?}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("found 3 pages") && stderr.contains("and 1 broken links"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "broken link: {} (linked from",
            server.url("/site/a.html")
        )),
        "{stderr}"
    );

    let out = run(&["--strict"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let errors: Vec<_> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with("error: crawl failed: ")
            && errors[0].contains("/site/a.html answered 500"),
        "{stderr}"
    );
}

#[test]
fn site_diff_renders_pages_to_find_scripted_links() {
    let server = scripted_site();
    let out = Command::new(env!("CARGO_BIN_EXE_site_diff"))
        .args(["--list_pages", "--max-pages", "50"])
        .arg(server.url("/book/"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 50);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("stopped at --max-pages 50: 71 more linked pages were not crawled"),
        "{stderr}"
    );
    assert!(stderr.contains("found 50 pages"), "{stderr}");
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
