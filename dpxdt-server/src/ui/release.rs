//! The release page: its runs grouped by what they need, the release's
//! verdict (guarded when runs still wait) and keeping it from retention.

use std::cmp::{Ordering, Reverse};

use dpxdt_core::api::Reviewed;
use dpxdt_core::config::MODE_SEPARATOR;
use dpxdt_core::{ReleaseStatus, RunStatus};
use serde_json::{Value, json};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use super::pages::{
    build_for, build_url, engines_of, int_param, owned_build, param, release_url, run_url,
};
use super::{Req, Ui, UiError, redirect};
use crate::storage::builds::{Access, BuildInfo};
use crate::storage::reviews::{self, Marked, Outstanding};
use crate::storage::{self, ReleaseRow, RunRow, gc};

/// The release page's groups in the order they are shown (what needs a
/// person first): rank, key, title.
const GROUPS: [(u8, &str, &str); 8] = [
    (0, "failed", "Failed"),
    (1, "rejected", "Rejected"),
    (2, "diff_found", "Diff found"),
    (3, "diff_approved", "Approved"),
    (4, "needs_diff", "Diffing"),
    (5, "data_pending", "Capturing"),
    (6, "no_diff_needed", "No reference"),
    (7, "diff_not_found", "Same"),
];

/// A run's group: rank and key (see [`GROUPS`]). A rejected run is in
/// "rejected" whatever its state.
pub(super) fn group(r: &RunRow) -> (u8, &'static str) {
    if r.review
        .as_ref()
        .is_some_and(|v| v.verdict == Reviewed::Rejected)
    {
        return (1, "rejected");
    }
    match r.status.unwrap_or(RunStatus::DataPending) {
        RunStatus::Failed => (0, "failed"),
        RunStatus::DiffFound => (2, "diff_found"),
        RunStatus::DiffApproved => (3, "diff_approved"),
        RunStatus::NeedsDiff => (4, "needs_diff"),
        RunStatus::DataPending => (5, "data_pending"),
        RunStatus::NoDiffNeeded => (6, "no_diff_needed"),
        RunStatus::DiffNotFound => (7, "diff_not_found"),
    }
}

/// A distortion that sorts (none below every number).
#[derive(PartialEq)]
struct Distortion(Option<f64>);

impl Eq for Distortion {}

impl PartialOrd for Distortion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Distortion {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.0, other.0) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            (a, b) => a.is_some().cmp(&b.is_some()),
        }
    }
}

/// The release named by the request's parameters and its runs in display order.
pub(super) async fn release_and_runs(
    ui: &Ui,
    req: &Req,
) -> Result<(BuildInfo, Access, ReleaseRow, Vec<RunRow>), UiError> {
    let (info, access) = build_for(ui, req, "build_id").await?;
    let name = param(req, "name")?.to_string();
    let number = int_param(req, "number")?;
    let id = info.id;
    let (release, mut runs) = ui
        .state
        .store
        .call(move |c| {
            let release = storage::get_release(c, id, &name, number)?;
            let runs = storage::list_runs(c, release.id)?;
            Ok((release, runs))
        })
        .await?;
    // By group (what needs a person first), the largest differences first
    // within one, then by page, the modes of one page together (in byte
    // order whatever the database's collation).
    runs.sort_by(|a, b| {
        let key = |r: &RunRow| {
            let (page, mode) = split_mode(&r.name);
            (
                group(r).0,
                Reverse(Distortion(r.distortion)),
                page.to_string(),
                mode.unwrap_or("").to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok((info, access, release, runs))
}

/// A run name's page and mode: `home@dark` is `home` in mode `dark`
/// (see `dpxdt_core::config::moded_name`); a name without a mode-like
/// suffix is all page.
pub(super) fn split_mode(name: &str) -> (&str, Option<&str>) {
    let is_mode = |m: &str| {
        !m.is_empty()
            && !m.starts_with('.')
            && m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match name.rsplit_once(MODE_SEPARATOR) {
        Some((page, mode)) if !page.is_empty() && is_mode(mode) => (page, Some(mode)),
        _ => (name, None),
    }
}

/// `GET /release`: runs grouped by what they need, failures and rejected
/// runs first, then the largest differences.
pub(crate) async fn release(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, access, rel, runs) = release_and_runs(ui, req).await?;
    let b = info.id;
    let release_id = rel.id;
    let (kept, comments) = ui
        .state
        .store
        .call(move |c| {
            Ok((
                gc::kept(c, release_id)?,
                reviews::comment_counts(c, release_id)?,
            ))
        })
        .await?;
    let engines = engines_of(ui, &runs).await;
    let now = storage::now_ms();
    let owner = access == Access::Owner;
    let mut groups: Vec<Value> = Vec::new();
    for (rank, key, title) in GROUPS {
        let members: Vec<Value> = runs
            .iter()
            .filter(|r| group(r).0 == rank)
            .map(|r| {
                let (page, mode) = split_mode(&r.name);
                // Chromium is the default: only other engines are named.
                let engine = r
                    .config
                    .as_deref()
                    .and_then(|id| engines.get(id))
                    .filter(|e| **e != dpxdt_core::config::Engine::Chromium);
                let review = r
                    .review
                    .as_ref()
                    .map(|v| super::format::review_json(v, owner, now));
                json!({
                    "name": r.name,
                    "page": page,
                    "mode": mode,
                    "engine": engine.map(|e| e.name()),
                    "url": run_url(b, &rel.name, rel.number, &r.name),
                    "distortion": r.distortion.map(|d| format!("{:.4}%", d * 100.0)),
                    "review": review,
                    "comments": comments.get(&r.id).copied(),
                    "thumb": r.diff_image.as_ref().or(r.image.as_ref())
                        .map(|id| format!("/thumb?build_id={b}&id={id}")),
                })
            })
            .collect();
        if !members.is_empty() {
            groups.push(
                json!({"status": key, "label": title, "count": members.len(), "runs": members}),
            );
        }
    }
    use dpxdt_core::ReleaseEvent as E;
    let can = |e| owner && rel.status.apply(e).is_ok();
    let open = !rel.status.is_final();
    ui.render(
        req,
        "release",
        StatusCode::OK,
        json!({
            "title": format!("{} #{}", rel.name, rel.number),
            "build": {"name": info.name, "url": build_url(b), "id": b.0},
            "release": {"name": rel.name, "number": rel.number, "status": rel.status.as_str(), "url": rel.url,
                        "branch": rel.branch.as_deref().unwrap_or(&info.default_branch),
                        "commit": rel.commit_sha},
            "groups": groups,
            "total": runs.len(),
            "can_good": can(E::MarkGood),
            "can_bad": can(E::MarkBad),
            "can_reviewing": can(E::MarkReviewing),
            "owner": owner,
            "kept": kept,
            "can_bulk": owner && open && runs.iter().any(|r| r.status == Some(RunStatus::DiffFound) && r.review.is_none()),
            "flash": super::review::flash(req, &runs, now),
            "live": matches!(rel.status, ReleaseStatus::Receiving | ReleaseStatus::Processing).then(|| {
                format!("/release/progress?build_id={b}&name={}&number={}", super::pages::enc(&rel.name), rel.number)
            }),
            "finished": runs.iter().filter(|r| !matches!(r.status, Some(RunStatus::DataPending | RunStatus::NeedsDiff))).count(),
            "page": "release",
        }),
    )
}

/// `GET /release/progress`: a release's state and how many of its runs
/// are finished, as JSON, for the release page to poll while the release
/// is still receiving or processing.
pub(crate) async fn progress(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, _) = build_for(ui, req, "build_id").await?;
    let name = param(req, "name")?.to_string();
    let number = int_param(req, "number")?;
    let build = info.id;
    let (release, counts) = ui
        .state
        .store
        .call(move |c| storage::release_status(c, build, &name, number))
        .await?;
    let total: u64 = counts.iter().map(|c| c.count).sum();
    let busy: u64 = counts
        .iter()
        .filter(|c| matches!(c.status, RunStatus::DataPending | RunStatus::NeedsDiff))
        .map(|c| c.count)
        .sum();
    let body = json!({"status": release.status.as_str(), "total": total, "finished": total - busy});
    let mut resp = Response::new(body.to_string().into());
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

/// `POST /release/keep`: keep a release whatever the retention policy says
/// (`keep=1`), or let the policy decide again (`keep=0`).
pub(crate) async fn keep_release(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, user) = owned_build(ui, req, "build_id").await?;
    let name = param(req, "name")?.to_string();
    let number = int_param(req, "number")?;
    let keep = param(req, "keep")? == "1";
    let id = info.id;
    let back = release_url(id, &name, number);
    ui.state
        .store
        .call(move |c| {
            let release = storage::get_release(c, id, &name, number)?;
            gc::set_keep(c, id, release.id, keep, &user)
        })
        .await?;
    Ok(redirect(&back))
}

/// `POST /release/status`: Good, Bad or back to Reviewing (the core
/// decides). Good while runs are not reviewed, rejected or failed asks
/// first, naming the counts; confirmed (`override`, with the counts the
/// person saw), it is logged as an override. Should more wait by then than
/// the person saw, nothing changes and they are asked again.
pub(crate) async fn release_verdict(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, user) = owned_build(ui, req, "build_id").await?;
    let name = param(req, "name")?.to_string();
    let number = int_param(req, "number")?;
    let verdict = param(req, "status")?.to_string();
    let seen = if req.f("override").is_some() {
        let count = |field: &str| int_param(req, field);
        Some(Outstanding {
            unreviewed: count("unreviewed")?,
            rejected: count("rejected")?,
            failed: count("failed")?,
        })
    } else {
        None
    };
    let id = info.id;
    let back = release_url(id, &name, number);
    let (n, v) = (name.clone(), verdict.clone());
    let marked = ui
        .state
        .store
        .call(move |c| reviews::mark_release(c, id, &n, number, &v, &user, seen))
        .await?;
    let Marked::Ask(waiting) = marked else {
        return Ok(redirect(&back));
    };
    ui.render(
        req,
        "confirm",
        StatusCode::OK,
        json!({
            "title": format!("Mark {name} #{number} good?"),
            "build": {"name": info.name, "url": build_url(id), "id": id.0},
            "release": {"name": name, "number": number, "url": back},
            "waiting": waiting.describe(),
            "unreviewed": waiting.unreviewed, "rejected": waiting.rejected, "failed": waiting.failed,
            "page": "confirm",
        }),
    )
}
