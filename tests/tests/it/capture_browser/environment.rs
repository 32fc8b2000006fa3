//! What the page believes about its machine comes from the config, never
//! from this machine: virtual time and its budget, seeded crypto, the time
//! zone and locale, media features, the screen and touch, device presets
//! and modes.

use super::*;

/// A page that, at `at` virtual ms, paints its 100x100 box green when
/// `cond` holds and red otherwise (white until then). `setup` runs first.
fn timed_probe(setup: &str, at: u32, cond: &str) -> String {
    format!(
        r#"<!doctype html><html><body style="margin:0">
<div id="box" style="width:100px;height:100px;background:white"></div>
<script>{setup}
setTimeout(() => {{ document.getElementById('box').style.background = ({cond}) ? 'green' : 'red'; }}, {at});
</script></body></html>"#
    )
}

const COUNTERS: &str = "let ticks = 0, frames = 0, fired = false, idle = false;
setInterval(() => ticks++, 20);
setTimeout(() => { fired = true; }, 400);
const loop = () => { frames++; requestAnimationFrame(loop); };
requestAnimationFrame(loop);
requestIdleCallback(() => { idle = true; });";

#[tokio::test]
async fn timers_run_in_virtual_time_up_to_the_settle_budget() {
    let server = PageServer::start();
    // By 999 virtual ms: 49 interval ticks, the 400 ms timer, 62 frames
    // (one every 16 ms), the idle callback; the clock moved with them.
    server.set_html(
        "/all",
        &timed_probe(
            COUNTERS,
            999,
            "ticks === 49 && fired && frames === 62 && idle \
             && Date.now() === 1704110400999 && performance.now() === 1999",
        ),
    );
    let img = shoot(&server.url("/all"), "{}").await;
    assert_eq!(px(&img, 10, 10), GREEN, "timers ran in virtual time");

    // A budget of 100 ms runs the probe at 99 ms but not the 400 ms timer.
    server.set_html(
        "/short",
        &timed_probe(COUNTERS, 99, "ticks === 4 && !fired && frames === 6"),
    );
    let short = r#"{"settleTimeMs": 100}"#;
    assert_eq!(
        px(&shoot(&server.url("/short"), short).await, 10, 10),
        GREEN
    );
    server.set_html("/late", &timed_probe("", 150, "true"));
    assert_eq!(
        px(&shoot(&server.url("/late"), short).await, 10, 10),
        WHITE,
        "a timer beyond the budget never runs"
    );
}

#[tokio::test]
async fn virtual_time_behaves_as_browsers_do_at_the_edges() {
    let server = PageServer::start();
    // Clearing every timer id leaves animation frames alone; delays are
    // whole milliseconds (Infinity is 0); an interval cleared in its own
    // callback stops; an idle loop that works while time remains ends; a
    // frame callback cancelled by an earlier one of its frame does not run.
    let setup = "let first = setTimeout(() => {}, 0); while (first > 0) clearTimeout(first--);
let frames = 0; const loop = () => { frames++; requestAnimationFrame(loop); }; requestAnimationFrame(loop);
let fractional = null; setTimeout(() => { fractional = Date.now(); }, 1000 / 60);
let infinite = false; setTimeout(() => { infinite = performance.now() === 1000; }, Infinity);
let ticks = 0; const iv = setInterval(() => { ticks++; if (ticks === 3) clearInterval(iv); }, 10);
let idle = -1; requestIdleCallback((d) => { let n = 0; while (d.timeRemaining() > 0) n++; idle = n; });
let ran = false; requestAnimationFrame(() => cancelAnimationFrame(later));
const later = requestAnimationFrame(() => { ran = true; });";
    server.set_html(
        "/edges",
        &timed_probe(
            setup,
            999,
            "frames === 62 && fractional === 1704110400016 && infinite && ticks === 3 \
             && idle === 49 && !ran",
        ),
    );
    let img = shoot(&server.url("/edges"), "{}").await;
    assert_eq!(px(&img, 10, 10), GREEN);
}

#[tokio::test]
async fn virtual_time_waits_for_the_network() {
    let server = PageServer::start();
    server.set(
        "/slow.json",
        Page::new("application/json", "{\"price\": 42}").with_delay(Duration::from_millis(300)),
    );
    // The response takes 300 real ms; a 10 ms timer set when it arrives
    // still runs, and virtual time did not run ahead while it was pending.
    server.set_html(
        "/p",
        r#"<!doctype html><html><body style="margin:0">
<div id="box" style="width:100px;height:100px;background:white"></div>
<script>
let early = 0;
setInterval(() => early++, 100);
fetch('/slow.json').then((r) => r.json()).then((j) => {
  const at = early;
  setTimeout(() => { document.getElementById('box').style.background = (j.price === 42 && at === 0) ? 'green' : 'red'; }, 10);
});
</script></body></html>"#,
    );
    let img = shoot(&server.url("/p"), "{}").await;
    assert_eq!(px(&img, 10, 10), GREEN);
}

#[tokio::test]
async fn crypto_random_values_are_seeded_unless_the_clock_is_real() {
    let server = PageServer::start();
    server.set_html(
        "/r",
        r#"<!doctype html><body style="margin:0"><canvas id="c" width="64" height="1" style="display:block"></canvas><script>
        const ctx = document.getElementById('c').getContext('2d');
        const bytes = crypto.getRandomValues(new Uint8Array(48));
        const uuid = crypto.randomUUID().replace(/-/g, '');
        for (let x = 0; x < 48; x++) { ctx.fillStyle = 'rgb(' + bytes[x] + ',0,0)'; ctx.fillRect(x, 0, 1, 1); }
        for (let x = 0; x < 16; x++) { ctx.fillStyle = 'rgb(0,' + parseInt(uuid.slice(2 * x, 2 * x + 2), 16) + ',0)'; ctx.fillRect(48 + x, 0, 1, 1); }
        </script></body>"#,
    );
    let url = server.url("/r");
    let row = |img: &RgbaImage| (0..64).map(|x| px(img, x, 0)).collect::<Vec<_>>();
    let one = row(&shoot(&url, r#"{"randomSeed": 1}"#).await);
    assert_eq!(one, row(&shoot(&url, r#"{"randomSeed": 1}"#).await));
    assert_ne!(one, row(&shoot(&url, r#"{"randomSeed": 2}"#).await));
    let real = r#"{"clock": "real"}"#;
    assert_ne!(row(&shoot(&url, real).await), row(&shoot(&url, real).await));
}

#[tokio::test]
async fn time_zone_and_locale_are_the_configs() {
    let server = PageServer::start();
    let check = "Intl.DateTimeFormat().resolvedOptions().timeZone === ZONE \
         && navigator.language === LANG && navigator.languages[0] === LANG \
         && Intl.NumberFormat().resolvedOptions().locale === LANG \
         && Intl.DateTimeFormat(LANG, { timeStyle: 'medium', timeZone: ZONE }).format() \
            === [new Date()].map(Intl.DateTimeFormat(LANG, { timeStyle: 'medium', timeZone: ZONE }).format)[0] \
         && new Date().getHours() === HOUR && (1234.5).toLocaleString() === NUMBER";
    let probe = |zone: &str, lang: &str, hour: u32, number: &str| {
        probe_page(
            &check
                .replace("ZONE", &format!("'{zone}'"))
                .replace("LANG", &format!("'{lang}'"))
                .replace("HOUR", &hour.to_string())
                .replace("NUMBER", &format!("'{number}'")),
        )
    };
    server.set_html("/default", &probe("UTC", "en-US", 12, "1,234.5"));
    assert_eq!(
        px(&shoot(&server.url("/default"), "{}").await, 10, 10),
        GREEN
    );
    let last = server.requests_for("/default").pop().unwrap();
    assert_eq!(last.header("accept-language"), Some("en-US,en;q=0.9"));

    server.set_html("/berlin", &probe("Europe/Berlin", "de-DE", 13, "1.234,5"));
    let berlin = r#"{"timezone": "Europe/Berlin", "locale": "de-DE"}"#;
    assert_eq!(
        px(&shoot(&server.url("/berlin"), berlin).await, 10, 10),
        GREEN
    );
    let last = server.requests_for("/berlin").pop().unwrap();
    assert_eq!(last.header("accept-language"), Some("de-DE,de;q=0.9"));
    // And back: the next capture has the defaults again.
    assert_eq!(
        px(&shoot(&server.url("/default"), "{}").await, 10, 10),
        GREEN
    );
}

/// A page painted by its media features: dark or light, reduced motion or
/// not, and narrow (a phone) or wide.
const MEDIA_PAGE: &str = r#"<!doctype html><html><head>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { margin: 0; }
#scheme, #motion, #width, #touch { height: 50px; background: rgb(255, 0, 0); }
@media (prefers-color-scheme: dark) { #scheme { background: rgb(0, 0, 255); } }
@media (prefers-reduced-motion: reduce) { #motion { background: rgb(0, 0, 255); } }
@media (max-width: 600px) { #width { background: rgb(0, 0, 255); } }
@media (pointer: coarse) { #touch { background: rgb(0, 0, 255); } }
</style></head><body><div id="scheme"></div><div id="motion"></div><div id="width"></div><div id="touch"></div></body></html>"#;

#[tokio::test]
async fn media_features_devices_and_modes_change_the_page() {
    const BLUE: [u8; 3] = [0, 0, 255];
    let server = PageServer::start();
    server.set_html("/m", MEDIA_PAGE);
    let url = server.url("/m");
    let plain = shoot(&url, r#"{"fullPage": false}"#).await;
    assert_eq!((plain.width(), plain.height()), (1280, 800));
    for y in [10, 60, 110, 160] {
        assert_eq!(px(&plain, 10, y), RED, "row at {y} by default");
    }
    let dark = shoot(
        &url,
        r#"{"fullPage": false, "colorScheme": "dark", "reducedMotion": "reduce"}"#,
    )
    .await;
    assert_eq!([px(&dark, 10, 10), px(&dark, 10, 60)], [BLUE, BLUE]);
    assert_eq!(px(&dark, 10, 110), RED);

    // A phone: its viewport, pixel ratio (the shot is in device pixels)
    // and touch.
    let phone = shoot(&url, r#"{"fullPage": false, "device": "iPhone 15"}"#).await;
    assert_eq!((phone.width(), phone.height()), (393 * 3, 852 * 3));
    assert_eq!(px(&phone, 30, 30), RED);
    assert_eq!([px(&phone, 30, 330), px(&phone, 30, 480)], [BLUE, BLUE]);

    // Each mode's screenshot is the plain capture with the same fields.
    let moded = config(
        r#"{"fullPage": false, "modes": [{"name": "light"}, {"name": "dark", "colorScheme": "dark"},
            {"name": "phone", "device": "iPhone 15"}]}"#,
    );
    let expected = [
        plain,
        shoot(&url, r#"{"fullPage": false, "colorScheme": "dark"}"#).await,
        phone,
    ];
    let refused = browser().await.capture(&url, &moded).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("modes")),
        "one capture of a config with modes is refused"
    );
    let variants = moded.variants().expect("modes");
    assert_eq!(variants.len(), 3);
    for ((name, variant), expected) in variants.iter().zip(&expected) {
        let shot = browser()
            .await
            .capture(&url, variant)
            .await
            .expect("capture");
        let img = image::load_from_memory(&shot.png).expect("png").to_rgba8();
        assert!(
            img == *expected,
            "mode {name:?} differs from the plain capture"
        );
    }
}
