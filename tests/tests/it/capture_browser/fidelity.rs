//! Capture fidelity: full pages keep their layout (`100vh`, fixed elements,
//! pages taller than one screenshot), and a page full of clocks, random
//! numbers and animation is captured pixel-identically.

use super::*;

const BLUE: [u8; 3] = [0, 0, 255];

/// Serves the hostile page (tests/tests/fixtures/hostile) and returns its URL.
pub(crate) fn serve_hostile(server: &PageServer) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile");
    for (name, content_type) in [
        ("index.html", "text/html; charset=utf-8"),
        ("frame.html", "text/html; charset=utf-8"),
        ("animated.gif", "image/gif"),
        ("changing.webm", "video/webm"),
    ] {
        let body = std::fs::read(dir.join(name)).expect("fixture");
        server.set(&format!("/hostile/{name}"), Page::new(content_type, body));
    }
    server.url("/hostile/index.html")
}

pub(crate) fn differing_pixels(a: &RgbaImage, b: &RgbaImage) -> usize {
    assert_eq!(
        a.dimensions(),
        b.dimensions(),
        "the two captures differ in size"
    );
    a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count()
}

#[tokio::test]
async fn full_page_keeps_100vh_sections_at_the_viewport_height() {
    let server = PageServer::start();
    server.set_html(
        "/hero",
        r#"<!doctype html><html><body style="margin:0">
        <section style="height:100vh;background:#00f"></section>
        <section style="min-height:100vh;height:3000px;background:#008000"></section>
        <div style="position:absolute;left:0;top:3700px;width:50px;height:50px;background:red"></div>
        </body></html>"#,
    );
    let img = shoot(&server.url("/hero"), "{}").await;
    assert_eq!((img.width(), img.height()), (1280, 3800));
    assert_eq!(px(&img, 600, 799), BLUE, "the hero is one viewport high");
    assert_eq!(px(&img, 600, 800), GREEN, "content starts below the hero");
    assert_eq!(px(&img, 600, 3799), GREEN);
    assert_eq!(
        px(&img, 10, 3710),
        RED,
        "content 3,000 px below is where it belongs"
    );

    let img = shoot(
        &server.url("/hero"),
        r#"{"viewportSize": {"width": 600, "height": 400}}"#,
    )
    .await;
    assert_eq!((img.width(), img.height()), (600, 3750));
    assert_eq!(px(&img, 300, 399), BLUE);
    assert_eq!(px(&img, 300, 400), GREEN);
}

#[tokio::test]
async fn fixed_header_and_footer_stay_where_a_browser_window_shows_them() {
    let server = PageServer::start();
    server.set_html(
        "/fixed",
        r#"<!doctype html><html><body style="margin:0">
        <header style="position:fixed;top:0;left:0;right:0;height:40px;background:red"></header>
        <main style="height:3000px;background:#008000"></main>
        <footer style="position:fixed;bottom:0;left:0;right:0;height:40px;background:#00f"></footer>
        </body></html>"#,
    );
    let img = shoot(&server.url("/fixed"), "{}").await;
    assert_eq!((img.width(), img.height()), (1280, 3000));
    assert_eq!(px(&img, 10, 10), RED, "header at the top");
    assert_eq!(px(&img, 10, 45), GREEN);
    assert_eq!(
        px(&img, 10, 780),
        BLUE,
        "footer at the bottom of the first viewport"
    );
    assert_eq!(px(&img, 10, 1500), GREEN);
    assert_eq!(
        px(&img, 10, 2990),
        GREEN,
        "the page was not stretched to put the footer here"
    );
}

/// 600 rows of 50 px, each its own colour and label: a 30,000 px page.
pub(crate) const TALL_PAGE: &str = r#"<!doctype html><html><head><style>
        body { margin: 0; font: 14px monospace; }
        .row { height: 50px; box-sizing: border-box; border-bottom: 1px solid #888; }
        </style></head><body><script>
        for (let i = 0; i < 600; i++) {
          const d = document.createElement('div');
          d.className = 'row';
          d.style.background = 'hsl(' + (i * 37 % 360) + ', 70%, 75%)';
          d.textContent = 'row ' + i + ' at y=' + (i * 50);
          document.body.appendChild(d);
        }
        </script></body></html>"#;

#[tokio::test]
async fn a_30000_px_page_matches_a_reference_stitched_from_viewport_captures() {
    const HEIGHT: u32 = 30_000;
    const VIEW: u32 = 800;
    let server = PageServer::start();
    server.set_html("/tall", TALL_PAGE);
    let url = server.url("/tall");
    let full = shoot(&url, "{}").await;
    assert_eq!((full.width(), full.height()), (1280, HEIGHT));
    // The reference: the page moved up by `top` pixels, one viewport at a time.
    for top in (0..HEIGHT).step_by(VIEW as usize) {
        let config = format!(
            r#"{{"fullPage": false, "injectJs": "document.body.style.marginTop = '-{top}px';"}}"#
        );
        let view = shoot(&url, &config).await;
        let rows = VIEW.min(HEIGHT - top);
        for y in 0..rows {
            for x in 0..1280 {
                if view.get_pixel(x, y) != full.get_pixel(x, top + y) {
                    panic!(
                        "the full page differs from the viewport capture at ({x}, {})",
                        top + y
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_hostile_page_is_captured_pixel_identically() {
    let server = PageServer::start();
    let url = serve_hostile(&server);
    let a = shoot(&url, "{}").await;
    let b = shoot(&url, "{}").await;
    assert_eq!(differing_pixels(&a, &b), 0, "two frozen captures differ");
    assert_eq!(
        px(&a, 30, 30),
        GREEN,
        "the page saw the default frozen instant"
    );
    assert_eq!(
        px(&a, 30, 230),
        GREEN,
        "the GIF shows its first (green) frame"
    );
    let [r, g, b_] = px(&a, 132, 232);
    assert!(
        r < 60 && g > 90 && b_ < 60,
        "the video shows its first (green) frame, not [{r}, {g}, {b_}]"
    );
    for (x, y, what) in [
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

    // The real clock makes captures differ: the freeze is what holds them.
    let real = r#"{"clock": "real"}"#;
    let c = shoot(&url, real).await;
    let d = shoot(&url, real).await;
    assert!(
        differing_pixels(&c, &d) > 0,
        "two real-clock captures are identical"
    );
    assert_eq!(px(&c, 30, 30), RED, "the page saw the real time");
}

#[tokio::test]
async fn clock_and_random_seed_are_what_the_page_sees() {
    let server = PageServer::start();
    server.set_html(
        "/clock",
        &probe_page(
            "Date.now() === 1907740800000 && new Date().getUTCFullYear() === 2030 \
             && performance.now() === 1000 && typeof Date.parse('2020-01-01') === 'number' \
             && new Date(0).getTime() === 0 && new Date() instanceof Date",
        ),
    );
    let img = shoot(
        &server.url("/clock"),
        r#"{"clock": "2030-06-15T08:00:00Z"}"#,
    )
    .await;
    assert_eq!(px(&img, 10, 10), GREEN);

    // The same seed gives the same numbers; another seed others.
    server.set_html(
        "/random",
        r#"<!doctype html><body style="margin:0"><canvas id="c" width="100" height="1" style="display:block"></canvas><script>
        const ctx = document.getElementById('c').getContext('2d');
        for (let x = 0; x < 100; x++) { ctx.fillStyle = 'hsl(' + Math.floor(Math.random() * 360) + ',100%,50%)'; ctx.fillRect(x, 0, 1, 1); }
        </script></body>"#,
    );
    let url = server.url("/random");
    let row = |img: &RgbaImage| (0..100).map(|x| px(img, x, 0)).collect::<Vec<_>>();
    let one = row(&shoot(&url, r#"{"randomSeed": 1}"#).await);
    let again = row(&shoot(&url, r#"{"randomSeed": 1}"#).await);
    let two = row(&shoot(&url, r#"{"randomSeed": 2}"#).await);
    assert_eq!(one, again);
    assert_ne!(one, two);
}
