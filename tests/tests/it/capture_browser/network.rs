//! The capture network policy: every way a page can make a request
//! (document, redirect, subresource, fetch, WebSocket, iframe) goes through
//! the filtering proxy, and what the policy refuses is refused and logged.

use dpxdt_core::netpolicy::{NetworkPolicy, Rule};

use super::*;

/// A browser whose pages may reach 127.0.0.1 (the "staging host" serving
/// the test pages) and nothing else of this machine.
async fn server_policy_browser(deny_private: bool) -> Browser {
    let network = NetworkPolicy {
        allow: vec!["127.0.0.1/32".parse::<Rule>().unwrap()],
        allow_private: !deny_private,
        ..NetworkPolicy::server()
    };
    Browser::launch(BrowserOptions {
        attempts: 1,
        network,
        ..BrowserOptions::default()
    })
    .await
    .expect("launch")
}

#[tokio::test]
async fn every_request_of_a_page_goes_through_the_policy() {
    let server = PageServer::start();
    let browser = server_policy_browser(true).await;
    let driver_port = browser.driver_url().rsplit(':').next().unwrap().to_string();
    let port = server.addr().port();
    server.set_html(
        "/attack",
        &format!(
            r#"<!doctype html><html><body style="margin:0">
            <div id="box" style="width:100px;height:100px;background:green"></div>
            <img src="http://169.254.169.254/latest/meta-data/" width="1" height="1">
            <iframe src="http://10.255.255.1/admin" width="10" height="10"></iframe>
            <script>
              fetch('http://127.0.0.2:{port}/secret').catch(() => {{}});
              try {{ new WebSocket('ws://127.0.0.1:{driver_port}/session'); }} catch (e) {{}}
            </script></body></html>"#
        ),
    );
    let shot = browser
        .capture(&server.url("/attack"), &config("{}"))
        .await
        .expect("the allowed staging host is captured");
    let img = image::load_from_memory(&shot.png).unwrap().to_rgba8();
    assert_eq!(px(&img, 10, 10), GREEN);
    for (target, why) in [
        ("169.254.169.254", "link-local"),
        ("10.255.255.1", "--capture-deny-private"),
        ("127.0.0.2", "this machine"),
        (
            &*format!("127.0.0.1:{driver_port}"),
            "belongs to the capture browser",
        ),
    ] {
        let line = shot
            .log
            .lines()
            .find(|l| l.contains("refused by the network policy") && l.contains(target));
        let line = line.unwrap_or_else(|| panic!("no refusal of {target} in:\n{}", shot.log));
        assert!(line.contains(why), "{line}");
    }
    assert!(
        server.requests_for("/secret").is_empty(),
        "the fetch never reached a server"
    );

    // The page itself, directly or through a redirect, fails the capture.
    for (path, target) in [
        ("/to-loopback", format!("http://127.0.0.2:{port}/x")),
        ("/to-metadata", "http://169.254.169.254/".to_string()),
    ] {
        server.set(
            path,
            Page::html("")
                .with_status(302)
                .with_header("Location", &target),
        );
        let err = browser
            .capture(&server.url(path), &config("{}"))
            .await
            .unwrap_err();
        assert!(matches!(err, CaptureError::Refused { .. }), "{err:?}");
        assert!(!err.is_retryable());
    }
    let err = browser
        .capture(&format!("http://127.0.0.2:{port}/attack"), &config("{}"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused by the capture network policy"),
        "{err}"
    );
    browser.shutdown().await;
}

/// Regression: the policy knew this machine only as 127/8 and ::1, so a
/// page reached a service listening on every interface (here standing in
/// for the server itself on `--listen 0.0.0.0`) through the machine's own
/// non-loopback addresses, IPv4 and IPv6. Every address of this machine's
/// interfaces is now loopback to the policy: the page itself is refused,
/// and so are its fetches and images, each named in the capture log.
#[tokio::test]
async fn this_machines_own_addresses_are_as_closed_as_loopback() {
    let everywhere = PageServer::start_on("[::]:0");
    everywhere.set_html("/login", "<!doctype html><p>the server's login page</p>");
    let port = everywhere.addr().port();
    let own: Vec<String> = if_addrs::get_if_addrs()
        .unwrap()
        .iter()
        .map(if_addrs::Interface::ip)
        .filter(|ip| {
            !ip.is_loopback()
                && !matches!(ip, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
        })
        .map(|ip| match ip {
            std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
            std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        })
        .collect();
    assert!(
        !own.is_empty(),
        "this test needs a network interface with a non-loopback address"
    );
    let staging = PageServer::start();
    let browser = server_policy_browser(false).await;
    for authority in &own {
        // The page itself.
        let err = browser
            .capture(&format!("http://{authority}/login"), &config("{}"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CaptureError::Refused { .. }),
            "{authority}: {err:?}"
        );
        assert!(
            err.to_string().contains("this machine"),
            "{authority}: {err}"
        );
        // A page on an allowed host that fetches it and shows it as an image.
        staging.set_html(
            "/probe",
            &format!(
                r#"<!doctype html><body style="margin:0">
                <div id="box" style="width:100px;height:100px;background:green"></div>
                <img src="http://{authority}/login.png" width="1" height="1">
                <script>fetch('http://{authority}/login').catch(() => {{}});</script></body>"#
            ),
        );
        let shot = browser
            .capture(&staging.url("/probe"), &config("{}"))
            .await
            .expect("the allowed staging host is captured");
        let refused: Vec<&str> = shot
            .log
            .lines()
            .filter(|l| {
                l.contains("refused by the network policy") && l.contains(authority.as_str())
            })
            .collect();
        assert!(
            refused.iter().any(|l| l.contains("this machine")),
            "no refusal of {authority} in:\n{}",
            shot.log
        );
    }
    assert!(
        everywhere.requests().is_empty(),
        "the service on every interface was reached: {:?}",
        everywhere.requests()
    );
    browser.shutdown().await;
}

#[tokio::test]
async fn local_captures_reach_loopback_but_never_chromedriver() {
    let server = PageServer::start();
    let b = browser().await;
    let driver = b.driver_url().to_string();
    server.set_html(
        "/probe",
        &format!(
            r#"<!doctype html><body style="margin:0"><div id="box" style="width:100px;height:100px;background:red"></div>
            <script>fetch('{driver}/status').then((r) => {{ if (r.ok) document.getElementById('box').style.background = 'green'; }}, () => {{}});</script></body>"#
        ),
    );
    let shot = b
        .capture(&server.url("/probe"), &config("{}"))
        .await
        .unwrap();
    assert!(
        shot.log.contains("refused by the network policy"),
        "{}",
        shot.log
    );
    let img = image::load_from_memory(&shot.png).unwrap().to_rgba8();
    assert_eq!(px(&img, 10, 10), RED, "chromedriver answered the page");
}

/// A page on 127.0.0.1 that loads a stylesheet from itself and an image
/// and a fetch from a "CDN" on `localhost` (another host, same machine).
fn page_with_a_cdn() -> (PageServer, PageServer, String) {
    let page = PageServer::start();
    let cdn = PageServer::start();
    let cdn_base = format!("http://localhost:{}", cdn.addr().port());
    cdn.set(
        "/pixel.png",
        Page::new("image/png", png_of([0, 0, 255], 4, 4)),
    );
    cdn.set("/data.json", Page::new("application/json", "{}"));
    page.set("/app.css", Page::new("text/css", "body { margin: 0 }"));
    page.set_html(
        "/app",
        &format!(
            r#"<!doctype html><link rel="stylesheet" href="/app.css">
            <img src="{cdn_base}/pixel.png"><script>fetch("{cdn_base}/data.json").catch(() => {{}});</script>"#
        ),
    );
    let url = page.url("/app");
    (page, cdn, url)
}

#[tokio::test]
async fn extra_headers_and_credentials_reach_only_the_hosts_they_name() {
    let (page, cdn, url) = page_with_a_cdn();
    shoot(
        &url,
        r#"{"injectHeaders": {"*": {"X-Secret": "s"}, "localhost": {"X-Cdn": "c"}},
            "httpUserName": "u", "httpPassword": "p",
            "cookies": [{"name": "sid", "value": "1"}]}"#,
    )
    .await;
    for path in ["/app", "/app.css"] {
        let r = page
            .requests_for(path)
            .pop()
            .unwrap_or_else(|| panic!("{path} loaded"));
        assert_eq!(r.header("x-secret"), Some("s"), "{path}");
        assert_eq!(r.header("authorization"), Some("Basic dTpw"), "{path}");
        assert_eq!(r.header("x-cdn"), None, "{path}");
        // Adding headers keeps the page's own cookies.
        assert!(
            r.header("cookie").is_some_and(|c| c.contains("sid=1")),
            "{path}: {r:?}"
        );
    }
    for path in ["/pixel.png", "/data.json"] {
        let r = cdn
            .requests_for(path)
            .pop()
            .unwrap_or_else(|| panic!("{path} loaded"));
        assert_eq!(r.header("x-cdn"), Some("c"), "{path}");
        assert_eq!(
            r.header("x-secret"),
            None,
            "{path}: the page's headers stay on its host"
        );
        assert_eq!(
            r.header("authorization"),
            None,
            "{path}: so do its credentials"
        );
    }

    // The old behaviour on request: the page host's headers go everywhere.
    let (page, cdn, url) = page_with_a_cdn();
    shoot(
        &url,
        r#"{"injectHeaders": {"*": {"X-Secret": "s"}}, "httpUserName": "u",
            "httpPassword": "p", "injectHeadersAllHosts": true}"#,
    )
    .await;
    assert_eq!(
        page.requests_for("/app").pop().unwrap().header("x-secret"),
        Some("s")
    );
    // (Chromium also preflights the image with OPTIONS then: extra headers
    // on a cross-site request make it a CORS request.)
    let r = cdn
        .requests_for("/pixel.png")
        .into_iter()
        .find(|r| r.method == "GET")
        .expect("pixel loaded");
    assert_eq!(r.header("x-secret"), Some("s"));
    assert_eq!(r.header("authorization"), Some("Basic dTpw"));

    // And nothing sticks to the session for the next capture.
    let (page, cdn, url) = page_with_a_cdn();
    shoot(&url, "{}").await;
    assert_eq!(
        page.requests_for("/app").pop().unwrap().header("x-secret"),
        None
    );
    assert_eq!(
        cdn.requests_for("/pixel.png")
            .pop()
            .unwrap()
            .header("authorization"),
        None
    );
}
