//! A real S3-compatible store for tests: one Garage node on loopback per
//! test process, started on first use in a fresh temp directory with a
//! generated configuration, its layout assigned and applied, and one bucket
//! with a key that may read and write it.
//!
//! The `garage` binary comes from `cargo install garage --locked`
//! (`scripts/deps.sh --test` installs it into `~/.cargo/bin`). The node
//! runs in its own process group under a watchdog that kills it and removes
//! its directory when this process exits, however it exits.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dpxdt_core::capture::GroupKiller;

use crate::free_port;

/// The region name Garage answers to.
pub const REGION: &str = "garage";

/// A running Garage node with a bucket and a key for it.
pub struct Garage {
    /// `http://127.0.0.1:<port>`: the S3 API.
    pub endpoint: String,
    /// The bucket every test shares (each test uses its own key prefix).
    pub bucket: String,
    /// The access key id.
    pub key_id: String,
    /// The secret access key.
    pub secret: String,
    config: PathBuf,
    _child: Child,
    _killer: GroupKiller,
}

/// The process's Garage, started on first call. Panics with what to do
/// when the binary is missing or the node does not come up.
pub fn shared() -> &'static Garage {
    static GARAGE: OnceLock<Garage> = OnceLock::new();
    GARAGE.get_or_init(|| Garage::start().unwrap_or_else(|e| panic!("starting Garage: {e}")))
}

/// Where `garage` is: on `PATH`, or in cargo's bin directory.
pub fn binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("garage"))
        .find(|p| p.is_file())
}

/// `bytes` pseudo-random bytes as hex. Not secret (a throw-away node on
/// loopback); only unique per process and call.
fn hex(bytes: usize) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seed =
        nanos ^ (u64::from(std::process::id()) << 32) ^ CALLS.fetch_add(1, Ordering::Relaxed);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:02x}", x as u8)
        })
        .collect()
}

impl Garage {
    fn start() -> Result<Garage, String> {
        let bin = binary().ok_or(
            "no `garage` binary on PATH or in ~/.cargo/bin: run `bash scripts/deps.sh --test` \
             (it runs `cargo install garage --locked`)",
        )?;
        let dir = std::env::temp_dir().join(format!("dpxdt-garage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (rpc, s3, admin) = (
            free_port().map_err(|e| e.to_string())?,
            free_port().map_err(|e| e.to_string())?,
            free_port().map_err(|e| e.to_string())?,
        );
        let config = dir.join("garage.toml");
        let text = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            secret = hex(32),
        );
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let log = std::fs::File::create(dir.join("garage.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let killer =
            GroupKiller::new(child.id(), true, Some(&dir)).map_err(|e| format!("watchdog: {e}"))?;
        let mut garage = Garage {
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: "dpxdt-tests".into(),
            key_id: format!("GK{}", hex(12)),
            secret: hex(32),
            config,
            _child: child,
            _killer: killer,
        };
        garage.set_up(&bin, &dir)?;
        Ok(garage)
    }

    fn cli(&self, bin: &Path, args: &[&str]) -> Result<String, String> {
        let out = Command::new(bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "error")
            .output()
            .map_err(|e| format!("garage {}: {e}", args.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "garage {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits for the node, gives it a role, and makes the bucket and key.
    fn set_up(&mut self, bin: &Path, dir: &Path) -> Result<(), String> {
        // `status` answers once the node's RPC port is up (`node id` does
        // not: it only reads the key file). Poll for that condition, with a
        // deadline.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.cli(bin, &["status"]) {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    let log = std::fs::read_to_string(dir.join("garage.log")).unwrap_or_default();
                    return Err(format!("{e}\nnode log:\n{log}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let node = self.cli(bin, &["node", "id", "-q"])?;
        let node_id = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        self.cli(
            bin,
            &["layout", "assign", "-z", "dc1", "-c", "1G", &node_id],
        )?;
        self.cli(bin, &["layout", "apply", "--version", "1"])?;
        let (id, secret) = (self.key_id.clone(), self.secret.clone());
        self.cli(
            bin,
            &["key", "import", "--yes", "-n", "dpxdt-tests", &id, &secret],
        )?;
        self.cli(bin, &["bucket", "create", &self.bucket.clone()])?;
        self.cli(
            bin,
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                &self.bucket.clone(),
                "--key",
                &id,
            ],
        )?;
        Ok(())
    }

    /// The `AWS_*` variables that point a process at this node.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    }
}
