//! The real `dpxdt-server` binary: first start, `create-build`, the release
//! flow with in-process workers, remote workers killed mid-diff and
//! mid-capture (real Chromium), and the server killed during uploads.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::png;
use dpxdt_core::api::ReportRunRequest;
use dpxdt_core::{ArtifactId, BuildId, ReleaseKey};

const BIN: &str = env!("CARGO_BIN_EXE_dpxdt-server");

/// A running server process and the lines it printed before listening.
struct Proc {
    child: Child,
    base: String,
    banner: Vec<String>,
}

impl Proc {
    fn start(data: &Path, extra: &[&str]) -> Proc {
        Proc::start_with(data, extra, &[])
    }

    /// [`start`](Proc::start) with extra environment variables.
    fn start_with(data: &Path, extra: &[&str], env: &[(&str, String)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)));
        Proc::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .env("DPXDT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dpxdt-server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let base = loop {
            let line = lines.next().expect("server printed its address").unwrap();
            if let Some(rest) = line.strip_prefix("dpxdt-server listening on ") {
                break rest.trim_end_matches('/').to_string();
            }
            banner.push(line);
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Proc {
            child,
            base,
            banner,
        }
    }

    fn client(&self, id: &str, secret: &str) -> dpxdt_client::Client {
        dpxdt_client::Client::builder(&self.base)
            .api_key(id, secret)
            .retries(0)
            .build()
            .unwrap()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "server did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A worker key from `dpxdt-server create-worker-key`, as `ID:SECRET`.
fn create_worker_key(data: &Path) -> String {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["create-worker-key", "--purpose", "test worker"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        line.split_once(':')
            .is_some_and(|(id, secret)| id.len() == 32 && secret.len() == 64),
        "{line}"
    );
    line
}

fn create_build(data: &Path, name: &str) -> (BuildId, String, String) {
    create_build_with(data, name, &[])
}

/// [`create_build`] with more environment (another database, say).
fn create_build_with(data: &Path, name: &str, env: &[(&str, String)]) -> (BuildId, String, String) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .envs(env.iter().map(|(k, v)| (k, v)))
        // The tests mark releases good with the build's key.
        .args(["create-build", name, "--key-verdicts"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} in {text}"))
            .to_string()
    };
    (
        BuildId(field("build_id").parse().unwrap()),
        field("api_key"),
        field("api_secret"),
    )
}

/// `dpxdt-server create-user NAME --superuser` with `password`, on the
/// database `env` names (default: the data directory's).
fn create_superuser(data: &Path, name: &str, password: &str, env: &[(&str, String)]) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["create-user", name, "--superuser"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("DPXDT_PASSWORD", password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A logged-in person marks the release `key` good in the review UI.
async fn mark_good(person: &mut common::ui::Browser, key: &ReleaseKey) {
    let form = [
        ("build_id", key.build_id.0.to_string()),
        ("name", key.release_name.clone()),
        ("number", key.release_number.to_string()),
        ("status", "good".to_string()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut page = person.act("/release/status", &form).await;
    if page.status == reqwest::StatusCode::OK && page.body.contains("id=\"confirm-good\"") {
        // Runs still wait: confirm with the counts the page showed.
        let counts: Vec<(&str, String)> = ["unreviewed", "rejected", "failed"]
            .into_iter()
            .map(|name| (name, page.input(name)))
            .collect();
        let mut form = form.clone();
        form.push(("override", "1"));
        form.extend(counts.iter().map(|(k, v)| (*k, v.as_str())));
        page = person.act("/release/status", &form).await;
    }
    assert_eq!(page.status, reqwest::StatusCode::SEE_OTHER, "{}", page.body);
}

async fn wait_for_status(client: &dpxdt_client::Client, key: &ReleaseKey, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = client.release_status(key).await.unwrap();
        if st.status.as_str() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "release stuck in {}: {st:?}",
            st.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn report(key: &ReleaseKey, run: &str) -> ReportRunRequest {
    ReportRunRequest {
        build_id: key.build_id,
        release_name: key.release_name.clone(),
        release_number: key.release_number,
        run_name: run.into(),
        ..Default::default()
    }
}

/// Reports `/` with `image` against `reference` in a new release; returns its key.
async fn release_needing_diff(
    client: &dpxdt_client::Client,
    build: BuildId,
    image: Vec<u8>,
    reference: Vec<u8>,
) -> ReleaseKey {
    named_release_needing_diff(client, build, "main", image, reference).await
}

/// [`release_needing_diff`] with a release name of one's own.
async fn named_release_needing_diff(
    client: &dpxdt_client::Client,
    build: BuildId,
    name: &str,
    image: Vec<u8>,
    reference: Vec<u8>,
) -> ReleaseKey {
    let r = client.create_release(build, name, "u").await.unwrap();
    let key = ReleaseKey {
        build_id: build,
        release_name: name.into(),
        release_number: r.release_number,
    };
    let image = client
        .upload_bytes(build, "new.png", image)
        .await
        .unwrap()
        .sha1sum;
    let reference = client
        .upload_bytes(build, "ref.png", reference)
        .await
        .unwrap()
        .sha1sum;
    let mut req = report(&key, "/");
    req.image = Some(image);
    req.ref_image = Some(reference);
    client.report_run(&req).await.unwrap();
    client.runs_done(&key).await.unwrap();
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_a_superuser_key_and_in_process_workers_diff() {
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::start(dir.path(), &["--no-capture"]);
    let banner = server.banner.join("\n");
    let find = |label: &str| {
        server
            .banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{label} in {banner}"))
    };
    let (id, secret) = (find("API key id:"), find("API key secret:"));
    let admin = server.client(&id, &secret);
    let build = admin.create_build("site").await.unwrap();
    let key = admin
        .create_api_key(build.build_id, Some("ci"))
        .await
        .unwrap();
    let client = server.client(&key.api_key, &key.api_secret);
    let a = png(64, 64, [255, 255, 255, 255], None);
    let b = png(64, 64, [255, 255, 255, 255], Some([0, 0, 0, 255]));
    let release = release_needing_diff(&client, build.build_id, b.clone(), a).await;
    wait_for_status(&client, &release, "reviewing").await;
    let st = client.release_status(&release).await.unwrap();
    assert_eq!(st.runs.len(), 1);
    assert_eq!(st.runs[0].status.as_str(), "diff_found");
    // A person's verdict (here with the superuser key; the build's own key
    // may not by default) makes it the baseline find_run answers with; its
    // image downloads.
    let err = client
        .update_release(&release, dpxdt_core::ReleaseStatus::Good)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert_eq!(
        admin
            .update_release(&release, dpxdt_core::ReleaseStatus::Good)
            .await
            .unwrap(),
        dpxdt_core::ReleaseStatus::Good
    );
    let found = client
        .find_run(build.build_id, "/")
        .await
        .unwrap()
        .expect("the good release's run");
    assert_eq!(found.release_number, release.release_number);
    let image = client
        .download(build.build_id, &found.image.unwrap())
        .await
        .unwrap();
    assert_eq!(image, b);
    // A spare key revoked over the API (by a superuser: a build key may
    // revoke only itself) is refused from then on.
    let spare = admin
        .create_api_key(build.build_id, Some("spare"))
        .await
        .unwrap();
    let err = client
        .revoke_api_key(build.build_id, &spare.api_key)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    admin
        .revoke_api_key(build.build_id, &spare.api_key)
        .await
        .unwrap();
    let err = server
        .client(&spare.api_key, &spare.api_secret)
        .release_status(&release)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(server.terminate().success());

    // A second start on the same directory creates no new key and keeps the data.
    let again = Proc::start(dir.path(), &["--no-workers"]);
    assert!(again.banner.is_empty(), "{:?}", again.banner);
    let client = again.client(&key.api_key, &key.api_secret);
    assert_eq!(
        client
            .release_status(&release)
            .await
            .unwrap()
            .status
            .as_str(),
        "good"
    );
    // The revocation survived the restart.
    let err = again
        .client(&spare.api_key, &spare.api_secret)
        .release_status(&release)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
}

fn task_row(data: &Path) -> (String, Option<String>, i64) {
    let (status, owner, attempts, _, _) = task_in(data, "run-pdiff");
    (status, owner, attempts)
}

/// Status, owner, lease attempts, heartbeat index and lease end (`eta`, ms
/// since the epoch) of the one task of `queue`.
fn task_in(data: &Path, queue: &str) -> (String, Option<String>, i64, i64, i64) {
    let conn = rusqlite::Connection::open(data.join("dpxdt.sqlite3")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(
        "SELECT status, owner, lease_attempts, heartbeat_index, eta FROM task WHERE queue = ?1",
        [queue],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
    .unwrap()
}

/// Checks that a worker killed mid-task died while the task was still its
/// (live, leased once) and the release still `processing`; returns the dead
/// worker's lease end.
async fn killed_in_time(
    data: &Path,
    queue: &str,
    client: &dpxdt_client::Client,
    release: &ReleaseKey,
) -> i64 {
    let (status, _, attempts, _, lease_end) = task_in(data, queue);
    assert_eq!(
        (status.as_str(), attempts),
        ("live", 1),
        "the kill came too late to test anything"
    );
    let now = client.release_status(release).await.unwrap().status;
    assert_eq!(now.as_str(), "processing");
    lease_end
}

/// Now in milliseconds since the epoch (the server's clock: same machine).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_diff_is_replaced_after_its_lease_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (build, key_id, key_secret) = create_build(dir.path(), "site");
    // Remote workers need only a worker key.
    let worker_key = create_worker_key(dir.path());
    let server = Proc::start(dir.path(), &["--no-workers"]);
    let client = server.client(&key_id, &key_secret);
    let a = png(64, 64, [200, 200, 200, 255], None);
    let b = png(64, 64, [200, 200, 200, 255], Some([0, 0, 0, 255]));
    let image = dpxdt_core::ArtifactId::of_bytes(&b);
    let release = release_needing_diff(&client, build, b, a).await;
    // The new image's file becomes a FIFO nobody writes to: the server's
    // read of it blocks, so a worker that leased the diff is stuck in its
    // download, mid-task, however fast the machine. No timing involved.
    let stored = dpxdt_server::storage::ArtifactDir::existing(dir.path())
        .unwrap()
        .path(&image);
    let aside = stored.with_extension("aside");
    std::fs::rename(&stored, &aside).unwrap();
    let mkfifo = Command::new("mkfifo").arg(&stored).status().unwrap();
    assert!(mkfifo.success());
    let worker = |lease: &str| {
        KillOnDrop(
            Command::new(BIN)
                .args([
                    "--no-capture",
                    "--lease-secs",
                    lease,
                    "worker",
                    "--server",
                    &server.base,
                ])
                .args(["--api-key", &worker_key])
                .env("DPXDT_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut first = worker("2");
    // Wait until the first worker holds the lease, then kill it mid-task.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, owner, _) = task_row(dir.path());
        if owner.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never leased the task"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let lease_end = killed_in_time(dir.path(), "run-pdiff", &client, &release).await;
    // A server thread blocked opening the FIFO for the dead worker (if its
    // request got that far) is let go: a writer that opens and closes at
    // once gives it an empty read. Then the image comes back.
    {
        use std::os::unix::fs::OpenOptionsExt;
        const O_NONBLOCK: i32 = 0o4000;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(&stored);
    }
    std::fs::rename(&aside, &stored).unwrap();
    let _second = worker("30");
    // Started at once, it gets the task only when the dead one's lease ended.
    let deadline = Instant::now() + Duration::from_secs(30);
    while task_row(dir.path()).2 < 2 {
        assert!(Instant::now() < deadline, "the task was never leased again");
        std::thread::sleep(Duration::from_millis(2));
    }
    let leased_again_by = unix_ms();
    assert!(
        leased_again_by >= lease_end,
        "leased again {} ms before the lease ended",
        lease_end - leased_again_by
    );
    wait_for_status(&client, &release, "reviewing").await;
    // The worker finishes its task right after reporting the result.
    let deadline = Instant::now() + Duration::from_secs(30);
    while task_row(dir.path()).0 != "done" {
        assert!(
            Instant::now() < deadline,
            "task not finished: {:?}",
            task_row(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(task_row(dir.path()).2, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_as_many_diffs_at_once_as_diff_workers_says() {
    let dir = tempfile::tempdir().unwrap();
    let (build, key_id, key_secret) = create_build(dir.path(), "site");
    let admin_arg = "admin-test:admin-test-secret-0123456789";
    let server = Proc::start(dir.path(), &["--no-workers", "--admin-key", admin_arg]);
    let client = server.client(&key_id, &key_secret);
    let a = png(2000, 2000, [200, 200, 200, 255], None);
    let b = png(2000, 2000, [200, 200, 200, 255], Some([0, 0, 0, 255]));
    let mut releases = Vec::new();
    for name in ["one", "two", "three"] {
        releases.push(named_release_needing_diff(&client, build, name, b.clone(), a.clone()).await);
    }
    // More than this 2-core box's default of one per CPU.
    let worker = KillOnDrop(
        Command::new(BIN)
            .args(["--no-capture", "--diff-workers", "3", "worker"])
            .args(["--server", &server.base, "--api-key", admin_arg])
            .env("DPXDT_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tag = format!("-{}-", worker.0.id());
    let conn = rusqlite::Connection::open(dir.path().join("dpxdt.sqlite3")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let owners = || -> Vec<String> {
        conn.prepare("SELECT owner FROM task WHERE queue = 'run-pdiff' AND status = 'live' AND owner IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // One worker leases for all its slots, under one owner name.
        let now = owners();
        if now.len() == 3 {
            assert!(
                now.iter()
                    .all(|o| o.starts_with("diff-") && o.contains(&tag)),
                "{now:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never 3 diffs at once: {now:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    for release in &releases {
        wait_for_status(&client, release, "reviewing").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_rides_out_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (build, key_id, key_secret) = create_build(dir.path(), "site");
    let admin_arg = "admin-test:admin-test-secret-0123456789";
    // A fixed port, so the restarted server is where the worker looks.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = || {
        let mut cmd = Command::new(BIN);
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path())
            .args(["--no-workers", "--admin-key", admin_arg]);
        Proc::spawn(cmd)
    };
    let mut server = start();
    let mut worker = KillOnDrop(
        Command::new(BIN)
            .args(["--no-capture", "--diff-workers", "1", "worker"])
            .args(["--server", &server.base, "--api-key", admin_arg])
            .env("DPXDT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stderr = worker.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    server.kill();
    // The worker notices (its client gave up retrying) and keeps polling.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the worker noticed the outage");
        if line.contains("worker step failed") {
            break;
        }
    }
    assert!(worker.0.try_wait().unwrap().is_none(), "the worker gave up");
    let server = start();
    let client = server.client(&key_id, &key_secret);
    let a = png(64, 64, [255, 255, 255, 255], None);
    let b = png(64, 64, [255, 255, 255, 255], Some([0, 0, 0, 255]));
    let release = release_needing_diff(&client, build, b, a).await;
    wait_for_status(&client, &release, "reviewing").await;
    // The worker finishes its task right after reporting the result.
    let deadline = Instant::now() + Duration::from_secs(30);
    while task_row(dir.path()).0 != "done" {
        assert!(Instant::now() < deadline, "{:?}", task_row(dir.path()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, owner, _) = task_row(dir.path());
    assert!(
        owner.is_some_and(|o| o.contains(&format!("-{}-", worker.0.id()))),
        "diffed by the worker that saw the outage"
    );
}

each_backend! {
    async fn a_server_killed_during_uploads_keeps_every_acknowledged_artifact_and_run(backend) {
        let dir = tempfile::tempdir().unwrap();
        let (storage, env) = backend.for_binary();
        let (build, key_id, key_secret) = create_build_with(dir.path(), "site", &env);
        let mut server = Proc::start_with(dir.path(), &["--no-workers"], &env);
        let client = server.client(&key_id, &key_secret);
        let r = client.create_release(build, "r", "u").await.unwrap();
        let key = ReleaseKey {
            build_id: build,
            release_name: "r".into(),
            release_number: r.release_number,
        };
        let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut uploaders = Vec::new();
        for worker in 0..6u32 {
            let client = client.clone();
            let key = key.clone();
            let acked = acked_tx.clone();
            uploaders.push(tokio::spawn(async move {
                for i in 0u32.. {
                    // ~300 KB of distinct bytes per upload.
                    let mut bytes = vec![0u8; 300_000];
                    for (j, b) in bytes.iter_mut().enumerate() {
                        *b = (j as u32 ^ worker.wrapping_mul(7919) ^ i.wrapping_mul(104729)) as u8;
                    }
                    bytes[..8].copy_from_slice(&[worker as u8, (i >> 8) as u8, i as u8, 1, 2, 3, 4, 5]);
                    let Ok(up) = client.upload_bytes(key.build_id, "blob.bin", bytes).await else {
                        return;
                    };
                    let mut req = report(&key, &format!("/w{worker}/{i}"));
                    req.log = Some(up.sha1sum.clone());
                    if client.report_run(&req).await.is_err() {
                        return;
                    }
                    if acked.send((req.run_name, up.sha1sum)).is_err() {
                        return;
                    }
                }
            }));
        }
        drop(acked_tx);
        let mut acked = Vec::new();
        while acked.len() < 30 {
            acked.push(acked_rx.recv().await.expect("uploads are acknowledged"));
        }
        server.kill();
        // Every uploader stops at its first failure against the dead server
        // (no retries), so none is still sending when the server restarts.
        for uploader in uploaders {
            uploader.await.unwrap();
        }
        while let Some(a) = acked_rx.recv().await {
            acked.push(a);
        }

        let server = Proc::start_with(dir.path(), &["--no-workers"], &env);
        let client = server.client(&key_id, &key_secret);
        // Every acknowledged artifact downloads whole (the client checks the SHA-1).
        for (_, id) in &acked {
            client.download(build, id).await.unwrap();
        }
        // Every artifact stored is complete: its bytes hash to its name.
        let data = dir.path().to_path_buf();
        let artifacts = storage.artifacts.clone();
        let files = tokio::task::spawn_blocking(move || {
            let blobs = dpxdt_server::storage::Blobs::open(&data, &artifacts, false).unwrap();
            let ids = blobs.list().unwrap();
            for id in &ids {
                let bytes = blobs.read(id).unwrap();
                assert_eq!(&ArtifactId::of_bytes(&bytes), id, "half-written artifact");
            }
            ids.len()
        })
        .await
        .unwrap();
        assert!(files >= acked.len());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        // Every acknowledged run is there with its log.
        let store = storage.open(dir.path());
        for (run, id) in &acked {
            let log: String = store
                .blocking(|c| {
                    Ok(c.query_row("SELECT log FROM run WHERE name = ?1", [run], |r| r.get(0))?)
                })
                .unwrap_or_else(|e| panic!("run {run} lost: {e}"));
            assert_eq!(&log, id.as_str());
        }
    }
}

/// Two replicas and two remote workers on one PostgreSQL and one Garage
/// bucket: a release of 200 runs is uploaded through replica A, a person
/// logs in through A and reviews through B, and A is SIGKILLed while the
/// diffs are under way. The release still reaches `reviewing` through B,
/// every run's diff task is done exactly once, and every diff image is in
/// the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_database_and_bucket_and_survive_one_killed() {
    const RUNS: usize = 200;
    let (storage, env) = common::Backend::Scaled.for_binary();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let admin = "admin-test:admin-test-secret-0123456789";
    let (build, key_id, key_secret) = create_build_with(dir_a.path(), "site", &env);
    create_superuser(dir_b.path(), "rita", "rita-password-123", &env);
    // Both replicas seal secrets with one key, as a deployment would give them.
    let key_file = dir_a.path().join("shared.key");
    let key_file = key_file.to_str().unwrap();
    let replica = |dir: &Path| {
        let args = [
            "--no-workers",
            "--admin-key",
            admin,
            "--server-key-file",
            key_file,
        ];
        Proc::start_with(dir, &args, &env)
    };
    let mut a = replica(dir_a.path());
    let b = replica(dir_b.path());
    let worker = |server: &str| {
        KillOnDrop(
            Command::new(BIN)
                .args([
                    "--no-capture",
                    "--diff-workers",
                    "2",
                    "--lease-secs",
                    "3",
                    "worker",
                ])
                .args(["--server", server, "--api-key", admin])
                .env("DPXDT_LOG", "error")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };

    // The person logs in through A.
    let mut person = common::ui::Browser::new(&a.base);
    let page = person.login("rita", "rita-password-123").await;
    assert_eq!(page.status, reqwest::StatusCode::SEE_OTHER, "{}", page.body);

    // The release, uploaded and reported through A.
    let client_a = a.client(&key_id, &key_secret);
    let r = client_a.create_release(build, "r", "u").await.unwrap();
    let key = ReleaseKey {
        build_id: build,
        release_name: "r".into(),
        release_number: r.release_number,
    };
    let gray = [180, 180, 180, 255];
    let reference = client_a
        .upload_bytes(build, "ref.png", png(600, 600, gray, None))
        .await
        .unwrap()
        .sha1sum;
    for i in 0..RUNS {
        let dot = [i as u8, (i >> 8) as u8, 7, 255];
        let image = client_a
            .upload_bytes(build, "new.png", png(600, 600, gray, Some(dot)))
            .await
            .unwrap()
            .sha1sum;
        let mut req = report(&key, &format!("/page/{i}"));
        req.image = Some(image);
        req.ref_image = Some(reference.clone());
        client_a.report_run(&req).await.unwrap();
    }
    client_a.runs_done(&key).await.unwrap();

    // Workers on both replicas; A dies once some diffs are in.
    let _worker_a = worker(&a.base);
    let _worker_b = worker(&b.base);
    let client_b = b.client(&key_id, &key_secret);
    let deadline = Instant::now() + Duration::from_secs(120);
    let diffed_at_kill = loop {
        let st = client_b.release_status(&key).await.unwrap();
        let diffed: u64 = st
            .runs
            .iter()
            .filter(|c| c.status.as_str() == "diff_found")
            .map(|c| c.count)
            .sum();
        if diffed >= 20 {
            a.kill();
            break diffed;
        }
        assert!(Instant::now() < deadline, "no diffs: {st:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        diffed_at_kill < RUNS as u64,
        "A was killed only after every diff ({diffed_at_kill})"
    );
    eprintln!("replica A killed after {diffed_at_kill} of {RUNS} diffs");
    wait_for_status(&client_b, &key, "reviewing").await;

    // The person, logged in through A, reviews through B.
    person.base = b.base.clone();
    mark_good(&mut person, &key).await;
    assert_eq!(
        client_b.release_status(&key).await.unwrap().status.as_str(),
        "good"
    );

    // Every run diffed, its diff task done exactly once, its diff image stored.
    // A task whose worker died between its report and its finish is still
    // leased to A's dead worker when the release is already `reviewing`:
    // B's workers take it when that lease runs out (3 s) and finish it.
    let store = storage.open(dir_b.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live = common::count(
            &store,
            "SELECT COUNT(*) FROM task WHERE queue = 'run-pdiff' AND status = 'live'",
        );
        if live == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{live} diff tasks never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (done, other, runs): (i64, i64, Vec<(String, Option<String>)>) = store
        .blocking(|c| {
            let done = c.query_row(
                "SELECT COUNT(DISTINCT run_id) FROM task WHERE queue = 'run-pdiff' AND status = 'done'",
                [],
                |r| r.get(0),
            )?;
            let other = c.query_row(
                "SELECT COUNT(*) FROM task WHERE queue = 'run-pdiff' AND status <> 'done'",
                [],
                |r| r.get(0),
            )?;
            let runs = c
                .query_rows("SELECT status, diff_image FROM run ORDER BY id", [])?
                .iter()
                .map(|r| Ok((r.get(0)?, r.get(1)?)))
                .collect::<Result<_, dpxdt_server::storage::DbError>>()?;
            Ok((done, other, runs))
        })
        .unwrap();
    assert_eq!((done, other), (RUNS as i64, 0));
    let tasks = common::count(
        &store,
        "SELECT COUNT(*) FROM task WHERE queue = 'run-pdiff'",
    );
    assert_eq!(tasks, RUNS as i64, "one diff task per run");
    assert_eq!(runs.len(), RUNS);
    let blobs = store.artifacts().clone();
    for (status, diff) in runs {
        assert_eq!(status, "diff_found");
        let id: ArtifactId = diff.expect("a diff image").parse().unwrap();
        assert!(
            blobs.exists_async(&id).await.unwrap(),
            "{id} is in the bucket"
        );
    }
}

/// `migrate` moves a SQLite server with releases, a person's review, users
/// and keys to PostgreSQL and a Garage bucket: after it, the same person
/// (still logged in: sessions move too) sees the same pages, the build's
/// key still works, and every artifact downloads. A re-run after an
/// interruption (target schema made, one artifact already copied) finishes
/// the job; a run into a target that holds rows is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_a_sqlite_server_to_postgres_and_s3_with_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let (build, key_id, key_secret) = create_build(dir.path(), "shop");
    create_superuser(dir.path(), "mia", "mia-password-123", &[]);
    let old = Proc::start(dir.path(), &["--no-capture"]);
    let client = old.client(&key_id, &key_secret);
    let mut person = common::ui::Browser::new(&old.base);
    let page = person.login("mia", "mia-password-123").await;
    assert_eq!(page.status, reqwest::StatusCode::SEE_OTHER, "{}", page.body);
    let gray = [120, 130, 140, 255];
    let mut releases = Vec::new();
    for (name, dots) in [("r1", 3u8), ("r2", 2u8)] {
        let r = client.create_release(build, name, "u").await.unwrap();
        let key = ReleaseKey {
            build_id: build,
            release_name: name.into(),
            release_number: r.release_number,
        };
        for i in 0..dots {
            let image = png(40, 30, gray, Some([i, name.len() as u8, 9, 255]));
            let image = client
                .upload_bytes(build, "a.png", image)
                .await
                .unwrap()
                .sha1sum;
            let reference = png(40, 30, gray, None);
            let reference = client
                .upload_bytes(build, "b.png", reference)
                .await
                .unwrap()
                .sha1sum;
            let mut req = report(&key, &format!("/p{i}"));
            req.image = Some(image);
            req.ref_image = Some(reference);
            client.report_run(&req).await.unwrap();
        }
        client.runs_done(&key).await.unwrap();
        wait_for_status(&client, &key, "reviewing").await;
        releases.push(key);
    }
    mark_good(&mut person, &releases[0]).await;
    let pages = [
        "/".to_string(),
        format!("/build?id={}", build.0),
        format!("/release?build_id={}&name=r1&number=1", build.0),
        format!("/release?build_id={}&name=r2&number=1", build.0),
    ];
    let mut before = Vec::new();
    for path in &pages {
        let page = person.get(path).await;
        assert_eq!(page.status, reqwest::StatusCode::OK, "{path}");
        before.push(page.body.replace(&old.base, "BASE"));
    }
    // The pages show the history: both releases, r1's runs and its verdict.
    assert!(
        before[1].contains(">r1<") && before[1].contains(">r2<"),
        "{}",
        before[1]
    );
    assert!(
        before[2].contains("/p2") && before[2].contains("good"),
        "{}",
        before[2]
    );
    let status_before = client.release_status(&releases[1]).await.unwrap();
    let mut downloads = Vec::new();
    let store = dpxdt_server::storage::Store::open_shared(dir.path()).unwrap();
    let ids: Vec<String> = store
        .blocking(|c| {
            Ok(c.query_rows("SELECT id FROM artifact ORDER BY id", [])?
                .iter()
                .map(|r| r.get(0))
                .collect::<Result<_, _>>()?)
        })
        .unwrap();
    drop(store);
    for id in &ids {
        let id: ArtifactId = id.parse().unwrap();
        downloads.push((id.clone(), client.download(build, &id).await.unwrap()));
    }
    let old_base = old.base.clone();
    assert!(old.terminate().success());

    // An earlier run was interrupted: the schema is made and one artifact
    // is in the bucket already.
    let (target, env) = common::Backend::Scaled.for_binary();
    {
        let half = target.open(dir.path());
        half.artifacts().write_bytes(&downloads[0].1).unwrap();
    }
    let migrate = || {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .envs(
                env.iter()
                    .filter(|(k, _)| !k.starts_with("DPXDT_"))
                    .map(|(k, v)| (k, v)),
            )
            .arg("migrate")
            .arg("--to")
            .arg(match &target.database {
                dpxdt_server::storage::DatabaseUrl::Postgres(url) => url.as_str(),
                other => panic!("{other}"),
            })
            .arg("--artifacts-to")
            .arg(target.artifacts.url.to_string())
            .output()
            .unwrap()
    };
    let out = migrate();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}{stderr}");
    let copied = ids.len() - 1;
    assert!(
        stdout.contains(&format!("and {copied} artifacts (1 were there already)")),
        "{stdout}"
    );
    assert!(stderr.contains("migrate: table run: 5 rows"), "{stderr}");
    // Again: the target holds rows now.
    let out = migrate();
    assert_eq!(out.status.code(), Some(2), "an error exits 2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");

    // The new server: another data directory, the old server key.
    let new_dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("server.key");
    let new = Proc::start_with(
        new_dir.path(),
        &[
            "--no-capture",
            "--server-key-file",
            key_file.to_str().unwrap(),
        ],
        &env,
    );
    person.base = new.base.clone();
    for (path, old_body) in pages.iter().zip(&before) {
        let page = person.get(path).await;
        assert_eq!(page.status, reqwest::StatusCode::OK, "{path}");
        assert_eq!(&page.body.replace(&new.base, "BASE"), old_body, "{path}");
    }
    let client = new.client(&key_id, &key_secret);
    let mut status_after = client.release_status(&releases[1]).await.unwrap();
    status_after.results_url = status_after.results_url.replace(&new.base, &old_base);
    assert_eq!(status_after, status_before);
    for (id, bytes) in &downloads {
        assert_eq!(&client.download(build, id).await.unwrap(), bytes, "{id}");
    }
    // New rows get new ids after the copied ones.
    let r3 = client.create_release(build, "r3", "u").await.unwrap();
    assert_eq!(r3.release_number, 1);
    let listed = person.get(&format!("/build?id={}", build.0)).await;
    assert!(listed.body.contains("r3"), "{}", listed.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_comes_from_environment_variables_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env("DPXDT_DATA_DIR", dir.path())
        .env("DPXDT_LISTEN", "127.0.0.1:0")
        .env("DPXDT_NO_WORKERS", "1")
        .env("DPXDT_ADMIN_KEY", "envadmin:envadmin-secret-0123456789")
        .env("DPXDT_UPLOAD_LIMIT", "1000")
        .env("DPXDT_PUBLIC_URL", "https://dpxdt.example.com/");
    let server = Proc::spawn(cmd);
    let admin = server.client("envadmin", "envadmin-secret-0123456789");
    let build = admin.create_build("site").await.unwrap().build_id;
    let err = admin
        .upload_bytes(build, "big.bin", vec![7u8; 2000])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(413), "{err}");
    admin
        .upload_bytes(build, "small.bin", vec![7u8; 500])
        .await
        .unwrap();
    let r = admin.create_release(build, "main", "u").await.unwrap();
    let key = ReleaseKey {
        build_id: build,
        release_name: "main".into(),
        release_number: r.release_number,
    };
    let done = admin.runs_done(&key).await.unwrap();
    assert!(
        done.results_url.starts_with("https://dpxdt.example.com/"),
        "{}",
        done.results_url
    );
    // DPXDT_NO_WORKERS=1: no in-process worker key was minted.
    let conn = rusqlite::Connection::open(dir.path().join("dpxdt.sqlite3")).unwrap();
    let internal: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM api_key WHERE purpose = 'in-process workers'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(internal, 0);
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused_but_create_build_works_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let _server = Proc::start(dir.path(), &["--no-workers"]);
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--no-workers", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another dpxdt-server"), "{err}");
    let (build, id, _) = create_build(dir.path(), "beside");
    assert_eq!(build, BuildId(1));
    assert_eq!(id.len(), 32);
}

/// `dpxdt-server check` prints one line per check and exits 0 beside a
/// running server, and 1 (naming the failing part) on a directory no
/// server has used, which it leaves as it was.
#[test]
fn check_reports_each_part_and_exits_by_the_worst() {
    let check = |data: &Path| {
        let out = Command::new(BIN)
            .arg("check")
            .arg("--data-dir")
            .arg(data)
            .output()
            .unwrap();
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        (out.status.code(), lines)
    };
    let dir = tempfile::tempdir().unwrap();
    let _server = Proc::start(dir.path(), &["--no-workers"]);
    let (code, lines) = check(dir.path());
    assert_eq!(code, Some(0), "{lines:?}");
    let names: Vec<&str> = lines.iter().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(names, ["database", "migrations", "artifacts"], "{lines:?}");
    assert!(lines.iter().all(|l| l.contains(": ok: ")), "{lines:?}");

    let unused = dir.path().join("never-served");
    let (code, lines) = check(&unused);
    assert_eq!(code, Some(1), "{lines:?}");
    assert!(
        lines[0].starts_with("database: FAILED: no database at"),
        "{lines:?}"
    );
    assert!(!unused.exists(), "check created {}", unused.display());

    // Artifacts in a bucket: the check writes, reads and removes a probe
    // object there, and a refused key fails that line alone, saying why.
    // The database is a PostgreSQL one here, migrated by opening it.
    let (storage, env) = common::Backend::Scaled.for_binary();
    drop(storage.open(dir.path()));
    let check_s3 = |env: &[(&str, String)]| {
        let out = Command::new(BIN)
            .arg("check")
            .arg("--data-dir")
            .arg(dir.path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check_s3(&env);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("artifacts: ok: s3://dpxdt-tests/test-"),
        "{out}"
    );
    assert!(out.contains("database: ok: postgres://"), "{out}");
    assert!(out.contains("migrations: ok: schema version"), "{out}");
    let mut wrong = env.clone();
    for (k, v) in &mut wrong {
        if *k == "AWS_SECRET_ACCESS_KEY" {
            *v = "0".repeat(64);
        }
    }
    let (code, out) = check_s3(&wrong);
    assert_eq!(code, Some(1), "{out}");
    let failed: Vec<&str> = out.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(failed.len(), 1, "{out}");
    assert!(
        failed[0].starts_with("artifacts: FAILED: s3://dpxdt-tests/test-"),
        "{out}"
    );
    assert!(!out.contains(&"0".repeat(64)), "{out}");
}

/// `dpxdt-server gc`: a dry run beside a running server says what it would
/// delete; a real run refuses while the server has the directory (the
/// server collects its own garbage) and runs once it is stopped.
#[test]
fn gc_runs_by_hand_only_on_a_stopped_server() {
    let gc = |data: &Path, dry: bool| {
        let mut cmd = Command::new(BIN);
        cmd.arg("gc").arg("--data-dir").arg(data);
        if dry {
            cmd.arg("--dry-run");
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::start(dir.path(), &["--no-workers"]);
    let (code, out, err) = gc(dir.path(), true);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("would delete 0 releases (0 runs), ended 0 build claims on artifacts, would delete 0 artifacts, freeing 0 bytes"),
        "{out}"
    );
    let (code, _, err) = gc(dir.path(), false);
    assert_ne!(code, Some(0));
    assert!(err.contains("in use by another dpxdt-server"), "{err}");
    assert!(err.contains("collects its own garbage"), "{err}");
    drop(server);
    let (code, out, err) = gc(dir.path(), false);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("deleted 0 releases"), "{out}");
}

/// With real chromedriver and Chromium (the `capture` feature): the default
/// server capturing in-process, and a remote capture worker SIGKILLed while
/// Chromium loads a page.
#[cfg(feature = "capture")]
mod with_chromium {
    use super::*;
    use dpxdt_core::api::RequestRunRequest;
    use dpxdt_e2e::{Page, PageServer};

    /// A process as seen in `/proc/<pid>/stat`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct ProcInfo {
        pid: u32,
        comm: String,
        state: char,
        ppid: u32,
        pgrp: u32,
        /// Start time in clock ticks since boot: tells a reused pid apart.
        start: u64,
    }

    fn proc_info(pid: u32) -> Option<ProcInfo> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(ProcInfo {
            pid,
            comm,
            state: f.first()?.chars().next()?,
            ppid: f.get(1)?.parse().ok()?,
            pgrp: f.get(2)?.parse().ok()?,
            start: f.get(19)?.parse().ok()?,
        })
    }

    fn all_procs() -> Vec<ProcInfo> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter_map(proc_info)
            .collect()
    }

    /// Every process descended from `root`, plus every member of their process
    /// groups (Chromium's helpers stay in chromedriver's group).
    fn browser_tree(root: u32) -> Vec<ProcInfo> {
        let procs = all_procs();
        let mut tree: Vec<ProcInfo> = Vec::new();
        let mut frontier = vec![root];
        while let Some(parent) = frontier.pop() {
            for p in procs.iter().filter(|p| p.ppid == parent) {
                frontier.push(p.pid);
                tree.push(p.clone());
            }
        }
        // Never our own group (the test runner's), only groups the tree made.
        let ours = proc_info(std::process::id()).map_or(0, |p| p.pgrp);
        let groups: Vec<u32> = tree
            .iter()
            .map(|p| p.pgrp)
            .filter(|g| *g != ours && *g != 0)
            .collect();
        for p in &procs {
            if groups.contains(&p.pgrp) && !tree.iter().any(|t| t.pid == p.pid) {
                tree.push(p.clone());
            }
        }
        tree
    }

    /// Every process whose command line mentions `path` (Chromium's browser
    /// process names its profile directory there, wherever it was reparented).
    fn procs_mentioning(path: &Path) -> Vec<ProcInfo> {
        let needle = path.to_string_lossy().into_owned();
        all_procs()
            .into_iter()
            .filter(|p| {
                std::fs::read(format!("/proc/{}/cmdline", p.pid))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
            })
            .collect()
    }

    /// Still running: the same process (same start time) and not a zombie.
    fn still_running(p: &ProcInfo) -> bool {
        proc_info(p.pid).is_some_and(|now| now.start == p.start && !matches!(now.state, 'Z' | 'X'))
    }

    /// A remote `dpxdt-server worker` with only the capture worker, its temp dir
    /// (where the browser profiles go) set to `tmp`.
    fn capture_worker(base: &str, key_arg: &str, lease: &str, tmp: &Path) -> KillOnDrop {
        KillOnDrop(
            Command::new(BIN)
                .args(["--lease-secs", lease, "--diff-workers", "0"])
                .args(["--capture-allow", "127.0.0.1"])
                .args(["worker", "--server", base])
                .args(["--api-key", key_arg])
                .env("DPXDT_LOG", "warn")
                .env("TMPDIR", tmp)
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn profile_dirs(tmp: &Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(tmp)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("dpxdt-browser-")
            })
            .map(|e| e.path())
            .collect()
    }

    /// Polls `cond` every 10 ms until it holds; panics with `what` after `secs`.
    async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_killed_mid_capture_takes_its_browser_along_and_is_replaced_after_its_lease() {
        let pages = PageServer::start();
        // The page never answers until the test replaces it.
        pages.set("/slow", Page::html("").hanging());
        let dir = tempfile::tempdir().unwrap();
        let (build, key_id, key_secret) = create_build(dir.path(), "site");
        let worker_key = super::create_worker_key(dir.path());
        let server = Proc::start(dir.path(), &["--no-workers"]);
        let client = server.client(&key_id, &key_secret);
        let r = client.create_release(build, "main", "u").await.unwrap();
        let release = ReleaseKey {
            build_id: build,
            release_name: "main".into(),
            release_number: r.release_number,
        };
        client
            .request_run(&RequestRunRequest {
                build_id: build,
                release_name: release.release_name.clone(),
                release_number: release.release_number,
                run_name: "/slow".into(),
                url: pages.url("/slow"),
                config: r#"{"viewportSize": {"width": 320, "height": 200}}"#.into(),
                ref_url: None,
                ref_config: None,
            })
            .await
            .unwrap();
        client.runs_done(&release).await.unwrap();

        let tmp1 = tempfile::tempdir().unwrap();
        let mut first = capture_worker(&server.base, &worker_key, "2", tmp1.path());
        let first_pid = first.0.id();
        // In progress, seen from both ends: Chromium asked for the page, and the
        // server says this worker holds the lease and has heartbeated it.
        let tag = format!("-{first_pid}-");
        wait_until(60, "the first worker capturing the page", || {
            let (_, owner, _, beats, _) = task_in(dir.path(), "capture");
            !pages.requests_for("/slow").is_empty()
                // A worker key's leases carry its id: `<key id>/capture-...`.
                && owner.is_some_and(|o| {
                    o.split_once('/')
                        .is_some_and(|(key, o)| worker_key.starts_with(&format!("{key}:")) && o.starts_with("capture-") && o.contains(&tag))
                })
                && beats >= 1
        })
        .await;
        let browser = browser_tree(first_pid);
        let ours = proc_info(std::process::id()).unwrap().pgrp;
        let groups: Vec<u32> = browser
            .iter()
            .map(|p| p.pgrp)
            .filter(|g| *g != ours)
            .collect();
        let names: Vec<&str> = browser.iter().map(|p| p.comm.as_str()).collect();
        assert!(names.contains(&"chromedriver"), "{names:?}");
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("chrom") && *n != "chromedriver"),
            "{names:?}"
        );
        assert_eq!(profile_dirs(tmp1.path()).len(), 1);

        first.0.kill().unwrap(); // SIGKILL
        first.0.wait().unwrap();
        let lease_end = super::killed_in_time(dir.path(), "capture", &client, &release).await;

        // The page answers now; a new worker starts at once but gets the
        // task only when the dead worker's lease has run out.
        pages.set(
            "/slow",
            Page::html("<html><body style='background:#fff'><h1>Ready</h1></body></html>"),
        );
        let tmp2 = tempfile::tempdir().unwrap();
        let second = capture_worker(&server.base, &worker_key, "30", tmp2.path());
        let mut leased_again_by = None;
        // Meanwhile the watchdog takes chromedriver, Chromium and the
        // profiles along; checked again by group and by profile path, for
        // helpers started after the snapshot above.
        wait_until(30, "the killed worker's browser to die", || {
            if leased_again_by.is_none() && task_in(dir.path(), "capture").2 == 2 {
                leased_again_by = Some(unix_ms());
            }
            leased_again_by.is_some()
                && browser.iter().all(|p| !still_running(p))
                && !all_procs()
                    .iter()
                    .any(|p| groups.contains(&p.pgrp) && still_running(p))
                && !procs_mentioning(tmp1.path()).iter().any(still_running)
                && profile_dirs(tmp1.path()).is_empty()
        })
        .await;
        let leased_again_by = leased_again_by.unwrap();
        assert!(
            leased_again_by >= lease_end,
            "leased again {} ms before the lease ended",
            lease_end - leased_again_by
        );
        wait_for_status(&client, &release, "reviewing").await;
        let st = client.release_status(&release).await.unwrap();
        assert_eq!(st.runs.len(), 1, "{st:?}");
        assert_eq!(st.runs[0].status.as_str(), "no_diff_needed", "{st:?}");
        // The worker finishes its task right after reporting the result.
        wait_until(30, "the capture task to be finished", || {
            task_in(dir.path(), "capture").0 == "done"
        })
        .await;
        let (_, owner, attempts, _, _) = task_in(dir.path(), "capture");
        assert_eq!(attempts, 2);
        assert!(
            owner.is_some_and(|o| o.contains(&format!("-{}-", second.0.id()))),
            "finished by the second worker"
        );
        // The screenshot is the released page at the configured width.
        let conn = rusqlite::Connection::open(dir.path().join("dpxdt.sqlite3")).unwrap();
        let image: String = conn
            .query_row("SELECT image FROM run WHERE name = '/slow'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let png = client
            .download(build, &ArtifactId::parse(&image).unwrap())
            .await
            .unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 320);
        assert!(pages.requests_for("/slow").len() >= 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_default_server_captures_and_diffs_in_process_then_stops_its_browser() {
        let pages = PageServer::start();
        let page = |text: &str| {
            format!("<html><body style='background:#fff'><h1>{text}</h1></body></html>")
        };
        pages.set_html("/old", &page("Hello"));
        pages.set_html("/new", &page("Hello, world"));
        let dir = tempfile::tempdir().unwrap();
        let (build, key_id, key_secret) = create_build(dir.path(), "site");
        // In-process capture and diff workers, as people run it; the pages
        // are on this machine, which captures may reach only when allowed.
        let server = Proc::start(dir.path(), &["--capture-allow", "127.0.0.1"]);
        let client = server.client(&key_id, &key_secret);
        let config = r#"{"viewportSize": {"width": 320, "height": 200}}"#;
        let release = |number: i64| ReleaseKey {
            build_id: build,
            release_name: "main".into(),
            release_number: number,
        };
        let request = |key: &ReleaseKey, ref_url: Option<String>| RequestRunRequest {
            build_id: build,
            release_name: key.release_name.clone(),
            release_number: key.release_number,
            run_name: "/page".into(),
            url: pages.url("/new"),
            config: config.into(),
            ref_config: ref_url.as_ref().map(|_| config.to_string()),
            ref_url,
        };
        // With a ref_url: both pages captured, they differ.
        let first = release(
            client
                .create_release(build, "main", "u")
                .await
                .unwrap()
                .release_number,
        );
        client
            .request_run(&request(&first, Some(pages.url("/old"))))
            .await
            .unwrap();
        client.runs_done(&first).await.unwrap();
        wait_for_status(&client, &first, "reviewing").await;
        let st = client.release_status(&first).await.unwrap();
        assert_eq!(st.runs.len(), 1, "{st:?}");
        assert_eq!(st.runs[0].status.as_str(), "diff_found", "{st:?}");
        client
            .update_release(&first, dpxdt_core::ReleaseStatus::Good)
            .await
            .unwrap();
        let (old_loads, new_loads) = (
            pages.requests_for("/old").len(),
            pages.requests_for("/new").len(),
        );
        // Without: the good release's capture is the reference; same page, no diff.
        let second = release(
            client
                .create_release(build, "main", "u")
                .await
                .unwrap()
                .release_number,
        );
        client.request_run(&request(&second, None)).await.unwrap();
        client.runs_done(&second).await.unwrap();
        wait_for_status(&client, &second, "reviewing").await;
        let st = client.release_status(&second).await.unwrap();
        assert_eq!(st.runs[0].status.as_str(), "diff_not_found", "{st:?}");
        assert_eq!(
            pages.requests_for("/old").len(),
            old_loads,
            "not captured again"
        );
        assert!(pages.requests_for("/new").len() > new_loads);

        // The server's own pages stay out of reach, allowed loopback or not:
        // the run fails, naming the policy.
        let third = release(
            client
                .create_release(build, "main", "u")
                .await
                .unwrap()
                .release_number,
        );
        let own = RequestRunRequest {
            url: format!("{}/login", server.base),
            ..request(&third, None)
        };
        client.request_run(&own).await.unwrap();
        client.runs_done(&third).await.unwrap();
        wait_for_status(&client, &third, "reviewing").await;
        let st = client.release_status(&third).await.unwrap();
        assert_eq!(st.runs[0].status.as_str(), "failed", "{st:?}");

        // A polite stop takes the in-process browser along.
        let browser = browser_tree(server.child.id());
        assert!(
            browser.iter().any(|p| p.comm == "chromedriver"),
            "{browser:?}"
        );
        assert!(server.terminate().success());
        wait_until(20, "the server's browser to stop", || {
            browser.iter().all(|p| !still_running(p))
        })
        .await;
    }
}

/// Regression: `--help` printed the secret values of the environment
/// variables behind `--admin-key`, `--smtp-url` and `worker --api-key`.
#[test]
fn help_never_shows_secrets_from_the_environment() {
    for args in [&["--help"][..], &["worker", "--help"]] {
        let out = Command::new(BIN)
            .args(args)
            .env("DPXDT_ADMIN_KEY", "admin:SECRET-ADMIN")
            .env("DPXDT_SMTP_URL", "smtp://user:SECRET-SMTP@relay")
            .env("DPXDT_API_KEY", "worker:SECRET-WORKER")
            .env("DPXDT_DATABASE_URL", "postgres://u:SECRET-DB@db/x")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("DPXDT_"), "{help}");
        assert!(!help.contains("SECRET-"), "{help}");
    }
}

/// Regression: a stop waited for every request in flight, so one client
/// that never finished sending its body kept the server from stopping.
#[test]
fn a_stop_cuts_off_a_request_that_never_finishes() {
    use std::io::{BufRead as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let (build, key_id, key_secret) = create_build(dir.path(), "stalled");
    let server = Proc::start(dir.path(), &["--no-workers"]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    let auth = dpxdt_e2e::base64(format!("{key_id}:{key_secret}").as_bytes());
    write!(
        stalled,
        "POST /api/upload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\
         Expect: 100-continue\r\n\r\n"
    )
    .unwrap();
    // The server asks for the body once the upload handler reads it: the
    // request is in flight. Send a little of it, then nothing more.
    let mut reader = BufReader::new(stalled.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 100"), "{status}");
    write!(
        stalled,
        "--b\r\nContent-Disposition: form-data; name=\"build_id\"\r\n\r\n{build}\r\n--b\r\n"
    )
    .unwrap();
    assert!(server.terminate().success());
}

#[test]
fn log_format_json_writes_one_object_per_line_with_its_fields_and_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(BIN)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--no-workers",
                "--log-format",
                "json",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env("DPXDT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (mut seen, mut asked) = (Vec::new(), false);
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let event: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?} after {seen:#?}"));
        seen.push(line);
        if event["fields"]["message"] == "serving the API" {
            assert_eq!(event["level"], "INFO", "{event}");
            assert!(
                event["fields"]["addr"]
                    .as_str()
                    .unwrap()
                    .starts_with("127.0.0.1:"),
                "{event}"
            );
            assert!(event["timestamp"].is_string(), "{event}");
            let addr = event["fields"]["addr"].as_str().unwrap().to_owned();
            let reply = raw_get(&addr, "/api/nothing", "X-Request-Id: ci-7\r\n");
            assert!(
                reply
                    .to_ascii_lowercase()
                    .contains("x-request-id: ci-7\r\n"),
                "{reply}"
            );
            asked = true;
            continue;
        }
        if asked && event["fields"]["message"] == "request" {
            // The API's request line is logged inside the request's span.
            assert_eq!(event["span"]["name"], "request", "{event}");
            assert_eq!(event["span"]["id"], "ci-7", "{event}");
            assert_eq!(event["fields"]["status"], 404, "{event}");
            return;
        }
    }
    panic!("the server never logged the request: {seen:#?}");
}

/// The head and body of `GET path` on a connection of its own.
fn raw_get(addr: &str, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    reply
}
