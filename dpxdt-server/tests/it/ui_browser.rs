//! The review UI driven in real headless Chromium (thirtyfour): log in,
//! open a release with diffs, step through runs with the keyboard, approve,
//! mark the release good; then create a build and an API key in the UI,
//! upload releases with that key, watch the diff worker bring them to
//! review, approve, mark good and see the next release diffed against it.
//! Screenshots of the main pages are checked against the UI's own
//! references with `dpxdt_core::check` (the project tests itself with itself).
#![cfg(feature = "capture")]

use std::future::Future;
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dpxdt_core::api::ReportRunRequest;
use dpxdt_core::check::{CheckOutcome, Checker};
use dpxdt_core::{BuildId, ReleaseKey};
use dpxdt_server::Config;
use dpxdt_server::storage;
use dpxdt_server::storage::builds;
use dpxdt_server::storage::users::{self, UserRow};
use futures_util::FutureExt;
use serde_json::json;
use thirtyfour::prelude::*;

/// chromedriver for this test binary; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_chromedriver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = std::env::var("DPXDT_CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into());
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let status = format!("{}/status", driver.url);
    wait_until("chromedriver answers", || async {
        reqwest::get(&status)
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    driver
}

/// Polls `cond` every 50 ms until it holds (at most 20 s).
async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    let mut writer = enc.write_header().unwrap();
    let data: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .flat_map(|(x, y)| f(x, y))
        .collect();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
    out
}

async fn text(driver: &WebDriver, id: &str) -> String {
    match driver.find(By::Id(id)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn click(driver: &WebDriver, by: By) {
    driver.find(by).await.unwrap().click().await.unwrap();
}

async fn press(driver: &WebDriver, key: &str) {
    // Typed into the page's body, as a person on the page would.
    driver
        .find(By::Tag("body"))
        .await
        .unwrap()
        .send_keys(key)
        .await
        .unwrap();
}

/// Waits for every image to load and the caret to go, then checks a
/// viewport screenshot against the reference `ui/<name>`.
async fn check_screen(driver: &WebDriver, name: &str) {
    wait_until("images loaded", || async {
        driver
            .execute(
                "document.activeElement && document.activeElement.blur();
                 return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0);",
                Vec::new(),
            )
            .await
            .is_ok_and(|r| r.json() == &serde_json::Value::Bool(true))
    })
    .await;
    // Times ("just now", "a minute ago", a date) depend on when the test
    // runs: masked, as a person would not count them as a change.
    driver
        .execute(
            "document.querySelectorAll('time').forEach(t => t.textContent = 'then');",
            Vec::new(),
        )
        .await
        .unwrap();
    let shot = driver.screenshot_as_png().await.unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui_screenshots");
    match Checker::new().dir(dir).check_image(name, &shot) {
        Ok(CheckOutcome::Matched { .. }) => {}
        Ok(other) => eprintln!("{name}: {other:?}"),
        Err(e) => panic!("screenshot {name}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_a_release_with_the_keyboard_in_chromium() {
    // The server, with a user, a build and a release uploaded through the API.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    // The diff workers run (phase two needs them); no browser in the server.
    config.in_process_workers = true;
    config.worker.capture = false;
    config.worker.idle_pause = Duration::from_millis(100);
    let (store, _) = dpxdt_server::init_data_dir(&config).unwrap();
    dpxdt_server::ui::create_user(&store, "alice", "alice-password", false).unwrap();
    let alice = store
        .blocking(|c| users::find_user(c, "alice"))
        .unwrap()
        .unwrap();
    let build = store
        .blocking(|c| builds::create_owned_build(c, &alice, "shop desktop", false))
        .unwrap();
    let key = store
        .blocking(|c| storage::create_api_key(c, Some(build), "e2e"))
        .unwrap();
    let mut server = Served::start(store, config, "127.0.0.1:0").await;
    let base = server.base.clone();
    upload(&base, build, &key).await;

    let chromedriver = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(&std::env::var("DPXDT_CHROMIUM").unwrap_or("/usr/bin/chromium".into()))
        .unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1280,800",
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))
        .unwrap();
    let driver = WebDriver::new(chromedriver.url.clone(), caps)
        .await
        .unwrap();
    let result = AssertUnwindSafe(async {
        drive(&driver, &base, build).await;
        new_build_and_baseline(&driver, &base).await;
        changes_ignores_and_bulk(&driver, &mut server, &alice).await;
        superuser_screens(&driver, &server).await;
        every_width(&driver, &base, build).await;
    })
    .catch_unwind()
    .await;
    let _ = driver.quit().await;
    drop(chromedriver);
    server.stop().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    // What the browser did is stored: both diffs approved, the release good.
    // The server restarted in phase three: its store is the one on disk now.
    let store = server.store();
    let release = store
        .blocking(|c| storage::get_release(c, build, "2026-11-25-r01", 1))
        .unwrap();
    assert_eq!(release.status.as_str(), "good");
    let runs = store
        .blocking(|c| storage::list_runs(c, release.id))
        .unwrap();
    let approved = runs
        .iter()
        .filter(|r| r.status.map(|s| s.as_str()) == Some("diff_approved"))
        .count();
    assert_eq!(approved, 2);
}

/// The server under test. It can be stopped and started again on the same
/// address, from what is on disk, with the browser still logged in.
struct Served {
    base: String,
    store: Option<storage::Store>,
    addr: std::net::SocketAddr,
    config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    async fn start(store: storage::Store, config: Config, addr: &str) -> Served {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (serving, store_served) = (config.clone(), store.clone());
        let handle = tokio::spawn(async move {
            dpxdt_server::serve_store(listener, store_served, serving, async {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs");
        });
        Served {
            base: format!("http://{addr}"),
            store: Some(store),
            addr,
            config,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    fn store(&self) -> &storage::Store {
        self.store.as_ref().expect("the server has a store")
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(20), handle)
                .await
                .expect("the server stops")
                .expect("the server stops cleanly");
        }
    }

    /// Stops the server and starts a new one on the same data directory
    /// and address.
    async fn restart(&mut self) {
        self.stop().await;
        // Only this handle is left: dropping it closes the database and
        // releases the data directory's lock, as a process exit would.
        drop(self.store.take());
        let (store, _) = dpxdt_server::init_data_dir(&self.config).unwrap();
        let addr = self.addr.to_string();
        *self = Served::start(store, self.config.clone(), &addr).await;
    }
}

/// Three runs: two with a diff (`/about`, `/home`), one the same (`/contact`).
async fn upload(base: &str, build: BuildId, key: &storage::NewApiKey) {
    let client = dpxdt_client::Client::builder(base)
        .api_key(&key.id, &key.secret)
        .retries(0)
        .build()
        .unwrap();
    let rel = client
        .create_release(build, "2026-11-25-r01", "https://ci.example/7")
        .await
        .unwrap();
    let page = |band: [u8; 3]| {
        png(320, 200, move |x, y| {
            if (40..80).contains(&y) && x > 20 {
                band
            } else if y < 20 {
                [40, 60, 90]
            } else {
                [250, 250, 250]
            }
        })
    };
    let reference = client
        .upload_bytes(build, "ref.png", page([200, 200, 200]))
        .await
        .unwrap();
    let new = client
        .upload_bytes(build, "new.png", page([30, 140, 60]))
        .await
        .unwrap();
    let outcome = dpxdt_core::diff::diff_png_bytes(
        &page([200, 200, 200]),
        &page([30, 140, 60]),
        &dpxdt_core::diff::DiffOptions::default(),
    )
    .unwrap();
    let diff_png = outcome.diff_png.expect("the pages differ");
    let diff = client
        .upload_bytes(build, "diff.png", diff_png)
        .await
        .unwrap();
    for (run, changed) in [("/about", true), ("/home", true), ("/contact", false)] {
        client
            .report_run(&ReportRunRequest {
                build_id: build,
                release_name: rel.release_name.clone(),
                release_number: rel.release_number,
                run_name: run.into(),
                url: Some(format!("https://shop.example{run}")),
                image: Some(if changed {
                    new.sha1sum.clone()
                } else {
                    reference.sha1sum.clone()
                }),
                ref_image: Some(reference.sha1sum.clone()),
                diff_image: changed.then(|| diff.sha1sum.clone()),
                distortion: Some(if changed {
                    outcome.report.distortion
                } else {
                    0.0
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    client
        .runs_done(&ReleaseKey {
            build_id: build,
            release_name: rel.release_name,
            release_number: rel.release_number,
        })
        .await
        .unwrap();
}

async fn drive(driver: &WebDriver, base: &str, build: BuildId) {
    driver.goto(format!("{base}/login")).await.unwrap();
    check_screen(driver, "login").await;
    driver
        .find(By::Id("name"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    driver
        .find(By::Id("password"))
        .await
        .unwrap()
        .send_keys("alice-password")
        .await
        .unwrap();
    click(driver, By::Id("login-submit")).await;
    wait_until("home page", || async {
        driver.find(By::Id("my-builds")).await.is_ok()
    })
    .await;
    check_screen(driver, "home").await;

    click(driver, By::LinkText("shop desktop")).await;
    wait_until("build page", || async {
        driver.find(By::Id("releases")).await.is_ok()
    })
    .await;
    click(driver, By::LinkText("2026-11-25-r01")).await;
    wait_until("release page", || async {
        text(driver, "release-status").await == "reviewing"
    })
    .await;
    check_screen(driver, "release").await;

    // j selects the first run (a diff: diffs come first), Enter opens it.
    press(driver, "j").await;
    press(driver, "\u{E007}").await;
    wait_until("first run", || async {
        text(driver, "run-name").await == "/about"
    })
    .await;
    check_screen(driver, "run").await;
    // j and k step between runs.
    press(driver, "j").await;
    wait_until("second run", || async {
        text(driver, "run-name").await == "/home"
    })
    .await;
    press(driver, "k").await;
    wait_until("back to the first", || async {
        text(driver, "run-name").await == "/about"
    })
    .await;
    // t cycles the views: overlay, blink, changes on new, side by side;
    // the pressed button says which.
    for view in ["overlay", "blink", "tint", "side"] {
        press(driver, "t").await;
        let viewer = driver.find(By::Id("viewer")).await.unwrap();
        assert_eq!(
            viewer.attr("data-current").await.unwrap().as_deref(),
            Some(view)
        );
        let button = driver
            .find(By::Css(format!("button[data-view={view}]")))
            .await
            .unwrap();
        assert_eq!(
            button.attr("aria-pressed").await.unwrap().as_deref(),
            Some("true")
        );
        if view == "overlay" {
            // Onion skin: the slider sets the new image's opacity.
            click(driver, By::Css("button[data-overlay=onion]")).await;
            driver
                .execute(
                    "const s = document.getElementById('slider'); s.value = 30; \
                     s.dispatchEvent(new Event('input'));",
                    Vec::new(),
                )
                .await
                .unwrap();
            let opacity = js_num(
                driver,
                "return parseFloat(getComputedStyle(document.getElementById('clip')).opacity);",
            )
            .await;
            assert!((opacity - 0.3).abs() < 0.01, "opacity {opacity}");
            check_screen(driver, "run-onion").await;
            click(driver, By::Css("button[data-overlay=wipe]")).await;
        }
        if view == "tint" {
            check_screen(driver, "run-tint").await;
        }
    }
    // ? opens the help dialog.
    press(driver, "?").await;
    assert!(driver.find(By::Css("dialog#help[open]")).await.is_ok());
    press(driver, "?").await;
    // a approves and moves on to the next run.
    press(driver, "a").await;
    wait_until("approved, on to /home", || async {
        text(driver, "run-name").await == "/home"
    })
    .await;
    // The last diff approved: back to the release, approved runs listed.
    press(driver, "a").await;
    wait_until("release page", || async {
        driver.find(By::Id("group-diff_approved")).await.is_ok()
    })
    .await;
    assert!(driver.find(By::Id("group-diff_found")).await.is_err());
    // Open an approved run and go up again with u.
    press(driver, "j").await;
    press(driver, "\u{E007}").await;
    wait_until("an approved run", || async {
        text(driver, "run-status").await == "Approved"
    })
    .await;
    assert!(driver.find(By::Id("reject")).await.is_ok());
    press(driver, "u").await;
    wait_until("release page", || async {
        driver.find(By::Id("mark-good")).await.is_ok()
    })
    .await;
    click(driver, By::Id("mark-good")).await;
    wait_until("release good", || async {
        text(driver, "release-status").await == "good"
    })
    .await;
    let url = driver.current_url().await.unwrap();
    assert!(url.as_str().contains(&format!("build_id={build}")));
}

/// Reloads the page until `cond` holds (at most 20 s, as [`wait_until`]).
async fn reload_until<F, Fut>(driver: &WebDriver, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until(what, || {
        let holds = cond();
        async move {
            driver.refresh().await.unwrap();
            holds.await
        }
    })
    .await;
}

/// Phase two, in the browser of the logged-in owner: a build and its API key
/// made in the UI, two releases uploaded with that key and diffed by the
/// server's diff worker; the first approved and marked good in the UI is the
/// baseline of the second.
async fn new_build_and_baseline(driver: &WebDriver, base: &str) {
    // A new build from the header's link.
    click(driver, By::LinkText("New build")).await;
    let name = driver.find(By::Id("build-name")).await.unwrap();
    name.send_keys("shop mobile").await.unwrap();
    click(driver, By::Id("create-build")).await;
    wait_until("the new build's page", || async {
        driver.find(By::Id("create-key")).await.is_ok()
    })
    .await;
    let url = driver.current_url().await.unwrap();
    let build: i64 = url
        .query_pairs()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.parse().unwrap())
        .expect("the build page names its build");
    let build = BuildId(build);

    // An API key, its secret shown once.
    click(driver, By::Id("create-key")).await;
    wait_until("the new key", || async {
        driver.find(By::Id("new-key-secret")).await.is_ok()
    })
    .await;
    let key_id = text(driver, "new-key-id").await;
    let secret = text(driver, "new-key-secret").await;
    assert_eq!(key_id.len(), 32, "key id {key_id:?}");
    assert_eq!(secret.len(), 64, "secret {secret:?}");
    // Back on the build page (a GET, not the form's answer): the key is
    // listed, its secret gone.
    driver.goto(url.as_str()).await.unwrap();
    let keys = driver.find(By::Id("api-keys")).await.unwrap();
    assert!(keys.text().await.unwrap().contains(&key_id));
    assert!(
        driver.find(By::Id("new-key-secret")).await.is_err(),
        "the secret is shown only once"
    );

    // Release one, through the API with that key: /home changed against a
    // given reference (the diff worker finds it), /about without one.
    let client = dpxdt_client::Client::builder(base)
        .api_key(&key_id, &secret)
        .retries(0)
        .build()
        .unwrap();
    let page = |band: [u8; 3]| {
        png(200, 120, move |x, y| {
            if (30..60).contains(&y) && x > 10 {
                band
            } else {
                [250, 250, 250]
            }
        })
    };
    let grey = client
        .upload_bytes(build, "grey.png", page([200, 200, 200]))
        .await
        .unwrap()
        .sha1sum;
    let blue = client
        .upload_bytes(build, "blue.png", page([40, 80, 200]))
        .await
        .unwrap()
        .sha1sum;
    let report = |release: &dpxdt_core::api::CreateReleaseResponse,
                  run: &str,
                  image: &dpxdt_core::ArtifactId,
                  reference: Option<dpxdt_core::ArtifactId>| ReportRunRequest {
        build_id: build,
        release_name: release.release_name.clone(),
        release_number: release.release_number,
        run_name: run.into(),
        image: Some(image.clone()),
        ref_image: reference,
        ..Default::default()
    };
    let one = client
        .create_release(build, "m1", "https://ci.example/m1")
        .await
        .unwrap();
    client
        .report_run(&report(&one, "/home", &blue, Some(grey.clone())))
        .await
        .unwrap();
    client
        .report_run(&report(&one, "/about", &grey, None))
        .await
        .unwrap();
    client
        .runs_done(&ReleaseKey {
            build_id: build,
            release_name: one.release_name.clone(),
            release_number: one.release_number,
        })
        .await
        .unwrap();

    // The build page lists it; the release page shows it reach review once
    // the diff worker has found the change.
    driver.goto(url.as_str()).await.unwrap();
    click(driver, By::LinkText("m1")).await;
    reload_until(driver, "m1 reviewing", || async {
        text(driver, "release-status").await == "reviewing"
    })
    .await;
    assert!(driver.find(By::Id("group-diff_found")).await.is_ok());
    press(driver, "j").await;
    press(driver, "\u{E007}").await;
    wait_until("the /home run", || async {
        text(driver, "run-name").await == "/home"
    })
    .await;
    assert!(
        driver.find(By::Id("diff-image")).await.is_ok(),
        "the worker's diff image is shown"
    );
    press(driver, "a").await;
    wait_until("back on the release, approved", || async {
        driver.find(By::Id("group-diff_approved")).await.is_ok()
    })
    .await;
    click(driver, By::Id("mark-good")).await;
    wait_until("m1 good", || async {
        text(driver, "release-status").await == "good"
    })
    .await;

    // Release two: as a tool does, each run's reference is the run of the
    // same name in the last good release, which is now m1.
    let two = client
        .create_release(build, "m2", "https://ci.example/m2")
        .await
        .unwrap();
    for (run, image) in [("/home", &blue), ("/about", &blue)] {
        let baseline = client
            .find_run(build, run)
            .await
            .unwrap()
            .expect("m1 is good: its runs are the baseline");
        assert_eq!(baseline.release_name, "m1");
        client
            .report_run(&report(&two, run, image, baseline.image))
            .await
            .unwrap();
    }
    // Opened while still receiving, the page follows the release by
    // itself (no reload here) until it is ready for review.
    driver
        .goto(format!(
            "{base}/release?build_id={}&name=m2&number={}",
            build.0, two.release_number
        ))
        .await
        .unwrap();
    assert_eq!(text(driver, "release-status").await, "receiving");
    // (Their diffs may already be running: 0, 1 or 2 are finished.)
    assert!(
        text(driver, "live-text")
            .await
            .ends_with("of 2 runs finished")
    );
    client
        .runs_done(&ReleaseKey {
            build_id: build,
            release_name: two.release_name.clone(),
            release_number: two.release_number,
        })
        .await
        .unwrap();
    wait_until("m2 reviewing, without a reload", || async {
        text(driver, "release-status").await == "reviewing"
    })
    .await;
    // /home is unchanged against m1 (blue both times); /about changed
    // (grey in m1, blue now) and shows m1's grey image as its reference.
    let same = driver.find(By::Id("group-diff_not_found")).await.unwrap();
    assert!(same.text().await.unwrap().contains("/home"));
    let found = driver.find(By::Id("group-diff_found")).await.unwrap();
    assert!(found.text().await.unwrap().contains("/about"));
    press(driver, "j").await;
    press(driver, "\u{E007}").await;
    wait_until("the /about run of m2", || async {
        text(driver, "run-name").await == "/about"
    })
    .await;
    let reference = driver.find(By::Id("ref-image")).await.unwrap();
    let src = reference.attr("src").await.unwrap().unwrap_or_default();
    assert!(
        src.contains(grey.as_str()),
        "the reference is m1's /about image ({grey}), got {src}"
    );
}

/// A page-like pixel: every row differs from its neighbours and none is flat.
fn textured(x: u32, y: u32) -> [u8; 3] {
    [
        ((x * 3 + y * 7) % 200) as u8 + 20,
        ((y * 11) % 230) as u8,
        ((x / 16 * 25 + y) % 250) as u8,
    ]
}

/// Viewport coordinates of image pixel (x, y) of the image with `id`.
async fn image_point(driver: &WebDriver, id: &str, x: u32, y: u32) -> (i64, i64) {
    let at = driver
        .execute(
            "const i = document.getElementById(arguments[0]);
             i.scrollIntoView({block: 'center'});
             const r = i.getBoundingClientRect(), s = r.width / i.naturalWidth;
             return [Math.round(r.left + arguments[1] * s), Math.round(r.top + arguments[2] * s)];",
            vec![json!(id), json!(x), json!(y)],
        )
        .await
        .unwrap();
    let at: Vec<i64> = serde_json::from_value(at.json().clone()).unwrap();
    (at[0], at[1])
}

/// A number the page's script computes.
async fn js_num(driver: &WebDriver, script: &str) -> f64 {
    driver
        .execute(script, Vec::new())
        .await
        .unwrap()
        .json()
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// Whether the current change's mark is inside the visible part of each
/// of the three panes.
const MARK_VISIBLE: &str = "return Array.from(document.querySelectorAll('.pane')).every(p => {
    const m = p.querySelector('.mark');
    return m && m.offsetTop >= p.scrollTop && m.offsetTop + m.offsetHeight <= p.scrollTop + p.clientHeight;
});";

/// Phase three: a release whose runs moved, changed in two places and
/// changed in a badge. The owner walks the changes with n/p and zooms, draws
/// an ignore region over the badge, approves the moved run in bulk; after a
/// server restart the region is still there and the next release's diff
/// leaves the badge out.
async fn changes_ignores_and_bulk(driver: &WebDriver, server: &mut Served, alice: &UserRow) {
    let store = server.store();
    let owner = alice.clone();
    let build = store
        .blocking(move |c| builds::create_owned_build(c, &owner, "shop tablet", false))
        .unwrap();
    let key = store
        .blocking(move |c| storage::create_api_key(c, Some(build), "e2e"))
        .unwrap();
    let client = dpxdt_client::Client::builder(&server.base)
        .api_key(&key.id, &key.secret)
        .retries(0)
        .build()
        .unwrap();
    let article = |banner: bool| {
        png(320, if banner { 1240 } else { 1200 }, move |x, y| match y {
            300..340 if banner => [30, 140, 60],
            340.. if banner => textured(x, y - 40),
            _ => textured(x, y),
        })
    };
    let dashboard = |changed: bool| {
        png(320, 1200, move |x, y| {
            let block = (40..120).contains(&x) && (100..140).contains(&y)
                || (200..280).contains(&x) && (900..940).contains(&y);
            if changed && block {
                [220, 40, 40]
            } else {
                textured(x, y)
            }
        })
    };
    let badge = |colour: [u8; 3]| {
        png(320, 200, move |x, y| {
            if (280..300).contains(&x) && (10..20).contains(&y) {
                colour
            } else {
                textured(x, y)
            }
        })
    };
    let release = |name: &'static str, runs: Vec<(&'static str, Vec<u8>, Vec<u8>)>| {
        let client = &client;
        async move {
            let rel = client
                .create_release(build, name, "https://ci/t")
                .await
                .unwrap();
            for (run, reference, new) in runs {
                let reference = client
                    .upload_bytes(build, "ref.png", reference)
                    .await
                    .unwrap();
                let new = client.upload_bytes(build, "new.png", new).await.unwrap();
                client
                    .report_run(&ReportRunRequest {
                        build_id: build,
                        release_name: name.into(),
                        release_number: rel.release_number,
                        run_name: run.into(),
                        image: Some(new.sha1sum),
                        ref_image: Some(reference.sha1sum),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            client
                .runs_done(&ReleaseKey {
                    build_id: build,
                    release_name: name.into(),
                    release_number: rel.release_number,
                })
                .await
                .unwrap();
            format!(
                "release?build_id={}&name={name}&number={}",
                build.0, rel.release_number
            )
        }
    };
    let t1 = release(
        "t1",
        vec![
            ("/article", article(false), article(true)),
            ("/dashboard", dashboard(false), dashboard(true)),
            ("/badge", badge([0, 0, 0]), badge([0, 0, 200])),
        ],
    )
    .await;
    driver.goto(format!("{}/{t1}", server.base)).await.unwrap();
    reload_until(driver, "t1 reviewing", || async {
        text(driver, "release-status").await == "reviewing"
    })
    .await;

    // The dashboard: two changes, walked with n and p.
    click(driver, By::PartialLinkText("/dashboard")).await;
    wait_until("the dashboard run", || async {
        driver.find(By::Css("#changes .change")).await.is_ok()
    })
    .await;
    let listed = driver.find_all(By::Css("#changes .change")).await.unwrap();
    assert_eq!(listed.len(), 2, "two changed regions");
    let selected = || async {
        js_num(driver, "return Array.from(document.querySelectorAll('#changes .change')).findIndex(c => c.classList.contains('selected'));").await
    };
    let tops = || async {
        driver
            .execute(
                "return Array.from(document.querySelectorAll('.pane')).map(p => p.scrollTop);",
                Vec::new(),
            )
            .await
            .unwrap()
            .json()
            .clone()
    };
    press(driver, "n").await;
    assert_eq!(selected().await, 0.0);
    // n from "fit" zooms to 1:1 and brings the change into all three panes.
    let viewer = driver.find(By::Id("viewer")).await.unwrap();
    assert_eq!(
        viewer.attr("data-zoom").await.unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(
        js_num(
            driver,
            "const i = document.getElementById('new-image'); return i.clientWidth - i.naturalWidth;"
        )
        .await,
        0.0
    );
    assert_eq!(
        driver
            .execute(MARK_VISIBLE, Vec::new())
            .await
            .unwrap()
            .json(),
        &json!(true)
    );
    let first = tops().await;
    press(driver, "n").await;
    assert_eq!(selected().await, 1.0);
    assert_eq!(
        driver
            .execute(MARK_VISIBLE, Vec::new())
            .await
            .unwrap()
            .json(),
        &json!(true)
    );
    let second = tops().await;
    assert_ne!(
        first, second,
        "the panes scrolled down to the second change"
    );
    let t = second.as_array().unwrap();
    assert!(
        t.iter().all(|v| v == &t[0]),
        "the three panes scroll together: {second}"
    );
    press(driver, "p").await;
    assert_eq!(selected().await, 0.0);
    // z: 2x, the change still in view.
    press(driver, "z").await;
    assert_eq!(
        viewer.attr("data-zoom").await.unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(
        js_num(driver, "const i = document.getElementById('new-image'); return i.clientWidth - 2 * i.naturalWidth;").await,
        0.0
    );
    assert_eq!(
        driver
            .execute(MARK_VISIBLE, Vec::new())
            .await
            .unwrap()
            .json(),
        &json!(true)
    );
    check_screen(driver, "run-changes").await;
    // Panning one pane pans the others.
    driver
        .execute(
            "document.querySelector('.pane[data-pane=diff]').scrollTop = 1000;",
            Vec::new(),
        )
        .await
        .unwrap();
    wait_until("the panes follow", || async {
        tops().await == json!([1000, 1000, 1000])
    })
    .await;

    // The article: one inserted band, listed as such.
    driver.goto(format!("{}/{t1}", server.base)).await.unwrap();
    click(driver, By::PartialLinkText("/article")).await;
    wait_until("the article run", || async {
        text(driver, "run-name").await == "/article"
    })
    .await;
    let change = driver
        .find(By::Css("#changes .change-inserted"))
        .await
        .unwrap();
    assert_eq!(change.text().await.unwrap(), "40 rows inserted at y=300");

    // The badge: i opens the ignore form; a drag over the badge fills it in.
    driver.goto(format!("{}/{t1}", server.base)).await.unwrap();
    click(driver, By::PartialLinkText("/badge")).await;
    wait_until("the badge run", || async {
        text(driver, "run-name").await == "/badge"
    })
    .await;
    press(driver, "i").await;
    assert_eq!(
        driver
            .active_element()
            .await
            .unwrap()
            .attr("id")
            .await
            .unwrap()
            .as_deref(),
        Some("ignore-name")
    );
    let (x1, y1) = image_point(driver, "new-image", 276, 6).await;
    let (x2, y2) = image_point(driver, "new-image", 304, 24).await;
    driver
        .action_chain()
        .move_to(x1, y1)
        .click_and_hold()
        .move_to(x2, y2)
        .release()
        .perform()
        .await
        .unwrap();
    let corner = |id: &'static str| async move {
        driver
            .find(By::Id(id))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    };
    let drawn: Vec<i64> = [
        corner("ignore-x1").await,
        corner("ignore-y1").await,
        corner("ignore-x2").await,
        corner("ignore-y2").await,
    ]
    .iter()
    .map(|v| v.parse().unwrap())
    .collect();
    // Within a pixel of the drag (the image is scaled to fit its pane).
    for (got, want) in drawn.iter().zip([276, 6, 304, 24]) {
        assert!((got - want).abs() <= 1, "drew {drawn:?}");
    }
    // The same rectangle pins a comment or previews a bulk approval.
    let rect = format!("{}:{}-{}:{}", drawn[0], drawn[1], drawn[2], drawn[3]);
    assert_eq!(corner("comment-region").await, rect);
    assert_eq!(corner("bulk-here-region").await, rect);
    // The exact corners (the reference screenshot shows them), as a person
    // would correct them in the form.
    driver
        .execute(
            "[['x1', 276], ['y1', 6], ['x2', 304], ['y2', 24]].forEach(([k, v]) =>
                 document.getElementById('ignore-' + k).value = v);
             document.getElementById('ignore-name').focus();",
            Vec::new(),
        )
        .await
        .unwrap();
    driver
        .active_element()
        .await
        .unwrap()
        .send_keys("badge\u{E007}")
        .await
        .unwrap();
    wait_until("the region is stored", || async {
        text(driver, "ignores-title").await == "Ignored on this run name"
    })
    .await;
    assert!(
        driver
            .find(By::Css(".pane[data-pane=new] .box.ignored"))
            .await
            .is_ok()
    );
    check_screen(driver, "run-ignored").await;

    // Bulk approval of what only moved: preview with the count, confirm.
    driver.goto(format!("{}/{t1}", server.base)).await.unwrap();
    click(driver, By::Css("#bulk-box summary")).await;
    click(driver, By::Id("bulk-preview")).await;
    wait_until("the preview", || async {
        driver.find(By::Id("bulk-confirm")).await.is_ok()
    })
    .await;
    let runs = driver
        .find(By::Id("bulk-runs"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(runs, "/article");
    check_screen(driver, "bulk").await;
    click(driver, By::Id("bulk-confirm")).await;
    wait_until("back on the release", || async {
        driver.find(By::Id("group-diff_approved")).await.is_ok()
    })
    .await;
    let approved = driver.find(By::Id("group-diff_approved")).await.unwrap();
    assert!(approved.text().await.unwrap().contains("/article"));

    // A restart: the region is still listed, and the next release's badge
    // change (inside it) is no difference.
    server.restart().await;
    driver
        .goto(format!("{}/build?id={}", server.base, build.0))
        .await
        .unwrap();
    let ignores = driver
        .find(By::Id("ignores"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        ignores.contains("/badge") && ignores.contains("badge"),
        "{ignores}"
    );
    let t2 = release("t2", vec![("/badge", badge([0, 0, 0]), badge([0, 200, 0]))]).await;
    driver.goto(format!("{}/{t2}", server.base)).await.unwrap();
    reload_until(driver, "t2 reviewing", || async {
        text(driver, "release-status").await == "reviewing"
    })
    .await;
    let same = driver.find(By::Id("group-diff_not_found")).await.unwrap();
    assert!(same.text().await.unwrap().contains("/badge"));
}

/// Phase four: a superuser's screens with the keyboard. Log out, log in as
/// `root` by typing and Enter, open the Users page from the header, disable
/// and enable `alice` from the keyboard, and search a build's releases by
/// name.
async fn superuser_screens(driver: &WebDriver, server: &Served) {
    dpxdt_server::ui::create_user(server.store(), "root", "root-password", true).unwrap();
    click(driver, By::Css("header form button.link")).await;
    wait_until("logged out", || async {
        driver.find(By::LinkText("Log in")).await.is_ok()
    })
    .await;
    driver.goto(format!("{}/login", server.base)).await.unwrap();
    let name = driver.find(By::Id("name")).await.unwrap();
    name.send_keys("root").await.unwrap();
    let password = driver.find(By::Id("password")).await.unwrap();
    password.send_keys("root-password\u{E007}").await.unwrap();
    wait_until("logged in as root", || async {
        driver.find(By::LinkText("Users")).await.is_ok()
    })
    .await;
    click(driver, By::LinkText("Users")).await;
    wait_until("the users page", || async {
        driver.find(By::Id("users")).await.is_ok()
    })
    .await;
    check_screen(driver, "users").await;
    // The state cell of a user's row ("" while the page is reloading).
    let state = |user: &'static str| async move {
        match driver
            .find(By::Css(format!("tr[data-user={user}] td:nth-child(4)")))
            .await
        {
            Ok(cell) => cell.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    assert_eq!(state("alice").await, "active");
    // Focus the button as Tab would, then Enter.
    let disable = driver
        .find(By::Css("tr[data-user=alice] button[value=disable]"))
        .await
        .unwrap();
    disable.focus().await.unwrap();
    disable.send_keys("\u{E007}").await.unwrap();
    // Disabling asks first, naming who; nothing happens until confirmed.
    wait_until("the confirmation", || async {
        driver.get_alert_text().await.is_ok()
    })
    .await;
    let asked = driver.get_alert_text().await.unwrap();
    assert!(asked.starts_with("Disable alice?"), "{asked}");
    driver.dismiss_alert().await.unwrap();
    assert_eq!(state("alice").await, "active", "dismissed: nothing changed");
    disable.send_keys("\u{E007}").await.unwrap();
    wait_until("the confirmation again", || async {
        driver.get_alert_text().await.is_ok()
    })
    .await;
    driver.accept_alert().await.unwrap();
    wait_until("alice disabled", || async {
        state("alice").await == "disabled"
    })
    .await;
    let enable = driver
        .find(By::Css("tr[data-user=alice] button[value=enable]"))
        .await
        .unwrap();
    enable.focus().await.unwrap();
    enable.send_keys("\u{E007}").await.unwrap();
    wait_until("alice enabled", || async {
        state("alice").await == "active"
    })
    .await;

    // A build's releases, searched by name from the keyboard.
    click(driver, By::LinkText("Depicted")).await;
    click(driver, By::LinkText("shop tablet")).await;
    let search = driver
        .find(By::Css("#release-search input[name=q]"))
        .await
        .unwrap();
    search.send_keys("t2\u{E007}").await.unwrap();
    wait_until("only t2", || async {
        match driver.find(By::Id("releases")).await {
            Ok(table) => {
                let text = table.text().await.unwrap_or_default();
                text.contains("t2") && !text.contains("t1")
            }
            Err(_) => false,
        }
    })
    .await;
    // Key ids are random: masked in the picture, as a person would ignore them.
    driver
        .execute(
            "document.querySelectorAll('#api-keys code').forEach(c => c.textContent = 'key id');",
            Vec::new(),
        )
        .await
        .unwrap();
    check_screen(driver, "build-search").await;
}

/// Every page at a desktop's width (1280×800) and a phone's (390×844):
/// none is wider than the window, and the release and run pages at the
/// phone's width are kept as pictures.
async fn every_width(driver: &WebDriver, base: &str, build: BuildId) {
    let release = format!("/release?build_id={build}&name=2026-11-25-r01&number=1");
    let pages = [
        ("home", "/".to_string()),
        ("build", format!("/build?id={build}")),
        ("release", release.clone()),
        (
            "run",
            release.replacen("/release", "/run", 1) + "&run=%2Fabout",
        ),
        ("new build", "/new_build".to_string()),
        ("account", "/account".to_string()),
        ("users", "/users".to_string()),
        ("queue", "/queue".to_string()),
    ];
    for (width, height) in [(1280, 800), (390, 844)] {
        driver.set_window_rect(0, 0, width, height).await.unwrap();
        for (name, path) in &pages {
            driver.goto(format!("{base}{path}")).await.unwrap();
            wait_until("the page", || async {
                driver.find(By::Css("main")).await.is_ok()
            })
            .await;
            assert!(
                driver.find(By::Id("error-message")).await.is_err(),
                "the {name} page is an error page"
            );
            let widths = js_num(
                driver,
                "return document.documentElement.scrollWidth - window.innerWidth;",
            )
            .await;
            assert!(
                widths <= 0.0,
                "the {name} page is {widths} px wider than a {width} px window"
            );
            if width < 500 && matches!(*name, "release" | "run") {
                check_screen(driver, &format!("phone-{}", name)).await;
            }
        }
    }
    driver.set_window_rect(0, 0, 1280, 800).await.unwrap();
}
