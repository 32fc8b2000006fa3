//! Notification rows: a build's webhook URL, and one row per channel
//! (the webhook, each owner's e-mail address) per release that reached
//! review, with its attempts, so each channel is retried on its own.

use crate::storage::db::{Db, OptionalExtension, Row, params};
use dpxdt_core::{BuildId, ReleaseId, RunStatus};

use super::activity::log_in;
use super::users::UserRow;
use super::{StoreError, now_ms, write_tx};

/// Where one notification goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// A JSON POST to the build's webhook URL.
    Webhook(String),
    /// An e-mail to one owner's address.
    Mail(String),
}

/// A notification (one channel of one release) that is due.
#[derive(Debug, Clone, PartialEq)]
pub struct DueNotification {
    /// The release.
    pub release_id: ReleaseId,
    /// Its build.
    pub build_id: BuildId,
    /// The build's name.
    pub build_name: String,
    /// Release name.
    pub name: String,
    /// Attempt number.
    pub number: i64,
    /// Where it goes.
    pub channel: Channel,
    /// Failed tries so far.
    pub attempts: i64,
    /// Run counts per state.
    pub counts: Vec<(RunStatus, u64)>,
    /// The release's branch and commit, when its client named them.
    pub branch: Option<String>,
    /// The commit.
    pub commit_sha: Option<String>,
}

/// The webhook URL of a build, if it has one.
pub fn webhook_url(conn: &Db, build: BuildId) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT webhook_url FROM build WHERE id = ?1",
            [build.0],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten()
        .filter(|u| !u.is_empty()))
}

/// Sets (or with `""` clears) a build's webhook URL; only http and https.
pub fn set_webhook_url(
    conn: &mut Db,
    build: BuildId,
    user: &UserRow,
    url: &str,
) -> Result<(), StoreError> {
    if !url.is_empty() {
        let parsed = url::Url::parse(url)
            .map_err(|e| StoreError::Invalid(format!("webhook URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(StoreError::Invalid(format!(
                "webhook URL {url:?} must be http or https"
            )));
        }
    }
    let tx = write_tx(conn)?;
    tx.execute(
        "UPDATE build SET webhook_url = ?1, modified = ?2 WHERE id = ?3",
        params![(!url.is_empty()).then_some(url), now_ms(), build.0],
    )?;
    log_in(
        &tx,
        build,
        Some(user.id),
        "settings",
        &format!("webhook {url:?}"),
    )?;
    tx.commit()?;
    Ok(())
}

/// Queues the notifications of every release that reached review and has
/// none yet, then returns those due (at most 20 per channel kind).
///
/// A release gets one `notification` row (the webhook's; `skipped` when its
/// build has none) and, when `mail` is on (the server has SMTP), one
/// `mail_notification` row per owner with an e-mail address. Each row is
/// sent, retried and given up on its own.
pub fn due_notifications(conn: &mut Db, mail: bool) -> Result<Vec<DueNotification>, StoreError> {
    let now = now_ms();
    let tx = write_tx(conn)?;
    if mail {
        // Before the webhook rows: those mark a release as announced.
        tx.execute(
            "INSERT OR IGNORE INTO mail_notification (release_id, address, status, next_try, created)
             SELECT r.id, u.email, 'pending', ?1, ?1
             FROM release r JOIN build_owner o ON o.build_id = r.build_id JOIN user u ON u.id = o.user_id
             WHERE r.status = 'reviewing' AND u.email IS NOT NULL AND u.email != ''
               AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.release_id = r.id)",
            [now],
        )?;
    }
    tx.execute(
        "INSERT INTO notification (release_id, status, next_try, created)
         SELECT r.id,
                CASE WHEN b.webhook_url IS NULL OR b.webhook_url = '' THEN 'skipped' ELSE 'pending' END,
                ?1, ?1
         FROM release r JOIN build b ON b.id = r.build_id
         WHERE r.status = 'reviewing'
           AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.release_id = r.id)",
        [now],
    )?;
    tx.commit()?;
    let mut due = Vec::new();
    let row = |r: &Row, channel: fn(String) -> Channel| {
        Ok(DueNotification {
            release_id: ReleaseId(r.get(0)?),
            build_id: BuildId(r.get(1)?),
            build_name: r.get(2)?,
            name: r.get(3)?,
            number: r.get(4)?,
            channel: channel(r.get(5)?),
            attempts: r.get(6)?,
            counts: Vec::new(),
            branch: r.get(7)?,
            commit_sha: r.get(8)?,
        })
    };
    let mut stmt = conn.prepare(
        "SELECT r.id, b.id, b.name, r.name, r.number, b.webhook_url, n.attempts, r.branch, r.commit_sha
         FROM notification n JOIN release r ON r.id = n.release_id JOIN build b ON b.id = r.build_id
         WHERE n.status = 'pending' AND n.next_try <= ?1 AND b.webhook_url IS NOT NULL
         ORDER BY n.next_try LIMIT 20",
    )?;
    for d in stmt.query_map([now], |r| row(r, Channel::Webhook))? {
        due.push(d?);
    }
    if mail {
        let mut stmt = conn.prepare(
            "SELECT r.id, b.id, b.name, r.name, r.number, m.address, m.attempts, r.branch, r.commit_sha
             FROM mail_notification m JOIN release r ON r.id = m.release_id JOIN build b ON b.id = r.build_id
             WHERE m.status = 'pending' AND m.next_try <= ?1
             ORDER BY m.next_try LIMIT 20",
        )?;
        for d in stmt.query_map([now], |r| row(r, Channel::Mail))? {
            due.push(d?);
        }
    }
    let mut counts =
        conn.prepare("SELECT status, COUNT(*) FROM run WHERE release_id = ?1 GROUP BY status")?;
    for d in &mut due {
        for c in counts.query_map([d.release_id.0], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (s, n) = c?;
            if let Ok(s) = s.parse::<RunStatus>() {
                d.counts.push((s, n as u64));
            }
        }
    }
    Ok(due)
}

/// Records the outcome of one notification (webhook call or e-mail): sent,
/// retried at `retry_at`, or given up (`retry_at` = `None` with an error).
/// Each outcome is in the build's activity log (`notify_webhook` or
/// `notify_mail`, `notify_retry`, `notify_failed`).
pub fn notification_done(
    conn: &mut Db,
    d: &DueNotification,
    error: Option<&str>,
    retry_at: Option<i64>,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let (status, log_type) = match (error, retry_at, &d.channel) {
        (None, _, Channel::Webhook(_)) => ("sent", "notify_webhook"),
        (None, _, Channel::Mail(_)) => ("sent", "notify_mail"),
        (Some(_), Some(_), _) => ("pending", "notify_retry"),
        (Some(_), None, _) => ("failed", "notify_failed"),
    };
    let attempts = i64::from(error.is_some());
    let next_try = retry_at.unwrap_or(0);
    let to = match &d.channel {
        Channel::Webhook(_) => {
            tx.execute(
                "UPDATE notification SET status = ?1, attempts = attempts + ?2, next_try = ?3,
                 last_error = ?4 WHERE release_id = ?5",
                params![status, attempts, next_try, error, d.release_id.0],
            )?;
            String::new()
        }
        Channel::Mail(address) => {
            tx.execute(
                "UPDATE mail_notification SET status = ?1, attempts = attempts + ?2, next_try = ?3,
                 last_error = ?4 WHERE release_id = ?5 AND address = ?6",
                params![status, attempts, next_try, error, d.release_id.0, address],
            )?;
            format!(" to {address}")
        }
    };
    let msg = format!(
        "{} #{}{to}{}",
        d.name,
        d.number,
        error.map(|e| format!(": {e}")).unwrap_or_default()
    );
    log_in(&tx, d.build_id, None, log_type, &msg)?;
    tx.commit()?;
    Ok(())
}
