//! How long the review UI takes to render its two busiest pages: the
//! release page of a release with RUNS runs (default 2,000) and one run's
//! page, timed from a logged-in client on loopback (the server renders
//! them on request; nothing is cached).
//!
//! `cargo run --release -p dpxdt-server --example ui_pages [RUNS] [REQUESTS] [--serve]`
//! (`--serve`: keep serving the release instead, to look at it; log in as
//! `bench`, password `bench-password`)
//!
//! The release is made as a team's would look: most runs the same, some
//! changed (with a diff image and the diff worker's report), some failed,
//! rejected with a reason or approved, and a few with comments. Prints the
//! minimum, median and maximum of REQUESTS (default 200) sequential GETs of
//! each page, after a warm-up.

use std::time::{Duration, Instant};

use dpxdt_core::api::{ReportRunRequest, RunVerdict};
use dpxdt_core::{BuildId, ReleaseKey};
use dpxdt_server::Config;
use dpxdt_server::storage::NewApiKey;

fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let data: Vec<u8> = (0..w * h).flat_map(|_| rgb).collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.write_header().unwrap().write_image_data(&data).unwrap();
    out
}

/// A cookie jar of one session: what `Set-Cookie` said, sent back.
struct Session {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Session {
    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> (u16, String) {
        let resp = req.header("cookie", self.header()).send().await.unwrap();
        for sc in resp.headers().get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let kv = sc.split(';').next().unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            self.cookies.push((k.to_string(), v.to_string()));
        }
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }
}

/// The value of the first `name="{name}" value="…"` in `html`.
fn input(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle).expect("the input") + needle.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

/// Times `n` GETs of `path`; prints and returns the median in ms.
async fn time(s: &mut Session, what: &str, path: &str, n: usize) -> f64 {
    for _ in 0..20 {
        assert_eq!(s.get(path).await.0, 200, "{path}");
    }
    let mut ms = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let started = Instant::now();
        let (status, body) = s.get(path).await;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200);
        bytes = body.len();
    }
    ms.sort_by(f64::total_cmp);
    let median = ms[n / 2];
    println!(
        "{what}: {n} GETs, {} KiB each: min {:.1} ms, median {median:.1} ms, max {:.1} ms",
        bytes / 1024,
        ms[0],
        ms[n - 1]
    );
    median
}

#[tokio::main]
async fn main() {
    let arg = |i: usize| std::env::args().nth(i);
    let runs: usize = arg(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let requests: usize = arg(2).and_then(|a| a.parse().ok()).unwrap_or(200).max(1);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.worker.capture = false;
    config.in_process_workers = false;
    config.admin_key = Some(NewApiKey {
        id: "bench".into(),
        secret: "bench-secret-0123456789".into(),
    });
    let (store, _) = dpxdt_server::init_data_dir(&config).unwrap();
    dpxdt_server::ui::create_user(&store, "bench", "bench-password", true).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = dpxdt_server::serve_store(listener, store, config, std::future::pending()).await;
    });
    let admin = dpxdt_client::Client::builder(&base)
        .api_key("bench", "bench-secret-0123456789")
        .build()
        .unwrap();
    let build: BuildId = loop {
        match admin.create_build("pages").await {
            Ok(b) => break b.build_id,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };

    // The images and the diff worker's report, uploaded once.
    let upload = |name: &'static str, bytes: Vec<u8>| {
        let admin = admin.clone();
        async move {
            admin
                .upload_bytes(build, name, bytes)
                .await
                .unwrap()
                .sha1sum
        }
    };
    let (white, red) = (png(64, 64, [255; 3]), png(64, 64, [250, 0, 0]));
    let report = dpxdt_core::diff::diff_png_bytes(&white, &red, &Default::default())
        .unwrap()
        .report;
    let reference = upload("ref.png", white).await;
    let new = upload("new.png", red).await;
    let diff = upload("diff.png", png(64, 64, [255, 0, 0])).await;
    let log = upload("diff.json", serde_json::to_vec(&report).unwrap()).await;

    let rel = admin
        .create_release(build, "big", "https://ci.example/big")
        .await
        .unwrap();
    let key = ReleaseKey {
        build_id: build,
        release_name: rel.release_name.clone(),
        release_number: rel.release_number,
    };
    let started = Instant::now();
    for i in 0..runs {
        let changed = i % 10 == 0;
        let failed = i % 40 == 1;
        admin
            .report_run(&ReportRunRequest {
                build_id: build,
                release_name: key.release_name.clone(),
                release_number: key.release_number,
                run_name: format!("/docs/page-{i:05}.html"),
                url: Some(format!("https://site.example/docs/page-{i:05}.html")),
                image: Some(if changed {
                    new.clone()
                } else {
                    reference.clone()
                }),
                ref_image: Some(reference.clone()),
                distortion: Some(if changed { 0.0123 } else { 0.0 }),
                diff_image: changed.then(|| diff.clone()),
                diff_log: changed.then(|| log.clone()),
                run_failed: failed.then(|| "timed out after 30 s".to_string()),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    admin.runs_done(&key).await.unwrap();
    // Some verdicts and comments, as a team leaves them.
    for i in (0..runs).step_by(10).take(runs / 40) {
        let run = format!("/docs/page-{i:05}.html");
        let verdict = if i % 20 == 0 {
            RunVerdict::Approve
        } else {
            RunVerdict::Reject
        };
        let reason = (verdict == RunVerdict::Reject).then(|| "the price moved".to_string());
        admin
            .review_run(&key, &run, verdict, reason.as_deref())
            .await
            .unwrap();
        admin
            .comment(&key, &run, "Looks intended; checking with design.", None)
            .await
            .unwrap();
    }
    println!(
        "made a release of {runs} runs in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut s = Session {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: base.clone(),
        cookies: Vec::new(),
    };
    let (_, form) = s.get("/login").await;
    let csrf = input(&form, "csrf");
    let login = s.http.post(format!("{base}/login")).form(&[
        ("csrf", csrf.as_str()),
        ("name", "bench"),
        ("password", "bench-password"),
        ("next", "/"),
    ]);
    assert_eq!(s.send(login).await.0, 303, "logged in");
    let release = format!(
        "/release?build_id={build}&name=big&number={}",
        key.release_number
    );
    let run = format!(
        "/run?build_id={build}&name=big&number={}&run=%2Fdocs%2Fpage-00010.html",
        key.release_number
    );
    if std::env::args().any(|a| a == "--serve") {
        // To look at the pages in a browser: log in as bench / bench-password.
        println!("serving {base}{release} (Ctrl-C stops)");
        std::future::pending::<()>().await;
    }
    let r = time(
        &mut s,
        &format!("release page ({runs} runs)"),
        &release,
        requests,
    )
    .await;
    let p = time(&mut s, "run page (changed, commented)", &run, requests).await;
    println!("targets: release page <= 100 ms ({r:.1}), run page <= 50 ms ({p:.1})");
}
