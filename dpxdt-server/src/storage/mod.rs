//! Persistence: one database for every record and the work queue (a SQLite
//! file (WAL) by default, or PostgreSQL: `db`), and content-addressed
//! artifact bytes in a directory beside it or in an S3-compatible bucket
//! (`blobs`).
//!
//! Database calls block, so async code goes through [`Store::call`], which
//! runs the closure on tokio's blocking pool with the process's one
//! connection locked. SQLite has one writer at a time anyway; one connection
//! keeps every transaction serialized without `SQLITE_BUSY` retries, and
//! transactions are kept short (no I/O on artifact bytes happens inside
//! one). On PostgreSQL, write transactions of every replica are serialized
//! by one advisory lock (`db::write_tx`).

pub mod activity;
pub mod artifacts;
pub mod blobs;
pub mod builds;
pub mod comment_notes;
pub mod db;
pub mod gc;
pub mod health;
pub mod idempotency;
pub mod ignores;
pub mod invites;
pub mod logins;
pub mod migrate;
pub mod notifications;
pub mod overview;
pub mod pg_tls;
pub mod queue;
pub mod quotas;
pub mod releases;
pub mod reviews;
mod schema;
pub mod secrets;
pub mod sessions;
pub mod statuses;
pub mod uploads;
pub mod users;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use dpxdt_core::BuildId;
use rusqlite::OpenFlags;

pub use db::{Db, DbError};

pub use artifacts::{ArtifactDir, ArtifactInfo};
pub use blobs::{ArtifactsConfig, ArtifactsUrl, Blobs, S3Settings};
pub use builds::{ApiKeyScope, NewApiKey};
pub use quotas::Limits;
pub use releases::{ReleaseRow, ReportOutcome, RequestRunInput, RunRow, TASK_MAX_ATTEMPTS};
pub use schema::{MIGRATIONS, latest_version};

/// A storage failure or a refusal decided while looking at stored data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] DbError),
    /// Reading or writing artifact files failed.
    #[error("artifact storage error: {0}")]
    Io(#[from] std::io::Error),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (refused transition, duplicate).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed or names something it may not.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not touch this.
    #[error("{0}")]
    Forbidden(String),
    /// The build would go over one of its size limits.
    #[error("{0}")]
    OverLimit(String),
    /// A service the store relies on (the artifact bucket) is not
    /// answering; the request may be tried again.
    #[error("{0}")]
    Unavailable(String),
    /// The build has done this too often lately; it may again later.
    #[error("{message}")]
    RateLimited {
        /// What was refused and which limit it hit.
        message: String,
        /// When to try again.
        retry_after_secs: u64,
    },
}

/// Handle to the database and the artifact directory; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Db(DbError::Sqlite(e))
    }
}

/// Where the database is: `sqlite:PATH` or `postgres://…`.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `dpxdt.sqlite3` in the data directory (the default).
    #[default]
    DataDir,
    /// A SQLite file elsewhere.
    Sqlite(PathBuf),
    /// A PostgreSQL server (`postgres://user:password@host:port/db`).
    Postgres(String),
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<DatabaseUrl, String> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(format!("database URL {s:?} names no file"));
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            // Parsed here too, so a bad URL (an unknown sslmode, say) stops
            // the command line at once, not the first connection.
            db::parse_url(s).map_err(|e| format!("database URL {}: {e}", redact_url(s)))?;
            Ok(DatabaseUrl::Postgres(s.to_owned()))
        } else {
            Err(format!(
                "database URL {} is neither sqlite:PATH nor postgres://…",
                redact_url(s)
            ))
        }
    }
}

/// `url` with any password replaced by `***`.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparsable URL)".into(),
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::DataDir => write!(f, "sqlite:{DB_FILE} in the data directory"),
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            DatabaseUrl::Postgres(u) => f.write_str(&redact_url(u)),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl DatabaseUrl {
    /// The SQLite file, for a data directory `data_dir`; `None` on PostgreSQL.
    pub fn sqlite_path(&self, data_dir: &Path) -> Option<PathBuf> {
        match self {
            DatabaseUrl::DataDir => Some(data_dir.join(DB_FILE)),
            DatabaseUrl::Sqlite(p) => Some(p.clone()),
            DatabaseUrl::Postgres(_) => None,
        }
    }

    /// Connects (creating a SQLite file if missing), without migrating.
    pub fn connect(&self, data_dir: &Path) -> Result<Db, StoreError> {
        match self.sqlite_path(data_dir) {
            Some(path) => {
                // SQLite would create the file 0644; its -wal and -shm files
                // take the database file's mode, so they are 0600 too.
                if !path.exists() {
                    artifacts::private_file(&path)?;
                }
                artifacts::make_private(&path, 0o600)?;
                let conn = rusqlite::Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                        | OpenFlags::SQLITE_OPEN_CREATE
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(std::time::Duration::from_secs(10))?;
                conn.set_prepared_statement_cache_capacity(128);
                // WAL: readers (e.g. a backup or the sqlite3 shell) never
                // block the writer; synchronous=FULL: a commit acknowledged
                // to a client survives a crash or power loss.
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "FULL")?;
                conn.pragma_update(None, "foreign_keys", "ON")?;
                Ok(Db::Sqlite(conn))
            }
            None => {
                let DatabaseUrl::Postgres(url) = self else {
                    unreachable!("only PostgreSQL has no file")
                };
                Ok(Db::Postgres(Box::new(db::PgConn::connect(url).map_err(
                    |e| StoreError::Db(DbError::Other(format!("{}: {e}", redact_url(url)))),
                )?)))
            }
        }
    }
}

struct Inner {
    pool: Pool,
    artifacts: Blobs,
    db_shown: String,
    /// The server key's file (default: `server.key` in the data directory).
    key_file: PathBuf,
    /// The server key, loaded (or made) when first needed.
    secret: std::sync::OnceLock<secrets::SecretKey>,
    /// Held for the store's life: the data directory's exclusive lock.
    _lock: Option<std::fs::File>,
}

/// The connections each server process keeps to PostgreSQL, so that reads
/// and requests outside the write lock go on while one writes. (SQLite has
/// one: it has one writer anyway.)
const PG_CONNECTIONS: usize = 4;

/// The process's database connections: taken by one call at a time.
struct Pool {
    free: Mutex<Vec<Db>>,
    returned: std::sync::Condvar,
}

/// A connection out of the pool, put back when dropped (after a panic too).
struct Lent<'a> {
    pool: &'a Pool,
    db: Option<Db>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(db);
            self.pool.returned.notify_one();
        }
    }
}

/// The database's file name in the data directory.
pub const DB_FILE: &str = "dpxdt.sqlite3";

/// Milliseconds since the Unix epoch: the unit of every stored time.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating and migrating if needed) the store in `data_dir` for
    /// a server: takes the directory's lock, so a second server on the same
    /// directory is refused, and removes temp files a crash left behind.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Self::open_at(data_dir, &DatabaseUrl::DataDir, &ArtifactsConfig::default())
    }

    /// [`open`](Store::open), with the database where `database` says and
    /// the artifacts where `artifacts` says.
    pub fn open_at(
        data_dir: &Path,
        database: &DatabaseUrl,
        artifacts: &ArtifactsConfig,
    ) -> Result<Store, StoreError> {
        // The data directory is the server's alone (0700): the capture
        // browser runs as another, unprivileged user on this machine.
        artifacts::private_dir_all(data_dir)?;
        artifacts::make_private(data_dir, 0o700)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(data_dir.join("lock"))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Conflict(format!(
                "{} is in use by another dpxdt-server",
                data_dir.display()
            )));
        }
        let artifacts = Blobs::open(data_dir, artifacts, true)?;
        Self::open_with(data_dir, database, artifacts, Some(lock))
    }

    /// Opens the store beside a running server (command-line tools, tests):
    /// no lock, and temp files are left alone (they may be uploads in flight).
    pub fn open_shared(data_dir: &Path) -> Result<Store, StoreError> {
        Self::open_shared_at(data_dir, &DatabaseUrl::DataDir, &ArtifactsConfig::default())
    }

    /// [`open_shared`](Store::open_shared), with the artifacts where
    /// `artifacts` says.
    pub fn open_shared_at(
        data_dir: &Path,
        database: &DatabaseUrl,
        artifacts: &ArtifactsConfig,
    ) -> Result<Store, StoreError> {
        artifacts::private_dir_all(data_dir)?;
        let artifacts = Blobs::open(data_dir, artifacts, false)?;
        Self::open_with(data_dir, database, artifacts, None)
    }

    fn open_with(
        data_dir: &Path,
        database: &DatabaseUrl,
        artifacts: Blobs,
        lock: Option<std::fs::File>,
    ) -> Result<Store, StoreError> {
        let mut conn = database.connect(data_dir)?;
        schema::migrate(&mut conn)?;
        let mut conns = vec![conn];
        if let DatabaseUrl::Postgres(_) = database {
            for _ in 1..PG_CONNECTIONS {
                conns.push(database.connect(data_dir)?);
            }
        }
        Ok(Store {
            inner: Arc::new(Inner {
                pool: Pool {
                    free: Mutex::new(conns),
                    returned: std::sync::Condvar::new(),
                },
                artifacts,
                db_shown: database
                    .sqlite_path(data_dir)
                    .map_or_else(|| database.to_string(), |p| p.display().to_string()),
                key_file: data_dir.join(secrets::KEY_FILE),
                secret: std::sync::OnceLock::new(),
                _lock: lock,
            }),
        })
    }

    /// Keeps the server key in `path` instead of the data directory (so that
    /// replicas can share one). Only right after opening, before the key is
    /// used or the store cloned.
    pub fn with_key_file(mut self, path: &Path) -> Store {
        let inner =
            Arc::get_mut(&mut self.inner).expect("the key file is set before the store is shared");
        inner.key_file = path.to_owned();
        self
    }

    /// Where the artifact bytes are.
    pub fn artifacts(&self) -> &Blobs {
        &self.inner.artifacts
    }

    /// The database, as shown to a person (a path, or a URL without its
    /// password).
    pub fn db_shown(&self) -> &str {
        &self.inner.db_shown
    }

    /// The server key that seals secrets kept in the database (made in the
    /// data directory on first use).
    pub fn secret_key(&self) -> Result<&secrets::SecretKey, StoreError> {
        if let Some(key) = self.inner.secret.get() {
            return Ok(key);
        }
        let key = secrets::SecretKey::load_or_create_at(&self.inner.key_file)?;
        Ok(self.inner.secret.get_or_init(|| key))
    }

    /// Runs `f` with a connection, blocking the calling thread (until one
    /// is free, then while `f` runs).
    pub fn blocking<T>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pool = &self.inner.pool;
        let mut free = pool.free.lock().unwrap_or_else(|p| p.into_inner());
        let db = loop {
            match free.pop() {
                Some(db) => break db,
                None => free = pool.returned.wait(free).unwrap_or_else(|p| p.into_inner()),
            }
        };
        drop(free);
        let mut lent = Lent { pool, db: Some(db) };
        let started = std::time::Instant::now();
        let out = f(lent.db.as_mut().expect("lent until dropped"));
        metrics::histogram!("dpxdt_db_call_duration_seconds").record(started.elapsed());
        out
    }

    /// Runs `f` with the connection on tokio's blocking pool.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.blocking(f))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
    }
}

/// Starts a write transaction (see [`db::write_tx`]).
pub(crate) fn write_tx(conn: &mut Db) -> Result<db::Tx<'_>, StoreError> {
    Ok(db::write_tx(conn)?)
}

/// Starts a write transaction confined to `build`'s rows (see
/// [`db::build_write_tx`]).
pub(crate) fn build_write_tx(conn: &mut Db, build: BuildId) -> Result<db::Tx<'_>, StoreError> {
    Ok(db::build_write_tx(conn, build.0)?)
}

/// Starts a statements-only write transaction confined to `build`'s rows
/// (see [`db::build_statements_tx`]).
pub(crate) fn build_statements_tx(conn: &mut Db, build: BuildId) -> Result<db::Tx<'_>, StoreError> {
    Ok(db::build_statements_tx(conn, build.0)?)
}

pub use artifacts::{artifact_owned, record_artifact};
pub use builds::{
    bootstrap, build_exists, check_api_key, create_api_key, create_build, create_worker_key,
    ensure_api_key, remove_internal_keys, revoke_build_api_key,
};
pub use releases::{
    create_release, fail_run_for_task, find_run, get_release, get_release_by_id, get_run,
    list_runs, release_status, report_run, request_run, request_runs, results_url_path, runs_done,
    set_release_verdict,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_parse_and_never_show_a_password() {
        assert_eq!(
            "sqlite:/var/lib/dpxdt/db.sqlite3".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Sqlite("/var/lib/dpxdt/db.sqlite3".into()))
        );
        assert_eq!(
            "sqlite:///tmp/x.db".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        let pg: DatabaseUrl = "postgres://dpxdt:hunter2@db.internal:5433/dpxdt"
            .parse()
            .unwrap();
        assert!(matches!(pg, DatabaseUrl::Postgres(_)));
        for shown in [pg.to_string(), format!("{pg:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("dpxdt:***@db.internal:5433/dpxdt"),
                "{shown}"
            );
        }
        let err = "sqlite:".parse::<DatabaseUrl>().unwrap_err();
        assert!(err.contains("names no file"), "{err}");
        let err = "mysql://root:hunter2@db/x"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(err.contains("neither sqlite:PATH nor postgres://"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = "postgres://u:hunter2@db:notaport/x"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(err.starts_with("database URL "), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
