//! The database schema as an append-only list of migrations, in both
//! dialects.
//!
//! On SQLite the schema version is `user_version`: migration `i` (0-based)
//! moves the database from version `i` to `i + 1`. Never edit or reorder a
//! migration that has shipped; append a new one instead. Every migration is
//! here, in order, whichever module uses its tables.
//!
//! PostgreSQL support began at version 17, so its list starts with the whole
//! schema of that version ([`PG_MIGRATIONS`]); every later migration is
//! appended to both lists with the same version. Its version is kept in the
//! table `dpxdt_schema`.

use super::StoreError;
use super::db::{Db, Dialect};

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
    r#"
CREATE TABLE session (
    token_sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES user(id),
    csrf TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX session_expires ON session (expires);
"#,
    // 3: the review UI's thumbnail cache.
    r#"
CREATE TABLE thumbnail (
    source_key TEXT PRIMARY KEY,
    thumb_id TEXT NOT NULL
) WITHOUT ROWID;
"#,
    // 4: the review UI's webhook notifications.
    r#"
ALTER TABLE build ADD COLUMN webhook_url TEXT;
CREATE TABLE notification (
    release_id INTEGER PRIMARY KEY REFERENCES release(id),
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try INTEGER NOT NULL,
    last_error TEXT,
    created INTEGER NOT NULL
);
CREATE INDEX notification_due ON notification (status, next_try);
INSERT INTO notification (release_id, status, next_try, created)
    SELECT id, 'skipped', 0, 0 FROM release WHERE status IN ('reviewing', 'good', 'bad');
"#,
    // 5: users' e-mail addresses and the e-mail notifications.
    r#"
ALTER TABLE user ADD COLUMN email TEXT;
CREATE UNIQUE INDEX user_email ON user (email COLLATE NOCASE);
CREATE TABLE mail_notification (
    release_id INTEGER NOT NULL REFERENCES release(id),
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try INTEGER NOT NULL,
    last_error TEXT,
    created INTEGER NOT NULL,
    PRIMARY KEY (release_id, address)
) WITHOUT ROWID;
CREATE INDEX mail_notification_due ON mail_notification (status, next_try);
"#,
    // 6: worker keys.
    r#"
ALTER TABLE api_key ADD COLUMN worker INTEGER NOT NULL DEFAULT 0;
"#,
    // 7: the review UI's session idle expiry.
    r#"
ALTER TABLE session ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;
UPDATE session SET last_seen = created;
"#,
    // 8: whether a build's API keys may give verdicts.
    r#"
ALTER TABLE build ADD COLUMN key_verdicts INTEGER NOT NULL DEFAULT 0;
"#,
    // 9: owner invitations by user name; e-mail addresses no longer unique.
    r#"
CREATE TABLE owner_invite (
    build_id INTEGER NOT NULL REFERENCES build(id),
    user_name TEXT NOT NULL,
    invited_by INTEGER REFERENCES user(id),
    created INTEGER NOT NULL,
    PRIMARY KEY (build_id, user_name)
) WITHOUT ROWID;
CREATE INDEX owner_invite_user ON owner_invite (user_name);
DROP INDEX user_email;
CREATE INDEX user_email ON user (email COLLATE NOCASE);
"#,
    // 10: fair leasing across builds; indexes for the per-build limits.
    r#"
CREATE TABLE queue_turn (
    queue TEXT NOT NULL,
    build_id INTEGER NOT NULL,
    turn INTEGER NOT NULL,
    PRIMARY KEY (queue, build_id)
) WITHOUT ROWID;
CREATE INDEX task_build_ready ON task (queue, status, build_id, eta);
CREATE INDEX release_build_created ON release (build_id, created);
"#,
    // 11: idempotency keys of create requests, kept 24 hours.
    r#"
CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    response TEXT,
    created INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency (created);
"#,
    // 12: a superuser may disable an account (it cannot log in, its
    // sessions end) without deleting what it did.
    r#"
ALTER TABLE user ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
"#,
    // 13: ignore regions drawn in the review UI, per build and run name;
    // the diff worker leaves changes inside them out.
    r#"
CREATE TABLE ignore_region (
    id INTEGER PRIMARY KEY,
    build_id INTEGER NOT NULL REFERENCES build(id),
    run_name TEXT NOT NULL,
    name TEXT NOT NULL,
    x1 INTEGER NOT NULL,
    y1 INTEGER NOT NULL,
    x2 INTEGER NOT NULL,
    y2 INTEGER NOT NULL,
    created_by INTEGER REFERENCES user(id),
    created INTEGER NOT NULL,
    UNIQUE (build_id, run_name, name)
);
"#,
    // 14: branches. A release may name its branch and commit; a build has a
    // default branch; a run records which good release its reference came
    // from and why, and an approval may also count for the default branch.
    r#"
ALTER TABLE release ADD COLUMN branch TEXT;
ALTER TABLE release ADD COLUMN commit_sha TEXT;
ALTER TABLE build ADD COLUMN default_branch TEXT NOT NULL DEFAULT 'main';
ALTER TABLE run ADD COLUMN baseline_release_id INTEGER;
ALTER TABLE run ADD COLUMN baseline_reason TEXT;
ALTER TABLE run ADD COLUMN for_default_branch INTEGER NOT NULL DEFAULT 0;
CREATE INDEX release_build_branch ON release (build_id, branch, status);
"#,
    // 15: retention. A build may keep more or fewer releases than the
    // server's defaults; a person may mark a release to keep. An owner row
    // remembers when its build last uploaded or referenced the artifact, so
    // the collector never takes one that is in use since it looked.
    r#"
ALTER TABLE build ADD COLUMN keep_releases INTEGER;
ALTER TABLE build ADD COLUMN keep_days INTEGER;
ALTER TABLE release ADD COLUMN keep INTEGER NOT NULL DEFAULT 0;
ALTER TABLE artifact_owner ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;
CREATE INDEX artifact_owner_artifact ON artifact_owner (artifact_id);
CREATE INDEX thumbnail_thumb ON thumbnail (thumb_id);
"#,
    // 16: commit statuses. A build may name a GitHub-compatible statuses
    // API (its token sealed with the server key); each state change of a
    // release naming its commit queues a status, sent in order with retries.
    r#"
ALTER TABLE build ADD COLUMN status_api TEXT;
ALTER TABLE build ADD COLUMN status_repo TEXT;
ALTER TABLE build ADD COLUMN status_token BLOB;
CREATE TABLE commit_status (
    id INTEGER PRIMARY KEY,
    release_id INTEGER NOT NULL REFERENCES release(id),
    state TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try INTEGER NOT NULL,
    last_error TEXT,
    created INTEGER NOT NULL
);
CREATE INDEX commit_status_due ON commit_status (status, next_try);
CREATE INDEX commit_status_release ON commit_status (release_id, status);
"#,
    // 17: login attempt counters move from the process into the database,
    // so a restart does not reset them.
    r#"
CREATE TABLE login_limit (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    in_flight INTEGER NOT NULL,
    in_flight_until INTEGER NOT NULL,
    since INTEGER NOT NULL,
    next_allowed INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 18: each release counts its runs, so the per-release limit is checked
    // and kept in one single-row update instead of counting the release's
    // runs for every new one.
    RELEASE_RUN_COUNT,
    // 19: each build counts the bytes of the artifacts it owns, so the
    // per-build limit does not sum them for every upload.
    BUILD_ARTIFACT_BYTES,
    // 20: per-run verdicts (who approved or rejected a run, when, why) and
    // each run's comment thread.
    r#"
ALTER TABLE run ADD COLUMN review TEXT;
ALTER TABLE run ADD COLUMN review_reason TEXT;
ALTER TABLE run ADD COLUMN reviewed_by TEXT;
ALTER TABLE run ADD COLUMN reviewed_at INTEGER;
CREATE TABLE run_comment (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES run(id),
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    region TEXT,
    created INTEGER NOT NULL
);
CREATE INDEX run_comment_run ON run_comment (run_id, id);
"#,
    // 21: invitations: a superuser creates an account without a password
    // and a one-time link lets its person choose one.
    r#"
CREATE TABLE user_invite (
    token_sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES user(id),
    created_by INTEGER REFERENCES user(id),
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX user_invite_user ON user_invite (user_id);
"#,
    // 22: a comment is announced to its build's owners (mail) and webhook.
    COMMENT_NOTIFICATION,
];

/// Migration 22 in both dialects (the same SQL).
const COMMENT_NOTIFICATION: &str = r#"
CREATE TABLE comment_notification (
    comment_id BIGINT NOT NULL REFERENCES run_comment(id),
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_try BIGINT NOT NULL,
    last_error TEXT,
    created BIGINT NOT NULL,
    PRIMARY KEY (comment_id, channel)
);
CREATE INDEX comment_notification_due ON comment_notification (status, next_try);
"#;

/// Migration 19 in both dialects (the same SQL).
const BUILD_ARTIFACT_BYTES: &str = r#"
ALTER TABLE build ADD COLUMN artifact_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE build SET artifact_bytes = (
    SELECT COALESCE(SUM(a.size), 0) FROM artifact_owner o JOIN artifact a ON a.id = o.artifact_id
    WHERE o.build_id = build.id
);
"#;

/// Migration 18 in both dialects (the same SQL).
const RELEASE_RUN_COUNT: &str = r#"
ALTER TABLE release ADD COLUMN run_count BIGINT NOT NULL DEFAULT 0;
UPDATE release SET run_count = (SELECT COUNT(*) FROM run WHERE run.release_id = release.id);
"#;

/// The PostgreSQL migrations: the version each one reaches, and its SQL.
/// The first is SQLite's schema at version 17 (`INTEGER` as `BIGINT`, ids as
/// identity columns, `BLOB` as `BYTEA`, the case-blind e-mail index on
/// `lower(email)`).
pub const PG_MIGRATIONS: &[(i64, &str)] = &[
    (
        17,
        r#"
CREATE TABLE "user" (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    superuser BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    email TEXT,
    disabled BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE build (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    public BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    modified BIGINT NOT NULL,
    webhook_url TEXT,
    key_verdicts BIGINT NOT NULL DEFAULT 0,
    default_branch TEXT NOT NULL DEFAULT 'main',
    keep_releases BIGINT,
    keep_days BIGINT,
    status_api TEXT,
    status_repo TEXT,
    status_token BYTEA
);
CREATE TABLE build_owner (
    build_id BIGINT NOT NULL REFERENCES build(id),
    user_id BIGINT NOT NULL REFERENCES "user"(id),
    PRIMARY KEY (build_id, user_id)
);
CREATE TABLE api_key (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    purpose TEXT NOT NULL DEFAULT '',
    build_id BIGINT REFERENCES build(id),
    superuser BIGINT NOT NULL DEFAULT 0,
    active BIGINT NOT NULL DEFAULT 1,
    created BIGINT NOT NULL,
    revoked BIGINT,
    worker BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE release (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    build_id BIGINT NOT NULL REFERENCES build(id),
    name TEXT NOT NULL,
    number BIGINT NOT NULL,
    url TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    created BIGINT NOT NULL,
    modified BIGINT NOT NULL,
    branch TEXT,
    commit_sha TEXT,
    keep BIGINT NOT NULL DEFAULT 0,
    UNIQUE (build_id, name, number)
);
CREATE INDEX release_build_status ON release (build_id, status, id);
CREATE TABLE run (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    release_id BIGINT NOT NULL REFERENCES release(id),
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
    ref_expected BIGINT NOT NULL DEFAULT 0,
    diff_image TEXT,
    diff_log TEXT,
    distortion DOUBLE PRECISION,
    run_failed TEXT,
    diff_failed TEXT,
    created BIGINT NOT NULL,
    modified BIGINT NOT NULL,
    baseline_release_id BIGINT,
    baseline_reason TEXT,
    for_default_branch BIGINT NOT NULL DEFAULT 0,
    UNIQUE (release_id, name)
);
CREATE INDEX run_release_status ON run (release_id, status);
CREATE TABLE artifact (
    id TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE artifact_owner (
    build_id BIGINT NOT NULL REFERENCES build(id),
    artifact_id TEXT NOT NULL REFERENCES artifact(id),
    seen BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (build_id, artifact_id)
);
CREATE TABLE task (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    eta BIGINT NOT NULL,
    lease_ms BIGINT NOT NULL DEFAULT 0,
    owner TEXT,
    lease_attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    heartbeat TEXT,
    heartbeat_index BIGINT NOT NULL DEFAULT -1,
    last_error TEXT,
    build_id BIGINT,
    release_id BIGINT,
    run_id BIGINT,
    created BIGINT NOT NULL,
    modified BIGINT NOT NULL
);
CREATE INDEX task_lease ON task (queue, status, eta);
CREATE INDEX task_release ON task (release_id, status);
CREATE TABLE admin_log (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    build_id BIGINT,
    user_id BIGINT,
    api_key_id TEXT,
    log_type TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created BIGINT NOT NULL
);
CREATE INDEX admin_log_build ON admin_log (build_id, id);
CREATE TABLE session (
    token_sha256 TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES "user"(id),
    csrf TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    last_seen BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX session_expires ON session (expires);
CREATE TABLE thumbnail (
    source_key TEXT PRIMARY KEY,
    thumb_id TEXT NOT NULL
);
CREATE TABLE notification (
    release_id BIGINT PRIMARY KEY REFERENCES release(id),
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_try BIGINT NOT NULL,
    last_error TEXT,
    created BIGINT NOT NULL
);
CREATE INDEX notification_due ON notification (status, next_try);
CREATE TABLE mail_notification (
    release_id BIGINT NOT NULL REFERENCES release(id),
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_try BIGINT NOT NULL,
    last_error TEXT,
    created BIGINT NOT NULL,
    PRIMARY KEY (release_id, address)
);
CREATE INDEX mail_notification_due ON mail_notification (status, next_try);
CREATE TABLE owner_invite (
    build_id BIGINT NOT NULL REFERENCES build(id),
    user_name TEXT NOT NULL,
    invited_by BIGINT REFERENCES "user"(id),
    created BIGINT NOT NULL,
    PRIMARY KEY (build_id, user_name)
);
CREATE INDEX owner_invite_user ON owner_invite (user_name);
CREATE INDEX user_email ON "user" (lower(email));
CREATE TABLE queue_turn (
    queue TEXT NOT NULL,
    build_id BIGINT NOT NULL,
    turn BIGINT NOT NULL,
    PRIMARY KEY (queue, build_id)
);
CREATE INDEX task_build_ready ON task (queue, status, build_id, eta);
CREATE INDEX release_build_created ON release (build_id, created);
CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    response TEXT,
    created BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_created ON idempotency (created);
CREATE TABLE ignore_region (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    build_id BIGINT NOT NULL REFERENCES build(id),
    run_name TEXT NOT NULL,
    name TEXT NOT NULL,
    x1 BIGINT NOT NULL,
    y1 BIGINT NOT NULL,
    x2 BIGINT NOT NULL,
    y2 BIGINT NOT NULL,
    created_by BIGINT REFERENCES "user"(id),
    created BIGINT NOT NULL,
    UNIQUE (build_id, run_name, name)
);
CREATE INDEX release_build_branch ON release (build_id, branch, status);
CREATE INDEX artifact_owner_artifact ON artifact_owner (artifact_id);
CREATE INDEX thumbnail_thumb ON thumbnail (thumb_id);
CREATE TABLE commit_status (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    release_id BIGINT NOT NULL REFERENCES release(id),
    state TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_try BIGINT NOT NULL,
    last_error TEXT,
    created BIGINT NOT NULL
);
CREATE INDEX commit_status_due ON commit_status (status, next_try);
CREATE INDEX commit_status_release ON commit_status (release_id, status);
CREATE TABLE login_limit (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    in_flight BIGINT NOT NULL,
    in_flight_until BIGINT NOT NULL,
    since BIGINT NOT NULL,
    next_allowed BIGINT NOT NULL
);
"#,
    ),
    (18, RELEASE_RUN_COUNT),
    (19, BUILD_ARTIFACT_BYTES),
    (
        20,
        r#"
ALTER TABLE run ADD COLUMN review TEXT;
ALTER TABLE run ADD COLUMN review_reason TEXT;
ALTER TABLE run ADD COLUMN reviewed_by TEXT;
ALTER TABLE run ADD COLUMN reviewed_at BIGINT;
CREATE TABLE run_comment (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES run(id),
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    region TEXT,
    created BIGINT NOT NULL
);
CREATE INDEX run_comment_run ON run_comment (run_id, id);
"#,
    ),
    (
        21,
        r#"
CREATE TABLE user_invite (
    token_sha256 TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES "user"(id),
    created_by BIGINT REFERENCES "user"(id),
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX user_invite_user ON user_invite (user_id);
"#,
    ),
    (22, COMMENT_NOTIFICATION),
];

/// The version a fully migrated database has.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The schema version `db` is at (0: empty).
pub fn version(db: &Db) -> Result<i64, StoreError> {
    match db.dialect() {
        Dialect::Sqlite => Ok(db.query_row("PRAGMA user_version", [], |r| r.get(0))?),
        Dialect::Postgres => {
            let exists: bool =
                db.query_row("SELECT to_regclass('dpxdt_schema') IS NOT NULL", [], |r| {
                    r.get(0)
                })?;
            if !exists {
                return Ok(0);
            }
            Ok(db.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM dpxdt_schema",
                [],
                |r| r.get(0),
            )?)
        }
    }
}

/// Brings the database up to [`latest_version`], one migration per transaction.
/// A database newer than this binary is refused rather than touched.
pub fn migrate(db: &mut Db) -> Result<i64, StoreError> {
    if db.dialect() == Dialect::Postgres {
        return migrate_pg(db);
    }
    let current = version(db)?;
    refuse_newer(current)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = super::db::write_tx(db)?;
        tx.execute_batch(sql)?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(latest_version())
}

fn refuse_newer(current: i64) -> Result<(), StoreError> {
    if current > latest_version() {
        return Err(StoreError::Invalid(format!(
            "database schema version {current} is newer than this server ({})",
            latest_version()
        )));
    }
    Ok(())
}

/// PostgreSQL: each migration in a transaction that holds the write lock,
/// so replicas starting together apply each one once.
fn migrate_pg(db: &mut Db) -> Result<i64, StoreError> {
    for (reached, sql) in PG_MIGRATIONS {
        let tx = super::db::write_tx(db)?;
        // Inside the lock: replicas starting together must not race even here.
        tx.execute_batch("CREATE TABLE IF NOT EXISTS dpxdt_schema (version BIGINT NOT NULL)")?;
        let current = version(&tx)?;
        refuse_newer(current)?;
        if current >= *reached {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM dpxdt_schema", [])?;
        tx.execute("INSERT INTO dpxdt_schema (version) VALUES (?1)", [*reached])?;
        tx.commit()?;
        tracing::info!(version = reached, "applied schema migration");
    }
    let current = version(db)?;
    refuse_newer(current)?;
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_and_builds_made_before_their_counts_are_counted_when_migrated() {
        let mut db = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        for (i, sql) in MIGRATIONS[..17].iter().enumerate() {
            db.execute_batch(sql).unwrap();
            db.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .unwrap();
        }
        db.execute_batch(
            "INSERT INTO build (id, name, created, modified) VALUES (1, 'b', 0, 0);
             INSERT INTO release (id, build_id, name, number, status, created, modified)
                 VALUES (1, 1, 'full', 1, 'receiving', 0, 0), (2, 1, 'empty', 1, 'receiving', 0, 0);
             INSERT INTO run (release_id, name, status, created, modified)
                 VALUES (1, 'a', 'data_pending', 0, 0), (1, 'b', 'data_pending', 0, 0),
                        (1, 'c', 'data_pending', 0, 0);
             INSERT INTO artifact (id, content_type, size, created)
                 VALUES ('x', 'image/png', 5, 0), ('y', 'image/png', 7, 0);
             INSERT INTO artifact_owner (build_id, artifact_id, seen) VALUES (1, 'x', 0), (1, 'y', 0);",
        )
        .unwrap();
        assert_eq!(migrate(&mut db).unwrap(), latest_version());
        // Migration 19 counts the bytes the build already owns.
        let bytes: i64 = db
            .query_row("SELECT artifact_bytes FROM build WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(bytes, 12);
        let count = |id: i64| -> i64 {
            db.query_row("SELECT run_count FROM release WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!((count(1), count(2)), (3, 0));
        // The limit counts the runs made before the migration.
        let limits = super::super::quotas::Limits {
            runs_per_release: 4,
            ..Default::default()
        };
        let new_run =
            |db: &Db| super::super::quotas::count_new_run(db, dpxdt_core::ReleaseId(1), &limits);
        new_run(&db).unwrap();
        let refused = new_run(&db).unwrap_err().to_string();
        assert!(refused.contains("has 4 runs"), "{refused}");
        assert_eq!(count(1), 4);
    }

    #[test]
    fn both_dialects_reach_the_same_version() {
        assert_eq!(PG_MIGRATIONS.last().map(|m| m.0), Some(latest_version()));
        assert!(PG_MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
