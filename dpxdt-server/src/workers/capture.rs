//! The capture worker: takes a screenshot through a [`Capturer`] (by
//! default the core's headless Chromium) and reports the image, log and
//! config of the run or its reference.

use std::sync::Arc;
use std::time::Duration;

use dpxdt_client::Client;
use dpxdt_core::CaptureConfig;
use dpxdt_core::api::{CAPTURE_QUEUE, CaptureTask, LeasedTask};
use dpxdt_core::capture::{AsRoot, Browser, BrowserOptions, Capturer};
use dpxdt_core::netpolicy::NetworkPolicy;
use tokio::sync::OnceCell;

use super::{Queue, WorkerError, owner_name, report_for};

/// Leases and does capture tasks. The capturer (a browser started on the
/// first task, or one given by the caller) is shared by every step.
pub struct CaptureWorker {
    client: Client,
    owner: String,
    lease: Duration,
    sessions: usize,
    network: NetworkPolicy,
    as_root: AsRoot,
    capturer: OnceCell<Arc<dyn Capturer>>,
}

impl CaptureWorker {
    /// A capture worker that launches its own browser, whose pages may
    /// reach what `network` allows, when first needed (run as `as_root`
    /// says when this process runs as root).
    pub fn new(
        client: Client,
        lease: Duration,
        sessions: usize,
        network: NetworkPolicy,
        as_root: AsRoot,
    ) -> CaptureWorker {
        CaptureWorker {
            client,
            owner: owner_name("capture"),
            lease,
            sessions: sessions.max(1),
            network,
            as_root,
            capturer: OnceCell::new(),
        }
    }

    /// A capture worker using a capturer the caller made: a browser it
    /// started (tests share one), or any other [`Capturer`].
    pub fn with_capturer(
        client: Client,
        lease: Duration,
        capturer: Arc<dyn Capturer>,
    ) -> CaptureWorker {
        CaptureWorker {
            client,
            owner: owner_name("capture"),
            lease,
            sessions: 1,
            network: NetworkPolicy::server(),
            as_root: AsRoot::Unprivileged,
            capturer: OnceCell::new_with(Some(capturer)),
        }
    }

    async fn capturer(&self) -> Result<&Arc<dyn Capturer>, WorkerError> {
        self.capturer
            .get_or_try_init(|| async {
                let options = BrowserOptions {
                    sessions: self.sessions,
                    network: self.network.clone(),
                    as_root: self.as_root,
                    ..BrowserOptions::default()
                };
                let browser = Browser::launch(options)
                    .await
                    .map_err(WorkerError::Capture)?;
                Ok::<Arc<dyn Capturer>, WorkerError>(Arc::new(browser))
            })
            .await
    }

    /// Leases one capture task and does it. `Ok(false)`: there was no work.
    pub async fn run_once(&self) -> Result<bool, WorkerError> {
        self.queue()
            .run_once("capturing", |task| async move { self.work(&task).await })
            .await
    }

    fn queue(&self) -> Queue<'_> {
        Queue {
            client: &self.client,
            name: CAPTURE_QUEUE,
            owner: &self.owner,
            lease: self.lease,
        }
    }

    async fn work(&self, task: &LeasedTask) -> Result<(), WorkerError> {
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
            let shot = self.capturer().await?.capture(&t.url, &config).await;
            match shot {
                Ok(shot) => {
                    let image = self
                        .client
                        .upload_bytes(t.build_id, "screenshot.png", shot.png)
                        .await?;
                    let log = self
                        .client
                        .upload_bytes(t.build_id, "capture.log", shot.log.into_bytes())
                        .await?;
                    if t.is_ref {
                        report.ref_url = Some(t.url.clone());
                        report.ref_image = Some(image.sha1sum);
                        report.ref_log = Some(log.sha1sum);
                        report.ref_config = Some(t.config.clone());
                    } else {
                        report.url = Some(t.url.clone());
                        report.image = Some(image.sha1sum);
                        report.log = Some(log.sha1sum);
                        report.config = Some(t.config.clone());
                    }
                }
                // The browser already retried what may be transient; the
                // queue retries once more across workers before giving up.
                Err(e) if e.is_retryable() => return Err(WorkerError::Capture(e)),
                Err(e) => report.run_failed = Some(e.to_string()),
            }
        }
        self.queue().report(&report).await
    }
}
