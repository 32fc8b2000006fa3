//! Firefox beside Chromium: the same page in each engine, and what the
//! Chromium tests prove of capture (determinism, full pages, the network
//! policy, isolation between captures) proven again in Firefox. Firefox
//! starts in the shared browser at its first capture.

use dpxdt_core::capture::Engine;
use dpxdt_core::netpolicy::{NetworkPolicy, Rule};

use super::fidelity::{TALL_PAGE, differing_pixels, serve_hostile};
use super::isolation::{Proc, processes, uid_of};
use super::*;

const BLUE: [u8; 3] = [0, 0, 255];
const ORANGE: [u8; 3] = [255, 165, 0];

/// `json` with `"browser": "firefox"`.
fn in_firefox(json: &str) -> CaptureConfig {
    let mut c = config(json);
    c.browser = Some("firefox".into());
    c.validate().expect("a config Firefox can honour");
    c
}

async fn shoot_firefox(url: &str, json: &str) -> RgbaImage {
    let shot = browser()
        .await
        .capture(url, &in_firefox(json))
        .await
        .unwrap_or_else(|e| panic!("capture {url} in Firefox: {e}"));
    image::load_from_memory(&shot.png).expect("png").to_rgba8()
}

#[tokio::test]
async fn each_engine_paints_the_page_its_own_way() {
    let server = PageServer::start();
    // Engine features, not the user agent (a config may change that).
    server.set_html(
        "/engine",
        r#"<!doctype html><body style="margin:0"><script>
        const gecko = CSS.supports('-moz-appearance', 'none');
        const blink = !gecko && 'userAgentData' in navigator;
        document.body.style.background = gecko ? 'orange' : blink ? 'blue' : 'red';
        </script><p style="height:50px"></p></body>"#,
    );
    let url = server.url("/engine");
    let firefox = shoot_firefox(&url, r#"{"userAgent": "Chrome/1.0"}"#).await;
    let chromium = shoot(&url, "{}").await;
    assert_eq!(
        px(&firefox, 600, 400),
        ORANGE,
        "Firefox shows Gecko's colour"
    );
    assert_eq!(
        px(&chromium, 600, 400),
        BLUE,
        "Chromium shows Blink's colour"
    );
    assert_eq!(firefox.dimensions(), (1280, 800));
}

#[tokio::test]
async fn firefox_sees_the_configured_machine_not_this_one() {
    let server = PageServer::start();
    server.set_html(
        "/machine",
        &probe_page(
            "Intl.DateTimeFormat().resolvedOptions().timeZone === 'Asia/Tokyo' \
             && new Date().getHours() === 21 && navigator.language === 'de-DE' \
             && new Intl.NumberFormat().format(1234.5) === '1.234,5' \
             && matchMedia('(prefers-color-scheme: dark)').matches \
             && matchMedia('(prefers-reduced-motion: reduce)').matches \
             && devicePixelRatio === 2 && innerWidth === 400",
        ),
    );
    let url = server.url("/machine");
    let img = shoot_firefox(
        &url,
        r#"{"timezone": "Asia/Tokyo", "locale": "de-DE", "colorScheme": "dark",
            "reducedMotion": "reduce", "deviceScaleFactor": 2,
            "viewportSize": {"width": 400, "height": 300}}"#,
    )
    .await;
    assert_eq!(
        img.dimensions(),
        (800, 600),
        "two device pixels per CSS pixel"
    );
    assert_eq!(px(&img, 20, 20), GREEN);
    // The next capture is back to the defaults: light, UTC, en-US.
    server.set_html(
        "/defaults",
        &probe_page(
            "Intl.DateTimeFormat().resolvedOptions().timeZone === 'UTC' \
             && new Date().getHours() === 12 && navigator.language === 'en-US' \
             && !matchMedia('(prefers-color-scheme: dark)').matches \
             && !matchMedia('(prefers-reduced-motion: reduce)').matches",
        ),
    );
    let img = shoot_firefox(&server.url("/defaults"), "{}").await;
    assert_eq!(px(&img, 20, 20), GREEN);
}

#[tokio::test]
async fn firefox_captures_the_hostile_page_pixel_identically() {
    let server = PageServer::start();
    let url = serve_hostile(&server);
    let a = shoot_firefox(&url, "{}").await;
    let b = shoot_firefox(&url, "{}").await;
    assert_eq!(differing_pixels(&a, &b), 0, "two frozen captures differ");
    for (x, y, what) in [
        (30, 30, "the page saw the default frozen instant"),
        (30, 230, "the GIF shows its first (green) frame"),
        (30, 570, "the 400 ms timer ran in virtual time"),
        (30, 670, "the open shadow root's animation is frozen"),
        (110, 670, "the closed shadow root's animation is frozen"),
        (
            190,
            670,
            "the CSS background GIF shows its first (green) frame",
        ),
    ] {
        assert_eq!(px(&a, x, y), GREEN, "{what}");
    }
}

#[tokio::test]
async fn firefox_full_pages_keep_100vh_and_reach_30000_px() {
    let server = PageServer::start();
    server.set_html(
        "/hero",
        r#"<!doctype html><html><body style="margin:0">
        <section style="height:100vh;background:#00f"></section>
        <section style="height:3000px;background:#008000"></section>
        </body></html>"#,
    );
    let img = shoot_firefox(&server.url("/hero"), "{}").await;
    assert_eq!((img.width(), img.height()), (1280, 3800));
    assert_eq!(px(&img, 600, 799), BLUE, "the hero is one viewport high");
    assert_eq!(px(&img, 600, 800), GREEN);

    const HEIGHT: u32 = 30_000;
    server.set_html("/tall", TALL_PAGE);
    let url = server.url("/tall");
    let full = shoot_firefox(&url, "{}").await;
    assert_eq!((full.width(), full.height()), (1280, HEIGHT));
    // Viewport captures across the tile seams (every 8,192 px) and the end.
    for top in [0, 7_800, 16_000, 24_400, 29_200] {
        let config = format!(
            r#"{{"fullPage": false, "injectJs": "document.body.style.marginTop = '-{top}px';"}}"#
        );
        let view = shoot_firefox(&url, &config).await;
        for y in 0..800.min(HEIGHT - top) {
            for x in 0..1280 {
                assert!(
                    view.get_pixel(x, y) == full.get_pixel(x, top + y),
                    "the full page differs from the viewport capture at ({x}, {})",
                    top + y
                );
            }
        }
    }
}

#[tokio::test]
async fn firefox_traffic_goes_through_the_network_policy() {
    let server = PageServer::start();
    let port = server.addr().port();
    server.set_html(
        "/attack",
        &format!(
            r#"<!doctype html><body style="margin:0">
            <div style="width:100px;height:100px;background:green"></div>
            <img src="http://127.0.0.2:{port}/secret.png" width="1" height="1">
            <script>fetch('http://10.255.255.1/admin').catch(() => {{}});</script></body>"#
        ),
    );
    let staging = NetworkPolicy {
        allow: vec!["127.0.0.1/32".parse::<Rule>().unwrap()],
        allow_private: false,
        ..NetworkPolicy::server()
    };
    let b = Browser::launch(BrowserOptions {
        attempts: 1,
        network: staging,
        engines: vec![Engine::Firefox],
        ..BrowserOptions::default()
    })
    .await
    .expect("launch Firefox");
    let shot = b
        .capture(&server.url("/attack"), &in_firefox("{}"))
        .await
        .expect("the allowed staging host is captured");
    for target in ["127.0.0.2", "10.255.255.1"] {
        assert!(
            shot.log
                .lines()
                .any(|l| l.contains("refused by the network policy") && l.contains(target)),
            "{target} not refused:\n{}",
            shot.log
        );
    }
    // Firefox's own traffic (updates, telemetry, Remote Settings,
    // captive-portal checks) is turned off, so none reaches the proxy.
    assert!(
        !shot.log.contains("mozilla"),
        "Firefox called home:\n{}",
        shot.log
    );
    b.shutdown().await;

    let closed = Browser::launch(BrowserOptions {
        attempts: 1,
        network: NetworkPolicy::server(),
        engines: vec![Engine::Firefox],
        ..BrowserOptions::default()
    })
    .await
    .expect("launch Firefox");
    let err = closed
        .capture(&server.url("/attack"), &in_firefox("{}"))
        .await
        .expect_err("loopback is refused");
    assert!(matches!(err, CaptureError::Refused { .. }), "{err}");
    closed.shutdown().await;
}

#[tokio::test]
async fn firefox_storage_left_by_one_capture_is_gone_in_the_next() {
    let server = PageServer::start();
    server.set_html(
        "/writer",
        r#"<!doctype html><body><script>
        (async () => {
          localStorage.setItem('secret', 'build A');
          document.cookie = 'secret=buildA; max-age=3600; path=/';
          await new Promise((done) => {
            const open = indexedDB.open('secrets', 1);
            open.onupgradeneeded = () => open.result.createObjectStore('s');
            open.onsuccess = () => { open.result.close(); done(); };
          });
          await (await caches.open('secrets')).put('/secret', new Response('build A'));
          const p = document.createElement('p');
          p.id = 'written';
          document.body.appendChild(p);
        })();
        </script></body>"#,
    );
    server.set_html(
        "/reader",
        r#"<!doctype html><body style="margin:0"><div id="box" style="width:100px;height:100px;background:red"></div><script>
        (async () => {
          const left = [];
          if (localStorage.length) left.push('localStorage');
          if (document.cookie) left.push('cookie');
          if ((await indexedDB.databases()).length) left.push('IndexedDB');
          if ((await caches.keys()).length) left.push('Cache Storage');
          if (!left.length) document.getElementById('box').style.background = 'green';
          const p = document.createElement('p');
          p.id = 'read';
          document.body.appendChild(p);
        })();
        </script></body>"#,
    );
    // One session, so the reader runs where the writer ran.
    let b = Browser::launch(BrowserOptions {
        attempts: 1,
        engines: vec![Engine::Firefox],
        ..BrowserOptions::default()
    })
    .await
    .expect("launch Firefox");
    let written = b
        .capture(
            &server.url("/writer"),
            &in_firefox(r##"{"waitForSelector": "#written"}"##),
        )
        .await
        .unwrap();
    assert!(!written.log.contains("page error"), "{}", written.log);
    let read = b
        .capture(
            &server.url("/reader"),
            &in_firefox(r##"{"waitForSelector": "#read"}"##),
        )
        .await
        .unwrap();
    let img = image::load_from_memory(&read.png).unwrap().to_rgba8();
    assert_eq!(px(&img, 10, 10), GREEN, "{}", read.log);
    b.shutdown().await;
}

#[tokio::test]
async fn an_engine_that_cannot_start_fails_its_captures_naming_what_to_install() {
    let server = PageServer::start();
    server.set_html("/", "<p>hi</p>");
    let b = Browser::launch(BrowserOptions {
        attempts: 1,
        geckodriver: "/nonexistent/geckodriver".into(),
        ..BrowserOptions::default()
    })
    .await
    .expect("Chromium starts");
    let err = b
        .capture(&server.url("/"), &in_firefox("{}"))
        .await
        .expect_err("no geckodriver");
    let text = err.to_string();
    assert!(
        text.contains("firefox") && text.contains("cargo install geckodriver"),
        "{text}"
    );
    // Chromium goes on.
    b.capture(&server.url("/"), &config("{}"))
        .await
        .expect("Chromium still captures");
    b.shutdown().await;
}

/// What a server launches, as root: geckodriver and every Firefox process
/// run as `nobody`.
#[tokio::test]
async fn a_server_firefox_never_runs_as_root() {
    let b = Browser::launch(BrowserOptions {
        attempts: 1,
        as_root: AsRoot::Unprivileged,
        engines: vec![Engine::Firefox],
        ..BrowserOptions::default()
    })
    .await
    .expect("Firefox starts as nobody");
    let pages = PageServer::start();
    pages.set_html("/p", &probe_page("true"));
    let shot = b
        .capture(&pages.url("/p"), &in_firefox("{}"))
        .await
        .expect("capture as nobody");
    let img = image::load_from_memory(&shot.png).expect("png").to_rgba8();
    assert_eq!(px(&img, 50, 50), GREEN, "the page rendered and ran");
    let as_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .expect("/proc/self");
    if as_root {
        let nobody = uid_of("nobody");
        // Each of our geckodrivers leads a process group with its Firefox.
        let procs = processes();
        let groups: Vec<u32> = procs
            .iter()
            .filter(|p| p.cmd.contains("geckodriver") && p.uid == nobody)
            .map(|p| p.pid)
            .collect();
        assert!(!groups.is_empty(), "a geckodriver runs as nobody");
        let ours: Vec<&Proc> = procs.iter().filter(|p| groups.contains(&p.pgrp)).collect();
        assert!(
            ours.iter().any(|p| p.cmd.contains("-contentproc")),
            "a content process among {:?}",
            ours.iter().map(|p| &p.cmd).collect::<Vec<_>>()
        );
        for p in ours {
            assert_eq!(p.uid, nobody, "runs as nobody: {}", p.cmd);
        }
    }
    b.shutdown().await;
}

/// Firefox blocks what Chromium blocks: any URL containing a
/// `resourcesToIgnore` entry, and the known analytics hosts, which never
/// reach the network (nor the proxy's log).
#[tokio::test]
async fn firefox_blocks_ignored_resources_and_analytics() {
    let server = PageServer::start();
    let url = serve_paint_red(
        &server,
        r#"<script src="http://www.google-analytics.com/analytics.js"></script>"#,
    );
    let shot = browser()
        .await
        .capture(&url, &in_firefox("{}"))
        .await
        .unwrap();
    let img = image::load_from_memory(&shot.png).unwrap().to_rgba8();
    assert_eq!(px(&img, 10, 10), RED, "not ignored: the script ran");
    assert!(
        !shot.log.contains("google-analytics"),
        "the analytics host was blocked in the browser:\n{}",
        shot.log
    );
    let before = server.requests_for("/paint-red.js").len();
    let img = shoot_firefox(&url, r#"{"resourcesToIgnore": ["paint-red"]}"#).await;
    assert_eq!(px(&img, 10, 10), GREEN);
    assert_eq!(
        server.requests_for("/paint-red.js").len(),
        before,
        "never requested"
    );
}
