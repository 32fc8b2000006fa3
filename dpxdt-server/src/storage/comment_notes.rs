//! Announcing comments: each new comment on a run is queued for its
//! build's webhook and for the e-mail address of each owner but its
//! author, then sent by the notifier with retries, like release
//! notifications.

use dpxdt_core::BuildId;

use super::activity::log_in;
use super::db::{Db, Row, Tx, params};
use super::notifications::Channel;
use super::{StoreError, now_ms, write_tx};

/// Queues the announcements of comment `comment` on a run of `build`,
/// written by the user `author` (none for an API key): the webhook, when
/// the build has one, and every owner's address but the author's.
pub(crate) fn queue(
    tx: &Tx<'_>,
    comment: i64,
    build: BuildId,
    author: Option<i64>,
) -> Result<(), StoreError> {
    let now = now_ms();
    // Parameters in a SELECT list have no type in PostgreSQL: cast.
    tx.execute(
        "INSERT INTO comment_notification (comment_id, channel, status, next_try, created)
         SELECT CAST(?1 AS BIGINT), 'webhook', 'pending', CAST(?2 AS BIGINT), CAST(?2 AS BIGINT)
         FROM build
         WHERE id = ?3 AND webhook_url IS NOT NULL AND webhook_url != ''",
        params![comment, now, build.0],
    )?;
    tx.execute(
        "INSERT INTO comment_notification (comment_id, channel, status, next_try, created)
         SELECT DISTINCT CAST(?1 AS BIGINT), 'mail:' || u.email, 'pending', CAST(?2 AS BIGINT),
                CAST(?2 AS BIGINT)
         FROM build_owner o JOIN user u ON u.id = o.user_id
         WHERE o.build_id = ?3 AND u.email IS NOT NULL AND u.email != ''
           AND u.disabled = 0 AND (CAST(?4 AS BIGINT) IS NULL OR u.id != ?4)",
        params![comment, now, build.0, author],
    )?;
    Ok(())
}

/// One announcement of a comment that is due.
#[derive(Debug, Clone, PartialEq)]
pub struct DueComment {
    /// The comment.
    pub comment_id: i64,
    /// Its build, and the build's name.
    pub build_id: BuildId,
    /// The build's name.
    pub build_name: String,
    /// The release's name and number.
    pub release_name: String,
    /// The release's number.
    pub release_number: i64,
    /// The run.
    pub run_name: String,
    /// Who wrote it.
    pub author: String,
    /// What they wrote.
    pub body: String,
    /// Where it goes.
    pub channel: Channel,
    /// Failed tries so far.
    pub attempts: i64,
}

/// The due announcements (at most 20). Without mail, e-mail ones are
/// marked skipped instead.
pub fn due(conn: &mut Db, mail: bool) -> Result<Vec<DueComment>, StoreError> {
    let now = now_ms();
    if !mail {
        conn.execute(
            "UPDATE comment_notification SET status = 'skipped'
             WHERE status = 'pending' AND channel LIKE 'mail:%'",
            [],
        )?;
    }
    let mut stmt = conn.prepare(
        "SELECT n.comment_id, b.id, b.name, rel.name, rel.number, r.name, c.author, c.body,
                n.channel, b.webhook_url, n.attempts
         FROM comment_notification n
         JOIN run_comment c ON c.id = n.comment_id
         JOIN run r ON r.id = c.run_id
         JOIN release rel ON rel.id = r.release_id
         JOIN build b ON b.id = rel.build_id
         WHERE n.status = 'pending' AND n.next_try <= ?1
         ORDER BY n.next_try LIMIT 20",
    )?;
    let rows = stmt.query_map([now], |r: &Row| {
        let channel: String = r.get(8)?;
        let hook: Option<String> = r.get(9)?;
        Ok((
            DueComment {
                comment_id: r.get(0)?,
                build_id: BuildId(r.get(1)?),
                build_name: r.get(2)?,
                release_name: r.get(3)?,
                release_number: r.get(4)?,
                run_name: r.get(5)?,
                author: r.get(6)?,
                body: r.get(7)?,
                channel: Channel::Webhook(String::new()),
                attempts: r.get(10)?,
            },
            channel,
            hook,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut d, channel, hook) = row?;
        d.channel = match (channel.strip_prefix("mail:"), hook) {
            (Some(address), _) => Channel::Mail(address.to_string()),
            (None, Some(url)) if !url.is_empty() => Channel::Webhook(url),
            // The webhook was removed since: nothing to send.
            (None, _) => {
                conn.execute(
                    "UPDATE comment_notification SET status = 'skipped'
                     WHERE comment_id = ?1 AND channel = 'webhook'",
                    [d.comment_id],
                )?;
                continue;
            }
        };
        out.push(d);
    }
    Ok(out)
}

/// Records the outcome of one announcement: sent, retried at `retry_at`,
/// or given up (with an error and no retry), in the build's activity log
/// too.
pub fn done(
    conn: &mut Db,
    d: &DueComment,
    error: Option<&str>,
    retry_at: Option<i64>,
) -> Result<(), StoreError> {
    let (status, log_type) = match (error, retry_at) {
        (None, _) => ("sent", "notify_comment"),
        (Some(_), Some(_)) => ("pending", "notify_retry"),
        (Some(_), None) => ("failed", "notify_failed"),
    };
    let (channel, to) = match &d.channel {
        Channel::Webhook(_) => ("webhook".to_string(), "webhook".to_string()),
        Channel::Mail(address) => (format!("mail:{address}"), format!("mail to {address}")),
    };
    let tx = write_tx(conn)?;
    tx.execute(
        "UPDATE comment_notification SET status = ?1, attempts = attempts + ?2, next_try = ?3,
             last_error = ?4 WHERE comment_id = ?5 AND channel = ?6",
        params![
            status,
            i64::from(error.is_some()),
            retry_at.unwrap_or(0),
            error,
            d.comment_id,
            channel
        ],
    )?;
    let msg = format!(
        "comment on {} in {} #{} ({to}){}",
        d.run_name,
        d.release_name,
        d.release_number,
        error.map(|e| format!(": {e}")).unwrap_or_default()
    );
    log_in(&tx, d.build_id, None, log_type, &msg)?;
    tx.commit()?;
    Ok(())
}
