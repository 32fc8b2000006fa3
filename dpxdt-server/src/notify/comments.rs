//! Sending the announcements of comments: the build's webhook gets a
//! Slack-compatible JSON POST, each owner's address a plain-text e-mail,
//! with retries and backoff as for releases.

use crate::AppState;
use crate::storage::StoreError;
use crate::storage::comment_notes::{self, DueComment};
use crate::storage::notifications::Channel;

use super::mail::Mailer;
use super::{post_webhook, retry_time, slack_escape};

/// Most characters of a comment quoted in an announcement.
const QUOTED: usize = 500;

/// The comment as quoted: its first [`QUOTED`] characters.
fn quoted(body: &str) -> String {
    let mut out: String = body.chars().take(QUOTED).collect();
    if body.chars().count() > QUOTED {
        out.push('…');
    }
    out
}

/// The JSON body: Slack's `text`, plus the same facts as fields.
pub fn body(d: &DueComment, link: &str) -> serde_json::Value {
    serde_json::json!({
        "text": format!(
            "{} commented on {} (release {} #{} of {}): {} {link}",
            slack_escape(&d.author), slack_escape(&d.run_name), slack_escape(&d.release_name),
            d.release_number, slack_escape(&d.build_name), slack_escape(&quoted(&d.body))
        ),
        "build": d.build_name,
        "release_name": d.release_name,
        "release_number": d.release_number,
        "run_name": d.run_name,
        "author": d.author,
        "comment": d.body,
        "url": link,
    })
}

/// Sends every due announcement of a comment once; how many were tried.
pub(crate) async fn run_once(
    state: &AppState,
    mailer: Option<&Mailer>,
    base: &str,
) -> Result<usize, StoreError> {
    let mail = mailer.is_some();
    let due = state
        .store
        .call(move |c| comment_notes::due(c, mail))
        .await?;
    let n = due.len();
    let sends = due.into_iter().map(|d| send_one(state, mailer, base, d));
    for result in futures_util::future::join_all(sends).await {
        result?;
    }
    Ok(n)
}

async fn send_one(
    state: &AppState,
    mailer: Option<&Mailer>,
    base: &str,
    d: DueComment,
) -> Result<(), StoreError> {
    let link =
        format!(
            "{base}{}&run={}#comment-{}",
            crate::storage::results_url_path(d.build_id, &d.release_name, d.release_number)
                .replacen("/release?", "/run?", 1),
            url::form_urlencoded::byte_serialize(d.run_name.as_bytes()).collect::<String>(),
            d.comment_id
        );
    // (error, permanent)
    let error = match (&d.channel, mailer) {
        (Channel::Webhook(url), _) => post_webhook(state, url, &body(&d, &link)).await,
        (Channel::Mail(to), Some(mailer)) => {
            let subject = format!(
                "[Depicted] {}: {} commented on {}",
                d.build_name, d.author, d.run_name
            );
            let text = format!(
                "{} commented on {} in release {} #{} of build {}:\n\n{}\n\nThe thread:\n{link}\n\n-- \n\
                 Depicted: you get this as an owner of build {}.\n",
                d.author,
                d.run_name,
                d.release_name,
                d.release_number,
                d.build_name,
                quoted(&d.body),
                d.build_name
            );
            mailer
                .send_text(to, &subject, text)
                .await
                .err()
                .map(|e| (e, false))
        }
        // Marked skipped without a mailer; nothing to do.
        (Channel::Mail(_), None) => return Ok(()),
    };
    let retry_at = retry_time(d.attempts, &error);
    match (&error, retry_at) {
        (Some((e, _)), Some(_)) => {
            tracing::warn!(comment = d.comment_id, error = %e, "comment notification failed; will retry")
        }
        (Some((e, _)), None) => {
            tracing::error!(comment = d.comment_id, error = %e, "comment notification given up")
        }
        (None, _) => {}
    }
    let error = error.map(|(e, _)| e);
    state
        .store
        .call(move |c| comment_notes::done(c, &d, error.as_deref(), retry_at))
        .await
}
