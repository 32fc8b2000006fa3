//! The activity log: who did what to a build (verdicts, settings, keys,
//! owners), newest first on the build page.

use crate::storage::db::{Db, params};
use dpxdt_core::BuildId;

use super::users::UserRow;
use super::{StoreError, now_ms};

/// One entry of a build's activity log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// What happened (`create_build`, `run_approve`, ...).
    pub log_type: String,
    /// Details.
    pub message: String,
    /// Who did it, if a person did.
    pub user: Option<String>,
    /// When, ms since the epoch.
    pub created: i64,
}

/// Logs that `user` did something to `build` (e.g. created an API key).
pub fn log_action(
    conn: &mut Db,
    build: BuildId,
    user: &UserRow,
    log_type: &str,
    message: &str,
) -> Result<(), StoreError> {
    log_in(conn, build, Some(user.id), log_type, message)
}

pub(crate) fn log_in(
    conn: &Db,
    build: BuildId,
    user: Option<i64>,
    log_type: &str,
    message: &str,
) -> Result<(), StoreError> {
    log_by(conn, build, user, None, log_type, message)
}

/// Logs what a person (`user`) or an API key (`key`) did to `build`.
pub(crate) fn log_by(
    conn: &Db,
    build: BuildId,
    user: Option<i64>,
    key: Option<&str>,
    log_type: &str,
    message: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO admin_log (build_id, user_id, api_key_id, log_type, message, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![build.0, user, key, log_type, message, now_ms()],
    )?;
    Ok(())
}

/// The newest `limit` entries of a build's activity log.
pub fn list_log(conn: &Db, build: BuildId, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT l.log_type, l.message, COALESCE(u.name, 'API key ' || l.api_key_id), l.created
         FROM admin_log l
         LEFT JOIN user u ON u.id = l.user_id
         WHERE l.build_id = ?1 ORDER BY l.id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![build.0, limit], |r| {
        Ok(LogEntry {
            log_type: r.get(0)?,
            message: r.get(1)?,
            user: r.get(2)?,
            created: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
