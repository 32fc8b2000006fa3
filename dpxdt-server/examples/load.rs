//! A load generator for the API on loopback: report_run and 1 MB upload
//! requests per second, and the time for a release of N uploaded image pairs
//! to reach `reviewing` with the in-process diff worker.
//!
//! `cargo run --release -p dpxdt-server --no-default-features --example load [PAIRS]`

use std::time::{Duration, Instant};

use dpxdt_core::ReleaseKey;
use dpxdt_core::api::ReportRunRequest;
use dpxdt_server::Config;
use dpxdt_server::storage::NewApiKey;

const CONCURRENCY: usize = 16;

fn png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut data = vec![255u8; (w * h * 4) as usize];
    // A few seed-dependent pixels make every image distinct.
    for k in 0..8u32 {
        let i = ((seed.wrapping_mul(2654435761).wrapping_add(k * 7919)) % (w * h)) as usize * 4;
        data[i..i + 3].copy_from_slice(&[0, 0, 0]);
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.write_header().unwrap().write_image_data(&data).unwrap();
    out
}

async fn run_concurrently<F, Fut>(n: usize, f: F) -> Duration
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                f(i).await;
                i += CONCURRENCY;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let pairs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.worker.capture = false;
    config.worker.idle_pause = Duration::from_millis(50);
    config.admin_key = Some(NewApiKey {
        id: "load".into(),
        secret: "load-secret-0123456789".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dpxdt_server::serve(
        listener,
        config,
        std::future::pending(),
    ));
    let admin = dpxdt_client::Client::builder(&base)
        .api_key("load", "load-secret-0123456789")
        .build()
        .unwrap();
    let build = loop {
        match admin.create_build("load").await {
            Ok(b) => break b.build_id,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let key = admin.create_api_key(build, None).await.unwrap();
    let client = dpxdt_client::Client::builder(&base)
        .api_key(&key.api_key, &key.api_secret)
        .build()
        .unwrap();
    let release = |n: i64, name: &str| ReleaseKey {
        build_id: build,
        release_name: name.into(),
        release_number: n,
    };

    // 1. report_run requests per second.
    client.create_release(build, "reports", "u").await.unwrap();
    let image = client
        .upload_bytes(build, "a.png", png(64, 64, 0))
        .await
        .unwrap()
        .sha1sum;
    let n = 2000;
    let c = client.clone();
    let took = run_concurrently(n, move |i| {
        let (c, image) = (c.clone(), image.clone());
        async move {
            let req = ReportRunRequest {
                build_id: build,
                release_name: "reports".into(),
                release_number: 1,
                run_name: format!("/run/{i}"),
                image: Some(image),
                ..Default::default()
            };
            c.report_run(&req).await.unwrap();
        }
    })
    .await;
    println!(
        "report_run: {n} requests, concurrency {CONCURRENCY}: {:.0} req/s",
        n as f64 / took.as_secs_f64()
    );

    // 2. 1 MB uploads per second (distinct bytes each time).
    let n = 300;
    let mb: Vec<u8> = png(16, 16, 1)
        .into_iter()
        .chain((0..1_000_000u32).map(|i| (i * 31 % 251) as u8))
        .collect();
    let c = client.clone();
    let took = run_concurrently(n, move |i| {
        let c = c.clone();
        let mut bytes = mb.clone();
        bytes[100..108].copy_from_slice(&(i as u64).to_le_bytes());
        async move {
            c.upload_bytes(build, "big.png", bytes).await.unwrap();
        }
    })
    .await;
    println!(
        "upload 1 MB: {n} requests, concurrency {CONCURRENCY}: {:.0} req/s ({:.0} MB/s)",
        n as f64 / took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    // 3. A release of `pairs` uploaded image pairs (800x600) to reviewing.
    client.create_release(build, "pairs", "u").await.unwrap();
    let start = Instant::now();
    let c = client.clone();
    run_concurrently(pairs, move |i| {
        let c = c.clone();
        async move {
            let new = c
                .upload_bytes(build, "new.png", png(800, 600, i as u32 * 2))
                .await
                .unwrap();
            let old = c
                .upload_bytes(build, "ref.png", png(800, 600, i as u32 * 2 + 1))
                .await
                .unwrap();
            let req = ReportRunRequest {
                build_id: build,
                release_name: "pairs".into(),
                release_number: 1,
                run_name: format!("/pair/{i}"),
                image: Some(new.sha1sum),
                ref_image: Some(old.sha1sum),
                ..Default::default()
            };
            c.report_run(&req).await.unwrap();
        }
    })
    .await;
    let reported = start.elapsed();
    client.runs_done(&release(1, "pairs")).await.unwrap();
    loop {
        let st = client.release_status(&release(1, "pairs")).await.unwrap();
        if st.status.as_str() == "reviewing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "release of {pairs} image pairs (800x600): uploaded and reported in {:.1} s, reviewing after {:.1} s",
        reported.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}
