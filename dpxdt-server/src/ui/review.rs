//! The review screen and what a reviewer does from it: one run's images and
//! its list of changes, verdicts, ignore regions drawn on an image, and bulk
//! approval of the runs of a release that only moved or only changed inside
//! a given rectangle.

use dpxdt_core::api::{BaselineReason, Reviewed, RunVerdict};
use dpxdt_core::diff::{DiffReport, Region, Shift, ShiftKind};
use dpxdt_core::{ArtifactId, BuildId, RunEvent, RunStatus};
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use super::format::{grouped, review_json, when, who};
use super::pages::{
    build_url, image_url, int_param, label, owned_build, param, release_url, run_url,
};
use super::release::release_and_runs;
use super::{Req, Ui, UiError, redirect};
use crate::storage::builds::Access;
use crate::storage::reviews::{self, Reviewer};
use crate::storage::{self, ReleaseRow, RunRow, ignores, releases};

/// Changes listed (and reachable with `n`/`p`) on one run page.
const MAX_CHANGES: usize = 200;
/// Largest diff report the UI reads.
const MAX_REPORT: i64 = 1 << 20;

/// `GET /run`: reference, new and diff images; the changes; verdict
/// buttons; the ignore regions of this run name; neighbours.
pub(crate) async fn run(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, access, rel, runs) = release_and_runs(ui, req).await?;
    let run_name = param(req, "run")?;
    let b = info.id;
    let pos = runs
        .iter()
        .position(|r| r.name == run_name)
        .ok_or(UiError::NotFound)?;
    let r = &runs[pos];
    let status = r.status.unwrap_or(RunStatus::DataPending);
    let neighbour = |i: Option<usize>| {
        i.and_then(|i| runs.get(i))
            .map(|n| run_url(b, &rel.name, rel.number, &n.name))
    };
    let owner = access == Access::Owner;
    let report = load_report(ui, b, r.diff_log.as_deref())
        .await
        .map(|r| report_json(&r));
    let engine = super::pages::config_engine(ui, r.config.as_deref()).await;
    let (lookup, release_id, run_id) = (r.name.clone(), rel.id, r.id);
    let (ignored, baseline, comments) = ui
        .state
        .store
        .call(move |c| {
            let ignored = ignores::list(c, b, Some(&lookup), ignores::MAX_PER_RUN as u32)?;
            let baseline = releases::run_baselines(c, release_id)?
                .into_iter()
                .find(|x| x.run_name == lookup);
            let comments = reviews::comments(c, run_id)?;
            Ok((ignored, baseline, comments))
        })
        .await?;
    let now = storage::now_ms();
    let open = !rel.status.is_final();
    let comments: Vec<Value> = comments
        .iter()
        .map(|c| {
            let g = c.region;
            json!({"id": c.id, "author": who(&c.author, owner), "body": c.body, "when": when(c.created_ms, now),
                   "region": g.map(|g| g.to_string()),
                   "x": g.map(|g| g.x1), "y": g.map(|g| g.y1),
                   "w": g.map(|g| g.width()), "h": g.map(|g| g.height())})
        })
        .collect();
    let review = r.review.as_ref().map(|v| review_json(v, owner, now));
    let rejected = r
        .review
        .as_ref()
        .is_some_and(|v| v.verdict == Reviewed::Rejected);
    let compared = baseline.and_then(|x| {
        let why = match x.reason? {
            BaselineReason::SameBranch => "same branch",
            BaselineReason::DefaultBranch => "this branch has none: the default branch's",
            BaselineReason::Given => return Some(json!({"given": true})),
        };
        let (Some(name), Some(number)) = (x.release_name, x.release_number) else {
            // The release was deleted by garbage collection since.
            return Some(json!({"gone": true, "why": why}));
        };
        Some(
            json!({"url": release_url(b, &name, number), "name": name, "number": number,
                    "branch": x.branch, "why": why}),
        )
    });
    let off_default = rel
        .branch
        .as_deref()
        .is_some_and(|branch| branch != info.default_branch);
    let ignored: Vec<Value> = ignored
        .into_iter()
        .map(|i| {
            let g = i.region;
            json!({"id": i.id, "name": i.name, "region": g.to_string(),
                   "by": if owner { i.created_by } else { None },
                   "x": g.x1, "y": g.y1, "w": g.width(), "h": g.height()})
        })
        .collect();
    ui.render(
        req,
        "run",
        StatusCode::OK,
        json!({
            "title": format!("{} — {} #{}", r.name, rel.name, rel.number),
            "build": {"name": info.name, "url": build_url(b), "id": b.0},
            "release": {"name": rel.name, "number": rel.number, "status": rel.status.as_str(), "url": release_url(b, &rel.name, rel.number)},
            "run": {
                "name": r.name,
                "engine": engine.map(|e| e.name()),
                "status": status.as_str(),
                "label": label(status),
                "url": r.url,
                "ref_url": r.ref_url,
                "distortion": r.distortion.map(|d| format!("{:.4}%", d * 100.0)),
                "image": image_url(b, &r.image),
                "ref_image": image_url(b, &r.ref_image),
                "diff_image": image_url(b, &r.diff_image),
                "log": image_url(b, &r.log),
                "ref_log": image_url(b, &r.ref_log),
                "config": image_url(b, &r.config),
                "ref_config": image_url(b, &r.ref_config),
                "diff_log": image_url(b, &r.diff_log),
                "run_failed": r.run_failed,
                "diff_failed": r.diff_failed,
                "seen": seen_token(r),
            },
            "report": report,
            "compared": compared,
            "branch": rel.branch,
            "default_branch": info.default_branch,
            "can_approve_default": owner && open && off_default && status.apply(RunEvent::Approve).is_ok(),
            "ignores": ignored,
            "can_ignore": owner && r.image.is_some(),
            "position": pos + 1,
            "total": runs.len(),
            "prev": neighbour(pos.checked_sub(1)),
            "next": neighbour(Some(pos + 1)),
            "can_approve": owner && open && status.apply(RunEvent::Approve).is_ok(),
            "can_reject": owner && open && !rejected
                && !matches!(status, RunStatus::DataPending | RunStatus::NeedsDiff),
            "can_clear": owner && open && (r.review.is_some() || status == RunStatus::DiffApproved),
            "closed": (!open).then(|| rel.status.as_str()),
            "review": review,
            "comment_count": comments.len(),
            "comments": comments,
            "can_comment": owner,
            "can_bulk": owner && open && runs.iter().any(waits),
            "progress": progress(&runs, pos, b, &rel),
            "flash": flash(req, &runs, now),
            "page": "run",
        }),
    )
}

/// What a person saw of a run when they opened its page: its images. A
/// form sends it back, so a verdict on data that changed since is refused.
fn seen_token(r: &RunRow) -> String {
    [&r.image, &r.ref_image, &r.diff_image]
        .iter()
        .map(|id| id.as_deref().unwrap_or("-"))
        .map(|id| id.get(..12).unwrap_or(id))
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether a run is one a person has to look at: one that waits (see
/// [`reviews::waits`]), and any run someone gave a verdict.
fn needs_a_look(r: &RunRow) -> bool {
    r.review.is_some() || waits(r) || r.status == Some(RunStatus::DiffApproved)
}

fn waits(r: &RunRow) -> bool {
    reviews::waits(r.status, r.review.as_ref())
}

/// "reviewed 2 of 4 · next: /docs.html" for the run page: how many of the
/// release's runs that need a look have a verdict, and the next one still
/// waiting after run `pos` (wrapping around).
fn progress(runs: &[RunRow], pos: usize, b: BuildId, rel: &ReleaseRow) -> Option<Value> {
    let (mut total, mut done) = (0, 0);
    for r in runs.iter().filter(|r| needs_a_look(r)) {
        total += 1;
        done += usize::from(r.review.is_some() || r.status == Some(RunStatus::DiffApproved));
    }
    let next = runs[pos + 1..]
        .iter()
        .chain(&runs[..pos])
        .find(|r| waits(r));
    (total > 0).then(|| {
        json!({"done": done, "total": total, "this_waits": waits(&runs[pos]),
               "next": next.map(|n| json!({"name": n.name, "url": run_url(b, &rel.name, rel.number, &n.name)}))})
    })
}

/// The message after an action that redirected here: an approval (with
/// Undo while the approver may still take it back), or an undone one.
pub(super) fn flash(req: &Req, runs: &[RunRow], now: i64) -> Option<Value> {
    if req.q("undone").is_some() {
        return Some(json!({"text": "Approval undone."}));
    }
    let name = req.q("approved")?;
    let me = req.session.as_ref()?.user.name.as_str();
    let run = runs.iter().find(|r| r.name == name)?;
    let undo = run.review.as_ref().is_some_and(|v| {
        v.verdict == Reviewed::Approved && v.by == me && now - v.at_ms <= reviews::UNDO_WINDOW_MS
    });
    Some(json!({"text": format!("Approved {name}."), "undo": undo.then_some(name)}))
}

/// The diff worker's report (the run's diff log, JSON). `None` when there
/// is no such log or it is not a report (a client may report a log of its
/// own); a database or disk failure is logged and the page shows no report.
async fn load_report(ui: &Ui, build: BuildId, log: Option<&str>) -> Option<DiffReport> {
    let id = match ArtifactId::parse(log?) {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(%build, error = %e, "run has an invalid diff log id");
            return None;
        }
    };
    let lookup = id.clone();
    let info = match ui
        .state
        .store
        .call(move |c| storage::artifact_owned(c, build, &lookup))
        .await
    {
        Ok(Some(info)) => info,
        Ok(None) => {
            tracing::warn!(%build, artifact = %id, "diff log is not stored for this build");
            return None;
        }
        Err(e) => {
            tracing::warn!(%build, artifact = %id, error = %e, "cannot look up the diff log");
            return None;
        }
    };
    if info.size > MAX_REPORT {
        return None;
    }
    let bytes = match ui
        .state
        .store
        .artifacts()
        .read_small(&id, MAX_REPORT as u64)
        .await
    {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(%build, artifact = %id, error = %e, "cannot read the diff log");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::debug!(%build, artifact = %id, error = %e, "diff log is not a diff report");
            None
        }
    }
}

/// What the run page shows of a report: the totals, and each change (a
/// changed region or a moved band) with where it is in the new image (`y`,
/// `h`) and in the reference (`ry`, `rh`), top to bottom. A client may
/// report a log of its own, so the numbers are not trusted to be in range.
fn report_json(r: &DiffReport) -> Value {
    let mut changes: Vec<(i64, Value)> = Vec::new();
    for g in &r.regions {
        let (w, h) = (span(g.x1, g.x2), span(g.y1, g.y2));
        changes.push((
            i64::from(g.y1),
            json!({"kind": "region", "label": format!("{w}×{h} px changed at {}, {}", g.x1, g.y1),
                   "x": g.x1, "y": g.y1, "w": w, "h": h,
                   "ry": reference_row(&r.shifts, g.y1), "rh": h}),
        ));
    }
    let mut delta: i64 = 0;
    for s in &r.shifts {
        let (top, height) = (i64::from(s.y), i64::from(s.height));
        // An inserted band is its rows in the new image and a line in the
        // reference; a removed one the other way round.
        let (y, ry, h, rh) = match s.kind {
            ShiftKind::Inserted => (top, (top + delta).max(0), height, 1),
            ShiftKind::Removed => ((top - delta).max(0), top, 1, height),
        };
        changes.push((
            y,
            json!({"kind": match s.kind { ShiftKind::Inserted => "inserted", ShiftKind::Removed => "removed" },
                   "label": shift_text(s), "x": 0, "y": y, "w": r.width, "h": h, "ry": ry, "rh": rh}),
        ));
        delta += match s.kind {
            ShiftKind::Inserted => -i64::from(s.height),
            ShiftKind::Removed => i64::from(s.height),
        };
    }
    changes.sort_by_key(|(y, _)| *y);
    let more = changes.len().saturating_sub(MAX_CHANGES);
    let changes: Vec<Value> = changes
        .into_iter()
        .take(MAX_CHANGES)
        .map(|(_, c)| c)
        .collect();
    let headline = if r.changed_pixels == 0 && !r.shifts.is_empty() {
        "moved content only · 0 px changed".to_string()
    } else {
        format!("{} px changed", grouped(r.changed_pixels))
    };
    json!({
        "headline": headline,
        "changes": changes,
        "more_changes": more,
        "shift_count": r.shifts.len(),
        "aligned_distortion": format!("{:.4}%", r.aligned_distortion * 100.0),
        "changed": grouped(r.changed_pixels),
        "total": grouped(r.total_pixels),
        "percentage": format!("{:.3}%", r.percentage),
        "size": format!("{}×{}", r.width, r.height),
        "reference_size": format!("{}×{}", r.reference_width, r.reference_height),
        "size_changed": r.size_changed(),
    })
}

/// Pixels from `a` to `b` inclusive (0 for a reversed pair).
fn span(a: u32, b: u32) -> i64 {
    (i64::from(b) - i64::from(a) + 1).max(0)
}

/// The reference row that shows what new-image row `y` shows, given the
/// bands that moved (top to bottom): every band inserted above `y` pulls it
/// up, every band removed above it pushes it down.
fn reference_row(shifts: &[Shift], y: u32) -> i64 {
    let mut delta: i64 = 0;
    for s in shifts {
        match s.kind {
            ShiftKind::Inserted if i64::from(s.y) + i64::from(s.height) <= i64::from(y) => {
                delta -= i64::from(s.height)
            }
            ShiftKind::Removed if i64::from(s.y) - delta <= i64::from(y) => {
                delta += i64::from(s.height)
            }
            _ => {}
        }
    }
    (i64::from(y) + delta).max(0)
}

/// A shift as the run page lists it.
fn shift_text(shift: &Shift) -> String {
    match shift.kind {
        ShiftKind::Inserted => format!("{} rows inserted at y={}", shift.height, shift.y),
        ShiftKind::Removed => format!(
            "{} rows removed at y={} of the reference",
            shift.height, shift.y
        ),
    }
}

/// `POST /run/verdict`: approve a found diff (optionally for the default
/// branch too), reject a run as a regression with a reason, clear a
/// verdict, or undo one's own approval of a moment ago. An approval goes on
/// to the next run still to review, which offers to undo it.
pub(crate) async fn run_verdict(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (_, access, rel, runs) = release_and_runs(ui, req).await?;
    let user = req
        .session
        .as_ref()
        .map(|s| s.user.clone())
        .ok_or_else(|| UiError::Forbidden("log in first".into()))?;
    if access != Access::Owner {
        return Err(UiError::Forbidden(
            "only the build's owners may do this".into(),
        ));
    }
    let action = match param(req, "action")? {
        a @ ("approve" | "approve_default" | "reject" | "clear" | "undo") => a.to_string(),
        other => {
            return Err(UiError::BadRequest(format!(
                "action must be approve, approve_default, reject, clear or undo, not {other:?}"
            )));
        }
    };
    let run_name = param(req, "run")?.to_string();
    let pos = runs
        .iter()
        .position(|r| r.name == run_name)
        .ok_or(UiError::NotFound)?;
    // A verdict given on a page opened before the run's data changed would
    // judge images the person never saw.
    if let Some(seen) = req.f("seen")
        && seen != seen_token(&runs[pos])
    {
        return Err(UiError::Conflict(format!(
            "run {run_name:?} changed since you opened it: look at it again"
        )));
    }
    // After an approval, on to the next diff still to review (after this
    // one, wrapping around); none left: back to the release.
    let next = runs[pos + 1..]
        .iter()
        .chain(&runs[..pos])
        .find(|r| waits(r))
        .map(|n| n.name.clone());
    let release_id = rel.id;
    let reason = req.f("reason").map(str::to_string);
    let (by, name, act) = (Reviewer::user(&user), run_name.clone(), action.clone());
    ui.state
        .store
        .call(move |c| {
            let verdict = match act.as_str() {
                "approve_default" => {
                    return reviews::approve_for_default_branch(c, release_id, &name, &by)
                        .map(|_| ());
                }
                "undo" => return reviews::undo_approval(c, release_id, &name, &by).map(|_| ()),
                "approve" => RunVerdict::Approve,
                "reject" => RunVerdict::Reject,
                _ => RunVerdict::Clear,
            };
            reviews::review_run(c, release_id, &name, verdict, reason.as_deref(), &by).map(|_| ())
        })
        .await?;
    let b = rel.build_id;
    let approved = format!("approved={}", super::pages::enc(&run_name));
    Ok(redirect(&match (action.as_str(), next) {
        ("approve" | "approve_default", Some(n)) => {
            format!("{}&{approved}", run_url(b, &rel.name, rel.number, &n))
        }
        ("approve" | "approve_default", None) => {
            format!("{}&{approved}", release_url(b, &rel.name, rel.number))
        }
        ("undo", _) => format!("{}&undone=1", run_url(b, &rel.name, rel.number, &run_name)),
        _ => run_url(b, &rel.name, rel.number, &run_name),
    }))
}

/// `POST /run/comment`: adds a comment to a run's thread (owners only),
/// optionally about a rectangle of the new image (`region`, `x1:y1-x2:y2`).
pub(crate) async fn add_comment(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, user) = owned_build(ui, req, "build_id").await?;
    let (release_name, number) = (param(req, "name")?.to_string(), int_param(req, "number")?);
    let run_name = param(req, "run")?.to_string();
    let text = req.f("text").unwrap_or("").to_string();
    let region = match req.f("region").map(str::trim).filter(|g| !g.is_empty()) {
        Some(raw) => Some(Region::parse_field("region", raw).map_err(UiError::BadRequest)?),
        None => None,
    };
    let (build, rel, name) = (info.id, release_name.clone(), run_name.clone());
    let id = ui
        .state
        .store
        .call(move |c| {
            let release = storage::get_release(c, build, &rel, number)?;
            reviews::add_comment(c, release.id, &name, &Reviewer::user(&user), &text, region)
        })
        .await?;
    Ok(redirect(&format!(
        "{}#comment-{id}",
        run_url(info.id, &release_name, number, &run_name)
    )))
}

/// A rectangle from the form fields `x1`, `y1`, `x2`, `y2` (corners
/// inclusive, in the new image's pixels); the error names the bad field.
fn region_param(req: &Req) -> Result<Region, UiError> {
    let coord = |name: &str| -> Result<u32, UiError> {
        let raw = param(req, name)?.trim();
        raw.parse::<u32>().map_err(|_| {
            UiError::BadRequest(format!(
                "{name} must be a whole number of pixels, not {raw:?}"
            ))
        })
    };
    let (x1, y1, x2, y2) = (coord("x1")?, coord("y1")?, coord("x2")?, coord("y2")?);
    if x1 > x2 || y1 > y2 {
        return Err(UiError::BadRequest(format!(
            "the region {x1}:{y1}-{x2}:{y2} is empty: x1 must be at most x2 and y1 at most y2"
        )));
    }
    Ok(Region { x1, y1, x2, y2 })
}

/// `POST /ignore`: stores an ignore region drawn on a run's image for that
/// run name (owners only); later diffs of the build leave it out.
pub(crate) async fn add_ignore(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, user) = owned_build(ui, req, "build_id").await?;
    let run_name = param(req, "run")?.to_string();
    let name = param(req, "region_name")?.to_string();
    let region = region_param(req)?;
    let back = format!(
        "{}#ignores",
        run_url(
            info.id,
            param(req, "name")?,
            int_param(req, "number")?,
            &run_name
        )
    );
    let build = info.id;
    ui.state
        .store
        .call(move |c| ignores::add(c, build, &run_name, &name, region, &user))
        .await?;
    Ok(redirect(&back))
}

/// `POST /ignore/remove`: removes an ignore region (owners only) and goes
/// back to where it was removed from.
pub(crate) async fn remove_ignore(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, user) = owned_build(ui, req, "build_id").await?;
    let id = int_param(req, "id")?;
    let build = info.id;
    ui.state
        .store
        .call(move |c| ignores::remove(c, build, id, &user))
        .await?;
    Ok(redirect(&format!("{}#ignore-regions", build_url(build))))
}

/// Which runs a bulk approval takes.
#[derive(Debug, Clone, Copy)]
enum Bulk {
    /// Runs whose only differences are moved bands.
    OnlyShifts,
    /// Runs whose every remaining change lies inside the rectangle.
    Inside(Region),
}

impl Bulk {
    fn from(req: &Req) -> Result<Bulk, UiError> {
        match param(req, "kind")? {
            "shifts" => Ok(Bulk::OnlyShifts),
            "region" => Region::parse_field("region", param(req, "region")?)
                .map(Bulk::Inside)
                .map_err(UiError::BadRequest),
            other => Err(UiError::BadRequest(format!(
                "kind must be shifts or region, not {other:?}"
            ))),
        }
    }

    fn describe(&self) -> String {
        match self {
            Bulk::OnlyShifts => "only moved content".to_string(),
            Bulk::Inside(g) => format!("changes only inside {g}"),
        }
    }

    fn takes(&self, r: &DiffReport) -> bool {
        match self {
            Bulk::OnlyShifts => !r.shifts.is_empty() && !r.changed_beyond_shifts(),
            Bulk::Inside(outer) => {
                let inside = |g: &Region| {
                    g.x1 >= outer.x1 && g.y1 >= outer.y1 && g.x2 <= outer.x2 && g.y2 <= outer.y2
                };
                !r.regions.is_empty()
                    && r.regions.iter().all(inside)
                    && !(r.size_changed() && r.shifts.is_empty())
            }
        }
    }
}

/// The runs of a release still to review that `bulk` takes, by name, and
/// how many runs to review it leaves (no report, or other changes).
async fn bulk_matches(
    ui: &Ui,
    build: BuildId,
    runs: &[RunRow],
    bulk: Bulk,
) -> (Vec<String>, usize) {
    let mut taken = Vec::new();
    let mut left = 0;
    for r in runs
        .iter()
        .filter(|r| r.status == Some(RunStatus::DiffFound) && r.review.is_none())
    {
        match load_report(ui, build, r.diff_log.as_deref()).await {
            Some(report) if bulk.takes(&report) => taken.push(r.name.clone()),
            _ => left += 1,
        }
    }
    (taken, left)
}

/// `GET /release/bulk`: which runs a bulk approval would take, with a
/// button to confirm (owners only).
pub(crate) async fn bulk_preview(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, access, rel, runs) = release_and_runs(ui, req).await?;
    if access != Access::Owner {
        return Err(UiError::Forbidden(
            "only the build's owners may do this".into(),
        ));
    }
    let bulk = Bulk::from(req)?;
    let b = info.id;
    let (taken, left) = bulk_matches(ui, b, &runs, bulk).await;
    let names = names_digest(&taken);
    let listed: Vec<Value> = taken
        .iter()
        .map(|n| json!({"name": n, "url": run_url(b, &rel.name, rel.number, n)}))
        .collect();
    ui.render(
        req,
        "bulk",
        StatusCode::OK,
        json!({
            "title": format!("Approve in bulk — {} #{}", rel.name, rel.number),
            "build": {"name": info.name, "url": build_url(b), "id": b.0},
            "release": {"name": rel.name, "number": rel.number, "url": release_url(b, &rel.name, rel.number)},
            "what": bulk.describe(),
            "kind": req.q("kind").or(req.f("kind")),
            "region": req.q("region").or(req.f("region")),
            "runs": listed,
            "count": taken.len(),
            "names": names,
            "left": left,
            "page": "bulk",
        }),
    )
}

/// A digest of run names, so a confirmation can say which set it saw
/// without posting every name.
fn names_digest(names: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for n in names {
        h.update(n.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// `POST /release/bulk`: approves the runs the preview showed. The set is
/// worked out again; if it is no longer the set the person confirmed
/// (`expect` runs whose names hash to `names`), nothing is approved and they
/// are asked to look again.
pub(crate) async fn bulk_approve(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, user) = owned_build(ui, req, "build_id").await?;
    let (_, _, rel, runs) = release_and_runs(ui, req).await?;
    let bulk = Bulk::from(req)?;
    let expect = int_param(req, "expect")?;
    let (taken, _) = bulk_matches(ui, info.id, &runs, bulk).await;
    if taken.len() as i64 != expect {
        return Err(UiError::Conflict(format!(
            "{} runs match now, not the {expect} you confirmed: open the preview again",
            taken.len()
        )));
    }
    if param(req, "names")? != names_digest(&taken) {
        return Err(UiError::Conflict(
            "other runs match now than the ones you confirmed: open the preview again".into(),
        ));
    }
    let release = rel.id;
    let reason = bulk.describe();
    ui.state
        .store
        .call(move |c| reviews::approve_runs(c, release, &taken, &Reviewer::user(&user), &reason))
        .await?;
    Ok(redirect(&release_url(info.id, &rel.name, rel.number)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shift(kind: ShiftKind, y: u32, height: u32) -> Shift {
        Shift { kind, y, height }
    }

    #[test]
    fn reference_rows_follow_the_moved_bands() {
        // 40 rows inserted at y=100 of the new image, then 10 rows removed
        // at y=300 of the reference (y=340 of the new image).
        let shifts = [
            shift(ShiftKind::Inserted, 100, 40),
            shift(ShiftKind::Removed, 300, 10),
        ];
        assert_eq!(reference_row(&shifts, 50), 50);
        assert_eq!(reference_row(&shifts, 140), 100);
        assert_eq!(reference_row(&shifts, 339), 299);
        assert_eq!(reference_row(&shifts, 340), 310);
        assert_eq!(reference_row(&shifts, 500), 470);
    }

    fn report(regions: &[&str], shifts: Vec<Shift>) -> DiffReport {
        let regions: Vec<Region> = regions.iter().map(|r| r.parse().unwrap()).collect();
        DiffReport {
            width: 100,
            height: 100,
            reference_width: 100,
            reference_height: 100,
            distortion: 0.1,
            changed_pixels: regions
                .iter()
                .map(|g| u64::from(g.width() * g.height()))
                .sum(),
            total_pixels: 10_000,
            percentage: 0.0,
            regions,
            shifts,
            aligned_distortion: 0.0,
            unaligned_changed_pixels: 50,
        }
    }

    #[test]
    fn bulk_takes_only_what_it_says() {
        let moved = report(&[], vec![shift(ShiftKind::Inserted, 10, 5)]);
        let badge = report(&["10:10-20:20"], vec![]);
        let badge_and_move = report(&["10:10-20:20"], vec![shift(ShiftKind::Inserted, 50, 5)]);
        let spread = report(&["10:10-20:20", "60:60-70:70"], vec![]);
        let only_shifts = Bulk::OnlyShifts;
        assert!(only_shifts.takes(&moved));
        assert!(!only_shifts.takes(&badge));
        assert!(!only_shifts.takes(&badge_and_move));
        let inside = Bulk::Inside("5:5-30:30".parse().unwrap());
        assert!(!inside.takes(&moved), "nothing changed inside");
        assert!(inside.takes(&badge));
        assert!(inside.takes(&badge_and_move), "moves are not changes");
        assert!(!inside.takes(&spread), "one change is outside");
    }
}
