//! End-to-end tests of `dpxdt update DIR` / `dpxdt test DIR` through the
//! real binary, real Chromium and pages served on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use dpxdt_e2e::PageServer;

/// The `dpxdt` binary next to this test binary (`target/<profile>/dpxdt`).
/// Under nextest, which builds only this package, it is (re)built first;
/// `cargo test --workspace` has built it already (and holds the build lock,
/// so a nested `cargo build` there would wait forever).
fn dpxdt() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/local_cli-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let bin = profile_dir.join("dpxdt");
        if std::env::var_os("NEXTEST").is_some() || std::env::var_os("NEXTEST_RUN_ID").is_some() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-q", "-p", "dpxdt-tools", "--bin", "dpxdt"]);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(
                status.success(),
                "cargo build -p dpxdt-tools --bin dpxdt failed"
            );
        }
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build -p dpxdt-tools --bin dpxdt` or `cargo test --workspace`",
            bin.display()
        );
        bin
    })
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    run_env(args, &[])
}

/// Runs `dpxdt` with `env` added to this process's environment.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(dpxdt())
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .expect("run dpxdt");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn page(color: &str, text: &str) -> String {
    format!(
        r#"<!doctype html><html><body style="margin:0;font:20px monospace">
        <div style="width:200px;height:100px;background:{color}"></div><p>{text}</p></body></html>"#
    )
}

#[test]
fn update_then_test_then_a_change_fails_with_the_triplet() {
    let server = PageServer::start();
    server.set_html("/a", &page("blue", "alpha"));
    server.set_html("/b", &page("green", "beta"));
    server.set_html("/b-new", &page("green", "beta"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("site.yaml"),
        format!(
            r#"
waitFor:
  url: {a}
  timeout_secs: 5
small: &small
  viewportSize: {{width: 400, height: 300}}
  injectCss: "p {{ color: black; }}"
tests:
  - name: a
    url: {a}
    config: *small
  - name: b
    ref:
      url: {b}
      config: *small
    run:
      url: {bnew}
      config:
        <<: *small
        viewportSize: {{width: 400, height: 300}}
"#,
            a = server.url("/a"),
            b = server.url("/b"),
            bnew = server.url("/b-new"),
        ),
    )
    .unwrap();
    let dir_s = d.to_str().unwrap();

    let r = run(&["update", dir_s, "--jobs", "2"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The browser's shutdown at the end of a good run is no warning.
    assert!(!r.stderr.contains("WARN"), "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "Request for {} succeeded, continuing with tests...",
            server.url("/a")
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("a: Running webpage capture process"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("a: Updated {}", d.join("a.png").display())),
        "{}",
        r.stdout
    );
    let reference = image::open(d.join("a.png")).unwrap().to_rgb8();
    assert_eq!(reference.dimensions(), (400, 300));
    assert_eq!(reference.get_pixel(10, 10).0, [0, 0, 255]);
    // `update` captured the `ref` arm.
    assert!(server.requests_for("/b").len() == 1 && server.requests_for("/b-new").is_empty());

    let r = run(&["test", dir_s]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("a passed (no diff)"), "{}", r.stdout);
    assert!(r.stdout.contains("b passed (no diff)"), "{}", r.stdout);
    assert!(r.stderr.contains("All tests passed!"), "{}", r.stderr);
    // `test` captured the `run` arm.
    assert_eq!(server.requests_for("/b-new").len(), 1);

    server.set_html("/a", &page("red", "alpha"));
    let junit = d.join("junit.xml");
    let report = d.join("report");
    let r = run(&[
        "test",
        dir_s,
        "--junit",
        junit.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("a failed\n"), "{}", r.stdout);
    assert!(r.stdout.contains("b passed (no diff)"), "{}", r.stdout);
    assert!(r.stderr.contains("1 test(s) failed."), "{}", r.stderr);
    let line = |label: &str| -> PathBuf {
        let l = r
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in {}", r.stdout));
        PathBuf::from(l.trim_start()[label.len()..].trim())
    };
    let distortion: f64 = r
        .stdout
        .lines()
        .find(|l| l.ends_with(" distortion"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a distortion line");
    assert!(distortion > 0.0 && distortion < 1.0, "{distortion}");
    let (ref_path, run_path, diff_path) = (line("Ref:"), line("Run:"), line("Diff:"));
    assert_eq!(
        image::open(&ref_path)
            .unwrap()
            .to_rgb8()
            .get_pixel(10, 10)
            .0,
        [0, 0, 255]
    );
    assert_eq!(
        image::open(&run_path)
            .unwrap()
            .to_rgb8()
            .get_pixel(10, 10)
            .0,
        [255, 0, 0]
    );
    assert!(image::open(&diff_path).is_ok());
    assert!(r.stdout.contains("(all): "), "{}", r.stdout);
    // The reference itself is untouched by `test`.
    assert_eq!(
        image::open(d.join("a.png"))
            .unwrap()
            .to_rgb8()
            .get_pixel(10, 10)
            .0,
        [0, 0, 255]
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"tests="2" failures="1" errors="0""#),
        "{xml}"
    );
    assert!(xml.contains(r#"<testcase name="a""#), "{xml}");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(
        html.contains("failed") && html.contains("images/t0-diff.png"),
        "{html}"
    );

    // A per-test `ignore` region over the changed box makes it pass again.
    let yaml = std::fs::read_to_string(d.join("site.yaml")).unwrap();
    let yaml = yaml.replacen(
        "    config: *small\n",
        "    config: *small\n    ignore: [\"0:0-199:99\"]\n",
        1,
    );
    std::fs::write(d.join("site.yaml"), yaml).unwrap();
    let r = run(&["test", dir_s, "--test-filter", "a"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("a passed (no diff)"), "{}", r.stdout);
}

#[test]
fn setup_is_killed_filters_apply_and_a_missing_reference_says_run_update() {
    let server = PageServer::start();
    server.set_html("/x", &page("blue", "x"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pidfile = d.join("setup.pid");
    std::fs::write(
        d.join("one.yaml"),
        format!(
            r#"
setup: |
  echo $$ > {pid}
  sleep 300 &
  wait
waitFor: |
  while [ ! -s {pid} ]; do sleep 0.05; done
tests:
  - name: home
    url: {x}
  - name: home-mobile
    url: {x}
    config: {{viewportSize: {{width: 320, height: 480}}}}
  - name: about
    url: {x}
"#,
            pid = pidfile.display(),
            x = server.url("/x"),
        ),
    )
    .unwrap();
    let dir_s = d.to_str().unwrap();

    let r = run(&[
        "test",
        dir_s,
        "--list_tests",
        "--test-filter",
        "home*-*mobile",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!("{}:\n  home\n", d.join("one.yaml").display())
    );

    let r = run(&["update", dir_s, "--test_filter", "home*-*mobile"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(d.join("home.png").exists());
    assert!(!d.join("home-mobile.png").exists() && !d.join("about.png").exists());
    // The setup script and its child were killed when the run ended.
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let alive = Command::new("kill")
        .args(["-0", pid.trim()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(!alive, "setup (pid {}) is still running", pid.trim());
    let group_alive = Command::new("pgrep")
        .args(["-g", pid.trim()])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    assert!(!group_alive, "setup's children are still running");

    let r = run(&["test", dir_s, "--test-filter", "about"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("does not exist; run `dpxdt update"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("1 test(s) failed."), "{}", r.stderr);
}

#[test]
fn yaml_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad.yaml"),
        "tests:\n  - name: a\n    url: http://127.0.0.1:1/\n    config:\n      viewportsize: {width: 1, height: 1}\n",
    )
    .unwrap();
    let r = run(&["test", d.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    let expected = format!(
        "{}:5: tests[0] (a).config.viewportsize",
        d.join("bad.yaml").display()
    );
    assert!(r.stderr.contains(&expected), "{}", r.stderr);
    assert!(
        r.stderr.contains("viewportSize") && r.stderr.contains("injectCss"),
        "lists the known fields: {}",
        r.stderr
    );

    let empty = tempfile::tempdir().unwrap();
    let r = run(&["update", empty.path().to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no *.yaml files"), "{}", r.stderr);
}

#[test]
fn stability_names_the_element_that_changes_and_passes_a_frozen_page() {
    let server = PageServer::start();
    server.set_html(
        "/flaky",
        r#"<!doctype html><html><body style="margin:0;font:20px monospace">
        <h1 style="margin:0;height:40px">Title</h1>
        <p class="token" style="margin:0;width:400px">token <span id="token"></span></p>
        <p style="margin:0">now <span>0</span></p>
        <script>
          // Not frozen: an event's time stamp, real time in tenths of a
          // millisecond. Always ten digits, so the span is as wide in every
          // capture and covers every change.
          document.getElementById('token').textContent =
            String(Math.round(new Event('x').timeStamp * 10)).padStart(10, '0');
          document.querySelectorAll('span')[1].textContent = Date.now() + ' ' + Math.random();
        </script></body></html>"#,
    );
    let out = run(&["stability", &server.url("/flaky"), "--repeat", "3"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    // The browser's event clock ticks in steps of 0.1 ms, so two loads
    // now and then reach the script on the same tick: one capture of the
    // two may match the first, never both (the exit code says so).
    let differed = ["1 of 2", "2 of 2"]
        .into_iter()
        .find(|n| {
            out.stdout.contains(&format!(
                "unstable: {n} captures differed from the first; 1 region(s) changed"
            ))
        })
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        out.stdout
            .contains(&format!("changed in {differed}: #token")),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("capture 3/3"),
        "progress on stderr: {}",
        out.stderr
    );

    // The same page with the token's fixed-width line masked is stable.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"maskSelectors": [".token"]}"#).unwrap();
    let out = run(&[
        "stability",
        &server.url("/flaky"),
        "--repeat",
        "3",
        "--config",
        config.to_str().unwrap(),
        "--output-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("stable: every capture is pixel-identical"),
        "{}",
        out.stdout
    );
    for n in 1..=3 {
        assert!(dir.path().join(format!("capture-{n}.png")).is_file());
    }

    // A bad config names the file and the field.
    std::fs::write(&config, r#"{"clock": "noon"}"#).unwrap();
    let out = run(&[
        "stability",
        &server.url("/flaky"),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("config.json") && out.stderr.contains("clock"),
        "{}",
        out.stderr
    );
}

/// The machine's time zone and language never reach the page: a reference
/// of the hostile page made under `TZ=UTC LANG=C.UTF-8` passes under
/// `TZ=Asia/Tokyo LANG=de_DE.UTF-8`, though the page prints its time zone,
/// locale and clock (a `timezone` field does change it). With the real
/// clock the same test fails: the freeze is what holds it.
#[test]
fn a_reference_made_in_one_time_zone_and_language_passes_in_another() {
    let server = PageServer::start();
    let url = crate::capture_browser::fidelity::serve_hostile(&server);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("hostile.yaml"),
        format!(
            "tests:\n  - name: hostile\n    url: {url}\n  - name: tokyo\n    url: {url}\n    config: {{timezone: Asia/Tokyo}}\n"
        ),
    )
    .unwrap();
    let dir_s = d.to_str().unwrap();
    let here = [("TZ", "UTC"), ("LANG", "C.UTF-8"), ("LC_ALL", "C.UTF-8")];
    let there = [
        ("TZ", "Asia/Tokyo"),
        ("LANG", "de_DE.UTF-8"),
        ("LC_ALL", "de_DE.UTF-8"),
    ];
    let r = run_env(&["update", dir_s], &here);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let read = |name: &str| std::fs::read(d.join(name)).expect("reference");
    assert_ne!(
        read("hostile.png"),
        read("tokyo.png"),
        "the page shows its time zone"
    );
    let r = run_env(&["test", dir_s], &there);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("hostile passed"), "{}", r.stdout);

    std::fs::write(
        d.join("hostile.yaml"),
        format!("tests:\n  - name: hostile\n    url: {url}\n    config: {{clock: real}}\n"),
    )
    .unwrap();
    std::fs::remove_file(d.join("tokyo.png")).unwrap();
    assert_eq!(run_env(&["update", dir_s], &here).code, 0);
    let r = run_env(&["test", dir_s], &here);
    assert_eq!(r.code, 1, "real-clock captures matched: {}", r.stdout);
}
