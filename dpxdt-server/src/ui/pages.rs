//! The page and action handlers: home, builds, API keys, releases, runs
//! and the authorized image route.

use dpxdt_core::{ArtifactId, BuildId, CaptureConfig, ReleaseStatus, RunStatus};
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use super::auth::require_user;
use super::{Req, Ui, UiError, redirect};
use crate::error::Doing;
use crate::storage::builds::{Access, BuildInfo};
use crate::storage::users::{self, UserRow};
use crate::storage::{self, NewApiKey};
use crate::storage::{
    activity, artifacts, builds, gc, ignores, notifications, queue, releases, statuses,
};

pub(super) fn label(s: RunStatus) -> &'static str {
    match s {
        RunStatus::DiffFound => "Diff found",
        RunStatus::Failed => "Failed",
        RunStatus::DiffApproved => "Approved",
        RunStatus::NeedsDiff => "Diffing",
        RunStatus::DataPending => "Capturing",
        RunStatus::NoDiffNeeded => "No reference",
        RunStatus::DiffNotFound => "Same",
    }
}

pub(super) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(super) fn build_url(b: BuildId) -> String {
    format!("/build?id={b}")
}

pub(super) fn release_url(b: BuildId, name: &str, number: i64) -> String {
    format!("/release?build_id={b}&name={}&number={number}", enc(name))
}

pub(super) fn run_url(b: BuildId, name: &str, number: i64, run: &str) -> String {
    format!(
        "/run?build_id={b}&name={}&number={number}&run={}",
        enc(name),
        enc(run)
    )
}

pub(super) fn image_url(b: BuildId, id: &Option<String>) -> Option<String> {
    id.as_ref().map(|id| format!("/image?build_id={b}&id={id}"))
}

/// A parameter from the query (GET) or the form (POST).
pub(super) fn param<'a>(req: &'a Req, name: &str) -> Result<&'a str, UiError> {
    req.f(name)
        .or_else(|| req.q(name))
        .ok_or_else(|| UiError::BadRequest(format!("missing parameter {name}")))
}

pub(super) fn int_param(req: &Req, name: &str) -> Result<i64, UiError> {
    let raw = param(req, name)?;
    raw.parse()
        .map_err(|_| UiError::BadRequest(format!("parameter {name} must be a number, not {raw:?}")))
}

/// The build named by parameter `field` if the requester may at least read
/// it; a private build of someone else is [`UiError::NotFound`].
pub(super) async fn build_for(
    ui: &Ui,
    req: &Req,
    field: &str,
) -> Result<(BuildInfo, Access), UiError> {
    let build = BuildId(int_param(req, field)?);
    let user = req.session.as_ref().map(|s| s.user.clone());
    let (info, access) = ui
        .state
        .store
        .call(move |c| builds::build_access(c, build, user.as_ref()))
        .await?;
    match info {
        Some(info) if access > Access::None => Ok((info, access)),
        _ => Err(UiError::NotFound),
    }
}

/// Like [`build_for`], for actions only owners may do. Readers of a public
/// build get 403; everybody else cannot tell the build exists.
pub(super) async fn owned_build(
    ui: &Ui,
    req: &Req,
    field: &str,
) -> Result<(BuildInfo, UserRow), UiError> {
    let (info, access) = build_for(ui, req, field).await?;
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
    Ok((info, user))
}

/// `GET /`: your builds, then public ones.
pub(crate) async fn home(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let user = req.session.as_ref().map(|s| s.user.clone());
    let (builds, latest) = ui
        .state
        .store
        .call(move |c| {
            let builds = builds::list_builds(c, user.as_ref())?;
            Ok((builds, storage::overview::latest_releases(c)?))
        })
        .await?;
    let now = storage::now_ms();
    let (mine, public): (Vec<_>, Vec<_>) = builds.into_iter().partition(|(_, owned)| *owned);
    let show = |v: Vec<(BuildInfo, bool)>| -> Vec<Value> {
        v.into_iter()
            .map(|(b, _)| {
                let latest = latest.get(&b.id).map(|l| {
                    json!({"name": l.name, "number": l.number, "status": l.status.as_str(),
                           "url": release_url(b.id, &l.name, l.number),
                           "waiting": l.waiting, "when": super::format::when(l.created_ms, now)})
                });
                json!({"name": b.name, "url": build_url(b.id), "public": b.public, "latest": latest})
            })
            .collect()
    };
    ui.render(
        req,
        "home",
        StatusCode::OK,
        json!({"title": "Builds", "mine": show(mine), "public": show(public)}),
    )
}

/// `GET /new_build`.
pub(crate) fn new_build_page(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    if let Err(r) = require_user(req) {
        return Ok(*r);
    }
    ui.render(
        req,
        "new_build",
        StatusCode::OK,
        json!({"title": "New build"}),
    )
}

/// `POST /new_build`: creates a build owned by the requester.
pub(crate) async fn new_build(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let user = match require_user(req) {
        Ok(u) => u.clone(),
        Err(r) => return Ok(*r),
    };
    let name = param(req, "name")?.trim().to_string();
    let public = req.f("public") == Some("1");
    let id = ui
        .state
        .store
        .call(move |c| builds::create_owned_build(c, &user, &name, public))
        .await?;
    Ok(redirect(&build_url(id)))
}

/// `GET /build?id=`: releases newest first; keys, settings and the activity
/// log for owners. `new_key` is shown once, right after it was made.
pub(crate) async fn build(
    ui: &Ui,
    req: &Req,
    new_key: Option<NewApiKey>,
) -> Result<Response, UiError> {
    let field = if req.f("build_id").is_some() {
        "build_id"
    } else {
        "id"
    };
    let (info, access) = build_for(ui, req, field).await?;
    let owner = access == Access::Owner;
    let id = info.id;
    let search = ReleaseSearch::from(req)?;
    let query = releases::ReleaseQuery {
        name: search.name.clone(),
        status: search.status,
        branch: search.branch.clone(),
        offset: search.page * RELEASES_PER_PAGE,
        // One more than shown, to know whether there is an older page.
        limit: RELEASES_PER_PAGE + 1,
    };
    let (
        (mut releases, total),
        keys,
        log,
        (owners, invited),
        webhook,
        (ignored, usage, (policy, status)),
    ) = ui
        .state
        .store
        .call(move |c| {
            let releases = (
                releases::list_releases(c, id, &query)?,
                releases::count_releases(c, id, &query)?,
            );
            let ignored = (
                ignores::list(c, id, None, 500)?,
                gc::build_usage(c, id)?,
                (gc::build_policy(c, id)?, statuses::target(c, id)?),
            );
            let (keys, log, owners, webhook) = if owner {
                (
                    builds::list_api_keys(c, id)?,
                    activity::list_log(c, id, 50)?,
                    (builds::list_owners(c, id)?, builds::list_invites(c, id)?),
                    notifications::webhook_url(c, id)?,
                )
            } else {
                (Vec::new(), Vec::new(), (Vec::new(), Vec::new()), None)
            };
            Ok((releases, keys, log, owners, webhook, ignored))
        })
        .await?;
    let older = releases.len() > RELEASES_PER_PAGE as usize;
    releases.truncate(RELEASES_PER_PAGE as usize);
    let releases: Vec<Value> = releases
        .into_iter()
        .map(|r| {
            json!({
                "name": r.name,
                "number": r.number,
                "status": r.status.as_str(),
                // A release that names no branch is on the default branch.
                "branch_url": format!("{}&branch={}", build_url(id), enc(r.branch.as_deref().unwrap_or(&info.default_branch))),
                "branch": r.branch.as_deref().unwrap_or(&info.default_branch),
                "url": release_url(id, &r.name, r.number),
                "counts": r.counts.iter().map(|(s, n)| json!({"status": s.as_str(), "label": label(*s), "count": n})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|k| json!({"id": k.id, "purpose": k.purpose, "active": k.active}))
        .collect();
    let log: Vec<Value> = log
        .into_iter()
        .map(|l| json!({"type": l.log_type, "message": l.message, "user": l.user, "when": l.created}))
        .collect();
    ui.render(
        req,
        "build",
        StatusCode::OK,
        json!({
            "title": info.name,
            "build": {"id": id.0, "name": info.name, "public": info.public, "key_verdicts": info.key_verdicts,
                      "default_branch": info.default_branch, "url": build_url(id)},
            "owner": owner,
            "releases": releases,
            "search": search.to_json(id, older, releases.len(), total),
            "keys": keys,
            "log": log,
            "owners": owners.into_iter().map(|(name, email)| json!({"name": name, "email": email})).collect::<Vec<_>>(),
            "invited": invited,
            "webhook_url": webhook,
            "status": status.map(|t| json!({"api": t.api, "repo": t.repo, "token_set": t.token_set})),
            "usage": {"releases": usage.0, "bytes": human_bytes(usage.1), "exact": usage.1},
            "retention": {"keep_releases": policy.0, "keep_days": policy.1,
                          "default_releases": ui.state.config.gc.defaults.keep_releases,
                          "default_days": ui.state.config.gc.defaults.keep_days},
            "ignores": ignored.into_iter().map(|i| json!({"id": i.id, "run": i.run_name, "name": i.name,
                "region": i.region.to_string(), "by": if owner { i.created_by } else { None }})).collect::<Vec<_>>(),
            "new_key": new_key.map(|k| json!({"id": k.id, "secret": k.secret})),
        }),
    )
}

/// Bytes for people: 1.5 MiB.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Releases shown on one page of a build.
const RELEASES_PER_PAGE: u32 = 50;

/// The build page's release search: `?q=` (name contains), `?status=`,
/// `?branch=` (exactly), `?page=` (0 = newest).
struct ReleaseSearch {
    name: Option<String>,
    status: Option<ReleaseStatus>,
    branch: Option<String>,
    page: u32,
}

impl ReleaseSearch {
    fn from(req: &Req) -> Result<ReleaseSearch, UiError> {
        let name = req
            .q("q")
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_string);
        if name.as_ref().is_some_and(|n| n.len() > 200) {
            return Err(UiError::BadRequest("the search is over 200 bytes".into()));
        }
        let branch = req
            .q("branch")
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_string);
        if let Some(b) = &branch {
            dpxdt_core::model::validate_branch("branch", b).map_err(UiError::BadRequest)?;
        }
        let status = match req.q("status").filter(|s| !s.is_empty()) {
            Some(s) => Some(
                s.parse::<ReleaseStatus>()
                    .map_err(|_| UiError::BadRequest(format!("no release state {s:?}")))?,
            ),
            None => None,
        };
        let page = match req.q("page").filter(|p| !p.is_empty()) {
            Some(p) => p
                .parse::<u32>()
                .ok()
                .filter(|p| *p <= 100_000)
                .ok_or_else(|| UiError::BadRequest(format!("page {p:?} is not a page number")))?,
            None => 0,
        };
        Ok(ReleaseSearch {
            name,
            status,
            branch,
            page,
        })
    }

    /// What the template shows: the form's values, "1–50 of 65" (`shown`
    /// on this page of `total`) and the page links.
    fn to_json(&self, build: BuildId, older: bool, shown: usize, total: i64) -> Value {
        let link = |page: u32| {
            let mut url = format!("/build?id={}&page={page}", build.0);
            if let Some(name) = &self.name {
                url.push_str("&q=");
                url.extend(url::form_urlencoded::byte_serialize(name.as_bytes()));
            }
            if let Some(status) = self.status {
                url.push_str(&format!("&status={}", status.as_str()));
            }
            if let Some(branch) = &self.branch {
                url.push_str("&branch=");
                url.extend(url::form_urlencoded::byte_serialize(branch.as_bytes()));
            }
            url
        };
        let states: Vec<Value> = ReleaseStatus::ALL
            .iter()
            .map(|s| json!({"value": s.as_str(), "selected": Some(*s) == self.status}))
            .collect();
        json!({
            "q": self.name,
            "branch": self.branch,
            "states": states,
            "page": self.page + 1,
            "range": (shown > 0).then(|| {
                let first = self.page as usize * RELEASES_PER_PAGE as usize + 1;
                format!("{first}–{} of {total}", first + shown - 1)
            }),
            "newer": (self.page > 0).then(|| link(self.page - 1)),
            "older": older.then(|| link(self.page + 1)),
            "filtered": self.name.is_some() || self.status.is_some() || self.branch.is_some(),
        })
    }
}

/// `POST /build/api_key`: creates an API key and shows its secret once.
pub(crate) async fn create_key(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, user) = owned_build(ui, req, "build_id").await?;
    let purpose = req.f("purpose").unwrap_or("").trim().to_string();
    if purpose.len() > 200 || purpose.chars().any(char::is_control) {
        return Err(UiError::BadRequest(
            "purpose must be at most 200 characters without control characters".into(),
        ));
    }
    let id = info.id;
    let key = ui
        .state
        .store
        .call(move |c| {
            let key = storage::create_api_key(c, Some(id), &purpose)?;
            activity::log_action(c, id, &user, "ui_create_api_key", &key.id)?;
            Ok(key)
        })
        .await?;
    build(ui, req, Some(key)).await
}

/// `POST /build/revoke_key`.
pub(crate) async fn revoke_key(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, user) = owned_build(ui, req, "build_id").await?;
    let key = param(req, "key_id")?.to_string();
    let id = info.id;
    ui.state
        .store
        .call(move |c| storage::revoke_build_api_key(c, id, &key, Some(user.id)))
        .await?;
    Ok(redirect(&build_url(id)))
}

/// `POST /build/settings`: name, public or private, key verdicts.
pub(crate) async fn settings(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, user) = owned_build(ui, req, "build_id").await?;
    let settings = builds::BuildSettings {
        name: req
            .f("name")
            .map_or(info.name.clone(), |n| n.trim().to_string()),
        public: req.f("public") == Some("1"),
        key_verdicts: req.f("key_verdicts") == Some("1"),
        default_branch: req
            .f("default_branch")
            .map_or(info.default_branch.clone(), |b| b.trim().to_string()),
    };
    let webhook = req.f("webhook_url").map(|u| u.trim().to_string());
    // Retention: empty means the server's default; checked before anything
    // is saved, so a bad value changes nothing.
    let retention = match (req.f("keep_releases"), req.f("keep_days")) {
        (None, None) => None,
        (releases, days) => {
            let number = |field: &str, raw: Option<&str>| -> Result<Option<u32>, UiError> {
                match raw.map(str::trim).filter(|v| !v.is_empty()) {
                    None => Ok(None),
                    Some(v) => v.parse().map(Some).map_err(|_| {
                        UiError::BadRequest(format!("{field} must be a whole number, not {v:?}"))
                    }),
                }
            };
            let pair = (
                number("keep releases", releases)?,
                number("keep days", days)?,
            );
            gc::Policy {
                keep_releases: pair.0.unwrap_or(1),
                keep_days: pair.1.unwrap_or(1),
            }
            .validate()?;
            Some(pair)
        }
    };
    // The commit-status target: checked (and its token sealed) first too.
    let status = match req.f("status_api").map(str::trim) {
        None => None,
        Some(api) if api.is_empty() || req.f("status_remove") == Some("1") => {
            Some((String::new(), String::new(), statuses::TokenChange::Keep))
        }
        Some(api) => {
            let repo = req.f("status_repo").unwrap_or_default().trim().to_string();
            let allow_http = ui.state.config.allow_http_status_api;
            statuses::validate(api, &repo, allow_http)?;
            let typed = req
                .f("status_token")
                .map(str::trim)
                .filter(|t| !t.is_empty());
            if typed.is_some_and(|t| t.len() > 1000 || t.chars().any(char::is_control)) {
                return Err(UiError::BadRequest(
                    "status token: at most 1000 bytes of printable text".into(),
                ));
            }
            // A new or changed target is tried once before it is saved.
            let build = info.id;
            let (current, sealed) = ui
                .state
                .store
                .call(move |c| {
                    let sealed: Option<Vec<u8>> = c.query_row(
                        "SELECT status_token FROM build WHERE id = ?1",
                        [build.0],
                        |r| r.get(0),
                    )?;
                    Ok((statuses::target(c, build)?, sealed))
                })
                .await?;
            let key = ui.state.store.secret_key()?;
            let change = match typed {
                None => statuses::TokenChange::Keep,
                Some(t) => statuses::TokenChange::Set(
                    key.seal(t.as_bytes(), &statuses::token_binding(build, api))?,
                ),
            };
            // Before the stored token is opened, let alone sent anywhere.
            statuses::check_token_kept(current.as_ref(), api, &change)?;
            let unchanged = typed.is_none()
                && current
                    .as_ref()
                    .is_some_and(|t| t.api == api && t.repo == repo);
            let token = match (typed, sealed, &current) {
                (Some(t), _, _) => Some(t.to_string()),
                (None, Some(s), Some(t)) => {
                    let plain = statuses::open_token(key, &s, build, &t.api)?;
                    Some(String::from_utf8_lossy(&plain).into_owned())
                }
                (None, _, _) => None,
            };
            if !unchanged && let Some(token) = &token {
                let allow = ui.state.config.allow_private_webhooks;
                crate::notify::probe_status_api(api, &repo, token, allow)
                    .await
                    .map_err(|e| UiError::BadRequest(format!("status API: {e}")))?;
            }
            Some((api.to_string(), repo, change))
        }
    };
    let id = info.id;
    let allow_http_status = ui.state.config.allow_http_status_api;
    ui.state
        .store
        .call(move |c| {
            if let Some((api, repo, token)) = status {
                // First: the one setting that can still be refused here
                // (no token given), before anything else is saved.
                statuses::set_target(c, id, &user, &api, &repo, token, allow_http_status)?;
            }
            builds::set_build_settings(c, id, &user, &settings)?;
            if let Some((releases, days)) = retention {
                gc::set_build_policy(c, id, &user, releases, days)?;
            }
            match webhook {
                Some(url) if notifications::webhook_url(c, id)?.unwrap_or_default() != url => {
                    notifications::set_webhook_url(c, id, &user, &url)
                }
                _ => Ok(()),
            }
        })
        .await?;
    Ok(redirect(&build_url(id)))
}

/// `POST /build/owners`: invite (`action=add`, by user name; the person
/// accepts on their account page), withdraw an invitation
/// (`action=cancel`) or revoke (`action=remove`) an owner.
pub(crate) async fn owners(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, user) = owned_build(ui, req, "build_id").await?;
    let name = param(req, "user")?.trim().to_string();
    let action = param(req, "action")?.to_string();
    if !matches!(action.as_str(), "add" | "cancel" | "remove") {
        return Err(UiError::BadRequest(format!(
            "action must be add, cancel or remove, not {action:?}"
        )));
    }
    let id = info.id;
    ui.state
        .store
        .call(move |c| match action.as_str() {
            "add" => builds::invite_owner(c, id, &user, &name),
            "cancel" => builds::cancel_invite(c, id, &user, &name),
            _ => builds::remove_owner(c, id, &user, &name),
        })
        .await?;
    Ok(redirect(&build_url(id)))
}

/// `POST /account/invite`: the logged-in user accepts (`answer=accept`) or
/// declines (`answer=decline`) an invitation to own `build_id`.
pub(crate) async fn answer_invite(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let user = match require_user(req) {
        Ok(u) => u.clone(),
        Err(r) => return Ok(*r),
    };
    let build: BuildId = param(req, "build_id")?
        .parse()
        .map_err(|_| UiError::BadRequest("build_id must be a number".into()))?;
    let accept = match param(req, "answer")? {
        "accept" => true,
        "decline" => false,
        other => {
            return Err(UiError::BadRequest(format!(
                "answer must be accept or decline, not {other:?}"
            )));
        }
    };
    ui.state
        .store
        .call(move |c| builds::answer_invite(c, build, &user, accept))
        .await?;
    let to = if accept {
        build_url(build)
    } else {
        "/account".to_string()
    };
    Ok(redirect(&to))
}

/// `GET /account`: the logged-in user's e-mail address (for notifications).
pub(crate) async fn account(ui: &Ui, req: &Req, notice: Option<&str>) -> Result<Response, UiError> {
    let user = match require_user(req) {
        Ok(u) => u.clone(),
        Err(r) => return Ok(*r),
    };
    let id = user.id;
    let me = user.clone();
    let (email, invitations) = ui
        .state
        .store
        .call(move |c| Ok((users::user_email(c, id)?, builds::invitations_for(c, &me)?)))
        .await?;
    let invitations: Vec<Value> = invitations
        .into_iter()
        .map(|i| json!({"build_id": i.build.0, "build_name": i.build_name, "invited_by": i.invited_by}))
        .collect();
    ui.render(
        req,
        "account",
        StatusCode::OK,
        json!({
            "title": "Account",
            "name": user.name,
            "email": email,
            "invitations": invitations,
            "notice": notice,
            "mail_on": ui.state.config.mail.is_some(),
        }),
    )
}

/// `POST /account`: sets (or with an empty field clears) the user's own
/// e-mail address.
pub(crate) async fn set_account(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let user = match require_user(req) {
        Ok(u) => u.clone(),
        Err(r) => return Ok(*r),
    };
    let email = param(req, "email")?.trim().to_string();
    ui.state
        .store
        .call(move |c| users::set_user_email(c, &user.name, &email))
        .await?;
    Ok(redirect("/account?saved=1"))
}

/// `GET /queue`: work-queue counts and live or failed tasks, for superusers
/// only (a 404 for everybody else).
pub(crate) async fn queue(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    superuser(req)?;
    let (counts, tasks) = ui
        .state
        .store
        .call(|c| Ok((queue::queue_counts(c)?, queue::recent_tasks(c, 100)?)))
        .await?;
    let counts: Vec<Value> = counts
        .into_iter()
        .map(|(q, s, n)| json!({"queue": q, "status": s, "count": n}))
        .collect();
    let tasks: Vec<Value> = tasks
        .into_iter()
        .map(|t| {
            json!({"id": t.id, "queue": t.queue, "status": t.status, "owner": t.owner,
                   "attempts": t.attempts, "heartbeat": t.heartbeat, "error": t.last_error, "eta": t.eta})
        })
        .collect();
    ui.render(
        req,
        "queue",
        StatusCode::OK,
        json!({"title": "Work queue", "counts": counts, "tasks": tasks}),
    )
}

/// The logged-in superuser's name, or 404 for anyone else (the admin pages
/// do not exist for them).
fn superuser(req: &Req) -> Result<String, UiError> {
    match &req.session {
        Some(s) if s.user.superuser => Ok(s.user.name.clone()),
        _ => Err(UiError::NotFound),
    }
}

/// `GET /users`: every account, for superusers, with what they may change.
/// `notice` is what was just done, shown once: `{"reset": {name,
/// password}}` or `{"invited": {name, link, mailed_to, mail_error}}`.
pub(crate) async fn users(ui: &Ui, req: &Req, notice: Option<Value>) -> Result<Response, UiError> {
    let me = superuser(req)?;
    let list = ui.state.store.call(|c| users::list_users(c)).await?;
    let list: Vec<Value> = list
        .into_iter()
        .map(|u| {
            json!({
                "name": u.user.name,
                "email": u.email,
                "superuser": u.user.superuser,
                "disabled": u.user.disabled,
                "me": u.user.name == me,
            })
        })
        .collect();
    ui.render(
        req,
        "users",
        StatusCode::OK,
        json!({
            "title": "Users",
            "users": list,
            "notice": notice,
        }),
    )
}

/// `POST /users`: a superuser disables or enables an account, makes it a
/// superuser or not, or gives it a new random password (shown once, and
/// every session of the account ends).
pub(crate) async fn change_user(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let me = superuser(req)?;
    let name = req.f("name").unwrap_or_default().to_string();
    let action = req.f("action").unwrap_or_default();
    let change = match action {
        "disable" => users::AccountChange::Disable,
        "enable" => users::AccountChange::Enable,
        "make_superuser" => users::AccountChange::MakeSuperuser,
        "revoke_superuser" => users::AccountChange::RevokeSuperuser,
        "reset_password" => {
            let exists = {
                let name = name.clone();
                ui.state
                    .store
                    .call(move |c| users::find_user(c, &name))
                    .await?
                    .is_some()
            };
            if !exists {
                return Err(UiError::NotFound);
            }
            let password = storage::sessions::random_token(12);
            let store = ui.state.store.clone();
            let (who, pw) = (name.clone(), password.clone());
            tokio::task::spawn_blocking(move || super::create_user(&store, &who, &pw, false))
                .await
                .doing("setting a password")??;
            tracing::info!(user = %name, by = %me, "password reset");
            let reset = json!({"reset": {"name": name, "password": password}});
            return users(ui, req, Some(reset)).await;
        }
        other => {
            return Err(UiError::BadRequest(format!("unknown action {other:?}")));
        }
    };
    let (who, by) = (name.clone(), me.clone());
    ui.state
        .store
        .call(move |c| users::change_account(c, &who, change, &by))
        .await?;
    tracing::info!(user = %name, by = %me, ?change, "account changed");
    Ok(redirect("/users"))
}

/// `GET /image?build_id=&id=`: an artifact of a build the requester may
/// read. Images are served as images; everything else as plain text, so an
/// uploaded file can never run as a page of this site.
pub(crate) async fn image(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, access) = build_for(ui, req, "build_id").await?;
    let id = ArtifactId::parse(param(req, "id")?).map_err(|_| UiError::NotFound)?;
    let build = info.id;
    let lookup = id.clone();
    let art = ui
        .state
        .store
        .call(move |c| storage::artifact_owned(c, build, &lookup))
        .await?
        .ok_or(UiError::NotFound)?;
    let ct = match art.content_type.as_str() {
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" => art.content_type.clone(),
        _ => "text/plain; charset=utf-8".to_string(),
    };
    if !ct.starts_with("image/")
        && let Some(config) = read_capture_config(ui, &id).await
    {
        // A capture config may hold passwords, cookies and headers: only
        // owners see them, and no shared cache keeps either version.
        let shown = if access == Access::Owner {
            config
        } else {
            config.redacted()
        };
        let json = serde_json::to_string_pretty(&shown).doing("showing a capture config")?;
        let mut resp = Response::new(json.into());
        crate::http::artifact_headers(&mut resp, "text/plain; charset=utf-8", "private, no-store");
        return Ok(resp);
    }
    send_artifact(ui, req, &id, &ct, info.public).await
}

/// The engine a run's capture config (artifact id `config`) names, when
/// it has a readable config.
pub(super) async fn config_engine(
    ui: &Ui,
    config: Option<&str>,
) -> Option<dpxdt_core::config::Engine> {
    let id = ArtifactId::parse(config?).ok()?;
    read_capture_config(ui, &id).await.map(|c| c.engine())
}

/// Most distinct capture configs a release page reads to name engines: a
/// release whose runs each carry a config of their own shows none.
const MAX_CONFIGS_READ: usize = 32;

/// The engines of `runs`' capture configs, by config artifact id: each
/// distinct config read once (a release's runs share a few), at most
/// [`MAX_CONFIGS_READ`] of them.
pub(super) async fn engines_of(
    ui: &Ui,
    runs: &[storage::RunRow],
) -> std::collections::HashMap<String, dpxdt_core::config::Engine> {
    let mut out = std::collections::HashMap::new();
    let mut distinct: Vec<&str> = runs.iter().filter_map(|r| r.config.as_deref()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() > MAX_CONFIGS_READ {
        return out;
    }
    for id in distinct {
        if let Some(engine) = config_engine(ui, Some(id)).await {
            out.insert(id.to_string(), engine);
        }
    }
    out
}

/// The artifact as a capture config, when it is one (a small JSON object
/// that parses as a config).
async fn read_capture_config(ui: &Ui, id: &ArtifactId) -> Option<CaptureConfig> {
    let bytes = ui
        .state
        .store
        .artifacts()
        .read_small(id, 256 * 1024)
        .await
        .ok()??;
    let text = std::str::from_utf8(&bytes).ok()?;
    if !text.trim_start().starts_with('{') {
        return None;
    }
    CaptureConfig::from_json(text).ok()
}

/// `GET /thumb?build_id=&id=`: a small PNG of the top of a screenshot the
/// requester may read, made once and cached as an artifact.
pub(crate) async fn thumb(ui: &Ui, req: &Req) -> Result<Response, UiError> {
    let (info, _) = build_for(ui, req, "build_id").await?;
    let id = ArtifactId::parse(param(req, "id")?).map_err(|_| UiError::NotFound)?;
    let build = info.id;
    let lookup = id.clone();
    let art = ui
        .state
        .store
        .call(move |c| storage::artifact_owned(c, build, &lookup))
        .await?
        .ok_or(UiError::NotFound)?;
    if art.content_type != "image/png" {
        return Err(UiError::NotFound);
    }
    let key = super::thumbs::key(&id);
    let thumb = match cached_thumbnail(ui, &key).await? {
        Some(t) => t,
        None => {
            // One render per screenshot: a burst of requests for it waits
            // for the first and then finds the thumbnail cached.
            let _mine = ui.renders.one_at_a_time(&key).await;
            match cached_thumbnail(ui, &key).await? {
                Some(t) => t,
                None => {
                    let _slot = ui.renders.slot().await;
                    render_thumbnail(ui, &id, key).await?
                }
            }
        }
    };
    send_artifact(ui, req, &thumb, "image/png", info.public).await
}

/// The cached thumbnail under `key`, when it is still on disk.
async fn cached_thumbnail(ui: &Ui, key: &str) -> Result<Option<ArtifactId>, UiError> {
    let lookup = key.to_string();
    let cached = ui
        .state
        .store
        .call(move |c| artifacts::find_thumbnail(c, &lookup))
        .await?
        .and_then(|t| ArtifactId::parse(&t).ok());
    match cached {
        Some(t)
            if ui
                .state
                .store
                .artifacts()
                .exists_async(&t)
                .await
                .doing("looking for a cached thumbnail")? =>
        {
            Ok(Some(t))
        }
        _ => Ok(None),
    }
}

/// Makes the thumbnail of screenshot `id` and caches it under `key`.
async fn render_thumbnail(ui: &Ui, id: &ArtifactId, key: String) -> Result<ArtifactId, UiError> {
    let store = ui.state.store.clone();
    let source = id.clone();
    tokio::task::spawn_blocking(move || -> Result<ArtifactId, UiError> {
        let bytes = store
            .artifacts()
            .read(&source)
            .doing("reading a screenshot for its thumbnail")?;
        let png = super::thumbs::make_thumbnail(&bytes).map_err(UiError::BadRequest)?;
        let files = store.artifacts().clone();
        Ok(store.blocking(|c| artifacts::save_thumbnail(c, &files, &key, &png))?)
    })
    .await
    .doing("making a thumbnail")?
}

async fn send_artifact(
    ui: &Ui,
    req: &Req,
    id: &ArtifactId,
    content_type: &str,
    public: bool,
) -> Result<Response, UiError> {
    let visibility = if public {
        crate::http::Visibility::Public
    } else {
        crate::http::Visibility::Private
    };
    crate::http::serve_artifact(&ui.state.store, id, content_type, visibility, &req.headers)
        .await
        .doing_with(|| format!("reading artifact {id}"))
        .map_err(UiError::from)
}
