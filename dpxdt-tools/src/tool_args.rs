//! Flag groups shared by `site_diff`, `url_pair_diff`, `diff_my_images` and
//! `diff_my_urls`: the server and release (the original's underscore names,
//! with dashed names as the primary spelling), `--wait`, and the capture
//! options that become a capture config.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use dpxdt_client::Client;
use dpxdt_core::{BuildId, CaptureConfig};

/// Where the server is, who we are, and which release to create.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// API root of the Depicted server.
    #[arg(
        long = "release-server-prefix",
        visible_alias = "release_server_prefix",
        env = "DPXDT_SERVER_PREFIX",
        default_value = "http://localhost:5000/api",
        value_name = "URL"
    )]
    pub release_server_prefix: String,

    /// API key id.
    #[arg(
        long = "release-client-id",
        visible_alias = "release_client_id",
        env = "DPXDT_CLIENT_ID",
        hide_env_values = true,
        value_name = "ID"
    )]
    pub release_client_id: Option<String>,

    /// API key secret (prefer the environment variable to the flag).
    #[arg(
        long = "release-client-secret",
        visible_alias = "release_client_secret",
        env = "DPXDT_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub release_client_secret: Option<String>,

    /// Build to create the release in.
    #[arg(
        long = "upload-build-id",
        visible_alias = "upload_build_id",
        env = "DPXDT_BUILD_ID",
        value_name = "ID"
    )]
    pub upload_build_id: Option<BuildId>,

    /// Release name (default: the tool's name and the current UTC time).
    #[arg(
        long = "upload-release-name",
        visible_alias = "upload_release_name",
        value_name = "NAME"
    )]
    pub upload_release_name: Option<String>,

    /// Link for people to what this release is (a branch, a CI job).
    #[arg(
        long = "release-cut-url",
        visible_alias = "release_cut_url",
        value_name = "URL"
    )]
    pub release_cut_url: Option<String>,

    /// Branch the release was built from: its runs are compared with this
    /// branch's newest good release, else the default branch's (default:
    /// the CI's branch variable when set: GITHUB_HEAD_REF, GITHUB_REF_NAME,
    /// CI_COMMIT_REF_NAME).
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,

    /// Commit the release was built from, 7 to 64 hex digits (default:
    /// GITHUB_SHA or CI_COMMIT_SHA when set).
    #[arg(long = "commit-sha", value_name = "SHA")]
    pub commit_sha: Option<String>,

    /// Seconds before one API request is given up (it is retried a few times).
    #[arg(
        long = "request-timeout",
        visible_alias = "request_timeout",
        default_value_t = 60,
        value_name = "SECS"
    )]
    pub request_timeout: u64,

    /// PEM file of CA certificates to trust for an https:// server, besides
    /// the system's (SSL_CERT_FILE replaces the system's).
    #[arg(
        long = "ca-cert",
        visible_alias = "ca_cert",
        env = "DPXDT_CA_CERT",
        value_name = "FILE"
    )]
    pub ca_cert: Option<std::path::PathBuf>,
}

impl ServerArgs {
    /// A client for the server with the API key, if one was given.
    pub fn client(&self) -> anyhow::Result<Client> {
        let mut builder = Client::builder(&self.release_server_prefix);
        builder.timeout(Duration::from_secs(self.request_timeout.max(1)));
        match (&self.release_client_id, &self.release_client_secret) {
            (Some(id), Some(secret)) => {
                builder.api_key(id, secret);
            }
            (None, None) => {}
            (Some(_), None) => anyhow::bail!(
                "--release_client_id is set but --release_client_secret (or DPXDT_CLIENT_SECRET) is not"
            ),
            (None, Some(_)) => anyhow::bail!(
                "--release_client_secret is set but --release_client_id (or DPXDT_CLIENT_ID) is not"
            ),
        }
        if let Some(path) = &self.ca_cert {
            let pem =
                std::fs::read(path).with_context(|| format!("--ca-cert {}", path.display()))?;
            builder.ca_certificates_pem(&pem);
        }
        builder.build().context("--release_server_prefix")
    }

    /// The build id, which every API call needs.
    pub fn build_id(&self) -> anyhow::Result<BuildId> {
        self.upload_build_id
            .ok_or_else(|| anyhow::anyhow!("--upload_build_id (or DPXDT_BUILD_ID) is required"))
    }

    /// The branch: `--branch`, else the CI's (see [`ci_value`]).
    pub fn branch(&self) -> Option<String> {
        self.branch.clone().or_else(|| {
            ci_value(
                &["GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"],
                |k| std::env::var(k).ok(),
            )
        })
    }

    /// The commit: `--commit-sha`, else the CI's.
    pub fn commit_sha(&self) -> Option<String> {
        self.commit_sha
            .clone()
            .or_else(|| ci_value(&["GITHUB_SHA", "CI_COMMIT_SHA"], |k| std::env::var(k).ok()))
    }

    /// The release name: the one given, or `<tool> <UTC time>`.
    pub fn release_name(&self, tool: &str) -> String {
        match &self.upload_release_name {
            Some(name) => name.clone(),
            None => format!("{tool} {}", utc_now_string()),
        }
    }
}

/// The first of `names` that `var` finds set and not empty (GitHub sets
/// GITHUB_HEAD_REF, the pull request's branch, to "" outside pull requests).
pub fn ci_value(names: &[&str], var: impl Fn(&str) -> Option<String>) -> Option<String> {
    names
        .iter()
        .filter_map(|k| var(k))
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

/// `--wait` and how to wait.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Wait until the server has captured and diffed every run, print a
    /// summary, and exit 0 (no differences), 1 (differences to review) or 2
    /// (failed runs, or the release was marked bad).
    #[arg(long)]
    pub wait: bool,

    /// Give up waiting after this many seconds (exit 2).
    #[arg(
        long = "wait-timeout",
        visible_alias = "wait_timeout",
        default_value_t = 3600,
        value_name = "SECS"
    )]
    pub wait_timeout: u64,

    /// How often to ask the server, in milliseconds.
    #[arg(
        long = "poll-interval-ms",
        visible_alias = "poll_interval_ms",
        default_value_t = 1000,
        value_name = "MS"
    )]
    pub poll_interval_ms: u64,
}

/// Options that become the capture config of every requested run.
#[derive(Debug, Clone, clap::Args)]
pub struct CaptureArgs {
    /// User name for HTTP basic auth on the captured site.
    #[arg(
        long = "http-username",
        visible_alias = "http_username",
        value_name = "USER"
    )]
    pub http_username: Option<String>,

    /// Password for HTTP basic auth on the captured site.
    #[arg(
        long = "http-password",
        visible_alias = "http_password",
        env = "DPXDT_HTTP_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub http_password: Option<String>,

    /// CSS added to every page before the screenshot.
    #[arg(long = "inject-css", visible_alias = "inject_css", value_name = "CSS")]
    pub inject_css: Option<String>,

    /// JavaScript run in every page before the screenshot.
    #[arg(long = "inject-js", visible_alias = "inject_js", value_name = "JS")]
    pub inject_js: Option<String>,
}

impl CaptureArgs {
    /// The basic-auth credentials, when both halves were given.
    pub fn basic_auth(&self) -> anyhow::Result<Option<(String, String)>> {
        match (&self.http_username, &self.http_password) {
            (Some(user), Some(password)) => Ok(Some((user.clone(), password.clone()))),
            (Some(user), None) => Ok(Some((user.clone(), String::new()))),
            (None, None) => Ok(None),
            (None, Some(_)) => anyhow::bail!("--http_password is set but --http_username is not"),
        }
    }

    /// The capture config these flags describe, as canonical JSON.
    pub fn config_json(&self) -> anyhow::Result<String> {
        let config = CaptureConfig {
            http_user_name: self.http_username.clone(),
            http_password: self.http_password.clone(),
            inject_css: self.inject_css.clone(),
            inject_js: self.inject_js.clone(),
            ..CaptureConfig::default()
        };
        config.validate().context("capture flags")?;
        Ok(config.to_json())
    }
}

/// The arguments of the tools driven by a JSON list of tests
/// (`diff_my_images`, `diff_my_urls`): the list, the server, the wait.
#[derive(Debug, clap::Args)]
pub struct TestsJsonArgs {
    /// The JSON list of tests (its fields are in the tool's description).
    #[arg(
        long = "tests-json-path",
        visible_alias = "tests_json_path",
        value_name = "FILE"
    )]
    pub tests_json_path: std::path::PathBuf,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub server: ServerArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub wait: WaitArgs,
}

/// Runs a tool's async body on a single-threaded runtime, prints its error
/// (if any) as one line, and returns the exit code.
pub fn run_tool<F>(body: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    crate::init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return crate::report_error(&anyhow::Error::new(e)),
    };
    match runtime.block_on(body) {
        Ok(code) => code,
        Err(err) => crate::report_error(&err),
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS`.
pub fn utc_now_string() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    utc_string(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
fn utc_string(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        capture: CaptureArgs,
        #[command(flatten)]
        wait: WaitArgs,
    }

    #[test]
    fn the_branch_comes_from_the_first_ci_variable_that_is_set() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let names = ["GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"];
        // A pull request: its head branch, not the merge ref.
        let pr = env(&[
            ("GITHUB_HEAD_REF", "feature/x"),
            ("GITHUB_REF_NAME", "12/merge"),
        ]);
        assert_eq!(ci_value(&names, pr).as_deref(), Some("feature/x"));
        // A push: GITHUB_HEAD_REF is set but empty.
        let push = env(&[("GITHUB_HEAD_REF", ""), ("GITHUB_REF_NAME", "main")]);
        assert_eq!(ci_value(&names, push).as_deref(), Some("main"));
        let gitlab = env(&[("CI_COMMIT_REF_NAME", "fix-1")]);
        assert_eq!(ci_value(&names, gitlab).as_deref(), Some("fix-1"));
        assert_eq!(ci_value(&names, env(&[])), None);
    }

    #[test]
    fn original_underscore_flags_and_dashed_flags_both_parse() {
        let underscore = Flags::try_parse_from([
            "tool",
            "--release_server_prefix=http://h/api",
            "--release_client_id=id",
            "--release_client_secret=secret",
            "--upload_build_id=7",
            "--upload_release_name=nightly",
            "--release_cut_url=http://ci/1",
            "--http_username=u",
            "--http_password=p",
            "--inject_css=a{}",
            "--inject_js=1",
            "--wait_timeout=5",
        ])
        .unwrap();
        let dashed = Flags::try_parse_from([
            "tool",
            "--release-server-prefix",
            "http://h/api",
            "--release-client-id",
            "id",
            "--release-client-secret",
            "secret",
            "--upload-build-id",
            "7",
            "--upload-release-name",
            "nightly",
            "--release-cut-url",
            "http://ci/1",
            "--http-username",
            "u",
            "--http-password",
            "p",
            "--inject-css",
            "a{}",
            "--inject-js",
            "1",
            "--wait-timeout",
            "5",
        ])
        .unwrap();
        assert_eq!(format!("{underscore:?}"), format!("{dashed:?}"));
        assert_eq!(underscore.server.build_id().unwrap(), BuildId(7));
        assert_eq!(underscore.server.release_name("x"), "nightly");
        assert_eq!(
            underscore.capture.config_json().unwrap(),
            r#"{"httpUserName":"u","httpPassword":"p","injectCss":"a{}","injectJs":"1"}"#
        );
        assert_eq!(
            underscore.capture.basic_auth().unwrap(),
            Some(("u".to_string(), "p".to_string()))
        );
        assert!(underscore.server.client().is_ok());
    }

    #[test]
    fn half_a_key_or_half_a_login_is_refused() {
        let flags =
            Flags::try_parse_from(["tool", "--release_client_id=id", "--http_password=p"]).unwrap();
        let err = flags.server.client().unwrap_err().to_string();
        assert!(err.contains("--release_client_secret"), "{err}");
        let err = flags.capture.basic_auth().unwrap_err().to_string();
        assert!(err.contains("--http_username"), "{err}");
        let err = flags.server.build_id().unwrap_err().to_string();
        assert!(err.contains("--upload_build_id"), "{err}");
    }

    #[test]
    fn utc_strings_match_known_dates() {
        assert_eq!(utc_string(0), "1970-01-01 00:00:00");
        assert_eq!(utc_string(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc_string(1_795_617_022), "2026-11-25 14:30:22");
    }
}
