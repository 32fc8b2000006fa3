//! Retention and garbage collection.
//!
//! 1. **Releases.** Per build and branch, the newest `keep_releases`
//!    releases stay, and so does every release younger than `keep_days`,
//!    every release that is a current baseline (of any branch, for any run
//!    name), every release a person marked to keep, and every release still
//!    receiving or processing. The others are deleted with their runs.
//! 2. **Artifacts.** Content-addressed bytes are shared between runs,
//!    releases and builds. A build's claim on an artifact (its owner row)
//!    ends when no run of the build refers to it; an artifact with no claim
//!    left and no thumbnail pointing at it is deleted, row and file.
//!
//! Safe while the server runs: the collector looks (marks) first, then
//! takes each thing only if nobody used it since it looked. An upload or a
//! run that refers to an artifact refreshes its owner row's `seen`, and the
//! collector drops an owner row only if `seen` is older than the moment it
//! started to look. Deleting an artifact's row and file, and putting an
//! upload's file in place with its row, both happen while holding the
//! store's one connection, so they never interleave. Every step is a short
//! transaction of its own and repeating it is harmless, so an interrupted
//! collection simply continues at the next run.

use std::collections::HashSet;
use std::time::Duration;

use crate::storage::db::{Db, Dialect, OptionalExtension, params};
use dpxdt_core::{ArtifactId, BuildId};

use super::activity::log_in;
use super::{Store, StoreError, now_ms, write_tx};

/// How many releases a build keeps per branch and for how long, unless its
/// own settings say otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Newest releases kept per branch (at least 1).
    pub keep_releases: u32,
    /// Releases younger than this many days are kept (at least 1).
    pub keep_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_releases: 20,
            keep_days: 30,
        }
    }
}

impl Policy {
    /// Checks a policy typed by a person; the error names the setting.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.keep_releases == 0 || self.keep_releases > 1_000_000 {
            return Err(StoreError::Invalid(format!(
                "keep releases must be 1 to 1000000 per branch, got {}",
                self.keep_releases
            )));
        }
        if self.keep_days == 0 || self.keep_days > 36_500 {
            return Err(StoreError::Invalid(format!(
                "keep days must be 1 to 36500, got {}",
                self.keep_days
            )));
        }
        Ok(())
    }
}

/// How a collection runs.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Only count what would go; change nothing.
    pub dry_run: bool,
    /// The policy of builds that have none of their own.
    pub defaults: Policy,
    /// Artifacts a build uploaded or referred to this recently are kept
    /// even when nothing refers to them (an upload whose run is not
    /// reported yet).
    pub grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            defaults: Policy::default(),
            grace: Duration::from_secs(3600),
        }
    }
}

/// What a collection deleted (or, dry, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Releases deleted.
    pub releases: u64,
    /// Their runs.
    pub runs: u64,
    /// Builds' claims on artifacts ended.
    pub claims: u64,
    /// Artifacts deleted.
    pub artifacts: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Releases deleted per transaction.
const BATCH: usize = 100;

/// Runs a collection over every build. `checkpoint` is called once the
/// collector has looked and before it takes anything, with the artifacts
/// it means to delete: tests use it to force an upload into that gap.
pub fn collect(
    store: &Store,
    opts: &GcOptions,
    checkpoint: &mut dyn FnMut(&[ArtifactId]),
) -> Result<GcReport, StoreError> {
    let mut report = GcReport::default();
    let builds: Vec<(BuildId, String, Policy)> = store.blocking(|c| {
        let mut stmt =
            c.prepare("SELECT id, default_branch, keep_releases, keep_days FROM build")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                BuildId(r.get(0)?),
                r.get::<_, String>(1)?,
                Policy {
                    keep_releases: r
                        .get::<_, Option<u32>>(2)?
                        .unwrap_or(opts.defaults.keep_releases),
                    keep_days: r
                        .get::<_, Option<u32>>(3)?
                        .unwrap_or(opts.defaults.keep_days),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })?;
    // 1. Releases past their build's policy.
    let mut doomed_by_build = Vec::new();
    for (build, default_branch, policy) in &builds {
        let doomed = store.blocking(|c| expired_releases(c, *build, default_branch, policy))?;
        doomed_by_build.push((*build, doomed));
    }
    // 2. Look: the claims no remaining run needs (the doomed releases'
    // runs do not count), as of `looked`.
    let looked = now_ms() - opts.grace.as_millis() as i64;
    let mut claims = Vec::new();
    for (build, doomed) in &doomed_by_build {
        let unused = store.blocking(|c| unused_claims(c, *build, doomed, looked))?;
        claims.push((*build, unused));
    }
    let freed = store.blocking(|c| freed_artifacts(c, &claims))?;
    report.claims = claims.iter().map(|(_, v)| v.len() as u64).sum();
    report.artifacts = freed.len() as u64;
    report.bytes = freed.iter().map(|(_, size)| *size).sum();
    report.runs = store.blocking(|c| {
        let mut n = 0;
        for (_, doomed) in &doomed_by_build {
            n += count_runs(c, doomed)?;
        }
        Ok(n)
    })?;
    report.releases = doomed_by_build.iter().map(|(_, d)| d.len() as u64).sum();
    if opts.dry_run {
        return Ok(report);
    }
    let ids: Vec<ArtifactId> = freed.iter().map(|(id, _)| id.clone()).collect();
    checkpoint(&ids);

    // 3. Take: releases in batches, then claims and artifacts one short
    // step each, each checked again against what happened since `looked`.
    for (build, doomed) in &doomed_by_build {
        for batch in doomed.chunks(BATCH) {
            store.blocking(|c| delete_releases(c, *build, batch))?;
        }
        if !doomed.is_empty() {
            store.blocking(|c| {
                log_in(
                    c,
                    *build,
                    None,
                    "gc",
                    &format!(
                        "deleted {} releases past the retention policy",
                        doomed.len()
                    ),
                )
            })?;
        }
    }
    let (mut claims_ended, mut deleted, mut bytes) = (0, 0, 0);
    for (build, unused) in &claims {
        for chunk in unused.chunks(500) {
            claims_ended += store.blocking(|c| end_claims(c, *build, chunk, looked))?;
        }
    }
    for (id, size) in &freed {
        let gone = store.blocking(|c| delete_artifact(c, id, store.artifacts()))?;
        if gone {
            deleted += 1;
            bytes += size;
        }
    }
    report.claims = claims_ended;
    report.artifacts = deleted;
    report.bytes = bytes;
    tracing::info!(?report, "garbage collection done");
    Ok(report)
}

/// The releases of `build` its policy no longer keeps, oldest first.
fn expired_releases(
    conn: &Db,
    build: BuildId,
    default_branch: &str,
    policy: &Policy,
) -> Result<Vec<i64>, StoreError> {
    let cutoff = now_ms() - i64::from(policy.keep_days) * 86_400_000;
    // A current baseline: the newest good release with a screenshot for a
    // run name on a branch, or on the default branch counting approvals
    // made for it elsewhere (as `releases::find_run` looks them up).
    let mut stmt = conn.prepare(
        "WITH baseline AS (
             SELECT MAX(r.id) AS id FROM release r JOIN run ON run.release_id = r.id
             WHERE r.build_id = ?1 AND r.status = 'good' AND run.image IS NOT NULL
             GROUP BY COALESCE(r.branch, ?2), run.name
             UNION
             SELECT MAX(r.id) FROM release r JOIN run ON run.release_id = r.id
             WHERE r.build_id = ?1 AND r.status = 'good' AND run.image IS NOT NULL
               AND (r.branch IS NULL OR r.branch = ?2 OR run.for_default_branch = 1)
             GROUP BY run.name
         ),
         ranked AS (
             SELECT id, status, created, keep,
                    ROW_NUMBER() OVER (PARTITION BY COALESCE(branch, ?2) ORDER BY id DESC) AS n
             FROM release WHERE build_id = ?1
         )
         SELECT id FROM ranked
         WHERE n > ?3 AND created < ?4 AND keep = 0
           AND status NOT IN ('receiving', 'processing')
           AND id NOT IN (SELECT id FROM baseline WHERE id IS NOT NULL)
         ORDER BY id",
    )?;
    let rows = stmt.query_map(
        params![build.0, default_branch, policy.keep_releases, cutoff],
        |r| r.get(0),
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn count_runs(conn: &Db, releases: &[i64]) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT COUNT(*) FROM run WHERE release_id = ?1")?;
    let mut n = 0u64;
    for id in releases {
        n += stmt.query_row([id], |r| r.get::<_, i64>(0))? as u64;
    }
    Ok(n)
}

/// The artifacts `build` has a claim on, unused since `looked`, that no
/// run of the build refers to once the `doomed` releases are gone.
fn unused_claims(
    conn: &mut Db,
    build: BuildId,
    doomed: &[i64],
    looked: i64,
) -> Result<Vec<String>, StoreError> {
    let tx = write_tx(conn)?;
    tx.execute_batch(match tx.dialect() {
        Dialect::Sqlite => {
            "CREATE TEMP TABLE IF NOT EXISTS gc_doomed (id INTEGER PRIMARY KEY);
             CREATE TEMP TABLE IF NOT EXISTS gc_live (id TEXT PRIMARY KEY) WITHOUT ROWID;"
        }
        Dialect::Postgres => {
            "CREATE TEMP TABLE IF NOT EXISTS gc_doomed (id BIGINT PRIMARY KEY);
             CREATE TEMP TABLE IF NOT EXISTS gc_live (id TEXT PRIMARY KEY);"
        }
    })?;
    tx.execute_batch("DELETE FROM gc_doomed; DELETE FROM gc_live;")?;
    {
        let mut add = tx.prepare("INSERT INTO gc_doomed (id) VALUES (?1)")?;
        for id in doomed {
            add.execute([id])?;
        }
    }
    for column in [
        "image",
        "log",
        "config",
        "ref_image",
        "ref_log",
        "ref_config",
        "diff_image",
        "diff_log",
    ] {
        tx.execute(
            &format!(
                "INSERT OR IGNORE INTO gc_live (id)
                 SELECT run.{column} FROM run JOIN release r ON r.id = run.release_id
                 WHERE r.build_id = ?1 AND run.{column} IS NOT NULL
                   AND r.id NOT IN (SELECT id FROM gc_doomed)"
            ),
            [build.0],
        )?;
    }
    let unused: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT artifact_id FROM artifact_owner
             WHERE build_id = ?1 AND seen < ?2
               AND artifact_id NOT IN (SELECT id FROM gc_live)",
        )?;
        let rows = stmt.query_map(params![build.0, looked], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    tx.execute_batch("DELETE FROM gc_doomed; DELETE FROM gc_live;")?;
    tx.commit()?;
    Ok(unused)
}

/// The artifacts that would have no claim left once `claims` end, and are
/// no thumbnail of a screenshot that stays; with their sizes.
fn freed_artifacts(
    conn: &Db,
    claims: &[(BuildId, Vec<String>)],
) -> Result<Vec<(ArtifactId, u64)>, StoreError> {
    let ending: HashSet<(i64, &str)> = claims
        .iter()
        .flat_map(|(b, ids)| ids.iter().map(move |id| (b.0, id.as_str())))
        .collect();
    let candidates: HashSet<&str> = ending.iter().map(|(_, id)| *id).collect();
    let mut owners =
        conn.prepare_cached("SELECT build_id FROM artifact_owner WHERE artifact_id = ?1")?;
    let mut size = conn.prepare_cached("SELECT size FROM artifact WHERE id = ?1")?;
    let mut out = Vec::new();
    let mut freed: HashSet<String> = HashSet::new();
    for id in candidates {
        let builds: Vec<i64> = owners
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if builds.iter().all(|b| ending.contains(&(*b, id)))
            && let Some(bytes) = size.query_row([id], |r| r.get::<_, i64>(0)).optional()?
            && let Ok(parsed) = ArtifactId::parse(id)
        {
            freed.insert(id.to_string());
            out.push((parsed, bytes.max(0) as u64));
        }
    }
    // Thumbnails of freed screenshots go with them, unless another kept
    // screenshot's thumbnail is the same bytes.
    let mut thumbs = conn.prepare_cached(
        "SELECT t.thumb_id, a.size FROM thumbnail t JOIN artifact a ON a.id = t.thumb_id
         WHERE t.source_key LIKE ?1 ESCAPE '\\'",
    )?;
    let mut kept_thumb =
        conn.prepare_cached("SELECT source_key FROM thumbnail WHERE thumb_id = ?1")?;
    let mut extra = Vec::new();
    for (id, _) in &out {
        let rows: Vec<(String, i64)> = thumbs
            .query_map([format!("{id}:%")], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (thumb, bytes) in rows {
            let sources: Vec<String> = kept_thumb
                .query_map([&thumb], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let all_freed = sources.iter().all(|k| {
                k.split(':')
                    .next()
                    .is_some_and(|source| freed.contains(source))
            });
            let owned: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM artifact_owner WHERE artifact_id = ?1)",
                [&thumb],
                |r| r.get(0),
            )?;
            if all_freed
                && !owned
                && freed.insert(thumb.clone())
                && let Ok(parsed) = ArtifactId::parse(&thumb)
            {
                extra.push((parsed, bytes.max(0) as u64));
            }
        }
    }
    // Screenshots first: a thumbnail goes once its sources' rows are gone.
    out.extend(extra);
    Ok(out)
}

/// Deletes releases (with their runs, tasks and notifications) in one
/// transaction.
fn delete_releases(conn: &mut Db, build: BuildId, ids: &[i64]) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    for id in ids {
        // Only a release of this build that is still past keeping (a
        // person may have marked it to keep since): checked before any of
        // its rows go.
        let doomed: Option<i64> = tx
            .query_row(
                "SELECT id FROM release WHERE id = ?1 AND build_id = ?2 AND keep = 0",
                params![id, build.0],
                |r| r.get(0),
            )
            .optional()?;
        if doomed.is_none() {
            continue;
        }
        for sql in [
            "DELETE FROM mail_notification WHERE release_id = ?1",
            "DELETE FROM commit_status WHERE release_id = ?1",
            "DELETE FROM notification WHERE release_id = ?1",
            "DELETE FROM task WHERE release_id = ?1",
            "DELETE FROM comment_notification WHERE comment_id IN (SELECT c.id FROM run_comment c
                JOIN run r ON r.id = c.run_id WHERE r.release_id = ?1)",
            "DELETE FROM run_comment WHERE run_id IN (SELECT id FROM run WHERE release_id = ?1)",
            "DELETE FROM run WHERE release_id = ?1",
        ] {
            tx.execute(sql, [id])?;
        }
        // Only a release of this build that is still past keeping (a
        // person may have marked it to keep since).
        tx.execute(
            "DELETE FROM release WHERE id = ?1 AND build_id = ?2 AND keep = 0",
            params![id, build.0],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Ends `build`'s claims on `ids` that nobody used since `looked` and no
/// run refers to (checked again now); returns how many ended.
fn end_claims(
    conn: &mut Db,
    build: BuildId,
    ids: &[String],
    looked: i64,
) -> Result<u64, StoreError> {
    let tx = write_tx(conn)?;
    let mut n = 0;
    for id in ids {
        let ended = tx.execute(
            "DELETE FROM artifact_owner WHERE build_id = ?1 AND artifact_id = ?2 AND seen < ?3",
            params![build.0, id, looked],
        )?;
        if ended == 1 {
            tx.execute(
                "UPDATE build SET artifact_bytes = artifact_bytes
                     - (SELECT size FROM artifact WHERE id = ?2) WHERE id = ?1",
                params![build.0, id],
            )?;
            n += 1;
        }
    }
    tx.commit()?;
    Ok(n)
}

/// Deletes artifact `id` (row, thumbnail rows of it, then the file at
/// `path`) if no build claims it and no thumbnail row points at it. Runs
/// while holding the store's connection, as an upload's placing of a file
/// and its row does, so the two never interleave.
fn delete_artifact(
    conn: &mut Db,
    id: &ArtifactId,
    blobs: &super::Blobs,
) -> Result<bool, StoreError> {
    let tx = write_tx(conn)?;
    let claimed: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM artifact_owner WHERE artifact_id = ?1)
             OR EXISTS (SELECT 1 FROM thumbnail WHERE thumb_id = ?1
                        AND source_key NOT LIKE ?2 ESCAPE '\\')",
        params![id.as_str(), format!("{id}:%")],
        |r| r.get(0),
    )?;
    if claimed {
        return Ok(false);
    }
    tx.execute(
        "DELETE FROM thumbnail WHERE source_key LIKE ?1 ESCAPE '\\'",
        [format!("{id}:%")],
    )?;
    // A thumbnail whose source is gone (deleted in this or an earlier run).
    tx.execute("DELETE FROM thumbnail WHERE thumb_id = ?1", [id.as_str()])?;
    let gone = tx.execute("DELETE FROM artifact WHERE id = ?1", [id.as_str()])? == 1;
    tx.commit()?;
    // The bytes go after the row, under the write lock again, and only if no
    // upload recorded the artifact anew in between: uploads and thumbnails
    // check and write their bytes and record the row under the same lock,
    // so a row never points at deleted bytes, whichever process or replica
    // made it.
    let tx = write_tx(conn)?;
    let recorded: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM artifact WHERE id = ?1)",
        [id.as_str()],
        |r| r.get(0),
    )?;
    if !recorded {
        blobs.delete(id)?;
    }
    tx.commit()?;
    Ok(gone)
}

/// A build's own retention settings (none: the server's defaults).
pub fn build_policy(conn: &Db, build: BuildId) -> Result<(Option<u32>, Option<u32>), StoreError> {
    Ok(conn.query_row(
        "SELECT keep_releases, keep_days FROM build WHERE id = ?1",
        [build.0],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Sets a build's own retention (none: the server's default) and logs it.
pub fn set_build_policy(
    conn: &mut Db,
    build: BuildId,
    user: &super::users::UserRow,
    keep_releases: Option<u32>,
    keep_days: Option<u32>,
) -> Result<(), StoreError> {
    Policy {
        keep_releases: keep_releases.unwrap_or(1),
        keep_days: keep_days.unwrap_or(1),
    }
    .validate()?;
    let tx = write_tx(conn)?;
    let old = build_policy(&tx, build)?;
    if old == (keep_releases, keep_days) {
        return Ok(());
    }
    tx.execute(
        "UPDATE build SET keep_releases = ?1, keep_days = ?2, modified = ?3 WHERE id = ?4",
        params![keep_releases, keep_days, now_ms(), build.0],
    )?;
    let show = |v: Option<u32>| v.map_or("the server's default".to_string(), |v| v.to_string());
    log_in(
        &tx,
        build,
        Some(user.id),
        "retention",
        &format!(
            "keep {} releases per branch, {} days",
            show(keep_releases),
            show(keep_days)
        ),
    )?;
    tx.commit()?;
    Ok(())
}

/// Marks a release to keep whatever the policy says, or lets the policy
/// decide again; logged.
pub fn set_keep(
    conn: &mut Db,
    build: BuildId,
    release: dpxdt_core::ReleaseId,
    keep: bool,
    user: &super::users::UserRow,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let name: Option<(String, i64)> = tx
        .query_row(
            "SELECT name, number FROM release WHERE id = ?1 AND build_id = ?2",
            params![release.0, build.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (name, number) = name.ok_or_else(|| StoreError::NotFound(format!("release {release}")))?;
    tx.execute(
        "UPDATE release SET keep = ?1 WHERE id = ?2",
        params![keep, release.0],
    )?;
    log_in(
        &tx,
        build,
        Some(user.id),
        if keep {
            "release_keep"
        } else {
            "release_unkeep"
        },
        &format!("{name} #{number}"),
    )?;
    tx.commit()?;
    Ok(())
}

/// What a build stores: its releases and the bytes of the artifacts it claims.
pub fn build_usage(conn: &Db, build: BuildId) -> Result<(u64, u64), StoreError> {
    let releases: i64 = conn.query_row(
        "SELECT COUNT(*) FROM release WHERE build_id = ?1",
        [build.0],
        |r| r.get(0),
    )?;
    Ok((
        releases.max(0) as u64,
        super::quotas::build_bytes(conn, build)?,
    ))
}

/// Whether a release is marked to keep.
pub fn kept(conn: &Db, release: dpxdt_core::ReleaseId) -> Result<bool, StoreError> {
    Ok(conn
        .query_row("SELECT keep FROM release WHERE id = ?1", [release.0], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::releases::{self, NewRelease};
    use crate::storage::{Limits, artifacts, create_build, record_artifact};
    use dpxdt_core::api::ReportRunRequest;

    /// A store with one build, its owner `ann`, and the artifacts `names`
    /// (their bytes are their names), recorded as the build's uploads.
    fn setup(names: &[&str]) -> (tempfile::TempDir, Store, BuildId, Vec<ArtifactId>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids: Vec<ArtifactId> = names
            .iter()
            .map(|n| store.artifacts().write_bytes(n.as_bytes()).unwrap())
            .collect();
        let build = store
            .blocking(|c| {
                let build = create_build(c, "site")?;
                for (id, n) in ids.iter().zip(names) {
                    record_artifact(c, build, id, "image/png", n.len() as i64)?;
                }
                Ok(build)
            })
            .unwrap();
        (dir, store, build, ids)
    }

    /// Creates release `name` on `branch` with `runs` (run name, image),
    /// finishes it and gives it `verdict` (none: stays reviewing).
    fn release(
        c: &mut Db,
        build: BuildId,
        name: &str,
        branch: Option<&str>,
        runs: &[(&str, &ArtifactId)],
        verdict: Option<&str>,
    ) -> Result<(), StoreError> {
        let new = NewRelease {
            name,
            url: "u",
            branch,
            commit_sha: None,
        };
        releases::create_release(c, build, &new, &Limits::default())?;
        for (run, image) in runs {
            let report = ReportRunRequest {
                build_id: build,
                release_name: name.into(),
                release_number: 1,
                run_name: (*run).into(),
                image: Some((*image).clone()),
                ..Default::default()
            };
            releases::report_run(c, &report, &Limits::default())?;
        }
        releases::runs_done(c, build, name, 1)?;
        if let Some(v) = verdict {
            releases::set_release_verdict(c, build, name, 1, v, None)?;
        }
        Ok(())
    }

    fn names(c: &Db) -> Vec<String> {
        let mut stmt = c.prepare("SELECT name FROM release ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn old_releases_go_baselines_and_kept_ones_stay_and_unreferenced_bytes_are_freed() {
        let (_dir, store, build, ids) =
            setup(&["a1", "b1", "a2", "a3", "a4", "a5", "b5", "f1", "z0"]);
        let [a1, b1, a2, a3, a4, a5, b5, f1, z0] = &ids[..] else {
            unreachable!()
        };
        store
            .blocking(|c| {
                release(c, build, "r0", None, &[("/a", z0)], Some("bad"))?;
                release(
                    c,
                    build,
                    "r1",
                    None,
                    &[("/a", a1), ("/b", b1)],
                    Some("good"),
                )?;
                release(c, build, "r2", None, &[("/a", a2)], Some("good"))?;
                release(c, build, "r3", None, &[("/a", a3), ("/b", b5)], None)?;
                release(c, build, "f1", Some("feature"), &[("/a", f1)], Some("good"))?;
                release(c, build, "r4", None, &[("/a", a4)], Some("bad"))?;
                release(c, build, "r5", None, &[("/a", a5), ("/b", b5)], None)?;
                // Everything is 40 days old; r0 is marked to keep.
                c.execute("UPDATE release SET created = created - 40 * 86400000", [])?;
                c.execute("UPDATE artifact_owner SET seen = 0", [])?;
                let r0 = releases::get_release(c, build, "r0", 1)?;
                c.execute("UPDATE release SET keep = 1 WHERE id = ?1", [r0.id.0])?;
                Ok(())
            })
            .unwrap();
        // A thumbnail of a3 (which goes) is itself an artifact.
        let blobs = store.artifacts().clone();
        let thumb = store
            .blocking(|c| {
                artifacts::save_thumbnail(c, &blobs, &format!("{a3}:320x200"), b"thumb of a3")
            })
            .unwrap();
        let opts = GcOptions {
            defaults: Policy {
                keep_releases: 2,
                keep_days: 30,
            },
            grace: Duration::ZERO,
            ..GcOptions::default()
        };
        // Kept: r5, r4 (the newest two of main), r2 (baseline of /a), r1
        // (baseline of /b), f1 (the newest of its branch), r0 (marked).
        // Gone: r3 and a3 with its thumbnail; b5 stays (r5 uses it).
        let dry = collect(
            &store,
            &GcOptions {
                dry_run: true,
                ..opts.clone()
            },
            &mut |_| panic!("a dry run deletes nothing"),
        )
        .unwrap();
        let expected = GcReport {
            releases: 1,
            runs: 2,
            claims: 1,
            artifacts: 2,
            bytes: 2 + 11,
        };
        assert_eq!(dry, expected);
        assert_eq!(store.blocking(|c| Ok(names(c))).unwrap().len(), 7);
        assert!(store.artifacts().exists(a3).unwrap());
        let mut seen = Vec::new();
        let done = collect(&store, &opts, &mut |ids| seen = ids.to_vec()).unwrap();
        assert_eq!(done, expected);
        assert_eq!(seen, vec![a3.clone(), thumb.clone()]);
        assert_eq!(
            store.blocking(|c| Ok(names(c))).unwrap(),
            ["r0", "r1", "r2", "f1", "r4", "r5"]
        );
        for id in [a3, &thumb] {
            assert!(!store.artifacts().exists(id).unwrap(), "{id} is freed");
        }
        for id in [a1, b1, a2, a4, a5, b5, f1, z0] {
            assert!(store.artifacts().exists(id).unwrap(), "{id} is kept");
            assert!(
                store
                    .blocking(|c| crate::storage::artifact_owned(c, build, id))
                    .unwrap()
                    .is_some(),
                "{id} is still the build's"
            );
        }
        assert_eq!(
            store
                .blocking(|c| artifacts::find_thumbnail(c, &format!("{a3}:320x200")))
                .unwrap(),
            None
        );
        // Again: nothing left to do.
        assert_eq!(
            collect(&store, &opts, &mut |_| {}).unwrap(),
            GcReport::default()
        );
        // The build's byte count is that of what it still owns.
        let (counted, owned) = store
            .blocking(|c| {
                let counted = crate::storage::quotas::build_bytes(c, build)?;
                let owned: i64 = c.query_row(
                    "SELECT SUM(a.size) FROM artifact_owner o JOIN artifact a ON a.id = o.artifact_id
                     WHERE o.build_id = ?1",
                    [build.0],
                    |r| r.get(0),
                )?;
                Ok((counted, owned as u64))
            })
            .unwrap();
        // Nine two-byte uploads, one claim ended.
        assert_eq!((counted, owned), (16, 16));
        // The baselines are the same as before.
        let (good, _, _) = store
            .blocking(|c| releases::find_run(c, build, "/b", None))
            .unwrap()
            .unwrap();
        assert_eq!(good.name, "r1");
    }

    #[test]
    fn a_fresh_upload_that_no_run_refers_to_yet_is_kept_for_the_grace_period() {
        let (_dir, store, _build, ids) = setup(&["fresh"]);
        let opts = GcOptions::default();
        assert_eq!(
            collect(&store, &opts, &mut |_| {}).unwrap(),
            GcReport::default()
        );
        assert!(store.artifacts().exists(&ids[0]).unwrap());
        let now = GcOptions {
            grace: Duration::ZERO,
            ..GcOptions::default()
        };
        // Used a second ago: past a zero grace.
        store
            .blocking(|c| Ok(c.execute("UPDATE artifact_owner SET seen = seen - 1000", [])?))
            .unwrap();
        assert_eq!(collect(&store, &now, &mut |_| {}).unwrap().artifacts, 1);
        assert!(!store.artifacts().exists(&ids[0]).unwrap());
    }

    #[test]
    fn bad_retention_settings_are_refused_naming_the_setting() {
        let zero = Policy {
            keep_releases: 0,
            keep_days: 3,
        };
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("keep releases")
        );
        let days = Policy {
            keep_releases: 3,
            keep_days: 0,
        };
        assert!(
            days.validate()
                .unwrap_err()
                .to_string()
                .contains("keep days")
        );
    }
}
