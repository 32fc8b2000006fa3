//! The `setup` script (in its own process group, killed at the end
//! whatever happens) and the `waitFor` check.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use super::LocalError;
use super::yaml::WaitFor;
use dpxdt_core::capture::GroupKiller;

/// A running `setup` script. Dropping it sends SIGTERM to its whole process
/// group (then SIGKILL after two seconds); a watchdog does the same if this
/// process dies first.
pub struct Setup {
    child: Child,
    killer: GroupKiller,
    /// Where its output goes.
    pub log: PathBuf,
}

impl Setup {
    /// Starts `bash -c script` with output to `log`.
    pub fn start(script: &str, log: &Path) -> Result<Setup, LocalError> {
        let io = |e: std::io::Error| LocalError::Setup(format!("cannot start setup: {e}"));
        let out = std::fs::File::create(log).map_err(io)?;
        let err = out.try_clone().map_err(io)?;
        let child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(io)?;
        let killer = GroupKiller::new(child.id(), true, None).map_err(io)?;
        Ok(Setup {
            child,
            killer,
            log: log.to_path_buf(),
        })
    }

    /// Whether the script has already exited (a setup that exits before
    /// the tests start is allowed, e.g. one that only builds files).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // SIGTERM to the group, up to two seconds for the script to exit
        // (reaping it here, so it is not a lingering zombie), then SIGKILL
        // for whatever is left of the group.
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            let _ = Command::new("env")
                .args(["kill", sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        if self.exited().is_none() {
            signal("-TERM");
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.killer.fire();
    }
}

/// Waits as `wait_for` says. `Ok(Some(url))` when a URL answered 200.
pub async fn wait_for(wait_for: &WaitFor, log_dir: &Path) -> Result<Option<String>, LocalError> {
    match wait_for {
        WaitFor::Url { url, timeout_secs } => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| LocalError::WaitFor(e.to_string()))?;
            let deadline = Instant::now() + Duration::from_secs_f64(*timeout_secs);
            loop {
                let last = match client.get(url).send().await {
                    Ok(resp) if resp.status() == reqwest::StatusCode::OK => {
                        return Ok(Some(url.clone()));
                    }
                    Ok(resp) => format!("HTTP {}", resp.status().as_u16()),
                    Err(e) => e.to_string(),
                };
                if Instant::now() >= deadline {
                    return Err(LocalError::WaitFor(format!(
                        "{url} did not answer HTTP 200 within {timeout_secs} s (last: {last})"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        WaitFor::Script(script) => {
            let log = log_dir.join("waitfor.log");
            let io = |e: std::io::Error| LocalError::WaitFor(format!("cannot run waitFor: {e}"));
            let out = std::fs::File::create(&log).map_err(io)?;
            let err = out.try_clone().map_err(io)?;
            let status = tokio::process::Command::new("bash")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .kill_on_drop(true)
                .status()
                .await
                .map_err(io)?;
            if status.success() {
                Ok(None)
            } else {
                Err(LocalError::WaitFor(format!(
                    "waitFor returned error code ({status}); see {}",
                    log.display()
                )))
            }
        }
    }
}
