//! Work-queue endpoints used by workers: `add`, `lease`, `heartbeat`,
//! `finish` and `cancel` under `work_queue/<queue>/`.

use std::time::Duration;

use dpxdt_core::TaskId;
use dpxdt_core::api::{
    AddTaskRequest, AddTaskResponse, CancelTaskRequest, FinishRequest, HeartbeatRequest,
    LeaseRequest, LeaseResponse, LeasedTask, SuccessResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// Adds a task with a JSON payload to a queue; returns its id.
    pub async fn add_task(
        &self,
        queue: &str,
        payload: &str,
        max_attempts: Option<u32>,
    ) -> Result<TaskId, ClientError> {
        let request = AddTaskRequest {
            payload: payload.to_string(),
            max_attempts,
        };
        let response: AddTaskResponse = self.queue_call(queue, "add", &request).await?;
        Ok(response.task_id)
    }

    /// Leases up to `count` tasks whose time has come, for `lease` (whole
    /// seconds, at least one). An empty list means there is no work.
    ///
    /// ```no_run
    /// # async fn demo(client: dpxdt_client::Client) -> Result<(), dpxdt_client::ClientError> {
    /// use std::time::Duration;
    /// use dpxdt_core::api::CAPTURE_QUEUE;
    /// for task in client.lease(CAPTURE_QUEUE, "worker-1", 1, Duration::from_secs(60)).await? {
    ///     // ... do the work, heartbeat now and then ...
    ///     client.finish(CAPTURE_QUEUE, task.task_id, "worker-1", None).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn lease(
        &self,
        queue: &str,
        owner: &str,
        count: u32,
        lease: Duration,
    ) -> Result<Vec<LeasedTask>, ClientError> {
        let request = LeaseRequest {
            owner: owner.to_string(),
            count,
            timeout: lease.as_secs().max(1),
        };
        let response: LeaseResponse = self.queue_call(queue, "lease", &request).await?;
        Ok(response.tasks)
    }

    /// Reports progress on a leased task and extends its lease.
    pub async fn heartbeat(
        &self,
        queue: &str,
        request: &HeartbeatRequest,
    ) -> Result<(), ClientError> {
        self.queue_call::<_, SuccessResponse>(queue, "heartbeat", request)
            .await
            .map(|_| ())
    }

    /// Finishes a leased task; with `error` it failed and is retried until
    /// its attempts run out.
    pub async fn finish(
        &self,
        queue: &str,
        task_id: TaskId,
        owner: &str,
        error: Option<&str>,
    ) -> Result<(), ClientError> {
        let request = FinishRequest {
            task_id,
            owner: owner.to_string(),
            error: error.map(str::to_string),
        };
        self.queue_call::<_, SuccessResponse>(queue, "finish", &request)
            .await
            .map(|_| ())
    }

    /// Cancels a live task.
    pub async fn cancel_task(&self, queue: &str, task_id: TaskId) -> Result<(), ClientError> {
        let request = CancelTaskRequest { task_id };
        self.queue_call::<_, SuccessResponse>(queue, "cancel", &request)
            .await
            .map(|_| ())
    }

    async fn queue_call<Q: Serialize, T: DeserializeOwned>(
        &self,
        queue: &str,
        action: &str,
        form: &Q,
    ) -> Result<T, ClientError> {
        check_queue_name(queue)?;
        self.post_form(&format!("work_queue/{queue}/{action}"), form)
            .await
    }
}

/// Queue names travel in the URL path: only plain words are accepted.
fn check_queue_name(queue: &str) -> Result<(), ClientError> {
    let plain = !queue.is_empty()
        && queue.len() <= 64
        && queue
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(ClientError::InvalidArgument {
            what: "queue name",
            reason: format!("{queue:?} is not made of letters, digits, '-' and '_'"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_plain_words() {
        assert!(check_queue_name("capture").is_ok());
        assert!(check_queue_name("run-pdiff").is_ok());
        for bad in ["", "a/b", "..", "x y", "q?x=1"] {
            assert!(check_queue_name(bad).is_err(), "{bad:?}");
        }
    }
}
