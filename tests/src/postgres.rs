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
//!
//! [`Postgres::start_tls`] starts another cluster, with TLS, for the tests
//! of TLS to PostgreSQL.

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
    PG.get_or_init(|| Postgres::start(None).unwrap_or_else(|e| panic!("starting PostgreSQL: {e}")))
}

/// What a cluster that also takes TLS connections ([`Postgres::start_tls`])
/// is given.
pub struct Tls<'a> {
    /// The server's certificate (PEM).
    pub cert: &'a Path,
    /// Its private key (PEM).
    pub key: &'a Path,
    /// `pg_hba.conf` lines to put before initdb's own (which trust every
    /// local connection), e.g. to make one role log in with a password.
    pub hba: &'a [&'a str],
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
    /// A new cluster of its own with `ssl=on`, serving `tls.cert`. The
    /// shared one stays without TLS: benchmarks then measure no TLS they
    /// did not ask for, and `prefer`'s fall-back to plain has a server to
    /// be tried against. The cost (another initdb, about a second) is paid
    /// only by test binaries that start one. Panics as [`shared`] does.
    pub fn start_tls(tls: &Tls) -> Postgres {
        Postgres::start(Some(tls)).unwrap_or_else(|e| panic!("starting PostgreSQL with TLS: {e}"))
    }

    fn start(tls: Option<&Tls>) -> Result<Postgres, String> {
        let bin = bin_dir().ok_or(
            "no PostgreSQL server binaries (initdb, postgres): run \
             `bash scripts/deps.sh --test` (it installs Debian's postgresql)",
        )?;
        static CLUSTERS: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dpxdt-postgres-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
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
        if let Some(tls) = tls {
            Self::set_up_tls(tls, &data, user)?;
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
        if tls.is_some() {
            server.args([
                "-c",
                "ssl=on",
                "-c",
                "ssl_cert_file=server.crt",
                "-c",
                "ssl_key_file=server.key",
            ]);
        }
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

    /// Puts the certificate and key into the data directory (relative
    /// paths in the settings are relative to it), owned by the server's user
    /// and the key readable by it alone, as PostgreSQL demands; and puts
    /// `tls.hba` before the lines of initdb.
    fn set_up_tls(tls: &Tls, data: &Path, user: Option<(u32, u32)>) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        for (from, to, mode) in [
            (tls.cert, "server.crt", 0o644),
            (tls.key, "server.key", 0o600),
        ] {
            let to = data.join(to);
            std::fs::copy(from, &to)
                .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("chmod {}: {e}", to.display()))?;
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(&to, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", to.display()))?;
            }
        }
        let hba = data.join("pg_hba.conf");
        let initdb_lines =
            std::fs::read_to_string(&hba).map_err(|e| format!("{}: {e}", hba.display()))?;
        let mut lines = tls.hba.join("\n");
        lines.push('\n');
        lines.push_str(&initdb_lines);
        std::fs::write(&hba, lines).map_err(|e| format!("{}: {e}", hba.display()))?;
        Ok(())
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
