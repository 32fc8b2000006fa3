//! The database schema as an append-only list of migrations.
//!
//! The schema version is SQLite's `user_version`: migration `i` (0-based) moves
//! the database from version `i` to `i + 1`. Never edit or reorder a
//! migration that has shipped; append a new one instead (the UI appends its
//! users/sessions tables here).

use rusqlite::Connection;

use super::StoreError;

/// Every migration, oldest first. Each runs in its own transaction together
/// with the version bump, so a crash leaves the database at a whole version.
pub const MIGRATIONS: &[&str] = &[
    // 1: the API server's tables.
    r#"
CREATE TABLE user (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    superuser INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL
);
CREATE TABLE build (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    public INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL
);
CREATE TABLE build_owner (
    build_id INTEGER NOT NULL REFERENCES build(id),
    user_id INTEGER NOT NULL REFERENCES user(id),
    PRIMARY KEY (build_id, user_id)
) WITHOUT ROWID;
CREATE TABLE api_key (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    purpose TEXT NOT NULL DEFAULT '',
    build_id INTEGER REFERENCES build(id),
    superuser INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    created INTEGER NOT NULL,
    revoked INTEGER
) WITHOUT ROWID;
CREATE TABLE release (
    id INTEGER PRIMARY KEY,
    build_id INTEGER NOT NULL REFERENCES build(id),
    name TEXT NOT NULL,
    number INTEGER NOT NULL,
    url TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    UNIQUE (build_id, name, number)
);
CREATE INDEX release_build_status ON release (build_id, status, id);
CREATE TABLE run (
    id INTEGER PRIMARY KEY,
    release_id INTEGER NOT NULL REFERENCES release(id),
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    url TEXT,
    image TEXT,
    log TEXT,
    config TEXT,
    ref_url TEXT,
    ref_image TEXT,
    ref_log TEXT,
    ref_config TEXT,
    ref_expected INTEGER NOT NULL DEFAULT 0,
    diff_image TEXT,
    diff_log TEXT,
    distortion REAL,
    run_failed TEXT,
    diff_failed TEXT,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    UNIQUE (release_id, name)
);
CREATE INDEX run_release_status ON run (release_id, status);
CREATE TABLE artifact (
    id TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    created INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE artifact_owner (
    build_id INTEGER NOT NULL REFERENCES build(id),
    artifact_id TEXT NOT NULL REFERENCES artifact(id),
    PRIMARY KEY (build_id, artifact_id)
) WITHOUT ROWID;
CREATE TABLE task (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    eta INTEGER NOT NULL,
    lease_ms INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    heartbeat TEXT,
    heartbeat_index INTEGER NOT NULL DEFAULT -1,
    last_error TEXT,
    build_id INTEGER,
    release_id INTEGER,
    run_id INTEGER,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL
);
CREATE INDEX task_lease ON task (queue, status, eta);
CREATE INDEX task_release ON task (release_id, status);
CREATE TABLE admin_log (
    id INTEGER PRIMARY KEY,
    build_id INTEGER,
    user_id INTEGER,
    api_key_id TEXT,
    log_type TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL
);
CREATE INDEX admin_log_build ON admin_log (build_id, id);
"#,
    // 2: the review UI's login sessions.
    super::sessions::MIGRATION,
    // 3: the review UI's thumbnail cache.
    super::users::THUMBNAIL_MIGRATION,
    // 4: the review UI's webhook notifications.
    super::users::NOTIFY_MIGRATION,
    // 5: users' e-mail addresses and the e-mail notifications.
    super::users::MAIL_MIGRATION,
    // 6: worker keys.
    super::auth::WORKER_KEY_MIGRATION,
    // 7: the review UI's session idle expiry.
    super::sessions::IDLE_MIGRATION,
    // 8: whether a build's API keys may give verdicts.
    super::users::KEY_VERDICT_MIGRATION,
    // 9: owner invitations by user name; e-mail addresses no longer unique.
    super::users::INVITE_MIGRATION,
    // 10: fair leasing across builds; indexes for the per-build limits.
    super::queue::FAIR_MIGRATION,
];

/// The version a fully migrated database has.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the database up to [`latest_version`], one migration per transaction.
/// A database newer than this binary is refused rather than touched.
pub fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > latest_version() {
        return Err(StoreError::Invalid(format!(
            "database schema version {current} is newer than this server ({})",
            latest_version()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(latest_version())
}
