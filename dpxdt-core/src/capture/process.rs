//! A WebDriver process (chromedriver, geckodriver): started on a free
//! loopback port in its own process group, and killed with everything it
//! started (the browser included) when dropped — or when this process
//! dies, through a watchdog.
//!
//! The watchdog is a tiny `sh` in its own process group that blocks reading
//! a pipe from us. When the pipe closes — because we dropped it, or because
//! this process exited or was killed, even with SIGKILL — it kills
//! chromedriver's whole process group and removes the browser profiles.
//! That keeps every exit path (error, panic, Ctrl-C, a test binary whose
//! browser lives in a `static`) free of leftover browsers without any
//! `unsafe` signal code.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::CaptureError;

/// How long chromedriver may take to answer its status endpoint.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Which WebDriver server to run, and how it is told its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    /// chromedriver: any number of Chromium sessions.
    Chromedriver,
    /// geckodriver: one Firefox session; its WebDriver BiDi socket on a
    /// port Firefox picks, and system access for the preferences that
    /// set media features.
    Geckodriver,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::Chromedriver => "chromedriver",
            Driver::Geckodriver => "geckodriver",
        }
    }

    fn args(self, port: u16, websocket_port: u16) -> Vec<String> {
        match self {
            Driver::Chromedriver => vec![format!("--port={port}"), "--log-level=OFF".into()],
            Driver::Geckodriver => [
                "--port",
                &port.to_string(),
                "--websocket-port",
                &websocket_port.to_string(),
                "--allow-system-access",
                "--log",
                "fatal",
            ]
            .map(str::to_string)
            .to_vec(),
        }
    }
}

/// A running WebDriver server and its watchdog.
pub(crate) struct DriverProcess {
    kind: Driver,
    child: Child,
    killer: GroupKiller,
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    /// The browser's WebDriver BiDi port (geckodriver's Firefox), else 0.
    pub(crate) websocket_port: u16,
}

impl DriverProcess {
    /// Starts the driver at `binary` and waits until it answers, retrying
    /// on another port if the one picked was taken in the meantime.
    /// With `user`, the driver (and so the browser) runs as that user.
    pub(crate) async fn start(
        kind: Driver,
        binary: &Path,
        user: Option<&User>,
    ) -> Result<Self, CaptureError> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(kind, binary, user).await {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("three tries were made"))
    }

    async fn start_once(
        kind: Driver,
        binary: &Path,
        user: Option<&User>,
    ) -> Result<Self, CaptureError> {
        let port =
            free_port().map_err(|e| CaptureError::launch_from("no free loopback port", e))?;
        let websocket_port = match kind {
            Driver::Chromedriver => 0,
            Driver::Geckodriver => {
                free_port().map_err(|e| CaptureError::launch_from("no free loopback port", e))?
            }
        };
        let profiles =
            std::env::temp_dir().join(format!("dpxdt-browser-{}-{}", std::process::id(), port));
        std::fs::create_dir_all(&profiles).map_err(|e| {
            CaptureError::launch_from(format!("cannot create {}", profiles.display()), e)
        })?;
        let mut command = Command::new(binary);
        command
            .args(kind.args(port, websocket_port))
            // Both drivers make each session's profile under $TMPDIR
            // (chromedriver passes the browser a start page only when it
            // picks the profile itself, which the headless shell needs).
            .env("TMPDIR", &profiles)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if kind == Driver::Geckodriver {
            // Firefox honours its Remote Settings server preference (set to
            // nothing, so it never syncs) only with this variable.
            command.env("MOZ_REMOTE_SETTINGS_DEVTOOLS", "1");
        }
        if let Some(user) = user {
            check_traversable(&profiles, user).map_err(CaptureError::launch)?;
            // The profiles directory is the only place the browser writes
            // (its caches included); it is removed as root afterwards.
            std::os::unix::fs::chown(&profiles, Some(user.uid), Some(user.gid)).map_err(|e| {
                CaptureError::launch_from(
                    format!("cannot give {} to {}", profiles.display(), user.name),
                    e,
                )
            })?;
            command
                .uid(user.uid)
                .gid(user.gid)
                .env("HOME", &profiles)
                .env("XDG_CACHE_HOME", profiles.join(".cache"))
                .env("XDG_CONFIG_HOME", profiles.join(".config"));
        }
        let child = command.spawn().map_err(|e| match user {
            Some(user) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                CaptureError::launch(format!(
                    "{} cannot run {}: install it where every user may run it \
                     (scripts/deps.sh run as root puts geckodriver in /usr/local/bin)",
                    user.name,
                    binary.display()
                ))
            }
            _ => CaptureError::launch_from(format!("cannot start {}", binary.display()), e),
        })?;
        let killer = match GroupKiller::new(child.id(), false, Some(&profiles)) {
            Ok(k) => k,
            Err(e) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(CaptureError::launch_from(
                    "cannot start the watchdog shell",
                    e,
                ));
            }
        };
        let mut process = DriverProcess {
            kind,
            child,
            killer,
            url: format!("http://127.0.0.1:{port}"),
            websocket_port,
        };
        process.wait_ready().await?;
        Ok(process)
    }

    async fn wait_ready(&mut self) -> Result<(), CaptureError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| CaptureError::launch_from("cannot make an HTTP client", e))?;
        let status = format!("{}/status", self.url);
        let start = Instant::now();
        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                return Err(CaptureError::launch(format!(
                    "{} exited at startup ({exit})",
                    self.kind.name()
                )));
            }
            if let Ok(resp) = client.get(&status).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if start.elapsed() > STARTUP_TIMEOUT {
                return Err(CaptureError::launch(format!(
                    "{} did not answer on {} within {}s",
                    self.kind.name(),
                    self.url,
                    STARTUP_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the driver and the browsers it started, and waits for it.
    pub(crate) fn kill(&mut self) {
        self.killer.fire();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills a process group when fired, when dropped, or when this process
/// dies: a watchdog shell blocks reading a pipe that only we hold.
pub struct GroupKiller {
    watchdog: Child,
    /// Held open: closing it tells the watchdog to act.
    pipe: Option<ChildStdin>,
}

impl GroupKiller {
    /// Watches process group `pgid`. With `term_first` the group gets
    /// SIGTERM and up to two seconds to exit before SIGKILL; `cleanup` is a
    /// directory removed afterwards.
    pub fn new(pgid: u32, term_first: bool, cleanup: Option<&Path>) -> std::io::Result<Self> {
        // `env kill`: dash's builtin kill cannot signal a process group.
        let script = if term_first {
            r#"read _ignored; env kill -TERM -- "-$1" 2>/dev/null
i=0; while [ $i -lt 20 ] && env kill -0 -- "-$1" 2>/dev/null; do sleep 0.1; i=$((i+1)); done
env kill -KILL -- "-$1" 2>/dev/null; [ -n "$2" ] && rm -rf -- "$2"; exit 0"#
        } else {
            r#"read _ignored; env kill -KILL -- "-$1" 2>/dev/null; [ -n "$2" ] && rm -rf -- "$2"; exit 0"#
        };
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("dpxdt-watchdog")
            .arg(pgid.to_string())
            .arg(cleanup.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = watchdog.stdin.take();
        Ok(GroupKiller { watchdog, pipe })
    }

    /// Kills the group now and waits until it is done.
    pub fn fire(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(b"\n");
            drop(pipe);
            let _ = self.watchdog.wait();
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.fire();
    }
}

/// An unprivileged account the browser runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl User {
    /// `nobody` from `/etc/passwd`, else the usual 65534:65534.
    pub(crate) fn nobody() -> User {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        passwd
            .lines()
            .find_map(|line| parse_passwd_line(line).filter(|u| u.name == "nobody"))
            .unwrap_or(User {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534,
            })
    }
}

/// `name:x:uid:gid:...` from one `/etc/passwd` line.
fn parse_passwd_line(line: &str) -> Option<User> {
    let mut fields = line.split(':');
    let name = fields.next()?;
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(User {
        name: name.to_string(),
        uid,
        gid,
    })
}

/// Refuses a profiles directory that `user` could not reach because a
/// parent directory is closed to others (e.g. `TMPDIR` under `/root`).
fn check_traversable(dir: &Path, user: &User) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    for parent in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(parent) else {
            continue;
        };
        let open = meta.mode() & 0o001 != 0
            || (meta.uid() == user.uid && meta.mode() & 0o100 != 0)
            || (meta.gid() == user.gid && meta.mode() & 0o010 != 0);
        if !open {
            return Err(format!(
                "the browser runs as user {} and cannot enter {} (mode {:o}); \
                 set TMPDIR to a directory others may enter, such as /tmp",
                user.name,
                parent.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        assert_eq!(
            parse_passwd_line("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"),
            Some(User {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534
            })
        );
        assert_eq!(parse_passwd_line("broken:x:abc:1"), None);
        assert_eq!(parse_passwd_line(""), None);
    }

    #[test]
    fn a_profiles_dir_behind_a_closed_parent_is_refused_with_its_name() {
        use std::os::unix::fs::PermissionsExt;
        let nobody = User {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
        };
        let outer = tempfile::tempdir().unwrap();
        let closed = outer.path().join("closed");
        std::fs::create_dir(&closed).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = check_traversable(&closed.join("profiles"), &nobody).unwrap_err();
        assert!(err.contains(&closed.display().to_string()), "{err}");
        assert!(err.contains("TMPDIR"), "{err}");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).unwrap();
        check_traversable(&closed.join("profiles"), &nobody).unwrap();
    }
}
