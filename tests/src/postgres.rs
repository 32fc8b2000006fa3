//! A real PostgreSQL server for tests: one throw-away cluster per test
//! process, made with `initdb` in a fresh temp directory and started on a
//! free loopback port, with one new database per test
//! ([`Postgres::fresh_database`]).
//!
//! The binaries come from Debian's `postgresql` package
//! (`scripts/deps.sh --test` installs it). PostgreSQL refuses to run as
//! root, so when the tests run as root the cluster belongs to the
//! unprivileged `postgres` user (or `nobody`). The server runs in its own
//! process group under a watchdog that kills it and removes its directory
//! when this process exits, however it exits.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dpxdt_core::capture::GroupKiller;

use crate::free_port;

/// A running throw-away PostgreSQL cluster.
pub struct Postgres {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    bin: PathBuf,
    _child: Child,
    _killer: GroupKiller,
}

/// The process's PostgreSQL, started on first call. Panics with what to do
/// when the binaries are missing or the server does not come up.
pub fn shared() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}")))
}

/// The directory of `initdb` and `postgres`: Debian keeps them under
/// `/usr/lib/postgresql/VERSION/bin` (the newest is taken), else `PATH`.
pub fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
}

/// The uid and gid to run the server as when we are root: `postgres`'s
/// (made by Debian's package), else `nobody`'s.
fn unprivileged_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let find = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == name)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    find("postgres").or_else(|| find("nobody"))
}

fn is_root() -> bool {
    // The owner of a file we just made is our effective uid.
    let probe = std::env::temp_dir().join(format!("dpxdt-uid-{}", std::process::id()));
    let root = std::fs::write(&probe, b"")
        .and_then(|()| std::fs::metadata(&probe))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let _ = std::fs::remove_file(&probe);
    root
}

impl Postgres {
    fn start() -> Result<Postgres, String> {
        let bin = bin_dir().ok_or(
            "no PostgreSQL server binaries (initdb, postgres): run \
             `bash scripts/deps.sh --test` (it installs Debian's postgresql)",
        )?;
        let dir = std::env::temp_dir().join(format!("dpxdt-postgres-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let user = if is_root() {
            let (uid, gid) = unprivileged_user()
                .ok_or("running as root and there is no `postgres` or `nobody` user")?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
            Some((uid, gid))
        } else {
            None
        };
        let as_user = |cmd: &mut Command| {
            if let Some((uid, gid)) = user {
                cmd.uid(uid).gid(gid);
            }
        };
        let data = dir.join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        as_user(&mut initdb);
        let out = initdb
            .output()
            .map_err(|e| format!("{}: {e}", bin.join("initdb").display()))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = free_port().map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("postgres.log")).map_err(|e| e.to_string())?;
        let mut server = Command::new(bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
            ]);
        // A throw-away cluster: durability buys nothing in tests. Benchmarks
        // set DPXDT_PG_DURABLE=1 to commit as a real deployment does.
        if std::env::var_os("DPXDT_PG_DURABLE").is_none() {
            server.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        // Extra settings for a look inside, e.g. `log_statement=all`.
        if let Ok(extra) = std::env::var("DPXDT_PG_SETTINGS") {
            for setting in extra.split_whitespace() {
                server.args(["-c", setting]);
            }
        }
        server
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0);
        as_user(&mut server);
        let child = server
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.join("postgres").display()))?;
        let killer =
            GroupKiller::new(child.id(), true, Some(&dir)).map_err(|e| format!("watchdog: {e}"))?;
        let pg = Postgres {
            port,
            bin,
            _child: child,
            _killer: killer,
        };
        pg.wait_ready(&dir)?;
        Ok(pg)
    }

    /// Polls `pg_isready` until the server takes connections, with a deadline.
    fn wait_ready(&self, dir: &Path) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map_err(|e| format!("pg_isready: {e}"))?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
                return Err(format!("the server did not come up\nlog:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `sql` with `psql` in the database `db`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "psql {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Makes a new, empty database and returns its URL.
    pub fn fresh_database(&self) -> String {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}", COUNT.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("{e}"));
        self.url(&name)
    }

    /// The URL of the database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}
