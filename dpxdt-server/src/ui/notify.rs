//! Notifications: when a release reaches review, its build's webhook gets a
//! Slack-compatible JSON POST with the run counts and the release link.
//!
//! A background task polls the database, so no release transition waits on
//! a remote server; a failed call is logged and retried with backoff.

use std::net::SocketAddr;
use std::time::Duration;

use dpxdt_core::RunStatus;

use crate::http::AppState;
use crate::storage::users::{self, DueNotification};

/// How often the notifier looks for releases that reached review.
const POLL: Duration = Duration::from_millis(500);
/// Tries per notification before it is given up.
pub const MAX_ATTEMPTS: i64 = 8;

/// The JSON body: Slack's `text`, plus the same facts as fields.
pub fn body(d: &DueNotification, link: &str) -> serde_json::Value {
    let count = |s: RunStatus| {
        d.counts
            .iter()
            .find(|(x, _)| *x == s)
            .map_or(0, |(_, n)| *n)
    };
    let diffs = count(RunStatus::DiffFound);
    let failed = count(RunStatus::Failed);
    let total: u64 = d.counts.iter().map(|(_, n)| n).sum();
    serde_json::json!({
        "text": format!(
            "Release {} #{} of {} is ready for review: {diffs} diff(s), {failed} failed, {total} run(s). {link}",
            d.name, d.number, d.build_name
        ),
        "build": d.build_name,
        "release_name": d.name,
        "release_number": d.number,
        "diffs": diffs,
        "failed": failed,
        "runs": total,
        "url": link,
    })
}

/// Starts the notifier; it stops when `stop` turns true.
pub fn spawn_notifier(
    state: AppState,
    addr: SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let base = state
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let base = base.trim_end_matches('/').to_string();
    tokio::spawn(async move {
        let http = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "notifier: no HTTP client");
                return;
            }
        };
        loop {
            if let Err(e) = run_once(&state, &http, &base).await {
                tracing::warn!(error = %e, "notifier");
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

/// Sends every due notification once; returns how many were tried.
pub async fn run_once(
    state: &AppState,
    http: &reqwest::Client,
    base: &str,
) -> Result<usize, crate::storage::StoreError> {
    let due = state.store.call(users::due_notifications).await?;
    for d in &due {
        let link = format!(
            "{base}{}",
            crate::storage::results_url_path(d.build_id, &d.name, d.number)
        );
        let result = http.post(&d.webhook_url).json(&body(d, &link)).send().await;
        let error = match result {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("webhook answered {}", r.status())),
            Err(e) => Some(format!("webhook failed: {e}")),
        };
        let retry_at = match &error {
            Some(e) if d.attempts + 1 < MAX_ATTEMPTS => {
                tracing::warn!(release = %d.release_id, error = %e, "notification failed; will retry");
                let backoff = 1000i64 << d.attempts.clamp(0, 8);
                Some(crate::storage::now_ms() + backoff)
            }
            Some(e) => {
                tracing::error!(release = %d.release_id, error = %e, "notification given up");
                None
            }
            None => None,
        };
        let d = d.clone();
        state
            .store
            .call(move |c| users::notification_done(c, &d, error.as_deref(), retry_at))
            .await?;
    }
    Ok(due.len())
}
