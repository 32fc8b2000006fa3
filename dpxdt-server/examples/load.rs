//! A load generator for the API on loopback: report_run requests per second
//! (into one build's release, and spread over four builds), 1 MB uploads
//! per second, and the time for a release of N uploaded image pairs
//! to reach `reviewing` with the in-process diff workers.
//!
//! `cargo run --release -p dpxdt-server --no-default-features --example load [PAIRS] [sqlite|pg_s3] [REPLICAS]`
//!
//! `sqlite` (the default) is one server on SQLite and its data directory.
//! `pg_s3` starts a throw-away PostgreSQL cluster and a Garage node (the
//! test suite's harness; `scripts/deps.sh --test` installs both) and runs
//! REPLICAS servers (default 1) on them; requests go to the replicas in turn.
//!
//! After each phase it prints the CPU time spent per request by this process
//! (the load generator and the servers), by PostgreSQL and by Garage, read
//! from /proc: on two cores, the sum bounds the throughput.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dpxdt_core::api::CreateApiKeyResponse as ApiKeyResponse;
use dpxdt_core::api::ReportRunRequest;
use dpxdt_core::{ArtifactId, BuildId, ReleaseKey};
use dpxdt_server::Config;
use dpxdt_server::storage::{ArtifactsConfig, ArtifactsUrl, DatabaseUrl, NewApiKey, S3Settings};

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

/// CPU seconds used so far by each process: this one (part 0), every
/// `postgres` process (1) and every `garage` process (2), read from /proc
/// (Linux counts in 1/100 s).
fn cpu_seconds() -> HashMap<u32, (usize, f64)> {
    let parse = |stat: &str| -> Option<(String, f64)> {
        let (comm, rest) = stat.rsplit_once(") ")?;
        let comm = comm.split_once(" (")?.1.to_owned();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let used: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some((comm, used / 100.0))
    };
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((comm, used)) = parse(&stat) else {
            continue;
        };
        let part = match comm.as_str() {
            _ if pid == std::process::id() => 0,
            "postgres" => 1,
            "garage" => 2,
            _ => continue,
        };
        out.insert(pid, (part, used));
    }
    out
}

/// `n` distinct 800x600 PNGs, encoded on every core.
fn encode_all(n: usize) -> Vec<Vec<u8>> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let mut out = vec![Vec::new(); n];
    std::thread::scope(|scope| {
        for (part, chunk) in out.chunks_mut(n.div_ceil(cores).max(1)).enumerate() {
            let first = part * n.div_ceil(cores).max(1);
            scope.spawn(move || {
                for (k, slot) in chunk.iter_mut().enumerate() {
                    *slot = png(800, 600, (first + k) as u32);
                }
            });
        }
    });
    out
}

/// Prints the CPU milliseconds per request since `since` for each part
/// (processes that ended in between are left out, not counted negative),
/// and returns the CPU seconds of all parts.
fn print_cpu(what: &str, n: usize, since: HashMap<u32, (usize, f64)>) -> f64 {
    let mut used = [0.0; 3];
    for (pid, (part, now)) in cpu_seconds() {
        used[part] += now - since.get(&pid).map_or(0.0, |s| s.1);
    }
    let per = |i: usize| used[i] * 1000.0 / n as f64;
    println!(
        "{what} cpu ms per request: load+servers {:.2}, postgres {:.2}, garage {:.2}, total {:.2}",
        per(0),
        per(1),
        per(2),
        per(0) + per(1) + per(2)
    );
    used.iter().sum()
}

/// One client per replica, with `key`: request i goes to replica i mod REPLICAS.
fn per_replica(bases: &[String], key: &ApiKeyResponse) -> Vec<dpxdt_client::Client> {
    bases
        .iter()
        .map(|base| {
            dpxdt_client::Client::builder(base)
                .api_key(&key.api_key, &key.api_secret)
                .build()
                .unwrap()
        })
        .collect()
}

/// The report of run `/run/{i}` in release "reports" number 1 of `build`.
fn new_run(build: BuildId, i: usize, image: ArtifactId) -> ReportRunRequest {
    ReportRunRequest {
        build_id: build,
        release_name: "reports".into(),
        release_number: 1,
        run_name: format!("/run/{i}"),
        image: Some(image),
        ..Default::default()
    }
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
    let arg = |i: usize| std::env::args().nth(i);
    let pairs: usize = arg(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let backend = arg(2).unwrap_or_else(|| "sqlite".into());
    let replicas: usize = arg(3).and_then(|a| a.parse().ok()).unwrap_or(1);
    let (database, artifacts) = match backend.as_str() {
        "sqlite" if replicas == 1 => (DatabaseUrl::DataDir, ArtifactsConfig::default()),
        "sqlite" => panic!("one SQLite server only: use pg_s3 for replicas"),
        "pg_s3" => {
            let garage = dpxdt_e2e::garage::shared();
            let artifacts = ArtifactsConfig {
                url: ArtifactsUrl::S3 {
                    bucket: garage.bucket.clone(),
                    prefix: format!("load-{}", std::process::id()),
                },
                s3: S3Settings {
                    endpoint: Some(garage.endpoint.clone()),
                    region: Some(dpxdt_e2e::garage::REGION.into()),
                    access_key_id: Some(garage.key_id.clone()),
                    secret_access_key: Some(garage.secret.clone()),
                    allow_http: true,
                },
            };
            let url = dpxdt_e2e::postgres::shared().fresh_database();
            (DatabaseUrl::Postgres(url), artifacts)
        }
        other => panic!("unknown backend {other:?}: sqlite or pg_s3"),
    };
    println!("backend {backend}, {replicas} replica(s)");
    let dirs: Vec<tempfile::TempDir> = (0..replicas)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut bases = Vec::new();
    for dir in &dirs {
        let mut config = Config::new(dir.path());
        config.database = database.clone();
        config.artifacts = artifacts.clone();
        config.worker.capture = false;
        config.worker.idle_pause = Duration::from_millis(50);
        config.admin_key = Some(NewApiKey {
            id: "load".into(),
            secret: "load-secret-0123456789".into(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        bases.push(format!("http://{}", listener.local_addr().unwrap()));
        tokio::spawn(async move {
            if let Err(e) = dpxdt_server::serve(listener, config, std::future::pending()).await {
                eprintln!("load: a server failed: {e}");
                std::process::exit(2);
            }
        });
    }
    let admin = dpxdt_client::Client::builder(&bases[0])
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
    let clients = per_replica(&bases, &key);
    let client = clients[0].clone();
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
    let cs = clients.clone();
    let cpu = cpu_seconds();
    let took = run_concurrently(n, move |i| {
        let (c, image) = (cs[i % cs.len()].clone(), image.clone());
        async move {
            c.report_run(&new_run(build, i, image)).await.unwrap();
        }
    })
    .await;
    println!(
        "report_run: {n} requests, concurrency {CONCURRENCY}: {:.0} req/s",
        n as f64 / took.as_secs_f64()
    );
    print_cpu("report_run:", n, cpu);

    // 1b. The same spread over four builds (teams), each its own release.
    const BUILDS: usize = 4;
    let mut teams = Vec::new();
    for t in 0..BUILDS {
        let id = admin
            .create_build(&format!("team-{t}"))
            .await
            .unwrap()
            .build_id;
        let key = admin.create_api_key(id, None).await.unwrap();
        let clients = per_replica(&bases, &key);
        clients[0].create_release(id, "reports", "u").await.unwrap();
        let image = clients[0]
            .upload_bytes(id, "a.png", png(64, 64, t as u32 + 10))
            .await
            .unwrap()
            .sha1sum;
        teams.push((id, clients, image));
    }
    let teams = std::sync::Arc::new(teams);
    let cpu = cpu_seconds();
    let shared = teams.clone();
    let took = run_concurrently(n, move |i| {
        let (id, cs, image) = &shared[i % BUILDS];
        let (id, c, image) = (*id, cs[(i / BUILDS) % cs.len()].clone(), image.clone());
        async move {
            c.report_run(&new_run(id, i, image)).await.unwrap();
        }
    })
    .await;
    println!(
        "report_run over {BUILDS} builds: {n} requests, concurrency {CONCURRENCY}: {:.0} req/s",
        n as f64 / took.as_secs_f64()
    );
    print_cpu("report_run over builds:", n, cpu);

    // 2. 1 MB uploads per second (distinct bytes each time).
    let n = 300;
    let mb: Vec<u8> = png(16, 16, 1)
        .into_iter()
        .chain((0..1_000_000u32).map(|i| (i * 31 % 251) as u8))
        .collect();
    let cs = clients.clone();
    let cpu = cpu_seconds();
    let took = run_concurrently(n, move |i| {
        let c = cs[i % cs.len()].clone();
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
    print_cpu("upload 1 MB:", n, cpu);

    // 3. A release of `pairs` uploaded image pairs (800x600) to reviewing.
    // The images are encoded before the clock starts, as a CI job's
    // screenshots exist before it uploads them: encoding them in the timed
    // phase (as this generator did until 2026-12-07) spent more CPU in the
    // generator than the server spent on them.
    let images = std::sync::Arc::new(encode_all(2 * pairs));
    client.create_release(build, "pairs", "u").await.unwrap();
    let start = Instant::now();
    let cpu = cpu_seconds();
    let cs = clients.clone();
    run_concurrently(pairs, move |i| {
        let c = cs[i % cs.len()].clone();
        let images = images.clone();
        async move {
            let new = c
                .upload_bytes(build, "new.png", images[2 * i].clone())
                .await
                .unwrap();
            let old = c
                .upload_bytes(build, "ref.png", images[2 * i + 1].clone())
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
    let took = start.elapsed();
    println!(
        "release of {pairs} image pairs (800x600): uploaded and reported in {:.1} s, reviewing after {:.1} s",
        reported.as_secs_f64(),
        took.as_secs_f64()
    );
    let used = print_cpu("release of pairs:", pairs, cpu);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "release of pairs: {used:.1} s of CPU in {:.1} s on {cores} cores: {:.0}% busy",
        took.as_secs_f64(),
        100.0 * used / (took.as_secs_f64() * cores as f64)
    );
}
