//! The diff worker: diffs a run's image against its reference with the core
//! diff and reports the distortion, the diff image and a JSON log.

use std::time::Duration;

use dpxdt_client::Client;
use dpxdt_core::api::{DIFF_QUEUE, DiffTask, LeasedTask};
use dpxdt_core::diff::{DiffOptions, diff_png_bytes};

use super::{Queue, WorkerError, owner_name, report_for};

/// Leases and does diff tasks.
pub struct DiffWorker {
    client: Client,
    owner: String,
    lease: Duration,
    options: DiffOptions,
}

impl DiffWorker {
    /// A diff worker talking to the server through `client`.
    pub fn new(client: Client, lease: Duration) -> DiffWorker {
        DiffWorker {
            client,
            owner: owner_name("diff"),
            lease,
            options: DiffOptions::default(),
        }
    }

    /// Leases one diff task and does it. `Ok(false)`: there was no work.
    pub async fn run_once(&self) -> Result<bool, WorkerError> {
        self.queue()
            .run_once("diffing", |task| async move { self.work(&task).await })
            .await
    }

    fn queue(&self) -> Queue<'_> {
        Queue {
            client: &self.client,
            name: DIFF_QUEUE,
            owner: &self.owner,
            lease: self.lease,
        }
    }

    async fn work(&self, task: &LeasedTask) -> Result<(), WorkerError> {
        let t: DiffTask = serde_json::from_str(&task.payload).map_err(WorkerError::Payload)?;
        let (new, reference) = tokio::try_join!(
            self.client.download(t.build_id, &t.image),
            self.client.download(t.build_id, &t.ref_image),
        )?;
        let mut options = self.options.clone();
        // The regions people drew for this run name in the review UI.
        options.ignore.extend(t.ignore.iter().copied());
        let outcome =
            tokio::task::spawn_blocking(move || diff_png_bytes(&reference, &new, &options)).await?;
        let mut report = report_for(t.build_id, &t.release_name, t.release_number, &t.run_name);
        match outcome {
            Ok(outcome) => {
                let log =
                    serde_json::to_vec_pretty(&outcome.report).map_err(WorkerError::Encode)?;
                let log = self
                    .client
                    .upload_bytes(t.build_id, "diff.json", log)
                    .await?;
                report.diff_log = Some(log.sha1sum);
                report.distortion = Some(outcome.report.distortion.clamp(0.0, 1.0));
                if let Some(png) = outcome.diff_png {
                    let up = self
                        .client
                        .upload_bytes(t.build_id, "diff.png", png)
                        .await?;
                    report.diff_image = Some(up.sha1sum);
                }
            }
            // A corrupt or oversized image will not get better on retry.
            Err(e) => report.diff_failed = Some(e.to_string()),
        }
        self.queue().report(&report).await
    }
}
