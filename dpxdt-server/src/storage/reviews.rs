//! Reviewing runs: one run's verdict (approve, reject as a regression,
//! clear), bulk approval, the short undo of an approval, and each run's
//! comment thread.
//!
//! A run's state still moves only through the core's run state machine
//! (approve: `diff_found` → `diff_approved`; taking an approval back: the
//! other way); the verdict beside it records who gave it, when and why. A
//! release that has a verdict of its own (good or bad) takes no run
//! verdicts: it goes back to reviewing first.

use std::collections::HashMap;

use dpxdt_core::api::{MAX_COMMENT_CHARS, MAX_REASON_CHARS, Reviewed, RunReview, RunVerdict};
use dpxdt_core::diff::Region;
use dpxdt_core::{BuildId, ReleaseEvent, ReleaseId, ReleaseStatus, RunEvent, RunId, RunStatus};

use super::activity::log_by;
use super::db::{Db, Tx, params};
use super::releases::{
    get_release, get_release_by_id, get_run, set_release_verdict_in, verdict_event,
};
use super::users::UserRow;
use super::{StoreError, now_ms, write_tx};

/// How long an approval can be undone by the person who gave it.
pub const UNDO_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Most comments on one run: a key of the build could otherwise grow a
/// thread without end.
pub const MAX_COMMENTS_PER_RUN: i64 = 500;
/// Most comments on the runs of one release (with [`MAX_COMMENTS_PER_RUN`]
/// and the length limit, a release's threads stay under about 50 MB).
pub const MAX_COMMENTS_PER_RELEASE: i64 = 5_000;

/// Whether a run waits for a person: a found difference or a failure that
/// nobody gave a verdict. The same rule as [`outstanding`] and the home
/// page's count.
pub fn waits(status: Option<RunStatus>, review: Option<&RunReview>) -> bool {
    review.is_none() && matches!(status, Some(RunStatus::DiffFound | RunStatus::Failed))
}

/// [`waits`] as SQL over the `run` table's columns.
pub const WAITS_SQL: &str = "(run.status IN ('diff_found', 'failed') AND run.review IS NULL)";

/// What a person wrote, as stored: line ends as `\n` (a browser sends a
/// textarea's as `\r\n`, but counts them as one character), trimmed.
fn normalized(text: &str) -> String {
    text.replace("\r\n", "\n").trim().to_string()
}

/// Who gives a verdict or writes a comment: a person or an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    /// The person's user id.
    pub user_id: Option<i64>,
    /// The API key's id.
    pub api_key_id: Option<String>,
    /// As shown: the user name, or `API key <id>`.
    pub name: String,
}

impl Reviewer {
    /// A logged-in person.
    pub fn user(user: &UserRow) -> Reviewer {
        Reviewer {
            user_id: Some(user.id),
            api_key_id: None,
            name: user.name.clone(),
        }
    }

    /// An API key.
    pub fn key(id: &str) -> Reviewer {
        Reviewer {
            user_id: None,
            api_key_id: Some(id.to_string()),
            name: format!("API key {id}"),
        }
    }
}

/// One comment of a run's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// Database id.
    pub id: i64,
    /// Who wrote it.
    pub author: String,
    /// The text, as written (plain text).
    pub body: String,
    /// The rectangle of the new image it is about.
    pub region: Option<Region>,
    /// When, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// The run of `release` named `name`, inside `tx`: id, build, state, and
/// its review. Refused when the release has a verdict of its own.
fn open_run(
    tx: &Tx<'_>,
    release: ReleaseId,
    name: &str,
) -> Result<(RunId, BuildId, RunStatus, Option<RunReview>), StoreError> {
    let rel = get_release_by_id(tx, release)?;
    if rel.status.is_final() {
        return Err(StoreError::Conflict(format!(
            "release {} #{} is already marked {}: take that back (back to reviewing) before \
             reviewing its runs",
            rel.name,
            rel.number,
            rel.status.as_str()
        )));
    }
    let run = get_run(tx, release, name)?
        .ok_or_else(|| StoreError::NotFound(format!("run {name:?} does not exist")))?;
    let status = run.status.unwrap_or(RunStatus::DataPending);
    Ok((run.id, rel.build_id, status, run.review))
}

/// Moves a run's state by `event` (the core decides), compare-and-set.
fn transition(
    tx: &Tx<'_>,
    run: RunId,
    name: &str,
    old: RunStatus,
    event: RunEvent,
) -> Result<RunStatus, StoreError> {
    let next = old
        .apply(event)
        .map_err(|e| StoreError::Conflict(format!("run {name:?}: {e}")))?;
    // Un-approving also takes back "approved for the default branch too".
    let n = tx.execute(
        "UPDATE run SET status = ?1, modified = ?2,
             for_default_branch = CASE WHEN ?5 THEN 0 ELSE for_default_branch END
         WHERE id = ?3 AND status = ?4",
        params![
            next.as_str(),
            now_ms(),
            run.0,
            old.as_str(),
            event == RunEvent::Reject
        ],
    )?;
    if n != 1 {
        return Err(StoreError::Conflict(format!(
            "run {name:?} changed state concurrently"
        )));
    }
    Ok(next)
}

/// Takes an approval back (`diff_approved` to `diff_found`); any other
/// state stays as it is. The run's state now.
fn withdraw_approval(
    tx: &Tx<'_>,
    run: RunId,
    name: &str,
    status: RunStatus,
) -> Result<RunStatus, StoreError> {
    if status == RunStatus::DiffApproved {
        transition(tx, run, name, status, RunEvent::Reject)
    } else {
        Ok(status)
    }
}

/// Records (or, with `None`, removes) a run's verdict.
fn record(
    tx: &Tx<'_>,
    run: RunId,
    verdict: Option<Reviewed>,
    reason: Option<&str>,
    by: &Reviewer,
    at: i64,
) -> Result<Option<RunReview>, StoreError> {
    let reason = reason.map(normalized).filter(|r| !r.is_empty());
    tx.execute(
        "UPDATE run SET review = ?2, review_reason = ?3, reviewed_by = ?4, reviewed_at = ?5
         WHERE id = ?1",
        params![
            run.0,
            verdict.map(Reviewed::as_str),
            verdict.and(reason.as_deref()),
            verdict.map(|_| by.name.as_str()),
            verdict.map(|_| at)
        ],
    )?;
    Ok(verdict.map(|verdict| RunReview {
        verdict,
        reason,
        by: by.name.clone(),
        at_ms: at,
    }))
}

/// An entry of the build's activity log, by a person or a key.
fn log(
    tx: &Tx<'_>,
    build: BuildId,
    by: &Reviewer,
    log_type: &str,
    message: &str,
) -> Result<(), StoreError> {
    log_by(
        tx,
        build,
        by.user_id,
        by.api_key_id.as_deref(),
        log_type,
        message,
    )
}

/// A reason as given: at most [`MAX_REASON_CHARS`] characters.
fn check_reason(reason: Option<&str>) -> Result<(), StoreError> {
    match reason {
        Some(r) if r.chars().count() > MAX_REASON_CHARS => Err(StoreError::Invalid(format!(
            "reason: at most {MAX_REASON_CHARS} characters, not {}",
            r.chars().count()
        ))),
        _ => Ok(()),
    }
}

/// Applies one verdict inside `tx`; the run's build, new state and review.
fn review_in(
    tx: &Tx<'_>,
    release: ReleaseId,
    name: &str,
    verdict: RunVerdict,
    reason: Option<&str>,
    by: &Reviewer,
) -> Result<(BuildId, RunStatus, Option<RunReview>), StoreError> {
    check_reason(reason)?;
    let (run, build, status, review) = open_run(tx, release, name)?;
    let now = now_ms();
    let (status, review) = match verdict {
        RunVerdict::Approve => {
            let next = transition(tx, run, name, status, RunEvent::Approve)?;
            (
                next,
                record(tx, run, Some(Reviewed::Approved), reason, by, now)?,
            )
        }
        RunVerdict::Reject => {
            if matches!(status, RunStatus::DataPending | RunStatus::NeedsDiff) {
                return Err(StoreError::Conflict(format!(
                    "run {name:?} is {status}: there is nothing to review yet"
                )));
            }
            let next = withdraw_approval(tx, run, name, status)?;
            (
                next,
                record(tx, run, Some(Reviewed::Rejected), reason, by, now)?,
            )
        }
        RunVerdict::Clear => {
            if review.is_none() && status != RunStatus::DiffApproved {
                return Err(StoreError::Conflict(format!(
                    "run {name:?} has no verdict to take back"
                )));
            }
            let next = withdraw_approval(tx, run, name, status)?;
            (next, record(tx, run, None, None, by, now)?)
        }
    };
    Ok((build, status, review))
}

/// One verdict on one run (see [`RunVerdict`]), logged in the build's
/// activity; the run's new state and its review.
pub fn review_run(
    conn: &mut Db,
    release: ReleaseId,
    name: &str,
    verdict: RunVerdict,
    reason: Option<&str>,
    by: &Reviewer,
) -> Result<(RunStatus, Option<RunReview>), StoreError> {
    let tx = write_tx(conn)?;
    let (build, status, review) = review_in(&tx, release, name, verdict, reason, by)?;
    let why = review.as_ref().and_then(|r| r.reason.as_deref());
    let (log_type, message) = match (verdict, why) {
        (RunVerdict::Approve, _) => ("run_approve", name.to_string()),
        (RunVerdict::Reject, Some(why)) => ("run_reject", format!("{name}: {why}")),
        (RunVerdict::Reject, None) => ("run_reject", name.to_string()),
        (RunVerdict::Clear, _) => ("run_clear", name.to_string()),
    };
    log(&tx, build, by, log_type, &message)?;
    tx.commit()?;
    Ok((status, review))
}

/// Approves a run of a release whose branch is not the default one and lets
/// its screenshot be the default branch's baseline too, once that release
/// is good (a person's "also for the default branch").
pub fn approve_for_default_branch(
    conn: &mut Db,
    release: ReleaseId,
    name: &str,
    by: &Reviewer,
) -> Result<RunStatus, StoreError> {
    let tx = write_tx(conn)?;
    let (build, next, _) = review_in(&tx, release, name, RunVerdict::Approve, None, by)?;
    tx.execute(
        "UPDATE run SET for_default_branch = 1 WHERE release_id = ?1 AND name = ?2",
        params![release.0, name],
    )?;
    log(&tx, build, by, "run_approve_default", name)?;
    tx.commit()?;
    Ok(next)
}

/// Takes back an approval `by` gave less than [`UNDO_WINDOW_MS`] ago.
pub fn undo_approval(
    conn: &mut Db,
    release: ReleaseId,
    name: &str,
    by: &Reviewer,
) -> Result<RunStatus, StoreError> {
    let tx = write_tx(conn)?;
    let (_, _, _, review) = open_run(&tx, release, name)?;
    match review {
        Some(r) if r.verdict == Reviewed::Approved && r.by == by.name => {
            let age = now_ms() - r.at_ms;
            if age > UNDO_WINDOW_MS {
                return Err(StoreError::Conflict(format!(
                    "the approval of {name:?} is {} minutes old; it could be undone for {} \
                     minutes: take it back with Clear instead",
                    age / 60_000,
                    UNDO_WINDOW_MS / 60_000
                )));
            }
        }
        _ => {
            return Err(StoreError::Conflict(format!(
                "run {name:?} has no approval of yours to undo"
            )));
        }
    }
    let (build, status, _) = review_in(&tx, release, name, RunVerdict::Clear, None, by)?;
    log(&tx, build, by, "run_undo", name)?;
    tx.commit()?;
    Ok(status)
}

/// Approves every run of `runs` in one transaction (all or none: a run that
/// cannot be approved any more refuses the whole batch) and logs one entry
/// saying why (`reason`, e.g. "only moved content").
pub fn approve_runs(
    conn: &mut Db,
    release: ReleaseId,
    runs: &[String],
    by: &Reviewer,
    reason: &str,
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    let mut build = None;
    for name in runs {
        // A colleague's rejection is not overridden wholesale.
        if open_run(&tx, release, name)?
            .3
            .is_some_and(|r| r.verdict == Reviewed::Rejected)
        {
            return Err(StoreError::Conflict(format!(
                "run {name:?} was rejected: approve it on its own page if it is fine after all"
            )));
        }
        build = Some(review_in(&tx, release, name, RunVerdict::Approve, Some(reason), by)?.0);
    }
    if let Some(build) = build {
        log(
            &tx,
            build,
            by,
            "run_bulk_approve",
            &format!("{} runs ({reason})", runs.len()),
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Adds a comment to a run's thread; its id. The text is 1 to
/// [`MAX_COMMENT_CHARS`] characters; a run holds at most
/// [`MAX_COMMENTS_PER_RUN`].
pub fn add_comment(
    conn: &mut Db,
    release: ReleaseId,
    name: &str,
    by: &Reviewer,
    text: &str,
    region: Option<Region>,
) -> Result<i64, StoreError> {
    let text = normalized(text);
    let chars = text.chars().count();
    if chars == 0 {
        return Err(StoreError::Invalid("text: the comment is empty".into()));
    }
    if chars > MAX_COMMENT_CHARS {
        return Err(StoreError::Invalid(format!(
            "text: at most {MAX_COMMENT_CHARS} characters, not {chars}"
        )));
    }
    let tx = write_tx(conn)?;
    let rel = get_release_by_id(&tx, release)?;
    let run = get_run(&tx, release, name)?
        .ok_or_else(|| StoreError::NotFound(format!("run {name:?} does not exist")))?
        .id
        .0;
    let count: i64 = tx.query_row(
        "SELECT COUNT(*) FROM run_comment WHERE run_id = ?1",
        [run],
        |r| r.get(0),
    )?;
    if count >= MAX_COMMENTS_PER_RUN {
        return Err(StoreError::OverLimit(format!(
            "run {name:?} already has {MAX_COMMENTS_PER_RUN} comments, the most a run holds"
        )));
    }
    let in_release: i64 = tx.query_row(
        "SELECT COUNT(*) FROM run_comment c JOIN run r ON r.id = c.run_id WHERE r.release_id = ?1",
        [release.0],
        |r| r.get(0),
    )?;
    if in_release >= MAX_COMMENTS_PER_RELEASE {
        return Err(StoreError::OverLimit(format!(
            "release {} #{} already has {MAX_COMMENTS_PER_RELEASE} comments, the most a release holds",
            rel.name, rel.number
        )));
    }
    let id: i64 = tx.query_row(
        "INSERT INTO run_comment (run_id, author, body, region, created)
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        params![run, by.name, text, region.map(|g| g.to_string()), now_ms()],
        |r| r.get(0),
    )?;
    log(&tx, rel.build_id, by, "run_comment", name)?;
    super::comment_notes::queue(&tx, id, rel.build_id, by.user_id)?;
    tx.commit()?;
    Ok(id)
}

/// A run's comments, oldest first.
pub fn comments(conn: &Db, run: RunId) -> Result<Vec<Comment>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, author, body, region, created FROM run_comment WHERE run_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([run.0], |r| {
        let region: Option<String> = r.get(3)?;
        Ok(Comment {
            id: r.get(0)?,
            author: r.get(1)?,
            body: r.get(2)?,
            region: region.and_then(|g| g.parse().ok()),
            created_ms: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many comments each run of a release has (runs without any are
/// left out).
pub fn comment_counts(conn: &Db, release: ReleaseId) -> Result<HashMap<RunId, i64>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT c.run_id, COUNT(*) FROM run_comment c JOIN run r ON r.id = c.run_id
         WHERE r.release_id = ?1 GROUP BY c.run_id",
    )?;
    let rows = stmt.query_map([release.0], |r| Ok((RunId(r.get(0)?), r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What still waits in a release before it should be marked good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outstanding {
    /// Found differences nobody approved or rejected.
    pub unreviewed: i64,
    /// Runs rejected as regressions.
    pub rejected: i64,
    /// Runs whose capture or diff failed (and nobody gave a verdict).
    pub failed: i64,
}

impl Outstanding {
    /// Nothing waits.
    pub fn is_clear(&self) -> bool {
        *self == Outstanding::default()
    }

    /// Whether anything waits beyond what `seen` counted.
    pub fn exceeds(&self, seen: &Outstanding) -> bool {
        self.unreviewed > seen.unreviewed
            || self.rejected > seen.rejected
            || self.failed > seen.failed
    }

    /// "2 not reviewed, 1 rejected": the counts that are not zero.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.unreviewed, "not reviewed"),
            (self.rejected, "rejected"),
            (self.failed, "failed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        parts.join(", ")
    }
}

/// What [`mark_release`] did: the verdict stored, or nothing, because runs
/// still wait and the person has not confirmed (or confirmed fewer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// The release's state now.
    Done(ReleaseStatus),
    /// Nothing changed: these wait; ask first.
    Ask(Outstanding),
}

/// A person's verdict on a release, guarded: Good while runs wait is
/// stored only when the person confirmed having seen at least as many
/// (`seen`), and is then logged as an override, all in one transaction.
pub fn mark_release(
    conn: &mut Db,
    build: BuildId,
    name: &str,
    number: i64,
    verdict: &str,
    user: &UserRow,
    seen: Option<Outstanding>,
) -> Result<Marked, StoreError> {
    let event = verdict_event(verdict)?;
    let tx = write_tx(conn)?;
    let release = get_release(&tx, build, name, number)?;
    let waiting = outstanding(&tx, release.id)?;
    let overridden = event == ReleaseEvent::MarkGood && !waiting.is_clear();
    if overridden {
        match seen {
            None => return Ok(Marked::Ask(waiting)),
            Some(seen) if waiting.exceeds(&seen) => {
                return Err(StoreError::Conflict(format!(
                    "the release changed since you confirmed: {} now; look again",
                    waiting.describe()
                )));
            }
            Some(_) => {}
        }
    }
    let next = set_release_verdict_in(&tx, build, name, number, event, Some(user.id))?;
    if overridden {
        let note = format!("{name} #{number} marked good with {}", waiting.describe());
        log(
            &tx,
            build,
            &Reviewer::user(user),
            "release_good_override",
            &note,
        )?;
    }
    tx.commit()?;
    Ok(Marked::Done(next))
}

/// Counts what still waits in `release`.
pub fn outstanding(conn: &Db, release: ReleaseId) -> Result<Outstanding, StoreError> {
    Ok(conn.query_row(
        "SELECT COUNT(CASE WHEN status = 'diff_found' AND review IS NULL THEN 1 END),
                COUNT(CASE WHEN review = 'rejected' THEN 1 END),
                COUNT(CASE WHEN status = 'failed' AND review IS NULL THEN 1 END)
         FROM run WHERE release_id = ?1",
        [release.0],
        |r| {
            Ok(Outstanding {
                unreviewed: r.get(0)?,
                rejected: r.get(1)?,
                failed: r.get(2)?,
            })
        },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::quotas::Limits;
    use crate::storage::releases::{
        NewRelease, create_release, find_run, get_release, report_run, runs_done,
        set_release_verdict,
    };
    use crate::storage::{Store, create_build};
    use dpxdt_core::ArtifactId;
    use dpxdt_core::api::ReportRunRequest;

    fn report(build: BuildId, number: i64, run: &str) -> ReportRunRequest {
        ReportRunRequest {
            build_id: build,
            release_name: "r".into(),
            release_number: number,
            run_name: run.into(),
            ..Default::default()
        }
    }

    /// A run approved "also for the default branch" on a feature branch is
    /// the default branch's baseline once its release is good; approved
    /// for its branch only, it is not; un-approving takes it back.
    #[test]
    fn an_approval_may_count_for_the_default_branch_too() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let ids: Vec<ArtifactId> = (0..3u8)
            .map(|i| s.artifacts().write_bytes(&[i; 9]).unwrap())
            .collect();
        s.blocking(|c| {
            let build = create_build(c, "site")?;
            for id in &ids {
                crate::storage::record_artifact(c, build, id, "image/png", 9)?;
            }
            let user_id = crate::storage::users::upsert_user(c, "ann", "x", false)?;
            let ann = crate::storage::users::find_user(c, "ann")?.unwrap();
            assert_eq!(ann.id, user_id);
            // main: image 0, good. feature: two runs changed to images 1, 2.
            let release = |c: &mut Db, name: &str, branch: Option<&str>| {
                let new = NewRelease {
                    name,
                    url: "u",
                    branch,
                    commit_sha: None,
                };
                create_release(c, build, &new, &Limits::default())
            };
            let run = |name: &str, number: i64, run: &str, image: usize, reference: bool| {
                ReportRunRequest {
                    release_name: name.into(),
                    image: Some(ids[image].clone()),
                    ref_image: reference.then(|| ids[0].clone()),
                    diff_image: reference.then(|| ids[image].clone()),
                    distortion: reference.then_some(0.5),
                    ..report(build, number, run)
                }
            };
            release(c, "m", None)?;
            for r in ["/a", "/b"] {
                report_run(c, &run("m", 1, r, 0, false), &Limits::default())?;
            }
            runs_done(c, build, "m", 1)?;
            set_release_verdict(c, build, "m", 1, "good", Some(ann.id))?;
            release(c, "f", Some("feature"))?;
            report_run(c, &run("f", 1, "/a", 1, true), &Limits::default())?;
            report_run(c, &run("f", 1, "/b", 2, true), &Limits::default())?;
            runs_done(c, build, "f", 1)?;
            let f = get_release(c, build, "f", 1)?;
            let by = Reviewer::user(&ann);
            approve_for_default_branch(c, f.id, "/a", &by)?;
            review_run(c, f.id, "/b", RunVerdict::Approve, None, &by)?;
            let baseline = |c: &Db, run: &str| -> Result<String, StoreError> {
                let (_, found, _) = find_run(c, build, run, None)?.unwrap();
                Ok(found.image.unwrap())
            };
            // Not good yet: main's baselines are main's.
            assert_eq!(baseline(c, "/a")?, ids[0].as_str());
            set_release_verdict(c, build, "f", 1, "good", Some(ann.id))?;
            assert_eq!(baseline(c, "/a")?, ids[1].as_str(), "approved for main too");
            assert_eq!(
                baseline(c, "/b")?,
                ids[0].as_str(),
                "approved for feature only"
            );
            // Back to reviewing and un-approved: main's own again.
            set_release_verdict(c, build, "f", 1, "reviewing", Some(ann.id))?;
            review_run(c, f.id, "/a", RunVerdict::Clear, None, &by)?;
            set_release_verdict(c, build, "f", 1, "good", Some(ann.id))?;
            assert_eq!(baseline(c, "/a")?, ids[0].as_str());
            Ok(())
        })
        .unwrap();
    }

    /// A release of build "site" in review with the runs `/changed` (a
    /// found difference), `/failed` and `/new` (no reference); its id.
    fn release_in_review(c: &mut Db) -> Result<(BuildId, ReleaseId), StoreError> {
        let build = create_build(c, "site")?;
        let ids: Vec<ArtifactId> = (0..2u8).map(|i| ArtifactId::of_bytes(&[i; 7])).collect();
        for id in &ids {
            crate::storage::record_artifact(c, build, id, "image/png", 7)?;
        }
        let new = NewRelease {
            name: "r",
            url: "u",
            branch: None,
            commit_sha: None,
        };
        create_release(c, build, &new, &Limits::default())?;
        let release = get_release(c, build, "r", 1)?;
        let mut changed = report(build, 1, "/changed");
        changed.image = Some(ids[0].clone());
        changed.ref_image = Some(ids[1].clone());
        changed.diff_image = Some(ids[0].clone());
        changed.distortion = Some(0.5);
        let mut failed = report(build, 1, "/failed");
        failed.run_failed = Some("timed out".into());
        let mut first = report(build, 1, "/new");
        first.image = Some(ids[0].clone());
        for r in [changed, failed, first] {
            report_run(c, &r, &Limits::default())?;
        }
        runs_done(c, build, "r", 1)?;
        Ok((build, release.id))
    }

    /// Bulk approval leaves a rejection alone; new data drops a verdict;
    /// an approval is undone only by its giver, within the window; a
    /// comment's line ends count once; a run holds so many comments.
    #[test]
    fn verdicts_are_guarded_where_people_can_lose_work() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.blocking(|c| {
            let (build, rel) = release_in_review(c)?;
            let ann_id = crate::storage::users::upsert_user(c, "ann", "x", false)?;
            let bob_id = crate::storage::users::upsert_user(c, "bob", "x", false)?;
            let ann = crate::storage::users::find_user(c, "ann")?.unwrap();
            let bob = crate::storage::users::find_user(c, "bob")?.unwrap();
            assert_eq!((ann.id, bob.id), (ann_id, bob_id));
            let (ann, bob) = (Reviewer::user(&ann), Reviewer::user(&bob));

            // Bulk approval refuses a rejected run, and changes nothing.
            review_run(c, rel, "/changed", RunVerdict::Reject, Some("logo"), &bob)?;
            let bulk = approve_runs(c, rel, &["/changed".to_string()], &ann, "moved");
            assert!(matches!(bulk, Err(StoreError::Conflict(m)) if m.contains("was rejected")));
            let run = |c: &Db, name: &str| crate::storage::releases::get_run(c, rel, name);
            assert_eq!(
                run(c, "/changed")?
                    .and_then(|r| r.review)
                    .map(|r| r.verdict),
                Some(Reviewed::Rejected)
            );
            assert_eq!(
                outstanding(c, rel)?,
                Outstanding {
                    unreviewed: 0,
                    rejected: 1,
                    failed: 1
                }
            );

            // Ann approves after all; Bob cannot undo it, Ann can, in time.
            review_run(c, rel, "/changed", RunVerdict::Approve, None, &ann)?;
            assert!(matches!(
                undo_approval(c, rel, "/changed", &bob),
                Err(StoreError::Conflict(_))
            ));
            assert_eq!(
                undo_approval(c, rel, "/changed", &ann)?,
                RunStatus::DiffFound
            );
            review_run(c, rel, "/changed", RunVerdict::Approve, None, &ann)?;
            c.execute(
                "UPDATE run SET reviewed_at = reviewed_at - ?1 WHERE name = '/changed'",
                [UNDO_WINDOW_MS + 1_000],
            )?;
            let late = undo_approval(c, rel, "/changed", &ann);
            assert!(matches!(late, Err(StoreError::Conflict(m)) if m.contains("minutes old")));

            // A new report of the run drops the verdict given on the old data.
            review_run(c, rel, "/new", RunVerdict::Reject, Some("wrong font"), &ann)?;
            c.execute(
                "UPDATE release SET status = 'receiving' WHERE id = ?1",
                [rel.0],
            )?;
            let mut again = report(build, 1, "/new");
            again.url = Some("https://example.test/new".into());
            report_run(c, &again, &Limits::default())?;
            assert_eq!(run(c, "/new")?.and_then(|r| r.review), None);

            // "a\r\nb" as a browser sends it is three characters.
            let id = add_comment(c, rel, "/changed", &ann, "  a\r\nb  ", None)?;
            assert_eq!(
                comments(c, run(c, "/changed")?.unwrap().id)?[0].body,
                "a\nb"
            );
            assert!(id > 0);
            for _ in 1..MAX_COMMENTS_PER_RUN {
                add_comment(c, rel, "/changed", &ann, "more", None)?;
            }
            let full = add_comment(c, rel, "/changed", &ann, "one too many", None);
            assert!(
                matches!(full, Err(StoreError::OverLimit(m)) if m.contains("the most a run holds"))
            );
            Ok(())
        })
        .unwrap();
    }
}
