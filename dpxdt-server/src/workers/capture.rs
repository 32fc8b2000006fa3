//! The capture worker: takes a screenshot through a [`Capturer`] (by
//! default the core's browsers) and reports the image, log and config of
//! the run or its reference. It leases from the capture queue of each
//! engine it has (`--browsers`), taking turns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dpxdt_core::CaptureConfig;
use dpxdt_core::api::{CaptureTask, LeasedTask, capture_queue};
use dpxdt_core::capture::{AsRoot, Browser, BrowserOptions, Capturer, Engine};
use dpxdt_core::netpolicy::NetworkPolicy;
use tokio::sync::OnceCell;

use super::{Link, Queue, WorkerError, owner_name, report_for};

/// Leases and does capture tasks. The capturer (a browser started on the
/// first task, or one given by the caller) is shared by every step.
pub struct CaptureWorker {
    link: Link,
    owner: String,
    lease: Duration,
    sessions: usize,
    network: NetworkPolicy,
    as_root: AsRoot,
    /// The engines whose queues it leases from.
    engines: Vec<Engine>,
    /// The engine whose queue is asked first next time.
    turn: AtomicUsize,
    capturer: OnceCell<Arc<dyn Capturer>>,
}

impl CaptureWorker {
    /// A capture worker that launches its own browser, whose pages may
    /// reach what `network` allows, when first needed (run as `as_root`
    /// says when this process runs as root).
    pub fn new(
        link: Link,
        lease: Duration,
        sessions: usize,
        network: NetworkPolicy,
        as_root: AsRoot,
    ) -> CaptureWorker {
        CaptureWorker {
            link,
            owner: owner_name("capture"),
            lease,
            sessions: sessions.max(1),
            network,
            as_root,
            engines: vec![Engine::Chromium],
            turn: AtomicUsize::new(0),
            capturer: OnceCell::new(),
        }
    }

    /// Leases only tasks for `engines` (default: Chromium's). An empty
    /// list counts as Chromium's.
    pub fn browsers(mut self, engines: Vec<Engine>) -> CaptureWorker {
        self.engines = if engines.is_empty() {
            vec![Engine::Chromium]
        } else {
            engines
        };
        self
    }

    /// The engines whose tasks it leases.
    pub fn engines(&self) -> &[Engine] {
        &self.engines
    }

    /// A capture worker using a capturer the caller made: a browser it
    /// started (tests share one), or any other [`Capturer`].
    pub fn with_capturer(
        link: Link,
        lease: Duration,
        capturer: Arc<dyn Capturer>,
    ) -> CaptureWorker {
        CaptureWorker {
            link,
            owner: owner_name("capture"),
            lease,
            sessions: 1,
            network: NetworkPolicy::server(),
            as_root: AsRoot::Unprivileged,
            engines: vec![Engine::Chromium],
            turn: AtomicUsize::new(0),
            capturer: OnceCell::new_with(Some(capturer)),
        }
    }

    async fn capturer(&self) -> Result<&Arc<dyn Capturer>, WorkerError> {
        self.capturer
            .get_or_try_init(|| async {
                // Each engine starts at its first task.
                let options = BrowserOptions {
                    sessions: self.sessions,
                    network: self.network.clone(),
                    as_root: self.as_root,
                    engines: Vec::new(),
                    ..BrowserOptions::default()
                };
                let browser = Browser::launch(options)
                    .await
                    .map_err(WorkerError::Capture)?;
                Ok::<Arc<dyn Capturer>, WorkerError>(Arc::new(browser))
            })
            .await
    }

    /// Leases one capture task, from the queue of one of its engines
    /// (each asked first in turn), and does it. `Ok(false)`: there was no
    /// work in any of them.
    pub async fn run_once(&self) -> Result<bool, WorkerError> {
        let first = self.turn.fetch_add(1, Ordering::Relaxed);
        for k in 0..self.engines.len() {
            let engine = self.engines[(first + k) % self.engines.len()];
            let did = self
                .queue(engine)
                .run_once(
                    "capturing",
                    |task| async move { self.work(engine, &task).await },
                )
                .await?;
            if did {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn queue(&self, engine: Engine) -> Queue<'_> {
        Queue {
            link: &self.link,
            name: capture_queue(engine),
            owner: &self.owner,
            lease: self.lease,
        }
    }

    async fn work(&self, engine: Engine, task: &LeasedTask) -> Result<(), WorkerError> {
        let t: CaptureTask = serde_json::from_str(&task.payload).map_err(WorkerError::Payload)?;
        let mut report = report_for(t.build_id, &t.release_name, t.release_number, &t.run_name);
        let config = match CaptureConfig::from_json(&t.config_json) {
            Ok(c) => Some(c),
            Err(e) => {
                report.run_failed = Some(format!("config: {e}"));
                None
            }
        };
        if let Some(config) = config {
            let capturer = self.capturer().await?;
            let started = std::time::Instant::now();
            let shot = capturer.capture(&t.url, &config).await;
            metrics::histogram!("dpxdt_capture_duration_seconds", "browser" => engine.name())
                .record(started.elapsed());
            match shot {
                Ok(shot) => {
                    let image = self
                        .link
                        .upload(t.build_id, "screenshot.png", shot.png)
                        .await?;
                    let log = self
                        .link
                        .upload(t.build_id, "capture.log", shot.log.into_bytes())
                        .await?;
                    if t.is_ref {
                        report.ref_url = Some(t.url.clone());
                        report.ref_image = Some(image);
                        report.ref_log = Some(log);
                        report.ref_config = Some(t.config.clone());
                    } else {
                        report.url = Some(t.url.clone());
                        report.image = Some(image);
                        report.log = Some(log);
                        report.config = Some(t.config.clone());
                    }
                }
                // The browser already retried what may be transient; the
                // queue retries once more across workers before giving up.
                Err(e) if e.is_retryable() => return Err(WorkerError::Capture(e)),
                Err(e) => report.run_failed = Some(e.to_string()),
            }
        }
        self.queue(engine).report(&report).await
    }
}
