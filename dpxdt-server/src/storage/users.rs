//! What people (not API keys) own and do: user accounts, build ownership and
//! access, the lists the review UI shows, run verdicts and the activity log.
//!
//! Access is decided here in one place ([`build_access`]): owners and
//! superusers may do everything on a build, anyone may read a public build,
//! nobody else learns that a private build exists.

use dpxdt_core::{BuildId, ReleaseId, ReleaseStatus, RunEvent, RunStatus};
use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, now_ms, write_tx};

/// A stored user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Argon2 PHC string; `None` when no password was ever set.
    pub password_hash: Option<String>,
    /// Superusers may see and change every build.
    pub superuser: bool,
}

/// What a person may do with a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Nothing; the build must look as if it did not exist.
    None,
    /// Read (a public build).
    Read,
    /// Everything (an owner or a superuser).
    Owner,
}

/// A build as the UI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// Database id.
    pub id: BuildId,
    /// Its name.
    pub name: String,
    /// Readable by anyone.
    pub public: bool,
    /// The build's API keys may mark its releases good or bad (off by
    /// default: a verdict is a person's).
    pub key_verdicts: bool,
}

/// A release with how many of its runs are in each state.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseSummary {
    /// Database id.
    pub id: ReleaseId,
    /// Release name.
    pub name: String,
    /// Attempt number.
    pub number: i64,
    /// Its state.
    pub status: ReleaseStatus,
    /// Creation time, ms since the epoch.
    pub created: i64,
    /// Run counts per state, only states with at least one run.
    pub counts: Vec<(RunStatus, u64)>,
}

/// An API key as the build page lists it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// The key id.
    pub id: String,
    /// What it is for.
    pub purpose: String,
    /// Not revoked.
    pub active: bool,
    /// Creation time, ms since the epoch.
    pub created: i64,
}

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

/// The artifact holding the thumbnail cached under `key`, if any.
pub fn find_thumbnail(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT thumb_id FROM thumbnail WHERE source_key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records that the thumbnail cached under `key` is artifact `thumb`
/// (whose bytes are already in place).
pub fn save_thumbnail(
    conn: &mut Connection,
    key: &str,
    thumb: &dpxdt_core::ArtifactId,
    size: i64,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    tx.execute(
        "INSERT OR IGNORE INTO artifact (id, content_type, size, created) VALUES (?1, 'image/png', ?2, ?3)",
        params![thumb.as_str(), size, now_ms()],
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO thumbnail (source_key, thumb_id) VALUES (?1, ?2)",
        params![key, thumb.as_str()],
    )?;
    tx.commit()?;
    Ok(())
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        name: r.get(1)?,
        password_hash: r.get(2)?,
        superuser: r.get(3)?,
    })
}

/// Checks a user name: 1 to 64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn validate_user_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "user name {name:?} must be 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

/// The user called `name`.
pub fn find_user(conn: &Connection, name: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, name, password_hash, superuser FROM user WHERE name = ?1",
            [name],
            user_from_row,
        )
        .optional()?)
}

/// Creates a user, or sets the password of an existing one (e.g. the
/// `admin` account created at first start without a password).
pub fn upsert_user(
    conn: &mut Connection,
    name: &str,
    password_hash: &str,
    superuser: bool,
) -> Result<i64, StoreError> {
    validate_user_name(name)?;
    let tx = write_tx(conn)?;
    let id = match find_user(&tx, name)? {
        Some(u) => {
            tx.execute(
                "UPDATE user SET password_hash = ?1, superuser = (superuser OR ?2) WHERE id = ?3",
                params![password_hash, superuser, u.id],
            )?;
            // A new password logs every browser out (it may be why it changed).
            super::sessions::delete_user_sessions(&tx, u.id)?;
            u.id
        }
        None => {
            tx.execute(
                "INSERT INTO user (name, password_hash, superuser, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, password_hash, superuser, now_ms()],
            )?;
            tx.last_insert_rowid()
        }
    };
    tx.commit()?;
    Ok(id)
}

/// What `user` (`None`: not logged in) may do with `build`;
/// [`Access::None`] also for a build that does not exist.
pub fn build_access(
    conn: &Connection,
    build: BuildId,
    user: Option<&UserRow>,
) -> Result<(Option<BuildInfo>, Access), StoreError> {
    let Some(info) = build_info(conn, build)? else {
        return Ok((None, Access::None));
    };
    let access = match user {
        Some(u) if u.superuser => Access::Owner,
        Some(u) if is_owner(conn, build, u.id)? => Access::Owner,
        _ if info.public => Access::Read,
        _ => Access::None,
    };
    if access == Access::None {
        return Ok((None, Access::None));
    }
    Ok((Some(info), access))
}

fn is_owner(conn: &Connection, build: BuildId, user: i64) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM build_owner WHERE build_id = ?1 AND user_id = ?2",
            params![build.0, user],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Build `build`, if it exists.
pub fn build_info(conn: &Connection, build: BuildId) -> Result<Option<BuildInfo>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, name, public, key_verdicts FROM build WHERE id = ?1",
            [build.0],
            |r| {
                Ok(BuildInfo {
                    id: BuildId(r.get(0)?),
                    name: r.get(1)?,
                    public: r.get(2)?,
                    key_verdicts: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// Creates a build owned by `user` and logs it.
pub fn create_owned_build(
    conn: &mut Connection,
    user: &UserRow,
    name: &str,
    public: bool,
) -> Result<BuildId, StoreError> {
    dpxdt_core::model::validate_name("build name", name).map_err(StoreError::Invalid)?;
    let tx = write_tx(conn)?;
    let now = now_ms();
    tx.execute(
        "INSERT INTO build (name, public, created, modified) VALUES (?1, ?2, ?3, ?3)",
        params![name, public, now],
    )?;
    let id = BuildId(tx.last_insert_rowid());
    tx.execute(
        "INSERT INTO build_owner (build_id, user_id) VALUES (?1, ?2)",
        params![id.0, user.id],
    )?;
    log_in(&tx, id, Some(user.id), "create_build", name)?;
    tx.commit()?;
    Ok(id)
}

/// A build's settings as its owners edit them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// Its name.
    pub name: String,
    /// Readable by anyone.
    pub public: bool,
    /// Its API keys may give verdicts.
    pub key_verdicts: bool,
}

/// Sets a build's name, whether it is public and whether its API keys may
/// give verdicts.
pub fn set_build_settings(
    conn: &mut Connection,
    build: BuildId,
    user: &UserRow,
    settings: &BuildSettings,
) -> Result<(), StoreError> {
    let BuildSettings {
        name,
        public,
        key_verdicts,
    } = settings;
    dpxdt_core::model::validate_name("build name", name).map_err(StoreError::Invalid)?;
    let tx = write_tx(conn)?;
    tx.execute(
        "UPDATE build SET name = ?1, public = ?2, key_verdicts = ?3, modified = ?4 WHERE id = ?5",
        params![name, public, key_verdicts, now_ms(), build.0],
    )?;
    let msg = format!(
        "name {name:?}, {}, {}",
        if *public { "public" } else { "private" },
        if *key_verdicts {
            "API keys may give verdicts"
        } else {
            "only people give verdicts"
        }
    );
    log_in(&tx, build, Some(user.id), "settings", &msg)?;
    tx.commit()?;
    Ok(())
}

/// Lets build `build`'s API keys give verdicts, or stops them (for
/// `dpxdt-server create-build --key-verdicts`); logged without a person.
pub fn set_key_verdicts(
    conn: &mut Connection,
    build: BuildId,
    allow: bool,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let n = tx.execute(
        "UPDATE build SET key_verdicts = ?1, modified = ?2 WHERE id = ?3",
        params![allow, now_ms(), build.0],
    )?;
    if n != 1 {
        return Err(StoreError::NotFound(format!(
            "build {build} does not exist"
        )));
    }
    let msg = if allow {
        "API keys may give verdicts"
    } else {
        "only people give verdicts"
    };
    log_in(&tx, build, None, "settings", msg)?;
    tx.commit()?;
    Ok(())
}

/// The names and e-mail addresses of a build's owners, sorted by name.
pub fn list_owners(
    conn: &Connection,
    build: BuildId,
) -> Result<Vec<(String, Option<String>)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT u.name, u.email FROM build_owner o JOIN user u ON u.id = o.user_id
         WHERE o.build_id = ?1 ORDER BY u.name",
    )?;
    let rows = stmt.query_map([build.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Invites the user called `name` to own `build`. The invitation waits
/// until that person accepts it; it is the same whether or not such a user
/// exists.
pub fn invite_owner(
    conn: &mut Connection,
    build: BuildId,
    by: &UserRow,
    name: &str,
) -> Result<(), StoreError> {
    validate_user_name(name)?;
    let tx = write_tx(conn)?;
    let owner: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM build_owner o JOIN user u ON u.id = o.user_id
                        WHERE o.build_id = ?1 AND u.name = ?2)",
        params![build.0, name],
        |r| r.get(0),
    )?;
    if owner {
        // The build page lists its owners already: this tells nothing new.
        return Err(StoreError::Conflict(format!(
            "{name} is already an owner of this build"
        )));
    }
    tx.execute(
        "INSERT OR IGNORE INTO owner_invite (build_id, user_name, invited_by, created)
         VALUES (?1, ?2, ?3, ?4)",
        params![build.0, name, by.id, now_ms()],
    )?;
    log_in(&tx, build, Some(by.id), "invite_owner", name)?;
    tx.commit()?;
    Ok(())
}

/// Withdraws the invitation of `name` to `build`.
pub fn cancel_invite(
    conn: &mut Connection,
    build: BuildId,
    by: &UserRow,
    name: &str,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let n = tx.execute(
        "DELETE FROM owner_invite WHERE build_id = ?1 AND user_name = ?2",
        params![build.0, name],
    )?;
    if n == 0 {
        return Err(StoreError::Invalid(format!(
            "{name:?} has no pending invitation to this build"
        )));
    }
    log_in(&tx, build, Some(by.id), "cancel_invite", name)?;
    tx.commit()?;
    Ok(())
}

/// The user names invited to `build` and not yet answered, sorted.
pub fn list_invites(conn: &Connection, build: BuildId) -> Result<Vec<String>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT user_name FROM owner_invite WHERE build_id = ?1 ORDER BY user_name")?;
    let rows = stmt.query_map([build.0], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// An invitation waiting for its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The build.
    pub build: BuildId,
    /// Its name.
    pub build_name: String,
    /// Who invited (`None` if that account is gone).
    pub invited_by: Option<String>,
}

/// The invitations waiting for `user`, oldest first.
pub fn invitations_for(conn: &Connection, user: &UserRow) -> Result<Vec<Invitation>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT i.build_id, b.name, u.name FROM owner_invite i
         JOIN build b ON b.id = i.build_id
         LEFT JOIN user u ON u.id = i.invited_by
         WHERE i.user_name = ?1 ORDER BY i.created, i.build_id",
    )?;
    let rows = stmt.query_map([&user.name], |r| {
        Ok(Invitation {
            build: BuildId(r.get(0)?),
            build_name: r.get(1)?,
            invited_by: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Accepts (the user becomes an owner) or declines `user`'s invitation to
/// `build`.
pub fn answer_invite(
    conn: &mut Connection,
    build: BuildId,
    user: &UserRow,
    accept: bool,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let n = tx.execute(
        "DELETE FROM owner_invite WHERE build_id = ?1 AND user_name = ?2",
        params![build.0, user.name],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "you have no invitation to build {build}"
        )));
    }
    if accept {
        tx.execute(
            "INSERT OR IGNORE INTO build_owner (build_id, user_id) VALUES (?1, ?2)",
            params![build.0, user.id],
        )?;
    }
    let what = if accept {
        "accept_invite"
    } else {
        "decline_invite"
    };
    log_in(&tx, build, Some(user.id), what, &user.name)?;
    tx.commit()?;
    Ok(())
}

/// Removes owner `name` from `build`; the last owner cannot be removed.
pub fn remove_owner(
    conn: &mut Connection,
    build: BuildId,
    by: &UserRow,
    name: &str,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let owners: i64 = tx.query_row(
        "SELECT COUNT(*) FROM build_owner WHERE build_id = ?1",
        [build.0],
        |r| r.get(0),
    )?;
    let n = tx.execute(
        "DELETE FROM build_owner WHERE build_id = ?1
         AND user_id = (SELECT id FROM user WHERE name = ?2)",
        params![build.0, name],
    )?;
    if n == 0 {
        return Err(StoreError::Invalid(format!(
            "{name:?} is not an owner of this build"
        )));
    }
    if owners <= 1 {
        return Err(StoreError::Conflict(
            "the last owner of a build cannot be removed".into(),
        ));
    }
    log_in(&tx, build, Some(by.id), "revoke_admin", name)?;
    tx.commit()?;
    Ok(())
}

/// Task counts per queue and state, for the superusers' queue page.
pub fn queue_counts(conn: &Connection) -> Result<Vec<(String, String, i64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT queue, status, COUNT(*) FROM task GROUP BY queue, status ORDER BY queue, status",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A task as the queue page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// Task id.
    pub id: i64,
    /// Queue name.
    pub queue: String,
    /// live, done, error or canceled.
    pub status: String,
    /// Who holds the lease.
    pub owner: Option<String>,
    /// Leases taken so far.
    pub attempts: i64,
    /// The last heartbeat message.
    pub heartbeat: Option<String>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it may be leased next, ms since the epoch.
    pub eta: i64,
}

/// The `limit` newest tasks that are live or failed.
pub fn recent_tasks(conn: &Connection, limit: u32) -> Result<Vec<TaskInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, queue, status, owner, lease_attempts, heartbeat, last_error, eta FROM task
         WHERE status IN ('live', 'error') ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(TaskInfo {
            id: r.get(0)?,
            queue: r.get(1)?,
            status: r.get(2)?,
            owner: r.get(3)?,
            attempts: r.get(4)?,
            heartbeat: r.get(5)?,
            last_error: r.get(6)?,
            eta: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The builds `user` owns (all for a superuser), then the public ones, by name.
/// The flag says whether the user owns it.
pub fn list_builds(
    conn: &Connection,
    user: Option<&UserRow>,
) -> Result<Vec<(BuildInfo, bool)>, StoreError> {
    let (uid, superuser) = user.map_or((-1, false), |u| (u.id, u.superuser));
    let mut stmt = conn.prepare(
        "SELECT b.id, b.name, b.public, b.key_verdicts,
                (?2 OR EXISTS (SELECT 1 FROM build_owner o WHERE o.build_id = b.id AND o.user_id = ?1)) AS owned
         FROM build b
         WHERE owned OR b.public
         ORDER BY owned DESC, b.name, b.id",
    )?;
    let rows = stmt.query_map(params![uid, superuser], |r| {
        Ok((
            BuildInfo {
                id: BuildId(r.get(0)?),
                name: r.get(1)?,
                public: r.get(2)?,
                key_verdicts: r.get(3)?,
            },
            r.get::<_, bool>(4)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The releases of a build, newest first, with run counts per state.
pub fn list_releases(
    conn: &Connection,
    build: BuildId,
    limit: u32,
) -> Result<Vec<ReleaseSummary>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, number, status, created FROM release WHERE build_id = ?1
         ORDER BY created DESC, id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![build.0, limit], |r| {
        Ok((
            ReleaseId(r.get(0)?),
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut counts =
        conn.prepare("SELECT status, COUNT(*) FROM run WHERE release_id = ?1 GROUP BY status")?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, number, status, created) = row?;
        let status: ReleaseStatus = status
            .parse()
            .map_err(|e| StoreError::Invalid(format!("release {id}: {e}")))?;
        let mut per_state = Vec::new();
        for c in counts.query_map([id.0], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (s, n) = c?;
            let s: RunStatus = s
                .parse()
                .map_err(|e| StoreError::Invalid(format!("release {id}: {e}")))?;
            per_state.push((s, n as u64));
        }
        per_state.sort_by_key(|(s, _)| RunStatus::ALL.iter().position(|x| x == s));
        out.push(ReleaseSummary {
            id,
            name,
            number,
            status,
            created,
            counts: per_state,
        });
    }
    Ok(out)
}

/// The API keys of a build, newest first.
pub fn list_api_keys(conn: &Connection, build: BuildId) -> Result<Vec<ApiKeyInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, purpose, active, created FROM api_key WHERE build_id = ?1
         ORDER BY created DESC, id",
    )?;
    let rows = stmt.query_map([build.0], |r| {
        Ok(ApiKeyInfo {
            id: r.get(0)?,
            purpose: r.get(1)?,
            active: r.get(2)?,
            created: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Logs that `user` did something to `build` (e.g. created an API key).
pub fn log_action(
    conn: &mut Connection,
    build: BuildId,
    user: &UserRow,
    log_type: &str,
    message: &str,
) -> Result<(), StoreError> {
    log_in(conn, build, Some(user.id), log_type, message)
}

fn log_in(
    conn: &Connection,
    build: BuildId,
    user: Option<i64>,
    log_type: &str,
    message: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO admin_log (build_id, user_id, log_type, message, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![build.0, user, log_type, message, now_ms()],
    )?;
    Ok(())
}

/// The newest `limit` entries of a build's activity log.
pub fn list_log(
    conn: &Connection,
    build: BuildId,
    limit: u32,
) -> Result<Vec<LogEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT l.log_type, l.message, u.name, l.created FROM admin_log l
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

/// A person's verdict on one run (approve or reject a found diff), decided
/// by the core's run state machine and stored compare-and-set.
pub fn set_run_verdict(
    conn: &mut Connection,
    release: ReleaseId,
    run_name: &str,
    user: &UserRow,
    event: RunEvent,
) -> Result<RunStatus, StoreError> {
    let tx = write_tx(conn)?;
    let (run_id, build, status): (i64, i64, String) = tx
        .query_row(
            "SELECT r.id, rel.build_id, r.status FROM run r JOIN release rel ON rel.id = r.release_id
             WHERE r.release_id = ?1 AND r.name = ?2",
            params![release.0, run_name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("run {run_name:?} does not exist")))?;
    let old: RunStatus = status
        .parse()
        .map_err(|e| StoreError::Invalid(format!("run {run_name:?}: {e}")))?;
    let next = old
        .apply(event)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let n = tx.execute(
        "UPDATE run SET status = ?1, modified = ?2 WHERE id = ?3 AND status = ?4",
        params![next.as_str(), now_ms(), run_id, old.as_str()],
    )?;
    if n != 1 {
        return Err(StoreError::Conflict(format!(
            "run {run_name:?} changed state concurrently"
        )));
    }
    let log_type = match event {
        RunEvent::Approve => "run_approve",
        RunEvent::Reject => "run_reject",
        RunEvent::Report(_) => "run_report",
    };
    log_in(&tx, BuildId(build), Some(user.id), log_type, run_name)?;
    tx.commit()?;
    Ok(next)
}

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
}

/// The webhook URL of a build, if it has one.
pub fn webhook_url(conn: &Connection, build: BuildId) -> Result<Option<String>, StoreError> {
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
    conn: &mut Connection,
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
pub fn due_notifications(
    conn: &mut Connection,
    mail: bool,
) -> Result<Vec<DueNotification>, StoreError> {
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
    let row = |r: &rusqlite::Row<'_>, channel: fn(String) -> Channel| {
        Ok(DueNotification {
            release_id: ReleaseId(r.get(0)?),
            build_id: BuildId(r.get(1)?),
            build_name: r.get(2)?,
            name: r.get(3)?,
            number: r.get(4)?,
            channel: channel(r.get(5)?),
            attempts: r.get(6)?,
            counts: Vec::new(),
        })
    };
    let mut stmt = conn.prepare(
        "SELECT r.id, b.id, b.name, r.name, r.number, b.webhook_url, n.attempts
         FROM notification n JOIN release r ON r.id = n.release_id JOIN build b ON b.id = r.build_id
         WHERE n.status = 'pending' AND n.next_try <= ?1 AND b.webhook_url IS NOT NULL
         ORDER BY n.next_try LIMIT 20",
    )?;
    for d in stmt.query_map([now], |r| row(r, Channel::Webhook))? {
        due.push(d?);
    }
    if mail {
        let mut stmt = conn.prepare(
            "SELECT r.id, b.id, b.name, r.name, r.number, m.address, m.attempts
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
    conn: &mut Connection,
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

/// Checks an e-mail address (at most 254 characters, as SMTP allows).
pub fn validate_email(email: &str) -> Result<(), StoreError> {
    if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
        return Err(StoreError::Invalid(format!(
            "{email:?} is not an e-mail address (name@domain)"
        )));
    }
    Ok(())
}

/// The e-mail address of user `user`, if it has one.
pub fn user_email(conn: &Connection, user: i64) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT email FROM user WHERE id = ?1", [user], |r| {
            r.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten())
}

/// Sets (or with `""` clears) the e-mail address of the user called `name`.
/// Addresses are only where notifications go: they grant nothing, so two
/// accounts may share one, and setting one never says whether another
/// account has it.
pub fn set_user_email(conn: &mut Connection, name: &str, email: &str) -> Result<(), StoreError> {
    let email = email.trim();
    if !email.is_empty() {
        validate_email(email)?;
    }
    let tx = write_tx(conn)?;
    let user = find_user(&tx, name)?
        .ok_or_else(|| StoreError::NotFound(format!("there is no user named {name:?}")))?;
    tx.execute(
        "UPDATE user SET email = ?1 WHERE id = ?2",
        params![(!email.is_empty()).then_some(email), user.id],
    )?;
    tx.commit()?;
    Ok(())
}
