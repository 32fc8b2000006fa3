//! Ignore regions drawn in the review UI: per build and run name, a named
//! rectangle whose changes the diff worker leaves out in later releases.

use crate::storage::db::{Db, DbResult, OptionalExtension, Row, params};
use dpxdt_core::BuildId;
use dpxdt_core::diff::Region;

use super::activity::log_in;
use super::users::UserRow;
use super::{StoreError, now_ms, write_tx};

/// Most ignore regions one run name of a build may have.
pub const MAX_PER_RUN: i64 = 50;
/// Longest name of an ignore region, in bytes.
pub const MAX_NAME: usize = 100;
/// Largest coordinate an ignore region may have (the capture limit is far below).
pub const MAX_COORD: u32 = 1_000_000;

/// One stored ignore region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreRow {
    /// Its id (for removal).
    pub id: i64,
    /// The run name it applies to.
    pub run_name: String,
    /// What the person called it.
    pub name: String,
    /// The rectangle, in the new image's pixels.
    pub region: Region,
    /// Who drew it.
    pub created_by: Option<String>,
    /// When, ms since the epoch.
    pub created: i64,
}

/// Checks what a person typed or drew; the error names the field.
fn validate(run_name: &str, name: &str, region: &Region) -> Result<(), StoreError> {
    if run_name.is_empty() || run_name.len() > 1000 {
        return Err(StoreError::Invalid(
            "run: must be 1 to 1000 bytes".to_string(),
        ));
    }
    let name_ok =
        !name.trim().is_empty() && name.len() <= MAX_NAME && !name.chars().any(char::is_control);
    if !name_ok {
        return Err(StoreError::Invalid(format!(
            "name: must be 1 to {MAX_NAME} bytes of printable text, got {name:?}"
        )));
    }
    if region.x2 > MAX_COORD || region.y2 > MAX_COORD {
        return Err(StoreError::Invalid(format!(
            "region {region}: coordinates above {MAX_COORD}"
        )));
    }
    Ok(())
}

/// Stores a region for `run_name` of `build` and logs it; a second region
/// of the same name for the same run name is refused.
pub fn add(
    conn: &mut Db,
    build: BuildId,
    run_name: &str,
    name: &str,
    region: Region,
    user: &UserRow,
) -> Result<i64, StoreError> {
    let name = name.trim();
    validate(run_name, name, &region)?;
    let tx = write_tx(conn)?;
    let count: i64 = tx.query_row(
        "SELECT COUNT(*) FROM ignore_region WHERE build_id = ?1 AND run_name = ?2",
        params![build.0, run_name],
        |r| r.get(0),
    )?;
    if count >= MAX_PER_RUN {
        return Err(StoreError::OverLimit(format!(
            "run {run_name:?} already has {MAX_PER_RUN} ignore regions; remove one first"
        )));
    }
    let taken: Option<i64> = tx
        .query_row(
            "SELECT id FROM ignore_region WHERE build_id = ?1 AND run_name = ?2 AND name = ?3",
            params![build.0, run_name, name],
            |r| r.get(0),
        )
        .optional()?;
    if taken.is_some() {
        return Err(StoreError::Conflict(format!(
            "run {run_name:?} already has an ignore region named {name:?}"
        )));
    }
    tx.execute(
        "INSERT INTO ignore_region (build_id, run_name, name, x1, y1, x2, y2, created_by, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            build.0,
            run_name,
            name,
            region.x1,
            region.y1,
            region.x2,
            region.y2,
            user.id,
            now_ms()
        ],
    )?;
    let id = tx.last_insert_rowid()?;
    log_in(
        &tx,
        build,
        Some(user.id),
        "ignore_add",
        &format!("{name} {region} on {run_name}"),
    )?;
    tx.commit()?;
    Ok(id)
}

/// Removes region `id` of `build` and logs it.
pub fn remove(conn: &mut Db, build: BuildId, id: i64, user: &UserRow) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let row = tx
        .query_row(
            "SELECT run_name, name, x1, y1, x2, y2 FROM ignore_region WHERE id = ?1 AND build_id = ?2",
            params![id, build.0],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    region_at(r, 2)?,
                ))
            },
        )
        .optional()?;
    let (run_name, name, region) =
        row.ok_or_else(|| StoreError::NotFound(format!("ignore region {id}")))?;
    tx.execute("DELETE FROM ignore_region WHERE id = ?1", [id])?;
    log_in(
        &tx,
        build,
        Some(user.id),
        "ignore_remove",
        &format!("{name} {region} on {run_name}"),
    )?;
    tx.commit()?;
    Ok(())
}

fn region_at(r: &Row, first: usize) -> DbResult<Region> {
    Ok(Region {
        x1: r.get(first)?,
        y1: r.get(first + 1)?,
        x2: r.get(first + 2)?,
        y2: r.get(first + 3)?,
    })
}

/// The regions of one run name of a build, oldest first.
pub fn for_run(conn: &Db, build: BuildId, run_name: &str) -> Result<Vec<Region>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT x1, y1, x2, y2 FROM ignore_region WHERE build_id = ?1 AND run_name = ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![build.0, run_name], |r| region_at(r, 0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every region of a build (at most `limit`), by run name then name; with
/// `run_name`, only that run name's.
pub fn list(
    conn: &Db,
    build: BuildId,
    run_name: Option<&str>,
    limit: u32,
) -> Result<Vec<IgnoreRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.id, i.run_name, i.name, i.x1, i.y1, i.x2, i.y2, u.name, i.created
         FROM ignore_region i LEFT JOIN user u ON u.id = i.created_by
         WHERE i.build_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR i.run_name = ?2)
         ORDER BY i.run_name, i.name LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![build.0, run_name, limit], |r| {
        Ok(IgnoreRow {
            id: r.get(0)?,
            run_name: r.get(1)?,
            name: r.get(2)?,
            region: region_at(r, 3)?,
            created_by: r.get(7)?,
            created: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
