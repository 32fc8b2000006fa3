//! Real-Chromium tests of `dpxdt_core::capture`: every capture config field
//! proven by a page that shows whether it took effect, the error cases, and
//! the stability guarantee (two captures of a busy page are pixel-identical).

use std::time::{Duration, Instant};

use dpxdt_core::CaptureConfig;
use dpxdt_core::capture::{AsRoot, Browser, BrowserOptions, CaptureError};
use dpxdt_e2e::{Page, PageServer};
use image::{Rgba, RgbaImage};
use tokio::sync::OnceCell;

mod engines;
mod environment;
pub(crate) mod fidelity;
mod isolation;
mod network;

/// One browser for the whole test binary, with two sessions so tests run in parallel.
async fn browser() -> &'static Browser {
    static BROWSER: OnceCell<Browser> = OnceCell::const_new();
    BROWSER
        .get_or_init(|| async {
            Browser::launch(BrowserOptions {
                sessions: 2,
                attempts: 1,
                ..BrowserOptions::default()
            })
            .await
            .expect("launch chromedriver + chromium")
        })
        .await
}

fn config(json: &str) -> CaptureConfig {
    CaptureConfig::from_json(json).expect("valid config")
}

async fn shoot(url: &str, json: &str) -> RgbaImage {
    let shot = browser()
        .await
        .capture(url, &config(json))
        .await
        .unwrap_or_else(|e| panic!("capture {url}: {e}"));
    image::load_from_memory(&shot.png).expect("png").to_rgba8()
}

fn px(img: &RgbaImage, x: u32, y: u32) -> [u8; 3] {
    let Rgba([r, g, b, _]) = *img.get_pixel(x, y);
    [r, g, b]
}

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 128, 0];
const WHITE: [u8; 3] = [255, 255, 255];

/// A page whose 100x100 box at the top-left is green when `cond` (a JS
/// expression) is true and red otherwise.
fn probe_page(cond: &str) -> String {
    format!(
        r#"<!doctype html><html><body style="margin:0">
<div id="box" style="width:100px;height:100px;background:red"></div>
<script>if ({cond}) document.getElementById('box').style.background = 'green';</script>
</body></html>"#
    )
}

#[tokio::test]
async fn default_is_full_page_1280_wide_on_white() {
    let server = PageServer::start();
    server.set_html(
        "/tall",
        r#"<html><body style="margin:0"><div style="height:2000px;width:10px;background:#00f"></div>
        <div style="height:30px;width:40px;background:red"></div></body></html>"#,
    );
    let img = shoot(&server.url("/tall"), "{}").await;
    assert_eq!((img.width(), img.height()), (1280, 2030));
    assert_eq!(px(&img, 5, 5), [0, 0, 255]);
    assert_eq!(
        px(&img, 600, 5),
        WHITE,
        "transparent page background is white"
    );
    assert_eq!(px(&img, 20, 2015), RED, "bottom of the page is captured");

    server.set_html("/short", "<p>hi</p>");
    let img = shoot(&server.url("/short"), "{}").await;
    assert_eq!((img.width(), img.height()), (1280, 800));
}

#[tokio::test]
async fn viewport_full_page_and_clip_rect() {
    let server = PageServer::start();
    server.set_html(
        "/p",
        r#"<html><body style="margin:0"><div style="position:absolute;left:50px;top:60px;width:20px;height:20px;background:red"></div>
        <div style="height:3000px"></div></body></html>"#,
    );
    let img = shoot(
        &server.url("/p"),
        r#"{"viewportSize": {"width": 400, "height": 300}, "fullPage": false}"#,
    )
    .await;
    assert_eq!((img.width(), img.height()), (400, 300));
    let img = shoot(
        &server.url("/p"),
        r#"{"clipRect": {"left": 50, "top": 60, "width": 20, "height": 10}}"#,
    )
    .await;
    assert_eq!((img.width(), img.height()), (20, 10));
    assert!(img.pixels().all(|p| p.0[..3] == RED));
}

#[tokio::test]
async fn cookies_are_set_before_the_page_loads() {
    let server = PageServer::start();
    server.set_html("/c", &probe_page("document.cookie.includes('flavour=oat')"));
    let url = server.url("/c");
    assert_eq!(px(&shoot(&url, "{}").await, 10, 10), RED);
    let img = shoot(
        &url,
        r#"{"cookies": [{"name": "flavour", "value": "oat"}]}"#,
    )
    .await;
    assert_eq!(px(&img, 10, 10), GREEN);
    let last = server.requests_for("/c").pop().unwrap();
    assert_eq!(last.header("cookie"), Some("flavour=oat"));
    // Cookies do not leak into the next capture.
    assert_eq!(px(&shoot(&url, "{}").await, 10, 10), RED);
}

#[tokio::test]
async fn http_basic_auth() {
    let server = PageServer::start();
    server.set(
        "/secret",
        Page::html(&probe_page("true")).with_basic_auth("ann", "s3cret"),
    );
    let url = server.url("/secret");
    let err = browser()
        .await
        .capture(&url, &CaptureConfig::default())
        .await
        .unwrap_err();
    // Headless Chromium shows its own error page for an unanswered challenge.
    assert!(
        matches!(
            err,
            CaptureError::HttpStatus { status: 401, .. } | CaptureError::Load { .. }
        ),
        "{err}"
    );
    let img = shoot(&url, r#"{"httpUserName": "ann", "httpPassword": "s3cret"}"#).await;
    assert_eq!(px(&img, 10, 10), GREEN);
}

#[tokio::test]
async fn inject_css_and_inject_js() {
    let server = PageServer::start();
    server.set_html("/p", &probe_page("false"));
    let url = server.url("/p");
    let img = shoot(
        &url,
        r##"{"injectCss": "#box { background: green !important; }"}"##,
    )
    .await;
    assert_eq!(px(&img, 10, 10), GREEN);
    let img = shoot(
        &url,
        r#"{"injectJs": "document.getElementById('box').style.background = 'rgb(0,0,255)';"}"#,
    )
    .await;
    assert_eq!(px(&img, 10, 10), [0, 0, 255]);
    let err = browser()
        .await
        .capture(&url, &config(r#"{"injectJs": "throw new Error('boom')"}"#))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CaptureError::Script(m) if m == "boom"),
        "{err}"
    );
    // injectJs is a function body: `return` ends it early.
    let img = shoot(
        &url,
        r#"{"injectJs": "return; document.getElementById('box').style.background = 'blue';"}"#,
    )
    .await;
    assert_eq!(px(&img, 10, 10), RED);
    let err = browser()
        .await
        .capture(&url, &config(r#"{"injectJs": "let x = ;"}"#))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CaptureError::Script(m) if m.starts_with("SyntaxError")),
        "{err}"
    );
}

#[tokio::test]
async fn dialogs_are_dismissed_and_logged() {
    let server = PageServer::start();
    // Unanswered, `alert` would block the page and the capture with it.
    server.set_html(
        "/d",
        &probe_page("(alert('hello'), confirm('sure?') === false && prompt('name?') === null)"),
    );
    let shot = browser()
        .await
        .capture(&server.url("/d"), &CaptureConfig::default())
        .await
        .expect("a page with dialogs is captured");
    let img = image::load_from_memory(&shot.png).unwrap().to_rgba8();
    assert_eq!(
        px(&img, 10, 10),
        GREEN,
        "confirm is dismissed, prompt gives null"
    );
    for d in [
        r#"alert("hello")"#,
        r#"confirm("sure?")"#,
        r#"prompt("name?")"#,
    ] {
        assert!(
            shot.log.contains(&format!("dismissed dialog: {d}")),
            "{d} not in the log:\n{}",
            shot.log
        );
    }
}

#[tokio::test]
async fn pages_that_redirect_themselves_are_captured_at_the_target() {
    let server = PageServer::start();
    server.set_html("/target", &probe_page("true"));
    let redirects = [
        ("/js-now", "<script>location.replace('/target')</script>"),
        (
            "/js-load",
            "<script>addEventListener('load', () => location.href = '/target')</script>",
        ),
        (
            "/js-later",
            "<p>moving</p><script>setTimeout(() => location.href = '/target', 20)</script>",
        ),
        (
            "/meta",
            r#"<meta http-equiv="refresh" content="0;url=/target"><p>moving</p>"#,
        ),
    ];
    for (path, html) in redirects {
        server.set_html(path, html);
        let img = shoot(&server.url(path), "{}").await;
        assert_eq!(px(&img, 10, 10), GREEN, "{path} is captured at its target");
    }
    // A navigation `injectJs` starts, whose new document comes late, is
    // waited for: the old document stays quiet meanwhile, and the target
    // still gets to run its scripts.
    server.set(
        "/slow-target",
        Page::html(&probe_page("true")).with_delay(Duration::from_millis(400)),
    );
    server.set_html("/inject", "<p>moving</p>");
    let img = shoot(
        &server.url("/inject"),
        r#"{"injectJs": "location.href = '/slow-target'"}"#,
    )
    .await;
    assert_eq!(px(&img, 10, 10), GREEN, "a late target is waited for");
    // A page that moves on after it has settled is taken as it was then
    // or at its target, but the capture never hangs (a navigation during
    // the screenshot used to leave it unanswered until the timeout).
    for round in 0..2 {
        for delay in [40, 50, 60, 70, 80] {
            let path = format!("/late-{round}-{delay}");
            server.set_html(
                &path,
                &format!(
                    "<p>moving</p><script>setTimeout(() => location.href = '/target', {delay})</script>"
                ),
            );
            let start = Instant::now();
            browser()
                .await
                .capture(&server.url(&path), &config(r#"{"timeoutMs": 5000}"#))
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(start.elapsed() < Duration::from_secs(4), "{path}");
        }
    }
}

/// Serves at `/p` a green box that the script `/paint-red.js` paints red,
/// then `more` (markup); the page's URL.
fn serve_paint_red(server: &PageServer, more: &str) -> String {
    server.set_html(
        "/p",
        &format!(
            r#"<html><body style="margin:0"><div id="box" style="width:100px;height:100px;background:green"></div>
        <script src="/paint-red.js"></script>{more}</body></html>"#
        ),
    );
    server.set(
        "/paint-red.js",
        Page::new(
            "text/javascript",
            "document.getElementById('box').style.background = 'red';",
        ),
    );
    server.url("/p")
}

#[tokio::test]
async fn resources_to_ignore_are_blocked() {
    let server = PageServer::start();
    let url = serve_paint_red(&server, "");
    assert_eq!(px(&shoot(&url, "{}").await, 10, 10), RED);
    let before = server.requests_for("/paint-red.js").len();
    let img = shoot(&url, r#"{"resourcesToIgnore": ["paint-red"]}"#).await;
    assert_eq!(px(&img, 10, 10), GREEN);
    assert_eq!(server.requests_for("/paint-red.js").len(), before);
}

#[tokio::test]
async fn resource_timeout_abandons_a_hanging_image() {
    let server = PageServer::start();
    server.set_html(
        "/p",
        r#"<html><body style="margin:0"><div style="width:100px;height:100px;background:green"></div>
        <img src="/never.png" width="10" height="10"></body></html>"#,
    );
    server.set("/never.png", Page::new("image/png", "").hanging());
    let b = browser().await;
    let start = Instant::now();
    let shot = b
        .capture(&server.url("/p"), &config(r#"{"resourceTimeoutMs": 400}"#))
        .await
        .expect("a hanging image does not fail the capture");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(shot.log.contains("never.png"), "{}", shot.log);
}

#[tokio::test]
async fn user_agent_and_inject_headers() {
    let server = PageServer::start();
    server.set_html(
        "/p",
        &probe_page("navigator.userAgent === 'dpxdt-test-agent/1'"),
    );
    let url = server.url("/p");
    let img = shoot(
        &url,
        r#"{"userAgent": "dpxdt-test-agent/1", "injectHeaders": {"127.0.0.1": {"X-Dpxdt-Test": "yes"}, "other.example": {"X-Other": "no"}}}"#,
    )
    .await;
    assert_eq!(px(&img, 10, 10), GREEN);
    let last = server.requests_for("/p").pop().unwrap();
    assert_eq!(last.header("user-agent"), Some("dpxdt-test-agent/1"));
    assert_eq!(last.header("x-dpxdt-test"), Some("yes"));
    assert_eq!(last.header("x-other"), None);
    // Neither sticks to the session.
    let _ = shoot(&url, "{}").await;
    let last = server.requests_for("/p").pop().unwrap();
    assert_ne!(last.header("user-agent"), Some("dpxdt-test-agent/1"));
    assert_eq!(last.header("x-dpxdt-test"), None);
}

#[tokio::test]
async fn hide_mask_wait_for_selector_and_delay() {
    let server = PageServer::start();
    server.set_html(
        "/p",
        r#"<html><body style="margin:0">
        <div id="a" style="width:100px;height:100px;background:red"></div>
        <div id="b" style="width:100px;height:100px;background:red"></div>
        <script>setTimeout(() => { const d = document.createElement('div'); d.id = 'late';
          d.style.cssText = 'width:100px;height:100px;background:green'; document.body.appendChild(d); }, 300);</script>
        </body></html>"#,
    );
    let img = shoot(
        &server.url("/p"),
        r##"{"hideSelectors": ["#a"], "maskSelectors": ["#b"], "maskColor": "#0000ff",
            "waitForSelector": "#late", "delayMs": 10}"##,
    )
    .await;
    assert_eq!(px(&img, 10, 10), WHITE, "hidden");
    assert_eq!(px(&img, 10, 110), [0, 0, 255], "masked");
    assert_eq!(px(&img, 10, 210), GREEN, "waited for #late");

    let err = browser()
        .await
        .capture(
            &server.url("/p"),
            &config(r##"{"waitForSelector": "#nothing", "timeoutMs": 3000}"##),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("#nothing"), "{err}");
}

#[tokio::test]
async fn load_failures_are_clear_errors() {
    let b = browser().await;
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = b
        .capture(
            &format!("http://127.0.0.1:{port}/"),
            &CaptureConfig::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CaptureError::Load { .. }), "{err}");
    assert!(err.to_string().contains("REFUSED"), "{err}");

    let server = PageServer::start();
    let err = b
        .capture(&server.url("/missing"), &CaptureConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CaptureError::HttpStatus { status: 404, .. }),
        "{err}"
    );

    server.set("/hang", Page::html("x").hanging());
    let start = Instant::now(); // the browser is already up
    let err = b
        .capture(&server.url("/hang"), &config(r#"{"timeoutMs": 1500}"#))
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(
            err,
            CaptureError::Timeout { .. } | CaptureError::Load { .. }
        ),
        "{err}"
    );
    // The browser still works afterwards.
    server.set_html("/ok", &probe_page("true"));
    assert_eq!(px(&shoot(&server.url("/ok"), "{}").await, 10, 10), GREEN);
}

fn some_font() -> Vec<u8> {
    for dir in [
        "/usr/share/fonts/truetype/dejavu",
        "/usr/share/fonts/truetype",
    ] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "ttf") {
                    return std::fs::read(e.path()).unwrap();
                }
            }
        }
    }
    panic!("no .ttf font under /usr/share/fonts/truetype (install fonts-dejavu-core)");
}

fn png_of(color: [u8; 3], w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_pixel(w, h, Rgba([color[0], color[1], color[2], 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn busy_page_captures_are_pixel_identical() {
    let server = PageServer::start();
    server.set(
        "/font.ttf",
        Page::new("font/ttf", some_font()).with_delay(Duration::from_millis(300)),
    );
    server.set(
        "/lazy.png",
        Page::new("image/png", png_of(GREEN, 200, 100)).with_delay(Duration::from_millis(200)),
    );
    server.set(
        "/data.json",
        Page::new("application/json", r#"{"text": "fetched later"}"#)
            .with_delay(Duration::from_millis(250)),
    );
    server.set_html(
        "/busy",
        r#"<!doctype html><html><head><style>
        @font-face { font-family: Slow; src: url(/font.ttf); }
        body { margin: 0; font: 32px Slow, monospace; }
        @keyframes spin { from { transform: rotate(0deg); } to { transform: rotate(360deg); } }
        .spin { width: 80px; height: 80px; background: linear-gradient(red, blue); animation: spin 1.3s linear infinite; }
        .fade { transition: opacity 2s; opacity: 0.2; }
        </style></head><body>
        <h1 class="fade" id="t">Web font text</h1>
        <div class="spin"></div>
        <input autofocus value="caret here">
        <p id="data">loading</p>
        <div style="height:2500px"></div>
        <img loading="lazy" src="/lazy.png" width="200" height="100">
        <script>
          document.getElementById('t').style.opacity = 1;
          fetch('/data.json').then(r => r.json()).then(j => { document.getElementById('data').textContent = j.text; });
        </script></body></html>"#,
    );
    let url = server.url("/busy");
    let a = shoot(&url, "{}").await;
    let b = shoot(&url, "{}").await;
    assert_eq!(a.dimensions(), b.dimensions());
    let differing = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
    assert_eq!(differing, 0, "two captures differ in {differing} pixels");
    // The lazy image at the bottom was loaded, not left blank.
    let h = a.height();
    assert_eq!(px(&a, 100, h - 50), GREEN);
}

#[tokio::test]
async fn dropping_the_browser_kills_chromedriver() {
    let b = Browser::launch(BrowserOptions::default()).await.unwrap();
    let addr = b.driver_url().trim_start_matches("http://").to_string();
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    drop(b);
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "chromedriver still answers on {addr}"
    );
}

/// The default browser is the headless shell when installed (scripts/deps.sh
/// installs it); the full browser, the fallback, captures the same pixels.
#[tokio::test]
async fn the_full_browser_captures_the_same_pixels() {
    let full = std::path::PathBuf::from("/usr/bin/chromium");
    let server = PageServer::start();
    server.set_html(
        "/p",
        r#"<html><body style="margin:0;font:16px sans-serif"><h1>Same pixels</h1>
        <div style="width:120px;height:40px;background:#369"></div></body></html>"#,
    );
    let b = Browser::launch(BrowserOptions {
        chromium: full,
        attempts: 1,
        ..BrowserOptions::default()
    })
    .await
    .expect("chromium --headless=new through chromedriver");
    let from_full = b
        .capture(&server.url("/p"), &CaptureConfig::default())
        .await
        .expect("capture with the full browser");
    drop(b);
    let from_default = shoot(&server.url("/p"), "{}").await;
    assert_eq!(
        image::load_from_memory(&from_full.png).unwrap().to_rgba8(),
        from_default,
        "the full browser and the default one differ"
    );
}

/// A caller that gives up on a capture (as a worker whose lease ran out
/// does) frees the browser at once instead of leaving its only session busy
/// with the page until the capture's timeout.
#[tokio::test]
async fn a_dropped_capture_frees_its_session() {
    let server = PageServer::start();
    server.set("/hang", Page::html("x").hanging());
    server.set_html("/ok", &probe_page("true"));
    let b = Browser::launch(BrowserOptions {
        sessions: 1,
        attempts: 1,
        ..BrowserOptions::default()
    })
    .await
    .unwrap();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(500),
        b.capture(&server.url("/hang"), &config(r#"{"timeoutMs": 60000}"#)),
    )
    .await;
    assert!(gave_up.is_err(), "the hanging page was captured");
    let start = Instant::now();
    let shot = b
        .capture(&server.url("/ok"), &CaptureConfig::default())
        .await
        .expect("the next capture gets a fresh session");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "the next capture waited {:?} for the session",
        start.elapsed()
    );
    let img = image::load_from_memory(&shot.png).unwrap().to_rgba8();
    assert_eq!(px(&img, 10, 10), GREEN);
}
