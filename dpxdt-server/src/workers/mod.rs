//! The workers: they lease tasks from the work queue, do them and report the
//! results. The same code runs inside the server process, calling into its
//! store directly, and as `dpxdt-server worker` on other machines, over
//! HTTP through `dpxdt-client` ([`Link`]).
//!
//! Each worker exposes `run_once`, one lease-work-finish step that says
//! whether it did work, so tests drive workers to idle without sleeping;
//! [`spawn_all`] loops it, pausing when idle.

#[cfg(feature = "capture")]
mod capture;
mod diff;
mod link;

use dpxdt_core::netpolicy::NetworkPolicy;
use std::future::Future;
use std::time::Duration;

use dpxdt_client::{Client, ClientError};
use dpxdt_core::TaskId;
use dpxdt_core::api::{HeartbeatRequest, LeasedTask, ReportRunRequest};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

#[cfg(feature = "capture")]
pub use capture::CaptureWorker;
pub use diff::DiffWorker;
pub use link::{Link, LinkError, Local};

/// How workers lease and poll.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Lease length of a diff task.
    pub diff_lease: Duration,
    /// Lease length of a capture task (a capture with retries can take a minute).
    pub capture_lease: Duration,
    /// Pause between polls when there is no work.
    pub idle_pause: Duration,
    /// Run diff workers.
    pub diff: bool,
    /// Diff workers running side by side (default: the number of CPUs).
    pub diff_workers: usize,
    /// Run capture workers (needs Chromium and chromedriver).
    pub capture: bool,
    /// Parallel captures (browser sessions).
    pub capture_sessions: usize,
    /// The engines whose capture tasks this process's workers take;
    /// `None`: every engine installed here.
    #[cfg(feature = "capture")]
    pub capture_browsers: Option<Vec<dpxdt_core::capture::Engine>>,
    /// What captured pages may reach; default [`NetworkPolicy::server`]:
    /// not this machine, not link-local (cloud metadata).
    pub capture_network: NetworkPolicy,
    /// When the server runs as root, run the browser as root without
    /// Chromium's sandbox; by default (false) it runs as `nobody` with the
    /// sandbox on.
    pub capture_allow_root: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            diff_lease: Duration::from_secs(60),
            capture_lease: Duration::from_secs(180),
            idle_pause: Duration::from_millis(500),
            diff: true,
            diff_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            capture: true,
            capture_sessions: std::thread::available_parallelism().map_or(1, |n| n.get().min(32)),
            #[cfg(feature = "capture")]
            capture_browsers: None,
            capture_network: NetworkPolicy::server(),
            capture_allow_root: false,
        }
    }
}

/// Why a worker step failed (the task, if any, is finished with an error
/// and retried by the queue).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Talking to the server failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The task payload is not what the queue promised.
    #[error("bad task payload: {0}")]
    Payload(#[source] serde_json::Error),
    /// A report could not be encoded.
    #[error("cannot encode the report: {0}")]
    Encode(#[source] serde_json::Error),
    /// The blocking work panicked or was cancelled.
    #[error("the work did not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The capture failed in a way worth retrying (the browser could not
    /// start, or the page could not be loaded in time).
    #[cfg(feature = "capture")]
    #[error(transparent)]
    Capture(#[from] dpxdt_core::capture::CaptureError),
}

/// An API client for a worker: server root URL and a superuser key.
pub fn client_for(server: &str, key_id: &str, secret: &str) -> Result<Client, ClientError> {
    Client::builder(server)
        .api_key(key_id, secret)
        .timeout(Duration::from_secs(120))
        .retries(3)
        .build()
}

/// A unique lease-owner name for one worker.
pub fn owner_name(kind: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!(
        "{kind}-{host}-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    )
}

/// Calls `step` until `stop` turns true, pausing `idle` when it found no work
/// or failed.
pub async fn run_loop<F, Fut>(
    name: &str,
    mut step: F,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, WorkerError>>,
{
    tracing::info!(worker = name, "worker started");
    loop {
        if *stop.borrow() {
            break;
        }
        let pause = match step().await {
            Ok(true) => false,
            Ok(false) => true,
            Err(e) => {
                tracing::warn!(worker = name, "worker step failed: {e}");
                true
            }
        };
        if pause {
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }
    tracing::info!(worker = name, "worker stopped");
}

/// Leases tasks for up to `slots` of them at once, as many at a time as
/// there are free slots (one lease request for a batch), and does each with
/// `step` in a task of its own, until `stop` turns true; then waits for
/// those in flight. Pauses `idle` when the queue is empty or leasing fails.
pub(crate) async fn pump<L, S, Fut>(
    name: &str,
    slots: usize,
    mut lease: L,
    step: S,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) where
    L: AsyncFnMut(u32) -> Result<Vec<LeasedTask>, WorkerError>,
    S: Fn(LeasedTask) -> Fut,
    Fut: Future<Output = Result<(), WorkerError>> + Send + 'static,
{
    let slots = slots.max(1);
    let free = std::sync::Arc::new(tokio::sync::Semaphore::new(slots));
    tracing::info!(worker = name, slots, "worker started");
    while !*stop.borrow() {
        let first = tokio::select! {
            permit = free.clone().acquire_owned() => permit,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Ok(first) = first else { break };
        let mut permits = vec![first];
        while let Ok(p) = free.clone().try_acquire_owned() {
            permits.push(p);
        }
        let count = u32::try_from(permits.len()).unwrap_or(u32::MAX);
        let tasks = match lease(count).await {
            Ok(tasks) => tasks,
            Err(e) => {
                tracing::warn!(worker = name, "worker step failed: cannot lease: {e}");
                Vec::new()
            }
        };
        if tasks.is_empty() {
            drop(permits);
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            continue;
        }
        for (task, permit) in tasks.into_iter().zip(permits) {
            let work = step(task);
            let name = name.to_string();
            tokio::spawn(async move {
                if let Err(e) = work.await {
                    tracing::warn!(worker = name, "worker step failed: {e}");
                }
                drop(permit);
            });
        }
    }
    // Every slot free again: the tasks in flight have ended.
    let _ = free
        .acquire_many(u32::try_from(slots).unwrap_or(u32::MAX))
        .await;
    tracing::info!(worker = name, "worker stopped");
}

/// Waits for spawned tasks to end, each for at most `grace`; a task that
/// panicked, failed or outlived its grace is logged (and left running
/// until the runtime drops it).
pub async fn join_all(tasks: Vec<JoinHandle<()>>, grace: std::time::Duration) {
    for (i, task) in tasks.into_iter().enumerate() {
        match tokio::time::timeout(grace, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => tracing::error!(task = i, "task panicked: {e}"),
            Ok(Err(e)) => tracing::error!(task = i, "task failed: {e}"),
            Err(_) => tracing::warn!(
                task = i,
                "task still running {} s after the stop; left to the runtime",
                grace.as_secs()
            ),
        }
    }
}

/// Diff tasks in flight per diff computing at once: the others download,
/// upload and report meanwhile, so the cores do not wait on the store.
pub const DIFF_TASKS_PER_DIFF: usize = 4;

/// Starts the configured workers on the current runtime.
pub fn spawn_all(
    link: Link,
    config: WorkerConfig,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if config.diff {
        let diffs = config.diff_workers.max(1);
        let cpu = std::sync::Arc::new(tokio::sync::Semaphore::new(diffs));
        let worker = DiffWorker::new(link.clone(), config.diff_lease).sharing_cpu(cpu);
        let slots = diffs * DIFF_TASKS_PER_DIFF;
        tasks.push(tokio::spawn(worker.pump(
            slots,
            config.idle_pause,
            stop.clone(),
        )));
    }
    #[cfg(feature = "capture")]
    if config.capture {
        let browsers = config.capture_browsers.clone().unwrap_or_else(|| {
            dpxdt_core::capture::installed_engines(&dpxdt_core::capture::BrowserOptions::default())
        });
        tracing::info!(
            browsers = %browsers.iter().map(|e| e.name()).collect::<Vec<_>>().join(","),
            "capture workers take tasks for these engines"
        );
        let worker = std::sync::Arc::new(
            CaptureWorker::new(
                link.clone(),
                config.capture_lease,
                config.capture_sessions,
                config.capture_network.clone(),
                if config.capture_allow_root {
                    dpxdt_core::capture::AsRoot::NoSandbox
                } else {
                    dpxdt_core::capture::AsRoot::Unprivileged
                },
            )
            .browsers(browsers),
        );
        for _ in 0..config.capture_sessions.max(1) {
            let worker = worker.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                run_loop("capture", || worker.run_once(), config.idle_pause, stop).await;
            }));
        }
    }
    #[cfg(not(feature = "capture"))]
    if config.capture {
        tracing::warn!("built without the `capture` feature: no capture worker runs");
    }
    tasks
}

/// The task a worker leased, for [`keep_lease`].
pub(crate) struct Lease<'a> {
    pub link: &'a Link,
    pub queue: &'a str,
    pub task: TaskId,
    pub owner: &'a str,
    pub length: Duration,
}

/// Runs `work` while heartbeating the lease every third of its length, from
/// the moment the task is leased until the work ends (a browser launch or a
/// big download counts too). If the server refuses a heartbeat because the
/// lease is not ours any more (it expired, or the task was canceled), the
/// work is dropped and that refusal returned: the queue hands the task to
/// someone else, and we must not finish it. Other heartbeat failures
/// (the client already retried them) are logged and the work goes on.
pub(crate) async fn keep_lease<T>(
    lease: Lease<'_>,
    message: &str,
    work: impl Future<Output = T>,
) -> Result<T, LinkError> {
    let beats = async {
        let period = (lease.length / 3).max(Duration::from_millis(100));
        let mut index = 0;
        loop {
            tokio::time::sleep(period).await;
            index += 1;
            let hb = HeartbeatRequest {
                task_id: lease.task,
                owner: lease.owner.to_string(),
                message: message.to_string(),
                index,
                timeout: None,
            };
            match lease.link.heartbeat(lease.queue, &hb).await {
                Ok(()) => {}
                Err(e) if e.is_moot() => return e,
                Err(e) => tracing::warn!(task = %lease.task, "heartbeat failed: {e}"),
            }
        }
    };
    tokio::select! {
        out = work => Ok(out),
        lost = beats => Err(lost),
    }
}

/// Counts a task's end and its time from lease to finish.
fn finished(queue: &'static str, outcome: &'static str, started: std::time::Instant) {
    metrics::counter!("dpxdt_tasks_finished_total", "queue" => queue, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("dpxdt_task_duration_seconds", "queue" => queue, "outcome" => outcome)
        .record(started.elapsed());
}

/// The span a task's work logs in: its queue and id, and the release and
/// run its payload names (every task of the release queues names them).
fn task_span(queue: &str, task: &LeasedTask) -> tracing::Span {
    let payload: serde_json::Value = serde_json::from_str(&task.payload).unwrap_or_default();
    let text = |field: &str| payload[field].as_str().unwrap_or_default().to_string();
    tracing::info_span!(
        "task",
        queue,
        id = %task.task_id,
        release = %text("release_name"),
        number = payload["release_number"].as_i64().unwrap_or_default(),
        run = %text("run_name"),
    )
}

/// Where a worker leases from and as whom.
pub(crate) struct Queue<'a> {
    pub link: &'a Link,
    pub name: &'static str,
    pub owner: &'a str,
    pub lease: Duration,
}

impl Queue<'_> {
    /// One step of every worker: leases one task, does it with `work`
    /// while keeping the lease, and finishes it (with `work`'s error, so
    /// the queue retries it). `Ok(false)`: there was no work. A lost lease
    /// abandons the work without finishing: the task belongs to someone
    /// else now.
    pub async fn run_once<Fut>(
        &self,
        doing: &str,
        work: impl FnOnce(LeasedTask) -> Fut,
    ) -> Result<bool, WorkerError>
    where
        Fut: Future<Output = Result<(), WorkerError>>,
    {
        let Some(task) = self.lease(1).await?.into_iter().next() else {
            return Ok(false);
        };
        self.do_task(task, doing, work).await?;
        Ok(true)
    }

    /// Leases up to `count` tasks.
    pub async fn lease(&self, count: u32) -> Result<Vec<LeasedTask>, WorkerError> {
        Ok(self
            .link
            .lease(self.name, self.owner, count, self.lease)
            .await?)
    }

    /// Does a leased task with `work` while keeping its lease, and
    /// finishes it (with `work`'s error, so the queue retries it). A lost
    /// lease abandons the work without finishing.
    pub async fn do_task<Fut>(
        &self,
        task: LeasedTask,
        doing: &str,
        work: impl FnOnce(LeasedTask) -> Fut,
    ) -> Result<(), WorkerError>
    where
        Fut: Future<Output = Result<(), WorkerError>>,
    {
        let span = task_span(self.name, &task);
        let (queue, started) = (self.name, std::time::Instant::now());
        metrics::histogram!("dpxdt_task_attempts", "queue" => queue).record(task.lease_attempts);
        async move {
            let (id, attempt) = (task.task_id, task.lease_attempts);
            let lease = Lease {
                link: self.link,
                queue: self.name,
                task: id,
                owner: self.owner,
                length: self.lease,
            };
            let result = match keep_lease(lease, doing, work(task)).await {
                Ok(result) => result,
                Err(lost) => {
                    tracing::warn!("lease lost, work abandoned: {lost}");
                    finished(queue, "abandoned", started);
                    return Ok(());
                }
            };
            let error = result.as_ref().err().map(|e| e.to_string());
            if let Some(e) = &error {
                tracing::warn!(attempt, "task failed: {e}");
            }
            self.link
                .finish(self.name, id, self.owner, error.as_deref())
                .await?;
            finished(
                queue,
                if error.is_some() { "failed" } else { "done" },
                started,
            );
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Sends a task's `report_run`. A report the server no longer needs
    /// (the release moved on, the run was settled) ends the task as done.
    pub async fn report(&self, report: &ReportRunRequest) -> Result<(), WorkerError> {
        match self.link.report_run(report).await {
            Err(e) if e.is_moot() => {
                tracing::info!(run = %report.run_name, queue = self.name, "result not needed any more: {e}");
                Ok(())
            }
            other => Ok(other?),
        }
    }
}

/// The `report_run` request of the run a task is about, with no results yet.
pub(crate) fn report_for(
    build_id: dpxdt_core::BuildId,
    release_name: &str,
    release_number: i64,
    run_name: &str,
) -> ReportRunRequest {
    ReportRunRequest {
        build_id,
        release_name: release_name.to_string(),
        release_number,
        run_name: run_name.to_string(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The log lines `f` writes, as the server's text format has them.
    fn logged(f: impl FnOnce()) -> String {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_tasks_log_lines_name_its_queue_release_and_run() {
        let task = LeasedTask {
            task_id: TaskId(7),
            queue_name: "run-pdiff".into(),
            payload:
                r#"{"build_id":1,"release_name":"main","release_number":3,"run_name":"/docs.html"}"#
                    .into(),
            lease_attempts: 1,
            eta: 0,
        };
        let text = logged(|| {
            let _inside = task_span("run-pdiff", &task).entered();
            tracing::warn!("task failed: the bytes are gone");
        });
        for field in [
            "queue=\"run-pdiff\"",
            "id=7",
            "release=main",
            "number=3",
            "run=/docs.html",
        ] {
            assert!(text.contains(field), "{field} missing from {text:?}");
        }
        // A payload that is not a release's task still gets its span.
        let odd = LeasedTask {
            payload: "[1, 2]".into(),
            ..task
        };
        let text = logged(|| {
            let _inside = task_span("custom", &odd).entered();
            tracing::warn!("odd");
        });
        assert!(text.contains("queue=\"custom\" id=7"), "{text:?}");
    }
}
