//! The diff worker: diffs a run's image against its reference with the core
//! diff and reports the distortion, the diff image and a JSON log.

use std::sync::Arc;
use std::time::Duration;

use super::Link;
use dpxdt_core::api::{DIFF_QUEUE, DiffTask, LeasedTask};
use dpxdt_core::diff::{DiffOptions, diff_png_bytes};
use tokio::sync::{Semaphore, watch};

use super::{Queue, WorkerError, owner_name, report_for};

/// Leases and does diff tasks.
pub struct DiffWorker {
    link: Link,
    owner: String,
    lease: Duration,
    options: DiffOptions,
    /// Held while a diff computes: workers sharing it keep downloads,
    /// uploads and reports in flight while at most its permits diff.
    cpu: Option<Arc<Semaphore>>,
}

impl DiffWorker {
    /// A diff worker reaching the server through `link`.
    pub fn new(link: Link, lease: Duration) -> DiffWorker {
        DiffWorker {
            link,
            owner: owner_name("diff"),
            lease,
            options: DiffOptions::default(),
            cpu: None,
        }
    }

    /// Computes a diff only while holding a permit of `cpu`, shared with
    /// other workers: more workers than permits overlap one task's
    /// transfers with another's diff.
    pub fn sharing_cpu(mut self, cpu: Arc<Semaphore>) -> DiffWorker {
        self.cpu = Some(cpu);
        self
    }

    /// Leases one diff task and does it. `Ok(false)`: there was no work.
    pub async fn run_once(&self) -> Result<bool, WorkerError> {
        self.queue()
            .run_once("diffing", |task| async move { self.work(&task).await })
            .await
    }

    /// Does diff tasks with up to `slots` in flight (see [`super::pump`])
    /// until `stop` turns true.
    pub async fn pump(self, slots: usize, idle: Duration, stop: watch::Receiver<bool>) {
        let worker = Arc::new(self);
        let leaser = worker.clone();
        let lease = async move |count: u32| leaser.queue().lease(count).await;
        let step = |task: LeasedTask| {
            let worker = worker.clone();
            async move {
                let (q, doer) = (worker.queue(), &worker);
                q.do_task(
                    task,
                    "diffing",
                    |task| async move { doer.work(&task).await },
                )
                .await
            }
        };
        super::pump("diff", slots, lease, step, idle, stop).await;
    }

    fn queue(&self) -> Queue<'_> {
        Queue {
            link: &self.link,
            name: DIFF_QUEUE,
            owner: &self.owner,
            lease: self.lease,
        }
    }

    async fn work(&self, task: &LeasedTask) -> Result<(), WorkerError> {
        let t: DiffTask = serde_json::from_str(&task.payload).map_err(WorkerError::Payload)?;
        let (new, reference) = tokio::try_join!(
            self.link.download(t.build_id, &t.image),
            self.link.download(t.build_id, &t.ref_image),
        )?;
        let mut options = self.options.clone();
        // The regions people drew for this run name in the review UI.
        options.ignore.extend(t.ignore.iter().copied());
        let permit = match &self.cpu {
            Some(cpu) => Some(cpu.clone().acquire_owned().await.ok()),
            None => None,
        };
        let outcome = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let outcome = diff_png_bytes(&reference, &new, &options);
            metrics::histogram!("dpxdt_diff_duration_seconds").record(started.elapsed());
            drop(permit);
            outcome
        })
        .await?;
        let mut report = report_for(t.build_id, &t.release_name, t.release_number, &t.run_name);
        match outcome {
            Ok(outcome) => {
                let log =
                    serde_json::to_vec_pretty(&outcome.report).map_err(WorkerError::Encode)?;
                let log = self.link.upload(t.build_id, "diff.json", log).await?;
                report.diff_log = Some(log);
                report.distortion = Some(outcome.report.distortion.clamp(0.0, 1.0));
                if let Some(png) = outcome.diff_png {
                    let up = self.link.upload(t.build_id, "diff.png", png).await?;
                    report.diff_image = Some(up);
                }
            }
            // A corrupt or oversized image will not get better on retry.
            Err(e) => report.diff_failed = Some(e.to_string()),
        }
        self.queue().report(&report).await
    }
}
