//! Notifications: when a release reaches review, its build's webhook gets a
//! Slack-compatible JSON POST, and (when the server has SMTP) each owner
//! with an e-mail address gets a message, all with the run counts and the
//! release link.
//!
//! A background task polls the database, so no release transition waits on
//! a remote server. Every channel (the webhook, each address) is a row of
//! its own: sent concurrently, and on failure logged and retried with
//! backoff independently of the others.

use std::net::SocketAddr;
use std::time::Duration;

use dpxdt_core::RunStatus;

use super::mail::Mailer;
use crate::http::AppState;
use crate::storage::users::{self, Channel, DueNotification};

/// How often the notifier looks for releases that reached review.
const POLL: Duration = Duration::from_millis(500);
/// Tries per notification before it is given up.
pub const MAX_ATTEMPTS: i64 = 8;

/// The counts a notification tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Runs with a diff found.
    pub diffs: u64,
    /// Runs that failed.
    pub failed: u64,
    /// All runs.
    pub runs: u64,
}

impl Counts {
    /// The counts of `d`'s release.
    pub fn of(d: &DueNotification) -> Counts {
        let count = |s: RunStatus| {
            d.counts
                .iter()
                .find(|(x, _)| *x == s)
                .map_or(0, |(_, n)| *n)
        };
        Counts {
            diffs: count(RunStatus::DiffFound),
            failed: count(RunStatus::Failed),
            runs: d.counts.iter().map(|(_, n)| n).sum(),
        }
    }
}

/// The JSON body: Slack's `text`, plus the same facts as fields.
pub fn body(d: &DueNotification, link: &str) -> serde_json::Value {
    let Counts {
        diffs,
        failed,
        runs: total,
    } = Counts::of(d);
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
        let mailer = state.config.mail.as_ref().map(Mailer::new);
        if let Some(m) = &state.config.mail {
            tracing::info!(smtp = ?m, "e-mail notifications on");
        }
        loop {
            if let Err(e) = run_once(&state, &http, mailer.as_ref(), &base).await {
                tracing::warn!(error = %e, "notifier");
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

/// Sends every due notification once, all channels concurrently; returns
/// how many were tried. Without a mailer no e-mail is queued or sent.
pub(crate) async fn run_once(
    state: &AppState,
    http: &reqwest::Client,
    mailer: Option<&Mailer>,
    base: &str,
) -> Result<usize, crate::storage::StoreError> {
    let mail = mailer.is_some();
    let due = state
        .store
        .call(move |c| users::due_notifications(c, mail))
        .await?;
    let n = due.len();
    let sends = due
        .into_iter()
        .map(|d| send_one(state, http, mailer, base, d));
    for result in futures_util::future::join_all(sends).await {
        result?;
    }
    Ok(n)
}

/// Sends one notification and records the outcome.
async fn send_one(
    state: &AppState,
    http: &reqwest::Client,
    mailer: Option<&Mailer>,
    base: &str,
    d: DueNotification,
) -> Result<(), crate::storage::StoreError> {
    let link = format!(
        "{base}{}",
        crate::storage::results_url_path(d.build_id, &d.name, d.number)
    );
    // (error, permanent)
    let error = match (&d.channel, mailer) {
        (Channel::Webhook(url), _) => match http.post(url).json(&body(&d, &link)).send().await {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some((format!("webhook answered {}", r.status()), false)),
            Err(e) => Some((format!("webhook failed: {e}"), false)),
        },
        (Channel::Mail(to), Some(mailer)) => match mailer.send(&d, to, &link).await {
            Ok(()) => None,
            Err(e) => Some((e.message, e.permanent)),
        },
        // Not queued without a mailer.
        (Channel::Mail(_), None) => return Ok(()),
    };
    let channel = match &d.channel {
        // A webhook URL is often a secret: not in the log.
        Channel::Webhook(_) => "webhook".to_string(),
        Channel::Mail(to) => format!("mail to {to}"),
    };
    let retry_at = match &error {
        Some((e, false)) if d.attempts + 1 < MAX_ATTEMPTS => {
            tracing::warn!(release = %d.release_id, %channel, error = %e, "notification failed; will retry");
            let backoff = 1000i64 << d.attempts.clamp(0, 8);
            Some(crate::storage::now_ms() + backoff)
        }
        Some((e, _)) => {
            tracing::error!(release = %d.release_id, %channel, error = %e, "notification given up");
            None
        }
        None => None,
    };
    let error = error.map(|(e, _)| e);
    state
        .store
        .call(move |c| users::notification_done(c, &d, error.as_deref(), retry_at))
        .await
}
