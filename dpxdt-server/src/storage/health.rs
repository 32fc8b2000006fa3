//! Health of the storage a server stands on: the database answers, its
//! schema is the one this binary expects, and the artifact directory takes
//! writes. `/readyz` runs them on the open store, `dpxdt-server check` on a
//! data directory without migrating or locking it.

use std::fmt;
use std::path::Path;

use rusqlite::OpenFlags;

use super::{
    ArtifactDir, ArtifactsConfig, ArtifactsUrl, Blobs, DatabaseUrl, Db, Store, latest_version,
};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked: `database`, `migrations` or `artifacts`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was seen, for a person reading the line.
    pub detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            detail: detail.into(),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.ok { "ok" } else { "FAILED" };
        write!(f, "{}: {verdict}: {}", self.name, self.detail)
    }
}

/// The database answers a query.
fn database(conn: &Db, shown_as: &str) -> Check {
    match conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Check::pass("database", format!("{shown_as} answers")),
        Err(e) => Check::fail("database", format!("{shown_as}: {e}")),
    }
}

/// The schema version is the one this binary writes.
fn migrations(conn: &Db) -> Check {
    let want = latest_version();
    match super::schema::version(conn) {
        Ok(v) if v == want => Check::pass("migrations", format!("schema version {v} is current")),
        Ok(v) if v < want => Check::fail(
            "migrations",
            format!(
                "schema version {v}: {} migrations pending (the server applies them when it starts)",
                want - v
            ),
        ),
        Ok(v) => Check::fail(
            "migrations",
            format!("schema version {v} is newer than this binary ({want})"),
        ),
        Err(e) => Check::fail("migrations", format!("cannot read the schema version: {e}")),
    }
}

/// A probe can be written, read back and removed where artifacts go (and
/// where uploads are received).
fn artifacts(blobs: &Blobs) -> Check {
    match blobs.probe() {
        Ok(()) => Check::pass("artifacts", format!("{} takes writes", blobs.describe())),
        Err(e) => Check::fail("artifacts", e.to_string()),
    }
}

/// The artifacts `url` names for `data_dir`, as they are: refused, not
/// created, when a directory is missing.
fn existing_artifacts(data_dir: &Path, config: &ArtifactsConfig) -> Result<Blobs, String> {
    let tmp = data_dir.join("tmp");
    match &config.url {
        ArtifactsUrl::DataDir => ArtifactDir::existing(data_dir).map(Blobs::Dir),
        ArtifactsUrl::Dir(root) => ArtifactDir::existing_at(root, &tmp).map(Blobs::Dir),
        ArtifactsUrl::S3 { .. } if !tmp.exists() => Err(format!("no directory {}", tmp.display())),
        ArtifactsUrl::S3 { .. } => Blobs::open(data_dir, config, false).map_err(|e| e.to_string()),
    }
}

impl Store {
    /// The checks on this open store (the `/readyz` answer).
    pub async fn health(&self) -> Vec<Check> {
        let store = self.clone();
        let shown = self.db_shown().to_owned();
        let checked = tokio::task::spawn_blocking(move || {
            let mut checks = store.blocking(|c| Ok(vec![database(c, &shown), migrations(c)]))?;
            checks.push(artifacts(store.artifacts()));
            Ok::<_, super::StoreError>(checks)
        })
        .await;
        match checked {
            Ok(Ok(checks)) => checks,
            Ok(Err(e)) => vec![Check::fail("database", e.to_string())],
            Err(e) => vec![Check::fail(
                "database",
                format!("the check did not finish: {e}"),
            )],
        }
    }
}

/// The checks on the data directory `data_dir`, beside a running server or
/// without one: nothing is created, migrated or locked (but a probe file
/// is written and removed in its temp directory and where artifacts go).
pub fn check_data_dir(
    data_dir: &Path,
    database_url: &DatabaseUrl,
    artifacts_config: &ArtifactsConfig,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let Some(db_path) = database_url.sqlite_path(data_dir) else {
        let shown = database_url.to_string();
        match database_url.connect(data_dir) {
            Ok(conn) => {
                checks.push(database(&conn, &shown));
                checks.push(migrations(&conn));
            }
            Err(e) => {
                checks.push(Check::fail("database", e.to_string()));
                checks.push(Check::fail("migrations", "no database to read"));
            }
        }
        push_artifacts(&mut checks, data_dir, artifacts_config);
        return checks;
    };
    let shown = db_path.display().to_string();
    if !db_path.is_file() {
        checks.push(Check::fail(
            "database",
            format!("no database at {shown} (a server creates it when it first starts)"),
        ));
        checks.push(Check::fail("migrations", "no database to read"));
    } else {
        match rusqlite::Connection::open_with_flags(&db_path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
            Ok(conn) => {
                let conn = Db::Sqlite(conn);
                checks.push(database(&conn, &shown));
                checks.push(migrations(&conn));
            }
            Err(e) => {
                checks.push(Check::fail("database", format!("cannot open {shown}: {e}")));
                checks.push(Check::fail("migrations", "no database to read"));
            }
        }
    }
    push_artifacts(&mut checks, data_dir, artifacts_config);
    checks
}

fn push_artifacts(checks: &mut Vec<Check>, data_dir: &Path, config: &ArtifactsConfig) {
    match existing_artifacts(data_dir, config) {
        Ok(blobs) => checks.push(artifacts(&blobs)),
        Err(e) => checks.push(Check::fail("artifacts", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(checks: &[Check]) -> Vec<(&'static str, bool)> {
        checks.iter().map(|c| (c.name, c.ok)).collect()
    }

    #[test]
    fn a_served_directory_passes_every_check() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let checks = check_data_dir(
            dir.path(),
            &DatabaseUrl::DataDir,
            &ArtifactsConfig::default(),
        );
        assert_eq!(
            verdicts(&checks),
            [
                ("database", true),
                ("migrations", true),
                ("artifacts", true)
            ],
            "{checks:?}"
        );
        assert!(
            checks[1]
                .to_string()
                .starts_with("migrations: ok: schema version")
        );
    }

    #[test]
    fn each_broken_part_fails_its_own_check_and_names_it() {
        // No directory at all.
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing-here");
        let checks = check_data_dir(&missing, &DatabaseUrl::DataDir, &ArtifactsConfig::default());
        assert_eq!(
            verdicts(&checks),
            [
                ("database", false),
                ("migrations", false),
                ("artifacts", false)
            ]
        );
        assert!(checks[0].detail.contains("no database at"), "{}", checks[0]);
        assert!(!missing.exists(), "a check creates nothing");

        // Pending and too-new schemas.
        drop(Store::open(dir.path()).unwrap());
        let db = dir.path().join(crate::storage::DB_FILE);
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
        let checks = check_data_dir(
            dir.path(),
            &DatabaseUrl::DataDir,
            &ArtifactsConfig::default(),
        );
        assert_eq!(verdicts(&checks)[1], ("migrations", false));
        let pending = latest_version() - 3;
        assert!(
            checks[1]
                .detail
                .contains(&format!("{pending} migrations pending")),
            "{}",
            checks[1]
        );
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .unwrap();
        assert!(
            check_data_dir(
                dir.path(),
                &DatabaseUrl::DataDir,
                &ArtifactsConfig::default()
            )[1]
            .detail
            .contains("newer than this binary")
        );
        conn.pragma_update(None, "user_version", latest_version())
            .unwrap();

        // Uploads cannot land: the temp directory is a file.
        let tmp = dir.path().join("tmp");
        std::fs::remove_dir_all(&tmp).unwrap();
        std::fs::write(&tmp, b"not a directory").unwrap();
        let checks = check_data_dir(
            dir.path(),
            &DatabaseUrl::DataDir,
            &ArtifactsConfig::default(),
        );
        assert_eq!(
            verdicts(&checks),
            [
                ("database", true),
                ("migrations", true),
                ("artifacts", false)
            ],
            "{checks:?}"
        );
        assert!(checks[2].detail.contains("cannot write"), "{}", checks[2]);
    }
}
