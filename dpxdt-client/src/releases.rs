//! Release and run endpoints: `create_release`, `find_run`, `request_run`,
//! `report_run`, `runs_done`, `release_status`, and a run's verdict and
//! comments (`review_run`, `comment`).

use dpxdt_core::api::{
    CommentRequest, CommentResponse, CreateReleaseRequest, CreateReleaseResponse, FindRunRequest,
    FindRunResponse, ReleaseStatusResponse, ReportRunRequest, RequestRunRequest,
    RequestRunResponse, ReviewRunRequest, ReviewRunResponse, RunVerdict, RunsDoneRequest,
    RunsDoneResponse, SuccessResponse, UpdateReleaseRequest, UpdateReleaseResponse,
};
use dpxdt_core::diff::Region;
use dpxdt_core::{BuildId, ReleaseKey, ReleaseStatus};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// Creates a release attempt (`POST create_release`). A name used before
    /// in the build gets the next number.
    ///
    /// ```no_run
    /// # async fn demo(client: dpxdt_client::Client) -> Result<(), dpxdt_client::ClientError> {
    /// use dpxdt_core::BuildId;
    /// let release = client
    ///     .create_release(BuildId(1), "2026-11-25-r01", "https://ci.example.com/job/7")
    ///     .await?;
    /// println!("release number {}", release.release_number);
    /// # Ok(()) }
    /// ```
    pub async fn create_release(
        &self,
        build_id: BuildId,
        release_name: &str,
        url: &str,
    ) -> Result<CreateReleaseResponse, ClientError> {
        let request = CreateReleaseRequest {
            build_id,
            release_name: release_name.to_string(),
            url: url.to_string(),
            branch: None,
            commit_sha: None,
        };
        self.create_release_with(&request).await
    }

    /// Creates a release attempt with every field of the request, e.g. the
    /// `branch` and `commit_sha` it was built from.
    pub async fn create_release_with(
        &self,
        request: &CreateReleaseRequest,
    ) -> Result<CreateReleaseResponse, ClientError> {
        self.post_form("create_release", request).await
    }

    /// Finds the run of this name in the build's newest good release
    /// (`POST find_run`): the baseline a new run is compared with.
    ///
    /// Returns `Ok(None)` when there is no such run (no good release yet, or
    /// no run of that name in it).
    pub async fn find_run(
        &self,
        build_id: BuildId,
        run_name: &str,
    ) -> Result<Option<FindRunResponse>, ClientError> {
        self.find_run_on(build_id, run_name, None).await
    }

    /// Finds the baseline of a run on `branch` (`POST find_run` with
    /// `branch`): the run of this name in the newest good release of that
    /// branch, else of the build's default branch. `None` as the branch is
    /// the default branch, as [`Client::find_run`].
    pub async fn find_run_on(
        &self,
        build_id: BuildId,
        run_name: &str,
        branch: Option<&str>,
    ) -> Result<Option<FindRunResponse>, ClientError> {
        let request = FindRunRequest {
            build_id,
            run_name: run_name.to_string(),
            branch: branch.map(str::to_string),
        };
        match self
            .post_form::<_, FindRunResponse>("find_run", &request)
            .await
        {
            Ok(found) if found.image.is_some() || found.run_name.is_some() => Ok(Some(found)),
            Ok(_) => Ok(None),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Asks the server to capture a page (and its reference, when
    /// `ref_url`/`ref_config` are set) for a run (`POST request_run`).
    pub async fn request_run(
        &self,
        request: &RequestRunRequest,
    ) -> Result<RequestRunResponse, ClientError> {
        self.post_form("request_run", request).await
    }

    /// Reports data for a run (`POST report_run`); may be called several
    /// times as data arrives.
    pub async fn report_run(&self, request: &ReportRunRequest) -> Result<(), ClientError> {
        self.post_form::<_, SuccessResponse>("report_run", request)
            .await
            .map(|_| ())
    }

    /// Says every run of a release has been requested or reported
    /// (`POST runs_done`); returns the release page's URL.
    pub async fn runs_done(&self, release: &ReleaseKey) -> Result<RunsDoneResponse, ClientError> {
        let request = RunsDoneRequest {
            build_id: release.build_id,
            release_name: release.release_name.clone(),
            release_number: release.release_number,
        };
        self.post_form("runs_done", &request).await
    }

    /// *New.* A verdict on one run (`POST review_run`): approve its
    /// difference, reject it as a regression (with a reason), or clear the
    /// verdict. The build must take verdicts from its keys.
    pub async fn review_run(
        &self,
        release: &ReleaseKey,
        run_name: &str,
        verdict: RunVerdict,
        reason: Option<&str>,
    ) -> Result<ReviewRunResponse, ClientError> {
        let request = ReviewRunRequest {
            build_id: release.build_id,
            release_name: release.release_name.clone(),
            release_number: release.release_number,
            run_name: run_name.to_string(),
            verdict,
            reason: reason.map(str::to_string),
        };
        self.post_form("review_run", &request).await
    }

    /// *New.* Adds a comment to a run's thread (`POST comment`), about a
    /// rectangle of its new image when `region` is given.
    pub async fn comment(
        &self,
        release: &ReleaseKey,
        run_name: &str,
        text: &str,
        region: Option<Region>,
    ) -> Result<CommentResponse, ClientError> {
        let request = CommentRequest {
            build_id: release.build_id,
            release_name: release.release_name.clone(),
            release_number: release.release_number,
            run_name: run_name.to_string(),
            text: text.to_string(),
            region: region.map(|g| g.to_string()),
        };
        self.post_form("comment", &request).await
    }

    /// The state of a release and how many runs are in each state
    /// (`GET release_status`): what `--wait` polls.
    pub async fn release_status(
        &self,
        release: &ReleaseKey,
    ) -> Result<ReleaseStatusResponse, ClientError> {
        let url = self.endpoint_url(&["release_status"]);
        self.call_json("release_status", &url, || {
            let builder = self.request(Method::GET, url.clone()).query(release);
            async move { Ok(builder) }
        })
        .await
    }

    /// *New.* Records a person's verdict on a release (`POST update_release`):
    /// `Good`, `Bad`, or back to `Reviewing`. Returns the release's new state.
    /// A good release becomes the baseline of the next one.
    pub async fn update_release(
        &self,
        release: &ReleaseKey,
        status: ReleaseStatus,
    ) -> Result<ReleaseStatus, ClientError> {
        let answer: UpdateReleaseResponse = self
            .post_form(
                "update_release",
                &UpdateReleaseRequest {
                    build_id: release.build_id,
                    release_name: release.release_name.clone(),
                    release_number: release.release_number,
                    status: status.as_str().to_owned(),
                },
            )
            .await?;
        Ok(answer.status)
    }

    /// POSTs `form` url-encoded to `endpoint` and decodes the JSON answer.
    pub(crate) async fn post_form<Q, T>(&self, endpoint: &str, form: &Q) -> Result<T, ClientError>
    where
        Q: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let url = self.endpoint_url(&endpoint.split('/').collect::<Vec<_>>());
        self.call_json(endpoint, &url, || {
            let builder = self.request(Method::POST, url.clone()).form(form);
            async move { Ok(builder) }
        })
        .await
    }
}
