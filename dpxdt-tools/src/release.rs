//! The release workflow the four API tools share: create a release, say
//! runs are done, print the release page, and for `--wait` poll the release
//! until every run is finished and turn its run counts into an exit code.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use dpxdt_client::Client;
use dpxdt_core::api::ReleaseStatusResponse;
use dpxdt_core::{ReleaseKey, ReleaseStatus, RunStatus};

use crate::tool_args::{ServerArgs, TestsJsonArgs, WaitArgs};
use crate::{EXIT_DIFFERENT, EXIT_ERROR, EXIT_OK};

/// Creates the release named by the flags; `default_url` is its link when
/// `--release_cut_url` is not given.
pub async fn create_release(
    client: &Client,
    args: &ServerArgs,
    tool: &str,
    default_url: &str,
) -> anyhow::Result<ReleaseKey> {
    let build_id = args.build_id()?;
    let name = args.release_name(tool);
    let url = args.release_cut_url.as_deref().unwrap_or(default_url);
    let request = dpxdt_core::api::CreateReleaseRequest {
        build_id,
        release_name: name.clone(),
        url: url.to_string(),
        branch: args.branch(),
        commit_sha: args.commit_sha(),
    };
    let created = client
        .create_release_with(&request)
        .await
        .with_context(|| format!("cannot create release {name:?} in build {build_id}"))?;
    Ok(ReleaseKey {
        build_id: created.build_id,
        release_name: created.release_name,
        release_number: created.release_number,
    })
}

/// Calls `runs_done`, prints the release page, and with `--wait` waits for
/// the verdict. Returns the exit code.
pub async fn finish(
    client: &Client,
    key: &ReleaseKey,
    wait: &WaitArgs,
) -> anyhow::Result<ExitCode> {
    let done = client
        .runs_done(key)
        .await
        .with_context(|| format!("cannot finish release {}", describe(key)))?;
    println!("{}", done.results_url);
    if !wait.wait {
        return Ok(ExitCode::from(EXIT_OK));
    }
    let status = wait_for_release(client, key, wait).await?;
    println!("{}", summary(&status));
    Ok(ExitCode::from(verdict(&status)))
}

/// Polls the release until it is reviewing (or decided) or the wait times out.
pub async fn wait_for_release(
    client: &Client,
    key: &ReleaseKey,
    wait: &WaitArgs,
) -> anyhow::Result<ReleaseStatusResponse> {
    let deadline = Instant::now() + Duration::from_secs(wait.wait_timeout);
    let interval = Duration::from_millis(wait.poll_interval_ms.max(10));
    let mut last_progress = String::new();
    loop {
        let status = client
            .release_status(key)
            .await
            .with_context(|| format!("cannot read the status of release {}", describe(key)))?;
        if is_settled(status.status) {
            return Ok(status);
        }
        // Progress for people watching a CI log: one line whenever it changes.
        let progress = format!("{}; {}", status.status, counts(&status));
        if progress != last_progress {
            eprintln!("waiting: release {} is {progress}", describe(key));
            last_progress = progress;
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "release {} is still {} after {} s of waiting ({})",
                describe(key),
                status.status,
                wait.wait_timeout,
                counts(&status)
            );
        }
        tokio::time::sleep(interval).await;
    }
}

fn is_settled(status: ReleaseStatus) -> bool {
    matches!(
        status,
        ReleaseStatus::Reviewing | ReleaseStatus::Good | ReleaseStatus::Bad
    )
}

/// The exit code for a settled release: 2 when it is bad or a run failed,
/// 1 when differences wait for review, 0 otherwise.
pub fn verdict(status: &ReleaseStatusResponse) -> u8 {
    let count = |wanted: RunStatus| {
        status
            .runs
            .iter()
            .filter(|c| c.status == wanted)
            .map(|c| c.count)
            .sum::<u64>()
    };
    if status.status == ReleaseStatus::Bad || count(RunStatus::Failed) > 0 {
        EXIT_ERROR
    } else if count(RunStatus::DiffFound) > 0 {
        EXIT_DIFFERENT
    } else {
        EXIT_OK
    }
}

/// One line for people: the release, its state, and its runs per state.
pub fn summary(status: &ReleaseStatusResponse) -> String {
    let what = match verdict(status) {
        EXIT_OK => "no differences",
        EXIT_DIFFERENT => "differences to review",
        _ => "failed",
    };
    format!(
        "release {:?} #{}: {} ({what}); {}",
        status.release_name,
        status.release_number,
        status.status,
        counts(status)
    )
}

fn counts(status: &ReleaseStatusResponse) -> String {
    let total: u64 = status.runs.iter().map(|c| c.count).sum();
    let parts: Vec<String> = status
        .runs
        .iter()
        .filter(|c| c.count > 0)
        .map(|c| format!("{} {}", c.count, c.status))
        .collect();
    if parts.is_empty() {
        format!("{total} runs")
    } else {
        format!("{total} runs: {}", parts.join(", "))
    }
}

/// `"name" #number in build id`.
pub fn describe(key: &ReleaseKey) -> String {
    format!(
        "{:?} #{} in build {}",
        key.release_name, key.release_number, key.build_id
    )
}

impl TestsJsonArgs {
    /// Connects to the server and creates the release `tool` reports into
    /// (its URL, unless given, is the JSON file's).
    pub async fn start_release(&self, tool: &str) -> anyhow::Result<(Client, ReleaseKey)> {
        let client = self.server.client()?;
        let default_url = format!("file:{}", self.tests_json_path.display());
        let key = create_release(&client, &self.server, tool, &default_url).await?;
        Ok((client, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpxdt_core::BuildId;
    use dpxdt_core::api::RunCount;

    fn status(release: ReleaseStatus, runs: &[(RunStatus, u64)]) -> ReleaseStatusResponse {
        ReleaseStatusResponse {
            success: true,
            build_id: BuildId(1),
            release_name: "r".into(),
            release_number: 2,
            status: release,
            results_url: "http://x".into(),
            runs: runs
                .iter()
                .map(|&(status, count)| RunCount { status, count })
                .collect(),
            branch: None,
            commit_sha: None,
            baselines: Vec::new(),
        }
    }

    #[test]
    fn verdicts_follow_the_run_counts() {
        use ReleaseStatus::*;
        use RunStatus::*;
        assert_eq!(verdict(&status(Reviewing, &[(DiffNotFound, 3)])), 0);
        assert_eq!(verdict(&status(Reviewing, &[(NoDiffNeeded, 1)])), 0);
        assert_eq!(verdict(&status(Reviewing, &[(DiffApproved, 1)])), 0);
        assert_eq!(
            verdict(&status(Reviewing, &[(DiffNotFound, 3), (DiffFound, 1)])),
            1
        );
        assert_eq!(
            verdict(&status(Reviewing, &[(DiffFound, 1), (Failed, 1)])),
            2
        );
        assert_eq!(verdict(&status(Bad, &[(DiffNotFound, 1)])), 2);
        assert_eq!(verdict(&status(Good, &[(DiffFound, 1)])), 1);
    }

    #[test]
    fn summaries_list_the_non_empty_states() {
        let s = status(
            ReleaseStatus::Reviewing,
            &[
                (RunStatus::DiffFound, 1),
                (RunStatus::DiffNotFound, 2),
                (RunStatus::Failed, 0),
            ],
        );
        assert_eq!(
            summary(&s),
            "release \"r\" #2: reviewing (differences to review); 3 runs: 1 diff_found, 2 diff_not_found"
        );
    }
}
