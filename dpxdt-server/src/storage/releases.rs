//! Releases and runs: creating attempts, requesting and reporting runs, and
//! moving both state machines.
//!
//! Every transition is decided by `dpxdt_core` ([`ReleaseStatus::apply`],
//! [`RunStatus::apply`]) and stored compare-and-set (`UPDATE … WHERE status =
//! old`) inside an immediate transaction, so two requests racing on one run
//! or release can never both win.

use crate::storage::db::{
    Db, DbError, DbResult, OptionalExtension, Params, Row, Tx, Value, params,
};
use dpxdt_core::api::{
    BaselineReason, CaptureTask, DIFF_QUEUE, DiffTask, ReportRunRequest, RunBaseline, RunCount,
};
use dpxdt_core::{
    ArtifactId, BuildId, ReleaseEvent, ReleaseId, ReleaseStatus, RunEvent, RunFacts, RunId,
    RunStatus,
};

use super::artifacts::{TOUCH_ARTIFACT, touch_values};
use super::quotas::{self, Limits};
use super::{StoreError, build_statements_tx, build_write_tx, now_ms, write_tx};
use crate::storage::queue;

/// Lease attempts of capture and diff tasks before they are given up (the original's 3).
pub const TASK_MAX_ATTEMPTS: u32 = 3;

/// One release attempt as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseRow {
    /// Database id.
    pub id: ReleaseId,
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub name: String,
    /// The attempt number.
    pub number: i64,
    /// Link for people.
    pub url: String,
    /// State.
    pub status: ReleaseStatus,
    /// The branch its client named (none: the build's default branch).
    pub branch: Option<String>,
    /// The commit its client named.
    pub commit_sha: Option<String>,
}

/// One run as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunRow {
    /// Database id.
    pub id: RunId,
    /// The release it belongs to.
    pub release_id: ReleaseId,
    /// The run name.
    pub name: String,
    /// State.
    pub status: Option<RunStatus>,
    /// URL of the run.
    pub url: Option<String>,
    /// Screenshot.
    pub image: Option<String>,
    /// Capture log.
    pub log: Option<String>,
    /// Capture config.
    pub config: Option<String>,
    /// URL of the reference.
    pub ref_url: Option<String>,
    /// Reference screenshot.
    pub ref_image: Option<String>,
    /// Reference capture log.
    pub ref_log: Option<String>,
    /// Reference capture config.
    pub ref_config: Option<String>,
    /// Whether a reference is present or on its way.
    pub ref_expected: bool,
    /// Diff image.
    pub diff_image: Option<String>,
    /// Diff log.
    pub diff_log: Option<String>,
    /// Distortion found by the diff.
    pub distortion: Option<f64>,
    /// Why the capture failed.
    pub run_failed: Option<String>,
    /// Why the diff failed.
    pub diff_failed: Option<String>,
    /// A reviewer's verdict on it, if any.
    pub review: Option<dpxdt_core::api::RunReview>,
}

impl RunRow {
    fn facts(&self) -> RunFacts {
        RunFacts::of(&dpxdt_core::run::RunResults {
            image: self.image.as_deref(),
            ref_image: self.ref_image.as_deref(),
            ref_expected: self.ref_expected,
            distortion: self.distortion,
            diff_log: self.diff_log.as_deref(),
            diff_image: self.diff_image.as_deref(),
            run_failed: self.run_failed.as_deref(),
            diff_failed: self.diff_failed.as_deref(),
        })
    }

    fn status(&self) -> RunStatus {
        self.status.unwrap_or(RunStatus::DataPending)
    }
}

/// What a `request_run` asks for, with its configs already stored as artifacts.
#[derive(Debug, Clone)]
pub struct RequestRunInput {
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
    /// The run name.
    pub run_name: String,
    /// URL of the new page.
    pub url: String,
    /// The validated config JSON of the new page.
    pub config_json: String,
    /// Its artifact (bytes already on disk).
    pub config: ArtifactId,
    /// URL of the baseline page, with its config JSON and artifact.
    pub reference: Option<(String, String, ArtifactId)>,
}

/// What `report_run` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOutcome {
    /// The run's state afterwards.
    pub status: RunStatus,
    /// Whether a diff task was queued.
    pub diff_queued: bool,
}

/// The page of a release for people, relative to the server root.
pub fn results_url_path(build: BuildId, name: &str, number: i64) -> String {
    format!(
        "/release?build_id={build}&name={}&number={number}",
        url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    )
}

const RELEASE_COLS: &str = "id, build_id, name, number, url, status, branch, commit_sha";

fn release_from_row(r: &Row) -> DbResult<ReleaseRow> {
    let status: String = r.get(5)?;
    Ok(ReleaseRow {
        id: ReleaseId(r.get(0)?),
        build_id: BuildId(r.get(1)?),
        name: r.get(2)?,
        number: r.get(3)?,
        url: r.get(4)?,
        status: status.parse().map_err(|e| DbError::conversion(5, e))?,
        branch: r.get(6)?,
        commit_sha: r.get(7)?,
    })
}

/// The release attempt `(build, name, number)`.
pub fn get_release(
    conn: &Db,
    build: BuildId,
    name: &str,
    number: i64,
) -> Result<ReleaseRow, StoreError> {
    conn.query_row(
        &format!(
            "SELECT {RELEASE_COLS} FROM release WHERE build_id = ?1 AND name = ?2 AND number = ?3"
        ),
        params![build.0, name, number],
        release_from_row,
    )
    .optional()?
    .ok_or_else(|| no_release(build, name, number))
}

fn no_release(build: BuildId, name: &str, number: i64) -> StoreError {
    StoreError::NotFound(format!(
        "release {name:?} number {number} does not exist in build {build}"
    ))
}

/// The release with database id `id`.
pub fn get_release_by_id(conn: &Db, id: ReleaseId) -> Result<ReleaseRow, StoreError> {
    conn.query_row(
        &format!("SELECT {RELEASE_COLS} FROM release WHERE id = ?1"),
        [id.0],
        release_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("release {id} does not exist")))
}

const RUN_COLS: &str = "id, release_id, name, status, url, image, log, config, ref_url, ref_image, \
     ref_log, ref_config, ref_expected, diff_image, diff_log, distortion, run_failed, diff_failed, \
     review, review_reason, reviewed_by, reviewed_at";

fn run_from_row(r: &Row) -> DbResult<RunRow> {
    let status: String = r.get(3)?;
    Ok(RunRow {
        id: RunId(r.get(0)?),
        release_id: ReleaseId(r.get(1)?),
        name: r.get(2)?,
        status: Some(status.parse().map_err(|e| DbError::conversion(3, e))?),
        url: r.get(4)?,
        image: r.get(5)?,
        log: r.get(6)?,
        config: r.get(7)?,
        ref_url: r.get(8)?,
        ref_image: r.get(9)?,
        ref_log: r.get(10)?,
        ref_config: r.get(11)?,
        ref_expected: r.get(12)?,
        diff_image: r.get(13)?,
        diff_log: r.get(14)?,
        distortion: r.get(15)?,
        run_failed: r.get(16)?,
        diff_failed: r.get(17)?,
        review: review_from_columns(r.get(18)?, r.get(19)?, r.get(20)?, r.get(21)?),
    })
}

/// The review of a run as stored in its `review*` columns.
pub(crate) fn review_from_columns(
    verdict: Option<String>,
    reason: Option<String>,
    by: Option<String>,
    at: Option<i64>,
) -> Option<dpxdt_core::api::RunReview> {
    Some(dpxdt_core::api::RunReview {
        verdict: dpxdt_core::api::Reviewed::parse(verdict.as_deref()?)?,
        reason,
        by: by.unwrap_or_default(),
        at_ms: at.unwrap_or(0),
    })
}

/// The run `name` of a release, if any.
pub fn get_run(conn: &Db, release: ReleaseId, name: &str) -> Result<Option<RunRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {RUN_COLS} FROM run WHERE release_id = ?1 AND name = ?2"),
            params![release.0, name],
            run_from_row,
        )
        .optional()?)
}

/// Every run of a release, by name.
pub fn list_runs(conn: &Db, release: ReleaseId) -> Result<Vec<RunRow>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {RUN_COLS} FROM run WHERE release_id = ?1 ORDER BY name"
    ))?;
    let rows = stmt.query_map([release.0], run_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores a release transition decided by the core, compare-and-set on the old state.
fn set_release_status(
    tx: &Tx<'_>,
    release: &ReleaseRow,
    event: ReleaseEvent,
) -> Result<ReleaseStatus, StoreError> {
    let next = release
        .status
        .apply(event)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let n = tx.execute(
        "UPDATE release SET status = ?1, modified = ?2 WHERE id = ?3 AND status = ?4",
        params![
            next.as_str(),
            now_ms(),
            release.id.0,
            release.status.as_str()
        ],
    )?;
    if n != 1 {
        return Err(StoreError::Conflict(format!(
            "release {} changed state concurrently",
            release.id
        )));
    }
    let has_commit = release.commit_sha.is_some();
    super::statuses::on_release(tx, release.id, release.build_id, has_commit, next)?;
    Ok(next)
}

/// Creates the next attempt of release `name` in `build`. Earlier attempts
/// still receiving or processing are superseded: marked bad, their tasks canceled.
pub fn create_release(
    conn: &mut Db,
    build: BuildId,
    release: &NewRelease<'_>,
    limits: &Limits,
) -> Result<i64, StoreError> {
    let NewRelease {
        name,
        url,
        branch,
        commit_sha,
    } = *release;
    dpxdt_core::model::validate_name("release_name", name).map_err(StoreError::Invalid)?;
    if let Some(b) = branch {
        dpxdt_core::model::validate_branch("branch", b).map_err(StoreError::Invalid)?;
    }
    if let Some(c) = commit_sha {
        dpxdt_core::model::validate_commit_sha("commit_sha", c).map_err(StoreError::Invalid)?;
    }
    let tx = write_tx(conn)?;
    if !super::build_exists(&tx, build)? {
        return Err(StoreError::NotFound(format!(
            "build {build} does not exist"
        )));
    }
    quotas::check_release_rate(&tx, build, limits)?;
    let last: Option<i64> = tx.query_row(
        "SELECT MAX(number) FROM release WHERE build_id = ?1 AND name = ?2",
        params![build.0, name],
        |r| r.get(0),
    )?;
    let unfinished: Vec<ReleaseRow> = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {RELEASE_COLS} FROM release WHERE build_id = ?1 AND name = ?2
             AND status IN ('receiving', 'processing')"
        ))?;
        stmt.query_map(params![build.0, name], release_from_row)?
            .collect::<Result<_, _>>()?
    };
    for old in &unfinished {
        set_release_status(&tx, old, ReleaseEvent::Superseded)?;
        let canceled = queue::cancel_for_release(&tx, old.id)?;
        tracing::info!(release = %old.id, canceled, "superseded by a new attempt");
    }
    let number = last.unwrap_or(0) + 1;
    let now = now_ms();
    tx.execute(
        "INSERT INTO release (build_id, name, number, url, status, created, modified, branch, commit_sha)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)",
        params![
            build.0,
            name,
            number,
            url,
            ReleaseStatus::Receiving.as_str(),
            now,
            branch,
            commit_sha
        ],
    )?;
    let created = ReleaseId(tx.last_insert_rowid()?);
    let has_commit = commit_sha.is_some();
    super::statuses::on_release(&tx, created, build, has_commit, ReleaseStatus::Receiving)?;
    tx.commit()?;
    Ok(number)
}

/// What a new release is: its name and link, and the branch and commit
/// its client named.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewRelease<'a> {
    /// The release name.
    pub name: &'a str,
    /// Link for people.
    pub url: &'a str,
    /// Its branch (none: the default branch).
    pub branch: Option<&'a str>,
    /// Its commit.
    pub commit_sha: Option<&'a str>,
}

/// The baseline of run `run_name` for a release on `branch` (none: the
/// default branch): the run of that name in the newest good release of the
/// same branch; if that branch has none, in the newest good release of the
/// build's default branch (a release that named no branch is on it), or a
/// run a person approved also for the default branch. A feature branch's
/// good releases are never another branch's baseline otherwise.
pub fn find_run(
    conn: &Db,
    build: BuildId,
    run_name: &str,
    branch: Option<&str>,
) -> Result<Option<(ReleaseRow, RunRow, BaselineReason)>, StoreError> {
    let default: String = conn
        .query_row(
            "SELECT default_branch FROM build WHERE id = ?1",
            [build.0],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("build {build} does not exist")))?;
    let on_default = branch.is_none_or(|b| b == default);
    let newest = |sql: &str, branch: &str| -> Result<Option<i64>, StoreError> {
        Ok(conn
            .query_row(sql, params![build.0, run_name, branch], |r| r.get(0))
            .optional()?)
    };
    let mut found = None;
    if !on_default && let Some(b) = branch {
        found = newest(
            "SELECT r.id FROM release r JOIN run ON run.release_id = r.id
             WHERE r.build_id = ?1 AND r.status = 'good' AND run.name = ?2
               AND run.image IS NOT NULL AND r.branch = ?3
             ORDER BY r.id DESC LIMIT 1",
            b,
        )?
        .map(|id| (id, BaselineReason::SameBranch));
    }
    if found.is_none() {
        let reason = if on_default {
            BaselineReason::SameBranch
        } else {
            BaselineReason::DefaultBranch
        };
        found = newest(
            "SELECT r.id FROM release r JOIN run ON run.release_id = r.id
             WHERE r.build_id = ?1 AND r.status = 'good' AND run.name = ?2
               AND run.image IS NOT NULL
               AND (r.branch IS NULL OR r.branch = ?3 OR run.for_default_branch = 1)
             ORDER BY r.id DESC LIMIT 1",
            &default,
        )?
        .map(|id| (id, reason));
    }
    let Some((id, reason)) = found else {
        return Ok(None);
    };
    let release = get_release_by_id(conn, ReleaseId(id))?;
    let run = get_run(conn, release.id, run_name)?;
    Ok(run.map(|run| (release, run, reason)))
}

/// Records what `run` was compared with: the baseline `find_run` gives for
/// its release's branch when the reference is that baseline's screenshot;
/// otherwise the client gave the reference itself; none without one.
fn record_baseline(
    tx: &Tx<'_>,
    build: BuildId,
    release: &ReleaseRow,
    run: &RunRow,
) -> Result<(), StoreError> {
    let (from, reason) = match &run.ref_image {
        None => (None, None),
        Some(image) => match find_run(tx, build, &run.name, release.branch.as_deref())? {
            Some((good, baseline, reason)) if baseline.image.as_ref() == Some(image) => {
                (Some(good.id.0), Some(reason))
            }
            _ => (None, Some(BaselineReason::Given)),
        },
    };
    tx.execute(
        "UPDATE run SET baseline_release_id = ?1, baseline_reason = ?2 WHERE id = ?3",
        params![from, reason.map(BaselineReason::as_str), run.id.0],
    )?;
    Ok(())
}

/// What each run of `release` was compared with, by run name.
pub fn run_baselines(conn: &Db, release: ReleaseId) -> Result<Vec<RunBaseline>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT run.name, run.baseline_reason, b.name, b.number, b.branch
         FROM run LEFT JOIN release b ON b.id = run.baseline_release_id
         WHERE run.release_id = ?1 ORDER BY run.name",
    )?;
    let rows = stmt.query_map([release.0], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (run_name, reason, release_name, release_number, branch) = row?;
        out.push(RunBaseline {
            run_name,
            reason: reason.and_then(|r| r.parse().ok()),
            release_name,
            release_number,
            branch,
        });
    }
    Ok(out)
}

fn insert_run(tx: &Tx<'_>, release: ReleaseId, name: &str) -> Result<RunRow, StoreError> {
    let now = now_ms();
    tx.execute(
        "INSERT INTO run (release_id, name, status, created, modified) VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (release_id, name) DO NOTHING",
        params![release.0, name, RunStatus::DataPending.as_str(), now],
    )?;
    get_run(tx, release, name)?
        .ok_or_else(|| StoreError::NotFound(format!("run {name:?} vanished")))
}

/// Writes a run this write transaction has seen does not exist yet, whole,
/// in its state, and sets its id.
fn insert_whole_run(tx: &Tx<'_>, run: &mut RunRow) -> Result<(), StoreError> {
    let mut values = vec![Value::Int(run.release_id.0), Value::Text(run.name.clone())];
    values.extend(state_values(run));
    let id: i64 = tx.query_row(
        "INSERT INTO run (release_id, name, status, url, image, log, config, ref_url, ref_image,
            ref_log, ref_config, ref_expected, diff_image, diff_log, distortion, run_failed,
            diff_failed, created, modified)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18)
         RETURNING id",
        values.as_slice(),
        |r| r.get(0),
    )?;
    run.id = RunId(id);
    Ok(())
}

/// A run's state, its data columns (`url` to `diff_failed`, in table
/// order) and the time now: the values `insert_whole_run` and `store_run`
/// both write.
fn state_values(run: &RunRow) -> Vec<Value> {
    params![
        run.status().as_str(),
        run.url,
        run.image,
        run.log,
        run.config,
        run.ref_url,
        run.ref_image,
        run.ref_log,
        run.ref_config,
        run.ref_expected,
        run.diff_image,
        run.diff_log,
        run.distortion,
        run.run_failed,
        run.diff_failed,
        now_ms(),
    ]
    .values()
}

/// Writes every data column of `run` and its new state, compare-and-set on
/// `old`. New data needs a new look, so a verdict given on the old data is
/// dropped.
fn store_run(tx: &Tx<'_>, run: &RunRow, old: RunStatus) -> Result<(), StoreError> {
    let mut values = state_values(run);
    values.extend([Value::Int(run.id.0), Value::Text(old.as_str().into())]);
    let n = tx.execute(
        "UPDATE run SET status = ?1, url = ?2, image = ?3, log = ?4, config = ?5, ref_url = ?6,
            ref_image = ?7, ref_log = ?8, ref_config = ?9, ref_expected = ?10, diff_image = ?11,
            diff_log = ?12, distortion = ?13, run_failed = ?14, diff_failed = ?15, modified = ?16,
            review = NULL, review_reason = NULL, reviewed_by = NULL, reviewed_at = NULL
         WHERE id = ?17 AND status = ?18",
        values.as_slice(),
    )?;
    if n != 1 {
        return Err(StoreError::Conflict(format!(
            "run {:?} changed state concurrently",
            run.name
        )));
    }
    Ok(())
}

/// Moves a processing release to reviewing once no run is outstanding.
/// `release` was read in this write transaction, so its state is current
/// (a release still receiving runs costs no further query).
fn maybe_finish_release(tx: &Tx<'_>, release: &ReleaseRow) -> Result<(), StoreError> {
    if release.status != ReleaseStatus::Processing {
        return Ok(());
    }
    if outstanding_runs(tx, release.id)? == 0 {
        set_release_status(tx, release, ReleaseEvent::RunsFinished)?;
        tracing::info!(release = %release.id, "release is ready for review");
    }
    Ok(())
}

fn outstanding_runs(conn: &Db, release: ReleaseId) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM run WHERE release_id = ?1 AND status IN ('data_pending', 'needs_diff')",
        [release.0],
        |r| r.get(0),
    )?)
}

/// Applies a data report to `run` (already merged), stores it and queues a
/// diff when the run newly needs one.
/// A `new` run (not stored yet) is inserted whole, and `merged` gets its id.
fn apply_report(
    tx: &Tx<'_>,
    build: BuildId,
    release: &ReleaseRow,
    old: &RunRow,
    merged: &mut RunRow,
    new: bool,
) -> Result<ReportOutcome, StoreError> {
    let from = old.status();
    let to = from
        .apply(RunEvent::Report(merged.facts()))
        .map_err(|e| StoreError::Conflict(format!("run {:?}: {e}", old.name)))?;
    merged.status = Some(to);
    if new {
        insert_whole_run(tx, merged)?;
    } else {
        store_run(tx, merged, from)?;
    }
    let mut diff_queued = false;
    if to == RunStatus::NeedsDiff
        && (from != RunStatus::NeedsDiff
            || old.image != merged.image
            || old.ref_image != merged.ref_image)
        && let (Some(image), Some(ref_image)) = (&merged.image, &merged.ref_image)
    {
        let task = DiffTask {
            build_id: build,
            release_name: release.name.clone(),
            release_number: release.number,
            run_name: merged.name.clone(),
            image: ArtifactId::parse(image).map_err(|e| StoreError::Invalid(e.to_string()))?,
            ref_image: ArtifactId::parse(ref_image)
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
            ignore: super::ignores::for_run(tx, build, &merged.name)?,
        };
        let payload =
            serde_json::to_string(&task).map_err(|e| StoreError::Invalid(e.to_string()))?;
        queue::add(
            tx,
            DIFF_QUEUE,
            &payload,
            TASK_MAX_ATTEMPTS,
            queue::Links {
                build: Some(build),
                release: Some(release.id),
                run: Some(merged.id),
            },
        )?;
        diff_queued = true;
    }
    maybe_finish_release(tx, release)?;
    Ok(ReportOutcome {
        status: to,
        diff_queued,
    })
}

/// The release, if it exists and still accepts runs (404 / 409 otherwise).
/// Requests check it before they store anything, and again in their
/// transaction.
pub fn release_accepting(
    conn: &Db,
    build: BuildId,
    name: &str,
    number: i64,
) -> Result<ReleaseRow, StoreError> {
    let release = get_release(conn, build, name, number)?;
    check_accepting(&release)?;
    Ok(release)
}

fn check_accepting(release: &ReleaseRow) -> Result<(), StoreError> {
    if !release.status.accepts_runs() {
        return Err(StoreError::Conflict(format!(
            "release {:?} number {} is {}: it no longer accepts runs",
            release.name, release.number, release.status
        )));
    }
    Ok(())
}

/// Merges reported data into a run (creating it if new) and moves its state.
pub fn report_run(
    conn: &mut Db,
    req: &ReportRunRequest,
    limits: &Limits,
) -> Result<ReportOutcome, StoreError> {
    dpxdt_core::model::validate_name("run_name", &req.run_name).map_err(StoreError::Invalid)?;
    if let Some(d) = req.distortion
        && !(0.0..=1.0).contains(&d)
    {
        return Err(StoreError::Invalid(format!(
            "distortion must be between 0 and 1, got {d}"
        )));
    }
    let build = req.build_id;
    let named: Vec<(&str, &ArtifactId)> = [
        ("image", &req.image),
        ("log", &req.log),
        ("config", &req.config),
        ("ref_image", &req.ref_image),
        ("ref_log", &req.ref_log),
        ("ref_config", &req.ref_config),
        ("diff_image", &req.diff_image),
        ("diff_log", &req.diff_log),
    ]
    .into_iter()
    .filter_map(|(field, id)| Some((field, id.as_ref()?)))
    .collect();
    // Statements only (artifacts' bytes are in place already).
    let tx = build_statements_tx(conn, build)?;
    // What the report needs to know, asked in one round trip (on
    // PostgreSQL; inside the build's lock): the release, the run, and
    // whether the build owns each artifact named. Touching an artifact's
    // owner row also tells the garbage collector it is in use.
    let (name, number) = (&req.release_name, req.release_number);
    let release_sql = format!(
        "SELECT {RELEASE_COLS} FROM release WHERE build_id = ?1 AND name = ?2 AND number = ?3"
    );
    let run_sql = format!(
        "SELECT {RUN_COLS} FROM run
         WHERE release_id = (SELECT id FROM release WHERE build_id = ?1 AND name = ?2 AND number = ?3)
           AND name = ?4"
    );
    let mut asked = vec![
        (
            release_sql.as_str(),
            params![build.0, name, number].values(),
        ),
        (
            run_sql.as_str(),
            params![build.0, name, number, req.run_name].values(),
        ),
    ];
    for (_, id) in &named {
        asked.push((TOUCH_ARTIFACT, touch_values(build, id.as_str())));
    }
    let mut answers = tx.query_many(&asked)?.into_iter();
    let mut next = || answers.next().expect("one answer per statement");
    let release = match next().first() {
        Some(row) => release_from_row(row)?,
        None => return Err(no_release(build, name, number)),
    };
    check_accepting(&release)?;
    let run = next().first().map(run_from_row).transpose()?;
    for (field, id) in &named {
        if next().is_empty() {
            return Err(StoreError::Invalid(format!(
                "{field}: artifact {id} was not uploaded to build {build}"
            )));
        }
    }
    let (old, new) = match run {
        Some(run) => (run, false),
        None => {
            quotas::count_new_run(&tx, release.id, limits)?;
            // Stored below, whole, in one statement.
            let run = RunRow {
                release_id: release.id,
                name: req.run_name.clone(),
                status: Some(RunStatus::DataPending),
                ..RunRow::default()
            };
            (run, true)
        }
    };
    let mut merged = old.clone();
    fn set(dst: &mut Option<String>, src: &Option<impl ToString>) {
        if let Some(v) = src {
            *dst = Some(v.to_string());
        }
    }
    set(&mut merged.url, &req.url);
    set(&mut merged.image, &req.image);
    set(&mut merged.log, &req.log);
    set(&mut merged.config, &req.config);
    set(&mut merged.ref_url, &req.ref_url);
    set(&mut merged.ref_image, &req.ref_image);
    set(&mut merged.ref_log, &req.ref_log);
    set(&mut merged.ref_config, &req.ref_config);
    set(&mut merged.diff_image, &req.diff_image);
    set(&mut merged.diff_log, &req.diff_log);
    set(&mut merged.run_failed, &req.run_failed);
    set(&mut merged.diff_failed, &req.diff_failed);
    if req.distortion.is_some() {
        merged.distortion = req.distortion;
    }
    if req.ref_image.is_some() || req.ref_url.is_some() {
        merged.ref_expected = true;
    }
    if merged == old && !new {
        // A repeated report (a client or worker retrying) changes nothing.
        tx.commit()?;
        return Ok(ReportOutcome {
            status: old.status(),
            diff_queued: false,
        });
    }
    let outcome = apply_report(&tx, build, &release, &old, &mut merged, new)?;
    if merged.ref_image != old.ref_image {
        record_baseline(&tx, build, &release, &merged)?;
    }
    tx.commit()?;
    Ok(outcome)
}

/// Creates a run to be captured by the server (and its reference, with
/// `ref_url`, or else the baseline run as reference) and queues its captures.
/// The configs' bytes go into `blobs` under the build's lock, as the rows
/// that point at them (see [`super::gc`]). Repeating the same request is
/// accepted and queues nothing new.
pub fn request_run(
    conn: &mut Db,
    blobs: &super::Blobs,
    input: &RequestRunInput,
    limits: &Limits,
) -> Result<bool, StoreError> {
    Ok(request_runs(conn, blobs, std::slice::from_ref(input), limits)? == 1)
}

/// [`request_run`] for several runs of one release (one request's modes)
/// in one transaction: every run is created, or none is. Returns how many
/// were created (a repeated identical run is not).
pub fn request_runs(
    conn: &mut Db,
    blobs: &super::Blobs,
    inputs: &[RequestRunInput],
    limits: &Limits,
) -> Result<usize, StoreError> {
    let Some(first) = inputs.first() else {
        return Ok(0);
    };
    let release_of = |i: &RequestRunInput| (i.build_id, i.release_name.clone(), i.release_number);
    for input in inputs {
        dpxdt_core::model::validate_name("run_name", &input.run_name)
            .map_err(StoreError::Invalid)?;
        if release_of(input) != release_of(first) {
            return Err(StoreError::Invalid(
                "the runs of one request belong to one release".into(),
            ));
        }
    }
    let build = first.build_id;
    let tx = build_write_tx(conn, build)?;
    for input in inputs {
        blobs.write_bytes(input.config_json.as_bytes())?;
        if let Some((_, json, _)) = &input.reference {
            blobs.write_bytes(json.as_bytes())?;
        }
    }
    let release = release_accepting(&tx, build, &first.release_name, first.release_number)?;
    // In id order: another build's request may record the same configs at
    // the same time, and the same order for both means neither waits on
    // the other's second row while holding its first.
    let mut configs: Vec<(&ArtifactId, i64)> = Vec::new();
    for input in inputs {
        configs.push((&input.config, input.config_json.len() as i64));
        if let Some((_, json, id)) = &input.reference {
            configs.push((id, json.len() as i64));
        }
    }
    configs.sort();
    configs.dedup();
    for (id, len) in configs {
        super::record_artifact(&tx, build, id, "application/json", len)?;
    }
    let mut created = 0;
    for input in inputs {
        if add_requested_run(&tx, &release, input, limits)? {
            created += 1;
        }
    }
    tx.commit()?;
    Ok(created)
}

/// One run of [`request_runs`], in its transaction; false when an
/// identical run exists already.
fn add_requested_run(
    tx: &Tx<'_>,
    release: &ReleaseRow,
    input: &RequestRunInput,
    limits: &Limits,
) -> Result<bool, StoreError> {
    let build = input.build_id;
    let ref_url = input.reference.as_ref().map(|r| r.0.clone());
    let ref_config = input.reference.as_ref().map(|r| r.2.to_string());
    if let Some(existing) = get_run(tx, release.id, &input.run_name)? {
        let same = existing.url.as_deref() == Some(input.url.as_str())
            && existing.config.as_deref() == Some(input.config.as_str())
            && (ref_url.is_none() || existing.ref_url == ref_url)
            && (ref_config.is_none() || existing.ref_config == ref_config);
        if same {
            return Ok(false);
        }
        return Err(StoreError::Conflict(format!(
            "run {:?} already exists in release {:?} number {} with other data",
            input.run_name, input.release_name, input.release_number
        )));
    }
    quotas::count_new_run(tx, release.id, limits)?;
    quotas::check_queued_captures(tx, build, 1 + u32::from(input.reference.is_some()), limits)?;
    let mut run = insert_run(tx, release.id, &input.run_name)?;
    let old = run.clone();
    run.url = Some(input.url.clone());
    run.config = Some(input.config.to_string());
    if input.reference.is_some() {
        run.ref_url = ref_url;
        run.ref_config = ref_config;
        run.ref_expected = true;
    } else if let Some((_, baseline, _)) =
        find_run(tx, build, &input.run_name, release.branch.as_deref())?
    {
        run.ref_url = baseline.url;
        run.ref_image = baseline.image;
        run.ref_log = baseline.log;
        run.ref_config = baseline.config;
        run.ref_expected = true;
        // The baseline's artifacts now belong to this release's data too.
        for id in [&run.ref_image, &run.ref_log, &run.ref_config]
            .into_iter()
            .flatten()
        {
            super::artifacts::touch_artifact(tx, build, id)?;
        }
    }
    run.status = Some(run.facts().status());
    store_run(tx, &run, old.status())?;
    record_baseline(tx, build, release, &run)?;
    let links = queue::Links {
        build: Some(build),
        release: Some(release.id),
        run: Some(run.id),
    };
    let mut captures = vec![(
        input.url.clone(),
        input.config_json.clone(),
        input.config.clone(),
        false,
    )];
    if let Some((url, json, id)) = &input.reference {
        captures.push((url.clone(), json.clone(), id.clone(), true));
    }
    for (url, config_json, config, is_ref) in captures {
        let task = CaptureTask {
            build_id: build,
            release_name: release.name.clone(),
            release_number: release.number,
            run_name: run.name.clone(),
            url,
            config_json,
            config,
            is_ref,
        };
        // The engine picks the queue; a config the server already checked.
        let engine = dpxdt_core::CaptureConfig::from_json(&task.config_json)
            .map(|c| c.engine())
            .unwrap_or_default();
        let payload =
            serde_json::to_string(&task).map_err(|e| StoreError::Invalid(e.to_string()))?;
        queue::add(
            tx,
            dpxdt_core::api::capture_queue(engine),
            &payload,
            TASK_MAX_ATTEMPTS,
            links,
        )?;
    }
    Ok(true)
}

/// The client reported every run: `receiving` → `processing` or `reviewing`.
/// Calling it again on a release past `receiving` is accepted as a retry.
pub fn runs_done(
    conn: &mut Db,
    build: BuildId,
    name: &str,
    number: i64,
) -> Result<ReleaseStatus, StoreError> {
    let tx = write_tx(conn)?;
    let release = get_release(&tx, build, name, number)?;
    if release.status != ReleaseStatus::Receiving {
        if release.status == ReleaseStatus::Bad {
            return Err(StoreError::Conflict(format!(
                "release {name:?} number {number} is bad (superseded or rejected)"
            )));
        }
        return Ok(release.status);
    }
    let outstanding = outstanding_runs(&tx, release.id)? > 0;
    let next = set_release_status(&tx, &release, ReleaseEvent::RunsDone { outstanding })?;
    tx.commit()?;
    Ok(next)
}

/// A release's state and how many of its runs are in each state.
pub fn release_status(
    conn: &Db,
    build: BuildId,
    name: &str,
    number: i64,
) -> Result<(ReleaseRow, Vec<RunCount>), StoreError> {
    let release = get_release(conn, build, name, number)?;
    let mut stmt =
        conn.prepare("SELECT status, COUNT(*) FROM run WHERE release_id = ?1 GROUP BY status")?;
    let mut counts = Vec::new();
    for row in stmt.query_map([release.id.0], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (status, count) = row?;
        let status = status
            .parse()
            .map_err(|e: dpxdt_core::run::UnknownRunStatus| StoreError::Invalid(e.to_string()))?;
        counts.push(RunCount {
            status,
            count: count as u64,
        });
    }
    Ok((release, counts))
}

/// A verdict on a release (`good`, `bad`, or back to `reviewing`), by the
/// person `user` (logged with the entry) or over the API (`None`).
pub fn set_release_verdict(
    conn: &mut Db,
    build: BuildId,
    name: &str,
    number: i64,
    verdict: &str,
    user: Option<i64>,
) -> Result<ReleaseStatus, StoreError> {
    let event = verdict_event(verdict)?;
    let tx = write_tx(conn)?;
    let next = set_release_verdict_in(&tx, build, name, number, event, user)?;
    tx.commit()?;
    Ok(next)
}

/// A person's verdict on a release, by name: `good`, `bad`, or
/// `reviewing` to take one back.
pub(crate) fn verdict_event(verdict: &str) -> Result<ReleaseEvent, StoreError> {
    match verdict {
        "good" => Ok(ReleaseEvent::MarkGood),
        "bad" => Ok(ReleaseEvent::MarkBad),
        "reviewing" => Ok(ReleaseEvent::MarkReviewing),
        other => Err(StoreError::Invalid(format!(
            "status must be good, bad or reviewing, not {other:?}"
        ))),
    }
}

/// [`set_release_verdict`] inside `tx`, the verdict parsed.
pub(crate) fn set_release_verdict_in(
    tx: &Tx<'_>,
    build: BuildId,
    name: &str,
    number: i64,
    event: ReleaseEvent,
    user: Option<i64>,
) -> Result<ReleaseStatus, StoreError> {
    let verdict = match event {
        ReleaseEvent::MarkGood => "good",
        ReleaseEvent::MarkBad => "bad",
        _ => "reviewing",
    };
    let release = get_release(tx, build, name, number)?;
    let next = set_release_status(tx, &release, event)?;
    if event == ReleaseEvent::MarkBad {
        queue::cancel_for_release(tx, release.id)?;
    }
    tx.execute(
        "INSERT INTO admin_log (build_id, user_id, log_type, message, created)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            build.0,
            user,
            format!("release_{verdict}"),
            format!("{name} #{number}"),
            now_ms()
        ],
    )?;
    Ok(next)
}

/// Marks the run of a task that was given up as failed (capture or diff,
/// by queue), so its release can still reach review.
pub fn fail_run_for_task(
    tx: &Tx<'_>,
    run: RunId,
    queue_name: &str,
    error: &str,
) -> Result<(), StoreError> {
    let Some(old) = tx
        .query_row(
            &format!("SELECT {RUN_COLS} FROM run WHERE id = ?1"),
            [run.0],
            run_from_row,
        )
        .optional()?
    else {
        return Ok(());
    };
    let release = get_release_by_id(tx, old.release_id)?;
    if !release.status.accepts_runs() || !old.status().is_outstanding() {
        return Ok(());
    }
    let mut merged = old.clone();
    let why = if error.is_empty() { "gave up" } else { error };
    if queue_name == DIFF_QUEUE {
        merged.diff_failed = Some(why.to_string());
    } else {
        merged.run_failed = Some(why.to_string());
    }
    apply_report(tx, release.build_id, &release, &old, &mut merged, false)?;
    Ok(())
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
    /// The branch its client named.
    pub branch: Option<String>,
    /// Run counts per state, only states with at least one run.
    pub counts: Vec<(RunStatus, u64)>,
}

/// Which releases of a build to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseQuery {
    /// Only releases whose name contains this.
    pub name: Option<String>,
    /// Only releases in this state.
    pub status: Option<ReleaseStatus>,
    /// Only releases of this branch (exactly; the build's default branch
    /// also takes releases that name none).
    pub branch: Option<String>,
    /// How many to skip (newest first).
    pub offset: u32,
    /// How many at most.
    pub limit: u32,
}

impl ReleaseQuery {
    /// The newest `limit` releases.
    pub fn newest(limit: u32) -> ReleaseQuery {
        ReleaseQuery {
            name: None,
            status: None,
            branch: None,
            offset: 0,
            limit,
        }
    }
}

/// The `WHERE` of a release search: build `?1`, name pattern `?2`, state
/// `?3`, branch `?4` (the default branch also takes releases that name none).
const RELEASE_FILTER: &str = "WHERE build_id = ?1
    AND (CAST(?2 AS TEXT) IS NULL OR name LIKE ?2 ESCAPE '\\')
    AND (CAST(?3 AS TEXT) IS NULL OR status = ?3)
    AND (CAST(?4 AS TEXT) IS NULL OR branch = ?4
         OR (branch IS NULL AND ?4 = (SELECT default_branch FROM build WHERE id = ?1)))";

/// `name` matches anywhere in the release name, literally.
fn name_pattern(query: &ReleaseQuery) -> Option<String> {
    query.name.as_deref().map(|n| {
        let escaped = n
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    })
}

/// How many releases of a build match `query` (its offset and limit aside).
pub fn count_releases(conn: &Db, build: BuildId, query: &ReleaseQuery) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        &format!("SELECT COUNT(*) FROM release {RELEASE_FILTER}"),
        params![
            build.0,
            name_pattern(query),
            query.status.map(|s| s.as_str()),
            query.branch
        ],
        |r| r.get(0),
    )?)
}

/// The releases of a build, newest first, with run counts per state.
pub fn list_releases(
    conn: &Db,
    build: BuildId,
    query: &ReleaseQuery,
) -> Result<Vec<ReleaseSummary>, StoreError> {
    let pattern = name_pattern(query);
    let mut stmt = conn.prepare(&format!(
        "SELECT id, name, number, status, created, branch FROM release {}
         ORDER BY created DESC, id DESC LIMIT ?5 OFFSET ?6",
        RELEASE_FILTER
    ))?;
    let status = query.status.map(|s| s.as_str());
    let rows = stmt.query_map(
        params![
            build.0,
            pattern,
            status,
            query.branch,
            query.limit,
            query.offset
        ],
        |r| {
            Ok((
                ReleaseId(r.get(0)?),
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        },
    )?;
    let mut counts =
        conn.prepare("SELECT status, COUNT(*) FROM run WHERE release_id = ?1 GROUP BY status")?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, number, status, created, branch) = row?;
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
            branch,
            counts: per_state,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Store, create_build};

    fn report(build: BuildId, number: i64, run: &str) -> ReportRunRequest {
        ReportRunRequest {
            build_id: build,
            release_name: "r".into(),
            release_number: number,
            run_name: run.into(),
            ..Default::default()
        }
    }

    #[test]
    fn release_flow_with_baseline_and_supersede() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let a = s.artifacts().write_bytes(b"image a").unwrap();
        let b = s.artifacts().write_bytes(b"image b").unwrap();
        s.blocking(|c| {
            let build = create_build(c, "site")?;
            super::super::record_artifact(c, build, &a, "image/png", 7)?;
            super::super::record_artifact(c, build, &b, "image/png", 7)?;
            assert_eq!(
                create_release(
                    c,
                    build,
                    &NewRelease {
                        name: "r",
                        url: "u",
                        ..Default::default()
                    },
                    &Limits::default()
                )?,
                1
            );
            // First release: an image and no reference needs no diff.
            let out = report_run(
                c,
                &ReportRunRequest {
                    image: Some(a.clone()),
                    ..report(build, 1, "/")
                },
                &Limits::default(),
            )?;
            assert_eq!(out.status, RunStatus::NoDiffNeeded);
            // A repeated report is accepted and changes nothing.
            let again = report_run(
                c,
                &ReportRunRequest {
                    image: Some(a.clone()),
                    ..report(build, 1, "/")
                },
                &Limits::default(),
            )?;
            assert_eq!(again.status, RunStatus::NoDiffNeeded);
            assert_eq!(runs_done(c, build, "r", 1)?, ReleaseStatus::Reviewing);
            // Reviewing releases take no more runs.
            assert!(matches!(
                report_run(c, &report(build, 1, "/x"), &Limits::default()),
                Err(StoreError::Conflict(_))
            ));
            c.execute("UPDATE release SET status = 'good'", [])?;
            let (good, run, _) = find_run(c, build, "/", None)?.unwrap();
            assert_eq!((good.number, run.image.as_deref()), (1, Some(a.as_str())));

            // Second attempt: a new image against the baseline queues a diff.
            assert_eq!(
                create_release(
                    c,
                    build,
                    &NewRelease {
                        name: "r",
                        url: "u",
                        ..Default::default()
                    },
                    &Limits::default()
                )?,
                2
            );
            let out = report_run(
                c,
                &ReportRunRequest {
                    image: Some(b.clone()),
                    ref_image: Some(a.clone()),
                    ..report(build, 2, "/")
                },
                &Limits::default(),
            )?;
            assert_eq!(
                out,
                ReportOutcome {
                    status: RunStatus::NeedsDiff,
                    diff_queued: true
                }
            );
            assert_eq!(runs_done(c, build, "r", 2)?, ReleaseStatus::Processing);
            // An artifact of another build is refused.
            let other = create_build(c, "other")?;
            let mut foreign = report(other, 1, "/");
            foreign.image = Some(a.clone());
            create_release(
                c,
                other,
                &NewRelease {
                    name: "r",
                    url: "u",
                    ..Default::default()
                },
                &Limits::default(),
            )?;
            assert!(matches!(
                report_run(c, &foreign, &Limits::default()),
                Err(StoreError::Invalid(_))
            ));
            // A third attempt supersedes the processing one and cancels its diff.
            assert_eq!(
                create_release(
                    c,
                    build,
                    &NewRelease {
                        name: "r",
                        url: "u",
                        ..Default::default()
                    },
                    &Limits::default()
                )?,
                3
            );
            assert_eq!(get_release(c, build, "r", 2)?.status, ReleaseStatus::Bad);
            let live: i64 =
                c.query_row("SELECT COUNT(*) FROM task WHERE status = 'live'", [], |r| {
                    r.get(0)
                })?;
            assert_eq!(live, 0);
            // The diff result finishes the run and the release.
            create_release(
                c,
                build,
                &NewRelease {
                    name: "r2",
                    url: "u",
                    ..Default::default()
                },
                &Limits::default(),
            )?;
            let key = |n: &str| ReportRunRequest {
                release_name: "r2".into(),
                ..report(build, 1, n)
            };
            report_run(
                c,
                &ReportRunRequest {
                    image: Some(b.clone()),
                    ref_image: Some(a.clone()),
                    ..key("/")
                },
                &Limits::default(),
            )?;
            assert_eq!(runs_done(c, build, "r2", 1)?, ReleaseStatus::Processing);
            let out = report_run(
                c,
                &ReportRunRequest {
                    distortion: Some(0.0),
                    ..key("/")
                },
                &Limits::default(),
            )?;
            assert_eq!(out.status, RunStatus::DiffNotFound);
            assert_eq!(
                get_release(c, build, "r2", 1)?.status,
                ReleaseStatus::Reviewing
            );
            Ok(())
        })
        .unwrap();
    }
}
