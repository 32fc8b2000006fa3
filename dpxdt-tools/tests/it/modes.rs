//! Modes through the real `dpxdt` binary, real Chromium and pages served
//! on 127.0.0.1: a YAML test with modes gives one reference per mode named
//! `<name>@<mode>.png`, equal to a plain test with the same fields; the
//! filter, the reports and `stability` use those names.

use std::path::Path;
use std::process::Command;

use dpxdt_core::diff::{DEFAULT_MAX_PIXELS, Image, decode_png};
use dpxdt_e2e::PageServer;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn dpxdt(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_dpxdt"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run dpxdt");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn image(path: &Path) -> Image {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode_png(&bytes, "screenshot", DEFAULT_MAX_PIXELS).unwrap()
}

/// A blue box, black in dark mode, and wider than 300 px only on a wide
/// viewport.
const PAGE: &str = r#"<!doctype html><html><head><style>
  body { margin: 0; background: white; }
  div { width: 100px; height: 100px; background: blue; }
  @media (prefers-color-scheme: dark) { div { background: black; } }
  @media (min-width: 300px) { div { width: 300px; } }
</style></head><body><div></div></body></html>"#;

#[test]
fn a_test_with_modes_gives_one_reference_per_mode_and_the_names_reach_filter_and_reports() {
    let pages = PageServer::start();
    pages.set_html("/", PAGE);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let red = r#"div { background: red !important; }"#;
    std::fs::write(
        d.join("site.yaml"),
        format!(
            r#"tests:
  - name: home
    url: {url}
    config: {{viewportSize: {{width: 400, height: 200}}}}
    modes:
      - {{name: light}}
      - {{name: dark, colorScheme: dark}}
      - {{name: narrow, viewportSize: {{width: 200, height: 200}}}}
      - {{name: red, injectCss: "{red}"}}
  - name: plain-red
    url: {url}
    config: {{viewportSize: {{width: 400, height: 200}}, injectCss: "{red}"}}
"#,
            url = pages.url("/"),
        ),
    )
    .unwrap();
    let dir_s = d.to_str().unwrap();

    let r = dpxdt(&["update", dir_s, "--jobs", "2"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for name in ["home@light", "home@dark", "home@narrow", "home@red"] {
        assert!(
            r.stdout.contains(&format!("{name}: Updated")),
            "{}",
            r.stdout
        );
    }
    assert!(!d.join("home.png").exists());
    let shot = |name: &str| image(&d.join(format!("{name}.png")));
    let (light, dark, narrow, red_mode) = (
        shot("home@light"),
        shot("home@dark"),
        shot("home@narrow"),
        shot("home@red"),
    );
    assert_eq!((light.width(), light.height()), (400, 200));
    assert_eq!(light.pixel(250, 50), [0, 0, 255, 255], "wide: a 300 px box");
    assert_eq!(narrow.width(), 200);
    assert_eq!(
        narrow.pixel(150, 50),
        [255, 255, 255, 255],
        "narrow: 100 px"
    );
    assert_eq!(red_mode.pixel(10, 10), [255, 0, 0, 255]);
    // A mode's screenshot is the plain test's with the same fields.
    assert_eq!(red_mode, shot("plain-red"));
    assert_eq!(
        dark.pixel(10, 10),
        [0, 0, 0, 255],
        "colorScheme: dark reaches the page (capture code)"
    );

    // One mode by its name; the others are left alone.
    let r = dpxdt(&["test", dir_s, "--test-filter", "home@red"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("home@red passed"), "{}", r.stdout);
    assert!(!r.stdout.contains("home@light"), "{}", r.stdout);

    // The page changes: the test's name picks all its modes, and the
    // reports name each.
    pages.set_html("/", &PAGE.replace("height: 100px", "height: 120px"));
    let junit = d.join("junit.xml");
    let report = d.join("report");
    let r = dpxdt(&[
        "test",
        dir_s,
        "--test-filter",
        "home",
        "--junit",
        junit.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"4\" failures=\"4\""), "{xml}");
    for name in ["home@light", "home@dark", "home@narrow", "home@red"] {
        assert!(xml.contains(&format!("<testcase name=\"{name}\"")), "{xml}");
    }
    assert!(!xml.contains("plain-red"), "{xml}");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("<strong>home@narrow</strong>"), "{html}");
}

#[test]
fn a_bad_mode_names_the_file_line_test_mode_and_field_and_captures_nothing() {
    let pages = PageServer::start();
    pages.set_html("/", PAGE);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("site.yaml"),
        format!(
            "tests:\n  - name: home\n    url: {}\n    modes:\n      - name: light\n      - name: phone\n        device: Nokia 3310\n",
            pages.url("/")
        ),
    )
    .unwrap();
    let r = dpxdt(&["update", d.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let expected = format!(
        "{}:6: tests[0] (home).modes[1] (phone): ",
        d.join("site.yaml").display()
    );
    assert!(r.stderr.contains(&expected), "{}", r.stderr);
    assert!(
        r.stderr.contains("device") && r.stderr.contains("Pixel 7"),
        "{}",
        r.stderr
    );
    assert!(pages.requests().is_empty(), "nothing was captured");
    assert!(!d.join("home@light.png").exists());
}

#[test]
fn stability_checks_each_mode_and_reports_it_by_name() {
    let pages = PageServer::start();
    // Stable on the frozen clock; not on the real one.
    pages.set_html(
        "/",
        r#"<!doctype html><html><body style="margin:0;font:20px monospace">
        <p id="now" style="margin:0"></p>
        <script>document.getElementById('now').textContent = Date.now();</script>
        </body></html>"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"viewportSize": {"width": 300, "height": 200},
            "modes": [{"name": "frozen"},
                      {"name": "real", "clock": "real", "viewportSize": {"width": 500, "height": 200}}]}"#,
    )
    .unwrap();
    let url = pages.url("/");
    let r = dpxdt(&[
        "stability",
        &url,
        "--repeat",
        "2",
        "--config",
        config.to_str().unwrap(),
        "--output-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let frozen = format!("{url}@frozen: 2 captures, 300x200\nstable:");
    assert!(r.stdout.contains(&frozen), "{}", r.stdout);
    let real = format!("{url}@real: 2 captures, 500x200\nunstable: 1 of 1");
    assert!(r.stdout.contains(&real), "{}", r.stdout);
    assert!(
        r.stderr.contains("stability @real: capture 2/2"),
        "{}",
        r.stderr
    );
    for name in ["capture-1@frozen", "capture-2@frozen", "capture-2@real"] {
        assert!(dir.path().join(format!("{name}.png")).is_file(), "{name}");
    }
    assert_eq!(image(&dir.path().join("capture-1@real.png")).width(), 500);

    // A bad mode is refused before anything is captured.
    std::fs::write(
        &config,
        r#"{"modes": [{"name": "x", "colorScheme": "blue"}]}"#,
    )
    .unwrap();
    let requests = pages.requests().len();
    let r = dpxdt(&["stability", &url, "--config", config.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("mode \"x\"") && r.stderr.contains("colorScheme"),
        "{}",
        r.stderr
    );
    assert_eq!(pages.requests().len(), requests);
}

/// A page painted by the engine that renders it: orange in Gecko, blue
/// elsewhere.
const ENGINE_PAGE: &str = r#"<!doctype html><body style="margin:0"><script>
document.body.style.background = CSS.supports('-moz-appearance', 'none') ? 'orange' : 'blue';
</script></body>"#;

#[test]
fn a_mode_may_name_its_engine_and_the_report_names_it() {
    let pages = PageServer::start();
    pages.set_html("/", ENGINE_PAGE);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("site.yaml"),
        format!(
            "tests:\n  - name: home\n    url: {}\n    config: {{viewportSize: {{width: 200, height: 100}}}}\n    modes:\n      - name: chromium\n      - name: firefox\n        browser: firefox\n",
            pages.url("/")
        ),
    )
    .unwrap();
    let r = dpxdt(&["update", d.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        image(&d.join("home@chromium.png")).pixel(50, 50),
        [0, 0, 255, 255]
    );
    assert_eq!(
        image(&d.join("home@firefox.png")).pixel(50, 50),
        [255, 165, 0, 255]
    );
    let report = d.join("report");
    let r = dpxdt(&[
        "test",
        d.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    for engine in ["chromium", "firefox"] {
        assert!(
            html.contains(&format!("<span class=\"engine\">{engine}</span>")),
            "the report names {engine}"
        );
    }
}

#[test]
fn stability_captures_in_the_engine_it_is_given() {
    let pages = PageServer::start();
    pages.set_html("/", ENGINE_PAGE);
    let dir = tempfile::tempdir().unwrap();
    let url = pages.url("/");
    let r = dpxdt(&[
        "stability",
        &url,
        "--repeat",
        "2",
        "--browser",
        "firefox",
        "--output-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        image(&dir.path().join("capture-1.png")).pixel(50, 50),
        [255, 165, 0, 255],
        "captured in Firefox"
    );
    let r = dpxdt(&["stability", &url, "--browser", "safari"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("chromium, firefox, webkit"),
        "{}",
        r.stderr
    );
}
