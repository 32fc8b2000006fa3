//! `dpxdt-server migrate --to postgres://… [--artifacts-to s3://…]`: moves
//! a stopped SQLite server's history to PostgreSQL (and its artifacts to a
//! bucket), so a team can move up without losing any of it.
//!
//! Artifacts go first: each is read, checked against its SHA-1 name and
//! written where it is missing (names are content hashes, so this is safe to
//! repeat). The rows then go in one PostgreSQL transaction, table by table
//! with their ids, and the id sequences are moved past them. An
//! interruption leaves the target's tables empty (some artifacts may be
//! there already), so the same command can simply run again; a target whose
//! tables hold rows is refused.

use std::io::Write;

use dpxdt_core::ArtifactId;

use super::db::{Db, DbError, Dialect, Value};
use super::{Store, StoreError};

/// What a migration copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Artifacts written to the target.
    pub artifacts_copied: u64,
    /// Artifacts the target had already (from an interrupted run).
    pub artifacts_present: u64,
    /// Rows copied, per table, in copy order.
    pub rows: Vec<(String, u64)>,
}

/// The source's tables in the order they were created, so that a table
/// comes after every table it refers to.
fn source_tables(src: &Db) -> Result<Vec<String>, DbError> {
    src.query_rows(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY rowid",
        [],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn columns(src: &Db, table: &str) -> Result<Vec<String>, DbError> {
    src.query_rows(
        &format!("SELECT name FROM pragma_table_info('{table}')"),
        [],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Copies `source` (SQLite, opened with its data directory's lock, so no
/// server is using it) into `target` (PostgreSQL, migrated). `progress`
/// gets one line now and then.
pub fn migrate(
    source: &Store,
    target: &Store,
    progress: &mut dyn Write,
) -> Result<MigrateReport, StoreError> {
    let mut report = MigrateReport::default();
    let (tables, ids, versions) = source.blocking(|src| {
        if src.dialect() != Dialect::Sqlite {
            return Err(StoreError::Invalid(
                "migrate copies from a SQLite database".into(),
            ));
        }
        let ids: Vec<String> = src
            .query_rows("SELECT id FROM artifact ORDER BY id", [])?
            .iter()
            .map(|r| r.get(0))
            .collect::<Result<_, _>>()?;
        Ok((source_tables(src)?, ids, super::schema::version(src)?))
    })?;
    target.blocking(|dst| {
        if dst.dialect() != Dialect::Postgres {
            return Err(StoreError::Invalid(
                "migrate copies to a PostgreSQL database (--to postgres://…)".into(),
            ));
        }
        if super::schema::version(dst)? != versions {
            return Err(StoreError::Invalid(format!(
                "the source is at schema version {versions} and the target at {}; start the server on the source once to bring it up to date",
                super::schema::version(dst)?
            )));
        }
        for table in &tables {
            let quoted = format!("\"{table}\"");
            let rows: i64 =
                dst.query_row(&format!("SELECT COUNT(*) FROM {quoted}"), [], |r| r.get(0))?;
            if rows > 0 {
                return Err(StoreError::Conflict(format!(
                    "the target database is not empty (table {table} has {rows} rows); migrate only into a new database"
                )));
            }
        }
        Ok(())
    })?;

    // Artifacts first: safe to repeat, and the rows that name them come after.
    let (from, to) = (source.artifacts(), target.artifacts());
    let _ = writeln!(
        progress,
        "migrate: {} artifacts from {} to {}",
        ids.len(),
        from.describe(),
        to.describe()
    );
    for (done, id) in ids.iter().enumerate() {
        let id: ArtifactId = id
            .parse()
            .map_err(|e| StoreError::Invalid(format!("artifact row {id:?}: {e}")))?;
        if to.exists(&id)? {
            report.artifacts_present += 1;
        } else {
            let bytes = from.read(&id).map_err(|e| {
                StoreError::Io(std::io::Error::new(
                    e.kind(),
                    format!("artifact {id} is named in the database but cannot be read: {e}"),
                ))
            })?;
            if ArtifactId::of_bytes(&bytes) != id {
                return Err(StoreError::Invalid(format!(
                    "artifact {id} in {} does not hash to its name; the source is damaged",
                    from.describe()
                )));
            }
            let written = to.write_bytes(&bytes)?;
            debug_assert_eq!(written, id);
            report.artifacts_copied += 1;
        }
        if (done + 1) % 500 == 0 || done + 1 == ids.len() {
            let _ = writeln!(progress, "migrate: artifacts {}/{}", done + 1, ids.len());
        }
    }

    // Rows: one transaction, so an interruption leaves no half-copied table.
    source.blocking(|src| {
        target.blocking(|dst| {
            let identity: Vec<String> = dst
                .query_rows(
                    "SELECT table_name::text FROM information_schema.columns
                     WHERE column_name = 'id' AND is_identity = 'YES'
                       AND table_schema = current_schema()",
                    [],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect::<Result<_, _>>()?;
            let tx = super::db::write_tx(dst)?;
            for table in &tables {
                let cols = columns(src, table)?;
                let list = cols.join(", ");
                let rows = src.query_rows(&format!("SELECT {list} FROM \"{table}\""), [])?;
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                let insert = format!(
                    "INSERT INTO \"{table}\" ({list}) VALUES ({})",
                    marks.join(", ")
                );
                for row in &rows {
                    let values: Vec<Value> = (0..cols.len())
                        .map(|i| row.get(i))
                        .collect::<Result<_, _>>()?;
                    let params: Vec<&dyn super::db::ToValue> =
                        values.iter().map(|v| v as &dyn super::db::ToValue).collect();
                    tx.execute(&insert, params.as_slice())
                        .map_err(|e| StoreError::Db(DbError::Other(format!("table {table}: {e}"))))?;
                }
                if identity.contains(table) {
                    // New rows get ids after the copied ones.
                    tx.query_rows(
                        &format!(
                            "SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'),
                                           COALESCE((SELECT MAX(id) FROM \"{table}\"), 0) + 1, false)"
                        ),
                        [],
                    )?;
                }
                let _ = writeln!(progress, "migrate: table {table}: {} rows", rows.len());
                report.rows.push((table.clone(), rows.len() as u64));
            }
            tx.commit()?;
            Ok(())
        })
    })?;
    Ok(report)
}
