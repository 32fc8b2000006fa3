//! The API handlers: parse → check the key's scope → storage → reply.

use dpxdt_core::api::{
    AddTaskRequest, AddTaskResponse, CancelTaskRequest, CommentRequest, CommentResponse,
    CreateApiKeyRequest, CreateApiKeyResponse, CreateBuildRequest, CreateBuildResponse,
    CreateReleaseRequest, CreateReleaseResponse, DownloadRequest, FindRunRequest, FindRunResponse,
    FinishRequest, HeartbeatRequest, LeaseRequest, LeaseResponse, ReleaseStatusRequest,
    ReleaseStatusResponse, ReportRunRequest, RequestRunRequest, RequestRunResponse, RequestedRun,
    ReviewRunRequest, ReviewRunResponse, RevokeApiKeyRequest, RevokeApiKeyResponse,
    RunsDoneRequest, RunsDoneResponse, SuccessResponse, UpdateReleaseRequest,
    UpdateReleaseResponse,
};
use dpxdt_core::config::moded_name;
use dpxdt_core::diff::Region;
use dpxdt_core::{ArtifactId, BuildId, CaptureConfig};
use serde_json::Value;
use warp::http::HeaderMap;

use super::{ApiError, AppState};
use crate::error::Doing;
use crate::storage::queue;
use crate::storage::reviews::{self, Reviewer};
use crate::storage::{self, ApiKeyScope, RequestRunInput, TASK_MAX_ATTEMPTS};

type Pairs = [(String, String)];

fn json<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    Ok(serde_json::to_value(v).doing("encoding a reply")?)
}

const SUCCESS: SuccessResponse = SuccessResponse { success: true };

/// Refuses a key that may not act on `build`.
pub fn check_build(scope: &ApiKeyScope, build: BuildId) -> Result<(), ApiError> {
    if scope.may_access(build) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this API key may not act on build {build}"
        )))
    }
}

/// Refuses a key that may not act on `build`, or, for a worker key, holds
/// no lease on a task of `build` (and of `run`, when given).
pub async fn check_build_or_lease(
    state: &AppState,
    scope: &ApiKeyScope,
    build: BuildId,
    run: Option<(String, i64, String)>,
) -> Result<(), ApiError> {
    if !scope.worker {
        return check_build(scope, build);
    }
    let key = scope.key_id.clone();
    state
        .store
        .call(move |c| {
            let run = run.as_ref().map(|(r, n, u)| (r.as_str(), *n, u.as_str()));
            queue::require_worker_holds(c, &key, "this worker key holds", build, run)
        })
        .await?;
    Ok(())
}

fn check_superuser(scope: &ApiKeyScope) -> Result<(), ApiError> {
    if scope.superuser {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this endpoint needs a superuser API key".into(),
        ))
    }
}

/// A link shown to people (a release's or a run's `url`: often http(s),
/// `file://` from the tools, or free text): anything but a scheme that runs
/// script when followed, so that no `javascript:` or `data:` link ends up
/// on a review page.
fn check_link(field: &str, raw: &str) -> Result<(), ApiError> {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "javascript" | "vbscript" | "data" | "blob") => {
            Err(ApiError::BadRequest(format!(
                "{field}: scheme {:?} may not be used in a link",
                u.scheme()
            )))
        }
        _ => Ok(()),
    }
}

fn check_url(field: &str, raw: &str) -> Result<(), ApiError> {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        Ok(u) => Err(ApiError::BadRequest(format!(
            "{field}: scheme {:?} is not supported (use http or https)",
            u.scheme()
        ))),
        Err(e) => Err(ApiError::BadRequest(format!(
            "{field}: invalid URL {raw:?}: {e}"
        ))),
    }
}

/// The absolute URL of a release page for people.
fn results_url(state: &AppState, headers: &HeaderMap, path: &str) -> String {
    let base = match &state.config.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    format!("{base}{path}")
}

/// `create_release`.
pub async fn create_release(
    state: &AppState,
    scope: ApiKeyScope,
    headers: &HeaderMap,
    p: &Pairs,
) -> Result<Value, ApiError> {
    let req: CreateReleaseRequest = super::params::decode(p)?;
    check_build(&scope, req.build_id)?;
    check_link("url", &req.url)?;
    let limits = state.config.limits;
    once_per_key(
        state,
        &scope,
        headers,
        "create_release",
        Some(req.build_id),
        p,
        move |c| {
            let release = storage::releases::NewRelease {
                name: &req.release_name,
                url: &req.url,
                branch: req.branch.as_deref(),
                commit_sha: req.commit_sha.as_deref(),
            };
            let number = storage::create_release(c, req.build_id, &release, &limits)?;
            to_value(&CreateReleaseResponse {
                success: true,
                build_id: req.build_id,
                release_name: req.release_name,
                release_number: number,
                url: req.url,
            })
        },
    )
    .await
}

/// Runs a create request's storage work, once per `Idempotency-Key` when
/// the request carries one (see `storage::idempotency`), so a client may
/// repeat it after a lost answer without creating a second thing.
async fn once_per_key(
    state: &AppState,
    scope: &ApiKeyScope,
    headers: &HeaderMap,
    endpoint: &'static str,
    build: Option<BuildId>,
    p: &Pairs,
    create: impl FnOnce(&mut storage::Db) -> Result<Value, storage::StoreError> + Send + 'static,
) -> Result<Value, ApiError> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(state.store.call(create).await?);
    };
    let key = key
        .to_str()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?
        .to_string();
    // The build as parsed, not as spelled: `01` and `1` are one build, in
    // the scope and in the request compared on a repeat.
    let build = build.map_or_else(|| "none".to_string(), |b| b.to_string());
    let mut sorted: Vec<(&str, &str)> = p
        .iter()
        .map(|(name, value)| match name.as_str() {
            "build_id" => (name.as_str(), build.as_str()),
            _ => (name.as_str(), value.as_str()),
        })
        .collect();
    sorted.sort();
    let request = serde_json::to_string(&sorted).doing("encoding a request")?;
    // Per build and per API key: one build's clients never see another's
    // answers, and neither do two keys of one build (either may belong to
    // someone else).
    let scope = format!("build {build} key {}", scope.key_id);
    Ok(state
        .store
        .call(move |c| {
            let keyed = storage::idempotency::Keyed {
                scope: &scope,
                key: &key,
                endpoint,
                request: &request,
            };
            storage::idempotency::once(c, &keyed, create)
        })
        .await?)
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, storage::StoreError> {
    serde_json::to_value(v).map_err(|e| storage::StoreError::Io(std::io::Error::other(e)))
}

/// `find_run`.
pub async fn find_run(state: &AppState, scope: ApiKeyScope, p: &Pairs) -> Result<Value, ApiError> {
    let req: FindRunRequest = super::params::decode(p)?;
    check_build(&scope, req.build_id)?;
    if let Some(b) = &req.branch {
        dpxdt_core::model::validate_branch("branch", b).map_err(ApiError::BadRequest)?;
    }
    let (build, name, branch) = (req.build_id, req.run_name.clone(), req.branch.clone());
    let found = state
        .store
        .call(move |c| storage::find_run(c, build, &name, branch.as_deref()))
        .await?;
    let Some((release, run, reason)) = found else {
        return Err(ApiError::NotFound(format!(
            "no good release of build {build} has a run named {:?}",
            req.run_name
        )));
    };
    let artifact = |s: Option<String>| s.and_then(|s| ArtifactId::parse(&s).ok());
    json(&FindRunResponse {
        success: true,
        build_id: build,
        release_name: release.name,
        release_number: release.number,
        run_name: Some(run.name),
        url: run.url,
        image: artifact(run.image),
        log: artifact(run.log),
        config: artifact(run.config),
        branch: release.branch,
        baseline: Some(reason),
    })
}

/// `request_run`: one run, or one per mode of its config (all or none).
pub async fn request_run(
    state: &AppState,
    scope: ApiKeyScope,
    p: &Pairs,
) -> Result<Value, ApiError> {
    let req: RequestRunRequest = super::params::decode(p)?;
    check_build(&scope, req.build_id)?;
    dpxdt_core::model::validate_name("run_name", &req.run_name).map_err(ApiError::BadRequest)?;
    check_url("url", &req.url)?;
    let parse = |field: &str, json: &str| {
        CaptureConfig::from_json(json).map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))
    };
    let config = parse("config", &req.config)?;
    let reference = match &req.ref_url {
        Some(ref_url) => {
            check_url("ref_url", ref_url)?;
            let json = req.ref_config.clone().unwrap_or_else(|| "{}".into());
            let ref_config = parse("ref_config", &json)?;
            Some((ref_url.as_str(), json, ref_config))
        }
        None if req.ref_config.is_some() => {
            return Err(ApiError::BadRequest(
                "ref_config was given without ref_url".into(),
            ));
        }
        None => None,
    };
    let runs = requested_runs(&req, &config, reference.as_ref())?;
    // Nothing is stored for a request that will be refused.
    let (build, name, number) = (req.build_id, req.release_name.clone(), req.release_number);
    state
        .store
        .call(move |c| storage::releases::release_accepting(c, build, &name, number).map(drop))
        .await?;
    let inputs: Vec<RequestRunInput> = runs.iter().map(|(_, input)| input.clone()).collect();
    let limits = state.config.limits;
    // The config files go in place under the build's lock, as the rows
    // that point at them (see storage::gc).
    let artifacts = state.store.artifacts().clone();
    state
        .store
        .call(move |c| storage::request_runs(c, &artifacts, &inputs, &limits))
        .await?;
    let ref_config = |input: &RequestRunInput| input.reference.as_ref().map(|r| r.2.clone());
    let first = &runs[0].1;
    json(&RequestRunResponse {
        success: true,
        build_id: req.build_id,
        release_name: req.release_name,
        release_number: req.release_number,
        run_name: first.run_name.clone(),
        url: req.url,
        config: first.config.clone(),
        ref_url: req.ref_url,
        ref_config: ref_config(first),
        runs: runs
            .iter()
            .filter_map(|(mode, input)| {
                Some(RequestedRun {
                    run_name: input.run_name.clone(),
                    mode: mode.clone()?,
                    config: input.config.clone(),
                    ref_config: ref_config(input),
                })
            })
            .collect(),
    })
}

/// The runs a `request_run` asks for: itself, or one per mode of its
/// config, named `<run_name>@<mode>`, each with the mode's fields laid
/// over `config` and over the reference's config (which may repeat the
/// same modes, as one config sent for both sides does, but no others).
fn requested_runs(
    req: &RequestRunRequest,
    config: &CaptureConfig,
    reference: Option<&(&str, String, CaptureConfig)>,
) -> Result<Vec<(Option<String>, RequestRunInput)>, ApiError> {
    let bad = |message: String| ApiError::BadRequest(message);
    let input = |run_name: String, config_json: String, reference: Option<(&str, String)>| {
        RequestRunInput {
            build_id: req.build_id,
            release_name: req.release_name.clone(),
            release_number: req.release_number,
            run_name,
            url: req.url.clone(),
            config: ArtifactId::of_bytes(config_json.as_bytes()),
            config_json,
            reference: reference.map(|(url, json)| {
                let id = ArtifactId::of_bytes(json.as_bytes());
                (url.to_string(), json, id)
            }),
        }
    };
    if let Some((_, _, ref_config)) = reference
        && !ref_config.modes.is_empty()
        && ref_config.modes != config.modes
    {
        return Err(bad(
            "ref_config: modes go in config and apply to ref_config too; ref_config may only repeat them".into(),
        ));
    }
    if config.modes.is_empty() {
        let reference = reference.map(|(url, json, _)| (*url, json.clone()));
        return Ok(vec![(
            None,
            input(req.run_name.clone(), req.config.clone(), reference),
        )]);
    }
    let variants = config.variants().map_err(|e| bad(format!("config: {e}")))?;
    let ref_variants = match reference {
        Some((url, _, ref_config)) => {
            let with_modes = CaptureConfig {
                modes: config.modes.clone(),
                ..ref_config.clone()
            };
            let v = with_modes
                .variants()
                .map_err(|e| bad(format!("ref_config: {e}")))?;
            Some((*url, v))
        }
        None => None,
    };
    let mut runs = Vec::with_capacity(variants.len());
    for (i, (mode, merged)) in variants.into_iter().enumerate() {
        let run_name = moded_name(&req.run_name, mode.as_deref());
        dpxdt_core::model::validate_name("run_name", &run_name)
            .map_err(|e| bad(format!("mode {:?}: {e}", mode.as_deref().unwrap_or(""))))?;
        let reference = ref_variants
            .as_ref()
            .map(|(url, v)| (*url, v[i].1.to_json()));
        runs.push((mode, input(run_name, merged.to_json(), reference)));
    }
    Ok(runs)
}

/// `report_run`.
pub async fn report_run(
    state: &AppState,
    scope: ApiKeyScope,
    p: &Pairs,
) -> Result<Value, ApiError> {
    let req: ReportRunRequest = super::params::decode(p)?;
    let run = (
        req.release_name.clone(),
        req.release_number,
        req.run_name.clone(),
    );
    check_build_or_lease(state, &scope, req.build_id, Some(run)).await?;
    for (field, link) in [("url", &req.url), ("ref_url", &req.ref_url)] {
        if let Some(link) = link {
            check_link(field, link)?;
        }
    }
    let limits = state.config.limits;
    state
        .store
        .call(move |c| storage::report_run(c, &req, &limits))
        .await?;
    json(&SUCCESS)
}

/// `runs_done`.
pub async fn runs_done(
    state: &AppState,
    scope: ApiKeyScope,
    headers: &HeaderMap,
    p: &Pairs,
) -> Result<Value, ApiError> {
    let req: RunsDoneRequest = super::params::decode(p)?;
    check_build(&scope, req.build_id)?;
    let (build, name, number) = (req.build_id, req.release_name.clone(), req.release_number);
    state
        .store
        .call(move |c| storage::runs_done(c, build, &name, number))
        .await?;
    let path = storage::results_url_path(build, &req.release_name, number);
    json(&RunsDoneResponse {
        success: true,
        results_url: results_url(state, headers, &path),
    })
}

/// `release_status`.
pub async fn release_status(
    state: &AppState,
    scope: ApiKeyScope,
    headers: &HeaderMap,
    p: &Pairs,
) -> Result<Value, ApiError> {
    let req: ReleaseStatusRequest = super::params::decode(p)?;
    check_build(&scope, req.build_id)?;
    let (build, name, number) = (req.build_id, req.release_name.clone(), req.release_number);
    let (release, runs, baselines) = state
        .store
        .call(move |c| {
            let (release, runs) = storage::release_status(c, build, &name, number)?;
            let baselines = storage::releases::run_baselines(c, release.id)?;
            Ok((release, runs, baselines))
        })
        .await?;
    let path = storage::results_url_path(build, &release.name, number);
    json(&ReleaseStatusResponse {
        success: true,
        build_id: build,
        release_name: release.name,
        release_number: release.number,
        status: release.status,
        results_url: results_url(state, headers, &path),
        runs,
        branch: release.branch,
        commit_sha: release.commit_sha,
        baselines,
    })
}

/// *New.* `update_release`: a person's verdict (`status` = good, bad or reviewing).
pub async fn update_release(
    state: &AppState,
    scope: ApiKeyScope,
    p: &Pairs,
) -> Result<Value, ApiError> {
    let req: UpdateReleaseRequest = super::params::decode(p)?;
    check_verdicts_from_keys(state, &scope, req.build_id).await?;
    let status = state
        .store
        .call(move |c| {
            storage::set_release_verdict(
                c,
                req.build_id,
                &req.release_name,
                req.release_number,
                &req.status,
                None,
            )
        })
        .await?;
    json(&UpdateReleaseResponse {
        success: true,
        status,
    })
}

/// Refuses a key that may not give verdicts on `build`: a superuser key
/// may; a build's key only if its build takes verdicts from keys.
async fn check_verdicts_from_keys(
    state: &AppState,
    scope: &ApiKeyScope,
    build: BuildId,
) -> Result<(), ApiError> {
    check_build(scope, build)?;
    if scope.superuser {
        return Ok(());
    }
    let info = state
        .store
        .call(move |c| storage::builds::build_info(c, build))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("build {build} does not exist")))?;
    if info.key_verdicts {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "build {build} takes verdicts from people only; an owner can let its API keys \
             give verdicts in the build's settings"
        )))
    }
}

/// *New.* `review_run`: a verdict on one run (approve, reject, clear).
pub async fn review_run(
    state: &AppState,
    scope: ApiKeyScope,
    p: &Pairs,
) -> Result<Value, ApiError> {
    let req: ReviewRunRequest = super::params::decode(p)?;
    check_verdicts_from_keys(state, &scope, req.build_id).await?;
    let by = Reviewer::key(&scope.key_id);
    let (status, review) = state
        .store
        .call(move |c| {
            let release =
                storage::get_release(c, req.build_id, &req.release_name, req.release_number)?;
            reviews::review_run(
                c,
                release.id,
                &req.run_name,
                req.verdict,
                req.reason.as_deref(),
                &by,
            )
        })
        .await?;
    json(&ReviewRunResponse {
        success: true,
        status,
        review,
    })
}

/// *New.* `comment`: adds a comment to a run's thread.
pub async fn comment(state: &AppState, scope: ApiKeyScope, p: &Pairs) -> Result<Value, ApiError> {
    let req: CommentRequest = super::params::decode(p)?;
    check_build(&scope, req.build_id)?;
    let region = match req.region.as_deref() {
        Some(raw) => Some(Region::parse_field("region", raw).map_err(ApiError::BadRequest)?),
        None => None,
    };
    let by = Reviewer::key(&scope.key_id);
    let comment_id = state
        .store
        .call(move |c| {
            let release =
                storage::get_release(c, req.build_id, &req.release_name, req.release_number)?;
            reviews::add_comment(c, release.id, &req.run_name, &by, &req.text, region)
        })
        .await?;
    json(&CommentResponse {
        success: true,
        comment_id,
    })
}

/// `download`: the bytes of an artifact the key's build owns.
pub async fn download(
    state: &AppState,
    scope: ApiKeyScope,
    p: &Pairs,
    headers: &HeaderMap,
) -> Result<warp::reply::Response, ApiError> {
    let req: DownloadRequest = super::params::decode(p)?;
    let id = ArtifactId::parse(&req.sha1sum)
        .map_err(|e| ApiError::BadRequest(format!("sha1sum: {e}")))?;
    if scope.worker {
        let (key, build, artifact) = (scope.key_id.clone(), req.build_id, id.clone());
        state
            .store
            .call(move |c| {
                queue::require_worker_may_download(
                    c,
                    &key,
                    "this worker key holds",
                    build,
                    &artifact,
                )
            })
            .await?;
    } else {
        check_build(&scope, req.build_id)?;
    }
    let build = req.build_id;
    let lookup = id.clone();
    let info = state
        .store
        .call(move |c| storage::artifact_owned(c, build, &lookup))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("build {build} has no artifact {id}")))?;
    super::serve_artifact(
        &state.store,
        &id,
        &info.content_type,
        super::Visibility::Private,
        headers,
    )
    .await
    .doing_with(|| format!("reading artifact {id}"))
    .map_err(ApiError::from)
}

/// `create_build` (superuser).
pub async fn create_build(
    state: &AppState,
    scope: ApiKeyScope,
    headers: &HeaderMap,
    p: &Pairs,
) -> Result<Value, ApiError> {
    check_superuser(&scope)?;
    let req: CreateBuildRequest = super::params::decode(p)?;
    once_per_key(state, &scope, headers, "create_build", None, p, move |c| {
        let id = storage::create_build(c, &req.name)?;
        to_value(&CreateBuildResponse {
            success: true,
            build_id: id,
            name: req.name,
        })
    })
    .await
}

/// `create_api_key` (superuser).
pub async fn create_api_key(
    state: &AppState,
    scope: ApiKeyScope,
    p: &Pairs,
) -> Result<Value, ApiError> {
    check_superuser(&scope)?;
    let req: CreateApiKeyRequest = super::params::decode(p)?;
    let build = req.build_id;
    let purpose = req.purpose.unwrap_or_default();
    let key = state
        .store
        .call(move |c| storage::create_api_key(c, Some(build), &purpose))
        .await?;
    json(&CreateApiKeyResponse {
        success: true,
        build_id: build,
        api_key: key.id,
        api_secret: key.secret,
    })
}

/// `revoke_api_key`: a superuser key revokes any key of a build; a build
/// key only itself (one leaked key must not be able to lock its build's
/// other clients out; owners revoke any key on the build page).
pub async fn revoke_api_key(
    state: &AppState,
    scope: ApiKeyScope,
    p: &Pairs,
) -> Result<Value, ApiError> {
    let req: RevokeApiKeyRequest = super::params::decode(p)?;
    check_build(&scope, req.build_id)?;
    if !scope.superuser && req.api_key != scope.key_id {
        return Err(ApiError::Forbidden(format!(
            "a build API key may revoke only itself, not {:?}; the build's owners revoke \
             other keys on the build page",
            req.api_key
        )));
    }
    let (build, key) = (req.build_id, req.api_key.clone());
    state
        .store
        .call(move |c| storage::revoke_build_api_key(c, build, &key, None))
        .await?;
    tracing::info!(build = %req.build_id, api_key = %req.api_key, "API key revoked over the API");
    json(&RevokeApiKeyResponse {
        success: true,
        build_id: req.build_id,
        api_key: req.api_key,
    })
}

/// `work_queue/<queue>/<action>`: a superuser key, or a worker key for
/// `lease`, `heartbeat` and `finish` (its leases are its own).
pub async fn work_queue(
    state: &AppState,
    scope: ApiKeyScope,
    queue_name: &str,
    action: &str,
    p: &Pairs,
) -> Result<Value, ApiError> {
    let worker_action = matches!(action, "lease" | "heartbeat" | "finish");
    if !(scope.worker && worker_action) {
        check_superuser(&scope).map_err(|_| {
            ApiError::Forbidden(if scope.worker {
                format!("a worker key may not {action} tasks (lease, heartbeat, finish only)")
            } else {
                "the work queue needs a worker or superuser API key".into()
            })
        })?;
    }
    queue::validate_queue_name(queue_name)?;
    let q = queue_name.to_string();
    match action {
        "add" => {
            let req: AddTaskRequest = super::params::decode(p)?;
            let max = req.max_attempts.unwrap_or(TASK_MAX_ATTEMPTS);
            let task_id = state
                .store
                .call(move |c| queue::add_task(c, &q, &req.payload, max))
                .await?;
            json(&AddTaskResponse {
                success: true,
                task_id,
            })
        }
        "lease" => {
            let req: LeaseRequest = super::params::decode(p)?;
            let tasks = state
                .store
                .call(move |c| {
                    queue::lease(
                        c,
                        &q,
                        &scope.lease_owner(&req.owner),
                        req.count,
                        req.timeout,
                        storage::fail_run_for_task,
                    )
                })
                .await?;
            json(&LeaseResponse {
                success: true,
                tasks,
            })
        }
        "heartbeat" => {
            let req: HeartbeatRequest = super::params::decode(p)?;
            state
                .store
                .call(move |c| {
                    queue::heartbeat(
                        c,
                        &q,
                        req.task_id,
                        &scope.lease_owner(&req.owner),
                        &req.message,
                        req.index,
                        req.timeout,
                    )
                })
                .await?;
            json(&SUCCESS)
        }
        "finish" => {
            let req: FinishRequest = super::params::decode(p)?;
            state
                .store
                .call(move |c| {
                    let owner = scope.lease_owner(&req.owner);
                    queue::finish(
                        c,
                        &q,
                        req.task_id,
                        &owner,
                        req.error.as_deref(),
                        storage::fail_run_for_task,
                    )
                })
                .await?;
            json(&SUCCESS)
        }
        "cancel" => {
            let req: CancelTaskRequest = super::params::decode(p)?;
            state
                .store
                .call(move |c| queue::cancel(c, &q, req.task_id))
                .await?;
            json(&SUCCESS)
        }
        other => Err(no_work_queue_action(other)),
    }
}

/// The 404 of a work queue action that does not exist, naming those that do.
pub(super) fn no_work_queue_action(action: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no work queue action {action:?} ({})",
        super::openapi::work_queue_actions().join(", ")
    ))
}
