//! How a worker reaches the server: over HTTP with an API key (a
//! `dpxdt-server worker` on another machine), or by direct calls into the
//! store (the workers inside the server process), under the same rules:
//! a lease is held by its owner alone, a worker touches only the builds,
//! runs and artifacts of tasks it holds, and uploads pass the same checks.

use std::path::Path;
use std::time::Duration;

use dpxdt_client::{Client, ClientError};
use dpxdt_core::api::{HeartbeatRequest, LeasedTask, ReportRunRequest};
use dpxdt_core::{ArtifactId, BuildId, TaskId};
use tokio::io::AsyncWriteExt;

use crate::storage::uploads::{Staged, TempFile, content_type, put_upload};
use crate::storage::{self, Limits, Store, StoreError, queue};

/// A worker's way to the server.
#[derive(Clone)]
pub enum Link {
    /// Through the API, as any client.
    Http(Client),
    /// Direct calls into this process's store.
    Local(Local),
}

/// The store of the server this worker runs in, and the limits its API
/// would apply.
#[derive(Clone)]
pub struct Local {
    store: Store,
    limits: Limits,
    upload_limit: u64,
}

/// What in-process workers' lease owners start with, as a worker key's
/// start with its id: the mark [`queue::worker_holds`] looks for. No API
/// key id has a `-`, so no key can pass for them.
const LOCAL_OWNER: &str = "in-process";

/// How a refusal names them.
const WHO: &str = "the in-process workers hold";

impl Local {
    /// Direct calls into `store`, refusing uploads over `upload_limit`
    /// bytes and holding builds to `limits`, as the API does.
    pub fn new(store: Store, limits: Limits, upload_limit: u64) -> Local {
        Local {
            store,
            limits,
            upload_limit,
        }
    }

    fn owner(owner: &str) -> String {
        format!("{LOCAL_OWNER}/{owner}")
    }

    /// Refuses to act for a build (and run) none of whose tasks this
    /// process's workers hold, as the API refuses a worker key.
    async fn check_holds(
        &self,
        build: BuildId,
        run: Option<(String, i64, String)>,
    ) -> Result<(), StoreError> {
        self.store
            .call(move |c| {
                let run = run.as_ref().map(|(r, n, u)| (r.as_str(), *n, u.as_str()));
                queue::require_worker_holds(c, LOCAL_OWNER, WHO, build, run)
            })
            .await
    }
}

/// Why a call over a [`Link`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The API call failed (after the client's own retries).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LinkError {
    /// Whether the server said the thing asked about is gone or has moved
    /// on (the API's 404 and 409): a report no longer needed, a lease
    /// that is someone else's now.
    pub fn is_moot(&self) -> bool {
        match self {
            LinkError::Client(e) => matches!(e.status(), Some(404 | 409)),
            LinkError::Store(e) => matches!(e, StoreError::NotFound(_) | StoreError::Conflict(_)),
        }
    }
}

/// Writes `bytes` to a new temp file at `path`, 0600 and fsynced.
async fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut out = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await?;
    out.write_all(bytes).await?;
    out.sync_all().await
}

impl Link {
    /// Leases up to `count` tasks of `queue` for `length`.
    pub async fn lease(
        &self,
        queue_name: &str,
        owner: &str,
        count: u32,
        length: Duration,
    ) -> Result<Vec<LeasedTask>, LinkError> {
        match self {
            Link::Http(c) => Ok(c.lease(queue_name, owner, count, length).await?),
            Link::Local(l) => {
                let (q, owner) = (queue_name.to_string(), Local::owner(owner));
                let secs = length.as_secs().max(1);
                Ok(l.store
                    .call(move |c| {
                        queue::lease(c, &q, &owner, count, secs, storage::fail_run_for_task)
                    })
                    .await?)
            }
        }
    }

    /// Says the work on a leased task goes on, and extends its lease.
    pub async fn heartbeat(
        &self,
        queue_name: &str,
        hb: &HeartbeatRequest,
    ) -> Result<(), LinkError> {
        match self {
            Link::Http(c) => Ok(c.heartbeat(queue_name, hb).await?),
            Link::Local(l) => {
                let (q, hb) = (queue_name.to_string(), hb.clone());
                l.store
                    .call(move |c| {
                        let owner = Local::owner(&hb.owner);
                        queue::heartbeat(
                            c,
                            &q,
                            hb.task_id,
                            &owner,
                            &hb.message,
                            hb.index,
                            hb.timeout,
                        )
                    })
                    .await?;
                Ok(())
            }
        }
    }

    /// Ends a leased task: done, or failed with `error` (tried again).
    pub async fn finish(
        &self,
        queue_name: &str,
        task: TaskId,
        owner: &str,
        error: Option<&str>,
    ) -> Result<(), LinkError> {
        match self {
            Link::Http(c) => Ok(c.finish(queue_name, task, owner, error).await?),
            Link::Local(l) => {
                let (q, owner) = (queue_name.to_string(), Local::owner(owner));
                let error = error.map(str::to_string);
                Ok(l.store
                    .call(move |c| {
                        queue::finish(
                            c,
                            &q,
                            task,
                            &owner,
                            error.as_deref(),
                            storage::fail_run_for_task,
                        )
                    })
                    .await?)
            }
        }
    }

    /// The bytes of an artifact a leased task of `build` names.
    pub async fn download(&self, build: BuildId, id: &ArtifactId) -> Result<Vec<u8>, LinkError> {
        let l = match self {
            Link::Http(c) => return Ok(c.download(build, id).await?),
            Link::Local(l) => l,
        };
        let artifact = id.clone();
        let found = l
            .store
            .call(move |c| {
                queue::require_worker_may_download(c, LOCAL_OWNER, WHO, build, &artifact)?;
                storage::artifact_owned(c, build, &artifact)
            })
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound(format!("build {build} has no artifact {id}")).into());
        }
        let bytes = l.store.artifacts().read_small(id, u64::MAX).await;
        let bytes = bytes
            .map_err(StoreError::Io)?
            .ok_or_else(|| StoreError::NotFound(format!("the bytes of artifact {id} are gone")))?;
        metrics::counter!("dpxdt_artifact_bytes_read_total").increment(bytes.len() as u64);
        Ok(bytes)
    }

    /// Stores `bytes` as an artifact of `build` named `file_name` (which
    /// gives its content type) and returns its id.
    pub async fn upload(
        &self,
        build: BuildId,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<ArtifactId, LinkError> {
        let l = match self {
            Link::Http(c) => return Ok(c.upload_bytes(build, file_name, bytes).await?.sha1sum),
            Link::Local(l) => l,
        };
        if bytes.len() as u64 > l.upload_limit {
            return Err(StoreError::OverLimit(format!(
                "upload {file_name:?} is larger than the limit of {} bytes",
                l.upload_limit
            ))
            .into());
        }
        l.check_holds(build, None).await?;
        let id = ArtifactId::of_bytes(&bytes);
        let mut temp = TempFile(Some(l.store.artifacts().temp_path()));
        let path = temp.0.clone().unwrap_or_default();
        write_temp(&path, &bytes).await.map_err(StoreError::Io)?;
        let kind = content_type(Some(file_name), None, &bytes);
        let what = format!("upload {file_name:?}");
        let staged = Staged {
            temp: &path,
            id: &id,
            size: bytes.len() as u64,
            content_type: &kind,
            what: &what,
        };
        put_upload(&l.store, &l.limits, build, staged).await?;
        // In place now: the temp file was renamed or removed.
        temp.0 = None;
        Ok(id)
    }

    /// Reports a run's results (`report_run`).
    pub async fn report_run(&self, report: &ReportRunRequest) -> Result<(), LinkError> {
        let l = match self {
            Link::Http(c) => return Ok(c.report_run(report).await?),
            Link::Local(l) => l,
        };
        let run = (
            report.release_name.clone(),
            report.release_number,
            report.run_name.clone(),
        );
        l.check_holds(report.build_id, Some(run)).await?;
        let (report, limits) = (report.clone(), l.limits);
        l.store
            .call(move |c| storage::report_run(c, &report, &limits))
            .await?;
        Ok(())
    }
}
