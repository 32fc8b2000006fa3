//! Per-build limits: what one build (one API key, perhaps an attacker's)
//! may make the server store and do. Each check runs inside the
//! transaction that would go over the limit, so a refused request changes
//! nothing.

use crate::storage::db::{Db, OptionalExtension, params};
use dpxdt_core::{BuildId, ReleaseId};

use super::{StoreError, now_ms};

/// The limits every build has (server-wide settings, applied per build).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most runs in one release (413 beyond).
    pub runs_per_release: u32,
    /// Most releases a build may create in any hour (429 beyond).
    pub releases_per_hour: u32,
    /// Most bytes of artifacts a build may own (413 beyond).
    pub build_bytes: u64,
    /// Most capture tasks of a build waiting or running at once (429 beyond).
    pub queued_captures: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            runs_per_release: 2_000,
            releases_per_hour: 200,
            build_bytes: 20 << 30,
            queued_captures: 1_000,
        }
    }
}

const HOUR_MS: i64 = 3_600_000;

/// Counts a new run in `release`, or refuses it when the release has
/// `runs_per_release` already. One single-row update does both, so the
/// check costs the same in a release of ten runs as in one of thousands.
pub(crate) fn count_new_run(
    conn: &Db,
    release: ReleaseId,
    limits: &Limits,
) -> Result<(), StoreError> {
    let counted = conn.execute(
        "UPDATE release SET run_count = run_count + 1 WHERE id = ?1 AND run_count < ?2",
        params![release.0, i64::from(limits.runs_per_release)],
    )?;
    if counted == 0 {
        let runs: i64 = conn.query_row(
            "SELECT run_count FROM release WHERE id = ?1",
            [release.0],
            |r| r.get(0),
        )?;
        return Err(StoreError::OverLimit(format!(
            "the release has {runs} runs, the most one release may have \
             (--max-runs-per-release {})",
            limits.runs_per_release
        )));
    }
    Ok(())
}

/// Refuses a new release when `build` created `releases_per_hour` in the
/// last hour; says when the next one will be accepted.
pub(crate) fn check_release_rate(
    conn: &Db,
    build: BuildId,
    limits: &Limits,
) -> Result<(), StoreError> {
    let now = now_ms();
    let (count, oldest): (i64, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), MIN(created) FROM release WHERE build_id = ?1 AND created > ?2",
        params![build.0, now - HOUR_MS],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if count >= i64::from(limits.releases_per_hour) {
        let wait_ms = oldest.map_or(HOUR_MS, |t| t + HOUR_MS - now).max(1000);
        return Err(StoreError::RateLimited {
            message: format!(
                "build {build} created {count} releases in the last hour, the most it may \
                 (--max-releases-per-hour {})",
                limits.releases_per_hour
            ),
            retry_after_secs: (wait_ms as u64).div_ceil(1000),
        });
    }
    Ok(())
}

/// Refuses `adding` more capture tasks when `build` has `queued_captures`
/// waiting or running.
pub(crate) fn check_queued_captures(
    conn: &Db,
    build: BuildId,
    adding: u32,
    limits: &Limits,
) -> Result<(), StoreError> {
    let queues = dpxdt_core::api::capture_queues();
    let queued: i64 = conn.query_row(
        "SELECT COUNT(*) FROM task
         WHERE queue IN (?1, ?2, ?3) AND status = 'live' AND build_id = ?4",
        params![queues[0], queues[1], queues[2], build.0],
        |r| r.get(0),
    )?;
    if queued + i64::from(adding) > i64::from(limits.queued_captures) {
        return Err(StoreError::RateLimited {
            message: format!(
                "build {build} has {queued} captures waiting or running, the most it may \
                 (--max-queued-captures {}); try again when some are done",
                limits.queued_captures
            ),
            retry_after_secs: 60,
        });
    }
    Ok(())
}

/// The bytes of the artifacts `build` owns.
pub fn build_bytes(conn: &Db, build: BuildId) -> Result<u64, StoreError> {
    // Kept by record_artifact and the garbage collector's end_claims.
    let bytes: Option<i64> = conn
        .query_row(
            "SELECT artifact_bytes FROM build WHERE id = ?1",
            [build.0],
            |r| r.get(0),
        )
        .optional()?;
    Ok(bytes.unwrap_or(0).max(0) as u64)
}

/// Refuses an artifact of `size` bytes that `build` does not own yet when
/// it would take the build over `build_bytes`.
pub fn check_build_bytes(
    conn: &Db,
    build: BuildId,
    artifact: &dpxdt_core::ArtifactId,
    size: u64,
    limits: &Limits,
) -> Result<(), StoreError> {
    let owned: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM artifact_owner WHERE build_id = ?1 AND artifact_id = ?2)",
        params![build.0, artifact.as_str()],
        |r| r.get(0),
    )?;
    if owned {
        return Ok(());
    }
    let stored = build_bytes(conn, build)?;
    if stored.saturating_add(size) > limits.build_bytes {
        return Err(StoreError::OverLimit(format!(
            "build {build} stores {stored} bytes; {size} more would pass its limit of {} \
             (--max-build-bytes)",
            limits.build_bytes
        )));
    }
    Ok(())
}
