//! Wire types of the HTTP API, shared by `dpxdt-client` and `dpxdt-server`.
//!
//! Field names are the original's. Requests are sent as forms
//! (`application/x-www-form-urlencoded` or multipart), responses as JSON with
//! `success: true`, or `success: false` and an `error` message with a 4xx/5xx
//! status. This is the only serde surface of the API: change it here and both
//! ends follow.

use serde::{Deserialize, Serialize};

use crate::model::{ArtifactId, BuildId, TaskId};
use crate::release::ReleaseStatus;
use crate::run::RunStatus;

/// The body of every failed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// What was wrong, for people.
    pub error: String,
}

/// `POST /api/create_release`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateReleaseRequest {
    /// The build.
    pub build_id: BuildId,
    /// Name of the release; a name used before gets the next number.
    pub release_name: String,
    /// Link for people to the release (e.g. the branch or the CI job).
    pub url: String,
    /// *New.* The branch the release was built from; its runs are compared
    /// with the newest good release of this branch, else of the build's
    /// default branch. Absent: the default branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// *New.* The commit the release was built from (7 to 64 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
}

/// Reply to `create_release`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateReleaseResponse {
    /// Always true.
    pub success: bool,
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The number given to this attempt.
    pub release_number: i64,
    /// The release's link.
    pub url: String,
}

/// `POST /api/find_run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FindRunRequest {
    /// The build.
    pub build_id: BuildId,
    /// The run name to look up in the newest good release.
    pub run_name: String,
    /// *New.* Look on this branch first, then on the build's default
    /// branch. Absent: the default branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// *New.* Why a run has the reference it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BaselineReason {
    /// The newest good release of the run's own branch.
    SameBranch,
    /// The run's branch has no good release with this run: the newest good
    /// release of the build's default branch.
    DefaultBranch,
    /// A reference the client gave (e.g. a page captured beside it).
    Given,
}

impl BaselineReason {
    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineReason::SameBranch => "same_branch",
            BaselineReason::DefaultBranch => "default_branch",
            BaselineReason::Given => "given",
        }
    }
}

impl std::str::FromStr for BaselineReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "same_branch" => Ok(BaselineReason::SameBranch),
            "default_branch" => Ok(BaselineReason::DefaultBranch),
            "given" => Ok(BaselineReason::Given),
            other => Err(format!("unknown baseline reason {other:?}")),
        }
    }
}

/// Reply to `find_run`: the run of that name in the last good release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FindRunResponse {
    /// Always true.
    pub success: bool,
    /// The build.
    pub build_id: BuildId,
    /// Name of the good release the run was found in.
    pub release_name: String,
    /// Number of that release.
    pub release_number: i64,
    /// The run name.
    pub run_name: Option<String>,
    /// URL the run captured.
    pub url: Option<String>,
    /// Its screenshot.
    pub image: Option<ArtifactId>,
    /// Its capture log.
    pub log: Option<ArtifactId>,
    /// Its capture config.
    pub config: Option<ArtifactId>,
    /// *New.* The branch of the release it was found in (absent: none given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// *New.* Found on the asked branch or on the default branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineReason>,
}

/// `POST /api/request_run`: the server captures (and diffs) for the client.
/// A `config` with `modes` asks for one run per mode, named
/// `<run_name>@<mode>`, each captured with the mode's fields laid over
/// `config` (and over `ref_config`, which may repeat the same modes but
/// have no others).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestRunRequest {
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
    /// The run name (usually the URL path).
    pub run_name: String,
    /// URL of the new page.
    pub url: String,
    /// Capture config JSON of the new page; `{}` when not given, as in the
    /// original.
    #[serde(default = "empty_config")]
    pub config: String,
    /// URL of the baseline page; without it the last good run is the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_url: Option<String>,
    /// Capture config JSON of the baseline page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_config: Option<String>,
}

fn empty_config() -> String {
    "{}".into()
}

/// Reply to `request_run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestRunResponse {
    /// Always true.
    pub success: bool,
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
    /// Artifact id of the stored config.
    pub config: ArtifactId,
    /// URL of the baseline page.
    pub ref_url: Option<String>,
    /// Artifact id of the stored baseline config.
    pub ref_config: Option<ArtifactId>,
    /// *New.* With modes: every run created, one per mode, in the config's
    /// order (the fields above are the first one's). Absent without modes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RequestedRun>,
}

/// One run a `request_run` with modes created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestedRun {
    /// The run name, `<run_name>@<mode>`.
    pub run_name: String,
    /// The mode.
    pub mode: String,
    /// Artifact id of its stored config (the mode's fields over `config`).
    pub config: ArtifactId,
    /// Artifact id of its stored baseline config, with `ref_url`.
    pub ref_config: Option<ArtifactId>,
}

/// Reply to `POST /api/upload` (multipart: `build_id` and one file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadResponse {
    /// Always true.
    pub success: bool,
    /// The build.
    pub build_id: BuildId,
    /// The artifact id: SHA-1 of the bytes.
    pub sha1sum: ArtifactId,
    /// Content type inferred from the file name or the bytes.
    pub content_type: String,
}

/// `POST /api/report_run`: data for a run, possibly in several calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportRunRequest {
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
    /// The run name.
    pub run_name: String,
    /// URL of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Screenshot artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ArtifactId>,
    /// Capture log artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<ArtifactId>,
    /// Capture config artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ArtifactId>,
    /// URL of the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_url: Option<String>,
    /// Reference screenshot artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_image: Option<ArtifactId>,
    /// Reference capture log artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_log: Option<ArtifactId>,
    /// Reference capture config artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_config: Option<ArtifactId>,
    /// Diff image artifact (present when a difference was found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_image: Option<ArtifactId>,
    /// Diff log artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_log: Option<ArtifactId>,
    /// Distortion 0..1 found by the diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distortion: Option<f64>,
    /// Non-empty when the capture failed for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_failed: Option<String>,
    /// Non-empty when the diff failed for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_failed: Option<String>,
}

impl ReportRunRequest {
    /// Compares this run with `baseline` (what `find_run` found: the run
    /// of the same name in the build's newest good release): the baseline's
    /// screenshot, and its URL, log and config, become this run's
    /// reference. With no baseline the run has no reference and needs no
    /// diff.
    pub fn with_baseline(mut self, baseline: Option<FindRunResponse>) -> ReportRunRequest {
        if let Some(b) = baseline {
            self.ref_url = b.url;
            self.ref_image = b.image;
            self.ref_log = b.log;
            self.ref_config = b.config;
        }
        self
    }
}

/// A reply that carries nothing but success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuccessResponse {
    /// Always true.
    pub success: bool,
}

/// `POST /api/runs_done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunsDoneRequest {
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
}

/// Reply to `runs_done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunsDoneResponse {
    /// Always true.
    pub success: bool,
    /// The release page for people.
    pub results_url: String,
}

/// *New.* `GET /api/release_status?build_id&release_name&release_number`:
/// what CI waits on (`--wait`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseStatusResponse {
    /// Always true.
    pub success: bool,
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
    /// The release state.
    pub status: ReleaseStatus,
    /// The release page for people.
    pub results_url: String,
    /// How many runs are in each state.
    pub runs: Vec<RunCount>,
    /// *New.* The release's branch, when the client gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// *New.* The release's commit, when the client gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    /// *New.* What each run was compared with, by run name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<RunBaseline>,
}

/// *New.* What one run of a release was compared with, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunBaseline {
    /// The run.
    pub run_name: String,
    /// Why its reference is what it is; absent: it has no reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<BaselineReason>,
    /// The good release whose run of the same name is the reference
    /// (absent when the client gave the reference or there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Its number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_number: Option<i64>,
    /// Its branch (absent: the default branch, not named by its client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// *New.* The query of `GET /api/release_status` (or its POST form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseStatusRequest {
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
}

/// *New.* `POST /api/update_release`: a verdict on a release, from a
/// superuser key or a key of a build that takes verdicts from keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateReleaseRequest {
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
    /// The verdict: `good`, `bad`, or `reviewing` to take one back.
    pub status: String,
}

/// Reply to `update_release`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateReleaseResponse {
    /// Always true.
    pub success: bool,
    /// The release's state now.
    pub status: ReleaseStatus,
}

/// The query of `GET /api/download`: the reply is the artifact's bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DownloadRequest {
    /// The artifact id (SHA-1 of its bytes).
    pub sha1sum: String,
    /// The build that owns it.
    pub build_id: BuildId,
}

/// Most characters of a comment on a run.
pub const MAX_COMMENT_CHARS: usize = 10_000;
/// Most characters of the reason given with a run's verdict.
pub const MAX_REASON_CHARS: usize = 2_000;

/// *New.* What a reviewer says of one run: `approve` its difference,
/// `reject` it as a regression, or `clear` the verdict given before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunVerdict {
    /// The difference is intended: the run is `diff_approved`.
    Approve,
    /// The run shows a regression; with a reason, so others see why.
    Reject,
    /// Takes back an approval or a rejection.
    Clear,
}

/// *New.* A verdict recorded on a run: which, why, by whom, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Reviewed {
    /// Approved: the difference is intended.
    Approved,
    /// Rejected: a regression.
    Rejected,
}

impl Reviewed {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reviewed::Approved => "approved",
            Reviewed::Rejected => "rejected",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Reviewed> {
        match s {
            "approved" => Some(Reviewed::Approved),
            "rejected" => Some(Reviewed::Rejected),
            _ => None,
        }
    }
}

/// *New.* One run's recorded verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunReview {
    /// Approved or rejected.
    pub verdict: Reviewed,
    /// Why, as the reviewer wrote it (plain text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who: a user name, or `API key <id>`.
    pub by: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// *New.* `POST /api/review_run`: a verdict on one run, from a superuser
/// key or a key of a build that takes verdicts from keys (as
/// `update_release`). The release must not have a verdict of its own yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewRunRequest {
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
    /// The run.
    pub run_name: String,
    /// `approve`, `reject` or `clear`.
    pub verdict: RunVerdict,
    /// Why (at most 2,000 characters; shown as plain text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Reply to `review_run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewRunResponse {
    /// Always true.
    pub success: bool,
    /// The run's state now.
    pub status: RunStatus,
    /// The verdict now recorded (none after `clear`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<RunReview>,
}

/// *New.* `POST /api/comment`: adds a comment to a run's thread, from any
/// key of the run's build (not a worker key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommentRequest {
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
    /// The run.
    pub run_name: String,
    /// The comment (1 to 10,000 characters; shown as plain text).
    pub text: String,
    /// A rectangle of the new image it is about, `x1:y1-x2:y2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Reply to `comment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommentResponse {
    /// Always true.
    pub success: bool,
    /// The new comment's id.
    pub comment_id: i64,
}

/// A count of runs in one state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunCount {
    /// The state.
    pub status: RunStatus,
    /// How many runs are in it.
    pub count: u64,
}

/// `POST /api/work_queue/<queue>/add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddTaskRequest {
    /// Task payload (JSON text).
    pub payload: String,
    /// Maximum lease attempts before the task is given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// Reply to `add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddTaskResponse {
    /// Always true.
    pub success: bool,
    /// The new task.
    pub task_id: TaskId,
}

/// `POST /api/work_queue/<queue>/lease`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseRequest {
    /// Who leases (a worker's unique name).
    pub owner: String,
    /// Most tasks to lease at once.
    pub count: u32,
    /// Lease length in seconds.
    pub timeout: u64,
}

/// One leased task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeasedTask {
    /// The task.
    pub task_id: TaskId,
    /// Its queue.
    pub queue_name: String,
    /// Its payload (JSON text).
    pub payload: String,
    /// Which lease attempt this is, from 1.
    pub lease_attempts: u32,
    /// When the lease ends, seconds since the Unix epoch.
    pub eta: i64,
}

/// Reply to `lease`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseResponse {
    /// Always true.
    pub success: bool,
    /// The leased tasks, oldest first; empty when there is no work.
    pub tasks: Vec<LeasedTask>,
}

/// `POST /api/work_queue/<queue>/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatRequest {
    /// The task.
    pub task_id: TaskId,
    /// Who holds the lease.
    pub owner: String,
    /// Progress message for people.
    pub message: String,
    /// Monotonic index; a heartbeat with a lower index than the last one is ignored.
    pub index: i64,
    /// New lease length in seconds from now (default: the original lease length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// `POST /api/work_queue/<queue>/finish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishRequest {
    /// The task.
    pub task_id: TaskId,
    /// Who holds the lease.
    pub owner: String,
    /// Set when the task failed; it is retried until its attempts run out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Name of the work queue of capture tasks in Chromium (the default engine).
pub const CAPTURE_QUEUE: &str = "capture";

/// The work queue of capture tasks in `engine`: [`CAPTURE_QUEUE`] for
/// Chromium, `capture-firefox` and `capture-webkit` for the others, so a
/// capture worker leases only tasks for the engines it has.
pub fn capture_queue(engine: crate::config::Engine) -> &'static str {
    match engine {
        crate::config::Engine::Chromium => CAPTURE_QUEUE,
        crate::config::Engine::Firefox => "capture-firefox",
        crate::config::Engine::Webkit => "capture-webkit",
    }
}

/// Every capture queue, one per engine.
pub fn capture_queues() -> [&'static str; 3] {
    crate::config::Engine::ALL.map(capture_queue)
}
/// Name of the work queue of diff tasks (the original's name).
pub const DIFF_QUEUE: &str = "run-pdiff";

/// Payload of a task in [`CAPTURE_QUEUE`]: take one screenshot and report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureTask {
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
    /// The run name.
    pub run_name: String,
    /// The page to capture.
    pub url: String,
    /// The capture config (JSON text, already validated by the server).
    pub config_json: String,
    /// Artifact id of the stored config, reported back with the image.
    pub config: ArtifactId,
    /// True when this captures the reference (`ref_*` fields) rather than the run.
    pub is_ref: bool,
}

/// Payload of a task in [`DIFF_QUEUE`]: diff a run's image against its reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffTask {
    /// The build.
    pub build_id: BuildId,
    /// The release name.
    pub release_name: String,
    /// The release number.
    pub release_number: i64,
    /// The run name.
    pub run_name: String,
    /// The new screenshot.
    pub image: ArtifactId,
    /// The reference screenshot.
    pub ref_image: ArtifactId,
    /// Areas whose changes do not count: the ignore regions people drew
    /// for this run name in the review UI (absent in older payloads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<crate::diff::Region>,
}

/// *New.* `POST /api/create_build` (superuser key): creates a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateBuildRequest {
    /// The build's name.
    pub name: String,
}

/// Reply to `create_build`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateBuildResponse {
    /// Always true.
    pub success: bool,
    /// The new build.
    pub build_id: BuildId,
    /// Its name.
    pub name: String,
}

/// *New.* `POST /api/create_api_key` (superuser key): creates a key scoped to one build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateApiKeyRequest {
    /// The build the key may act on.
    pub build_id: BuildId,
    /// What the key is for, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// Reply to `create_api_key`: the secret is shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateApiKeyResponse {
    /// Always true.
    pub success: bool,
    /// The build the key is scoped to.
    pub build_id: BuildId,
    /// The key id (HTTP Basic user name).
    pub api_key: String,
    /// The secret (HTTP Basic password).
    pub api_secret: String,
}

/// *New.* `POST /api/revoke_api_key`: revokes one API key of a build. Allowed
/// to a superuser key or to any key of that same build (a key may revoke
/// itself or a sibling, e.g. one that leaked); superuser keys are not
/// revoked here. A revoked key is refused (401) on every endpoint at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeApiKeyRequest {
    /// The build the key belongs to.
    pub build_id: BuildId,
    /// The id of the key to revoke (its HTTP Basic user name).
    pub api_key: String,
}

/// Reply to `revoke_api_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeApiKeyResponse {
    /// Always true.
    pub success: bool,
    /// The build the key belonged to.
    pub build_id: BuildId,
    /// The id of the key now revoked.
    pub api_key: String,
}

/// `POST /api/work_queue/<queue>/cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancelTaskRequest {
    /// The task.
    pub task_id: TaskId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_becomes_the_reference_and_none_leaves_the_run_alone() {
        let id = |b: u8| ArtifactId::of_bytes(&[b]);
        let run = ReportRunRequest {
            run_name: "/home".into(),
            image: Some(id(1)),
            ..Default::default()
        };
        assert_eq!(run.clone().with_baseline(None), run);
        let found = FindRunResponse {
            success: true,
            build_id: BuildId(1),
            release_name: "r".into(),
            release_number: 3,
            run_name: Some("/home".into()),
            url: Some("http://site/home".into()),
            image: Some(id(2)),
            log: Some(id(3)),
            config: Some(id(4)),
            branch: None,
            baseline: Some(BaselineReason::SameBranch),
        };
        let compared = run.with_baseline(Some(found));
        assert_eq!(compared.image, Some(id(1)));
        assert_eq!(compared.ref_image, Some(id(2)));
        assert_eq!(compared.ref_log, Some(id(3)));
        assert_eq!(compared.ref_config, Some(id(4)));
        assert_eq!(compared.ref_url.as_deref(), Some("http://site/home"));
    }

    #[test]
    fn report_run_leaves_out_unset_fields() {
        let r = ReportRunRequest {
            build_id: BuildId(1),
            release_name: "r".into(),
            release_number: 1,
            run_name: "/".into(),
            distortion: Some(0.5),
            ..Default::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "build_id",
                "distortion",
                "release_name",
                "release_number",
                "run_name"
            ]
        );
    }

    #[test]
    fn error_body_shape() {
        let e: ErrorBody = serde_json::from_str(r#"{"success": false, "error": "no"}"#).unwrap();
        assert_eq!(e.error, "no");
    }
}
