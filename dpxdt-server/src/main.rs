//! `dpxdt-server`: runs the API server (with in-process workers), a
//! standalone worker, or creates a build and its API key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::builder::BoolishValueParser;
use clap::{Parser, Subcommand, value_parser};
use dpxdt_core::netpolicy::{NetworkPolicy, Rule};
use dpxdt_server::storage::Limits;
use dpxdt_server::{Config, storage, workers};

#[derive(Parser)]
#[command(name = "dpxdt-server", version, about = "The Depicted server")]
struct Args {
    /// How log lines are written to stderr: `text` for people, `json`
    /// (one object per line, with the span's fields) for log shippers.
    #[arg(long, env = "DPXDT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Address to listen on.
    #[arg(
        long,
        env = "DPXDT_LISTEN",
        default_value = "127.0.0.1:5000",
        global = true
    )]
    listen: SocketAddr,
    /// Directory of the database and the artifacts.
    #[arg(
        long,
        env = "DPXDT_DATA_DIR",
        default_value = "./dpxdt-data",
        global = true
    )]
    data_dir: PathBuf,
    /// Where artifact bytes are kept: `file:///PATH`, or `s3://BUCKET[/PREFIX]`
    /// with the endpoint, region and credentials from `AWS_ENDPOINT_URL`,
    /// `AWS_REGION`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`
    /// (`AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint). Default: the
    /// data directory.
    #[arg(long, env = "DPXDT_ARTIFACTS_URL", global = true)]
    artifacts_url: Option<storage::ArtifactsUrl>,
    /// Where the database is: `sqlite:PATH`, or `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// for several replicas sharing one database (TLS as libpq's `sslmode`
    /// and `sslrootcert` say, e.g. `?sslmode=verify-full&sslrootcert=CA.pem`;
    /// default `prefer`). Default: `dpxdt.sqlite3` in the data directory.
    #[arg(
        long,
        env = "DPXDT_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<storage::DatabaseUrl>,
    /// The server key, which seals secrets kept in the database (a 32-byte
    /// file, made on first use). Replicas sharing one database need the
    /// same file. Default: `server.key` in the data directory.
    #[arg(long, env = "DPXDT_SERVER_KEY_FILE", global = true)]
    server_key_file: Option<PathBuf>,
    /// Most bytes of one upload.
    #[arg(long, env = "DPXDT_UPLOAD_LIMIT", default_value_t = dpxdt_server::DEFAULT_UPLOAD_LIMIT)]
    upload_limit: u64,
    /// Most runs in one release, per build (413 beyond).
    #[arg(long, env = "DPXDT_MAX_RUNS_PER_RELEASE",
          default_value_t = Limits::default().runs_per_release,
          value_parser = value_parser!(u32).range(1..))]
    max_runs_per_release: u32,
    /// Most releases one build may create in an hour (429 beyond).
    #[arg(long, env = "DPXDT_MAX_RELEASES_PER_HOUR",
          default_value_t = Limits::default().releases_per_hour,
          value_parser = value_parser!(u32).range(1..))]
    max_releases_per_hour: u32,
    /// Most bytes of artifacts one build may store (413 beyond).
    #[arg(long, env = "DPXDT_MAX_BUILD_BYTES",
          default_value_t = Limits::default().build_bytes,
          value_parser = value_parser!(u64).range(1..))]
    max_build_bytes: u64,
    /// Most captures of one build waiting or running at once (429 beyond).
    #[arg(long, env = "DPXDT_MAX_QUEUED_CAPTURES",
          default_value_t = Limits::default().queued_captures,
          value_parser = value_parser!(u32).range(1..))]
    max_queued_captures: u32,
    /// How often the server deletes releases past their build's retention
    /// policy and artifacts nothing refers to any more (`0s`: never; run
    /// `dpxdt-server gc` by hand instead).
    #[arg(long, env = "DPXDT_GC_INTERVAL", default_value = "24h", value_parser = humantime::parse_duration)]
    gc_interval: std::time::Duration,
    /// Releases each build keeps per branch unless its settings say otherwise.
    #[arg(long, env = "DPXDT_KEEP_RELEASES", default_value_t = 20,
          value_parser = value_parser!(u32).range(1..))]
    keep_releases: u32,
    /// Releases younger than this many days are kept, unless a build's
    /// settings say otherwise.
    #[arg(long, env = "DPXDT_KEEP_DAYS", default_value_t = 30,
          value_parser = value_parser!(u32).range(1..))]
    keep_days: u32,
    /// Base URL people reach the server at (for links in replies).
    #[arg(long, env = "DPXDT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Do not run capture and diff workers in the server process (the
    /// variable takes 1/0, true/false, yes/no, on/off).
    #[arg(long, env = "DPXDT_NO_WORKERS", value_parser = BoolishValueParser::new())]
    no_workers: bool,
    /// Let build webhooks call loopback, private-network and link-local
    /// addresses (off: only public ones; the variable takes 1/0, true/false…).
    #[arg(long, env = "DPXDT_ALLOW_PRIVATE_WEBHOOKS", value_parser = BoolishValueParser::new())]
    allow_private_webhooks: bool,
    /// Let commit-status APIs be plain http:// (off: https:// only, since
    /// the token goes with every status; for tests and closed networks).
    #[arg(long, env = "DPXDT_ALLOW_HTTP_STATUS_API", value_parser = BoolishValueParser::new())]
    allow_http_status_api: bool,
    /// Do not run the capture worker (no browser needed).
    #[arg(long, env = "DPXDT_NO_CAPTURE", value_parser = BoolishValueParser::new())]
    no_capture: bool,
    /// A superuser API key `ID:SECRET` to make sure exists (e.g. for remote workers).
    #[arg(long, env = "DPXDT_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Lease length of tasks, in seconds (default 60 for diffs, 180 for
    /// captures); workers heartbeat every third of it.
    #[arg(long, env = "DPXDT_LEASE_SECS", value_parser = value_parser!(u64).range(1..=86_400))]
    lease_secs: Option<u64>,
    /// Also serve `/metrics` here, without a key: an address on a private
    /// scrape network (on the main port it needs a superuser key).
    #[arg(long, env = "DPXDT_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Diffs computed side by side, in the server or in `worker` (default:
    /// one per CPU; 0 runs none, e.g. on a capture-only machine); four times
    /// as many diff tasks are in flight, downloading, uploading and
    /// reporting meanwhile.
    #[arg(long, env = "DPXDT_DIFF_WORKERS")]
    diff_workers: Option<usize>,
    /// Pages the capture worker loads at once (browser sessions; default:
    /// one per CPU up to 32, as `dpxdt update`'s jobs).
    #[arg(long, env = "DPXDT_CAPTURE_SESSIONS",
          value_parser = value_parser!(u64).range(1..=32))]
    capture_sessions: Option<u64>,
    /// The browser engines whose capture tasks this process's capture
    /// worker takes, comma-separated (`chromium,firefox`); default: every
    /// engine installed here. Tasks for other engines wait for a worker
    /// that has them.
    #[arg(long, env = "DPXDT_BROWSERS", value_parser = parse_browsers)]
    browsers: Option<Browsers>,
    /// Refuse captured pages' requests to private networks (10/8,
    /// 172.16/12, 192.168/16, 100.64/10, fc00::/7) too; by default they are
    /// allowed (staging servers), and this machine and link-local addresses
    /// (cloud metadata) are refused.
    #[arg(long, env = "DPXDT_CAPTURE_DENY_PRIVATE", value_parser = BoolishValueParser::new())]
    capture_deny_private: bool,
    /// Let captured pages reach these address blocks or hosts (CIDR or host
    /// name, comma-separated or repeated), e.g. `127.0.0.1` for pages served
    /// on this machine. The server's own port stays refused.
    #[arg(
        long,
        env = "DPXDT_CAPTURE_ALLOW",
        value_delimiter = ',',
        value_name = "CIDR|HOST"
    )]
    capture_allow: Vec<Rule>,
    /// When the server runs as root, run the capture browser as root too,
    /// without Chromium's sandbox. By default it runs as the unprivileged
    /// user `nobody` with the sandbox on, and captures fail with an
    /// explanation where the sandbox cannot start.
    #[arg(long, env = "DPXDT_ALLOW_ROOT_CAPTURE", value_parser = BoolishValueParser::new())]
    allow_root_capture: bool,
    /// Reverse proxies (CIDR, repeatable or comma-separated) whose
    /// `X-Forwarded-For` header names the client for the login rate limits.
    #[arg(
        long,
        env = "DPXDT_TRUSTED_PROXY",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    trusted_proxy: Vec<Rule>,
    /// Never let captured pages reach these address blocks or hosts.
    #[arg(
        long,
        env = "DPXDT_CAPTURE_DENY",
        value_delimiter = ',',
        value_name = "CIDR|HOST"
    )]
    capture_deny: Vec<Rule>,
    /// SMTP server for e-mail notifications, `smtp://[user:password@]host[:port]`
    /// (plain SMTP to a trusted relay; `smtps://` and `smtp+starttls://` need
    /// the `mail-tls` cargo feature). Without it no e-mail is sent.
    #[arg(
        long,
        env = "DPXDT_SMTP_URL",
        requires = "mail_from",
        hide_env_values = true
    )]
    smtp_url: Option<String>,
    /// Sender of notification e-mails, `name@domain` or `"Name <name@domain>"`.
    #[arg(long, env = "DPXDT_MAIL_FROM")]
    mail_from: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Create a build and an API key for it; prints the build id, key id and secret.
    CreateBuild {
        /// The build's name.
        name: String,
        /// Let the build's API keys mark its releases good or bad (e.g. a
        /// CI job that accepts its own screenshots); by default only people
        /// give verdicts.
        #[arg(long)]
        key_verdicts: bool,
    },
    /// Create an API key for remote workers (`dpxdt-server worker`): it may
    /// lease, heartbeat and finish work-queue tasks, and upload, download
    /// and report only for the tasks it holds. Prints it as ID:SECRET.
    CreateWorkerKey {
        /// What the key is for (shown in the activity log).
        #[arg(long, default_value = "remote worker")]
        purpose: String,
    },
    /// Create a review UI user (or set a user's password); the password is
    /// read from DPXDT_PASSWORD or else the first line of stdin.
    CreateUser {
        /// The user name.
        name: String,
        /// May see and change every build.
        #[arg(long)]
        superuser: bool,
        /// The user's e-mail address (for notifications and invitations).
        #[arg(long)]
        email: Option<String>,
    },
    /// Delete releases past their build's retention policy and the
    /// artifacts nothing refers to any more; prints what it deleted (or,
    /// with --dry-run, what it would) and the bytes freed. The server does
    /// this itself every --gc-interval; run this while it is stopped.
    Gc {
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check the data directory without changing it: the database answers,
    /// its migrations are current, the artifact directory takes writes.
    /// Prints one line per check; exits 0 when all pass, 1 when one fails.
    Check,
    /// Copy this (stopped) SQLite server's whole history into a new
    /// PostgreSQL database: every row, and every artifact (checked against
    /// its SHA-1) into --artifacts-to. Refuses a target that holds rows;
    /// after an interruption, run it again.
    Migrate {
        /// The new database: `postgres://USER:PASSWORD@HOST:PORT/DB`.
        #[arg(long, hide_env_values = true)]
        to: storage::DatabaseUrl,
        /// Where the artifacts go (`s3://BUCKET[/PREFIX]` or
        /// `file:///PATH`); default: they stay where they are.
        #[arg(long)]
        artifacts_to: Option<storage::ArtifactsUrl>,
    },
    /// Run capture and diff workers against a server over HTTP.
    Worker {
        /// The server's root URL.
        #[arg(long, env = "DPXDT_SERVER")]
        server: String,
        /// A worker key (`create-worker-key`) or a superuser key, `ID:SECRET`.
        #[arg(long, env = "DPXDT_API_KEY", hide_env_values = true)]
        api_key: String,
    },
}

fn split_key(raw: &str) -> anyhow::Result<(String, String)> {
    match raw.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok((id.to_string(), secret.to_string()))
        }
        _ => bail!("an API key must be written ID:SECRET"),
    }
}

fn config(args: &Args) -> anyhow::Result<Config> {
    let mut config = Config::new(&args.data_dir);
    config.artifacts.url = args.artifacts_url.clone().unwrap_or_default();
    config.database = args.database_url.clone().unwrap_or_default();
    config.server_key_file = args.server_key_file.clone();
    config.upload_limit = args.upload_limit;
    config.limits = Limits {
        runs_per_release: args.max_runs_per_release,
        releases_per_hour: args.max_releases_per_hour,
        build_bytes: args.max_build_bytes,
        queued_captures: args.max_queued_captures,
    };
    config.gc_interval = args.gc_interval;
    config.gc.defaults = storage::gc::Policy {
        keep_releases: args.keep_releases,
        keep_days: args.keep_days,
    };
    config.public_url = args.public_url.clone();
    config.in_process_workers = !args.no_workers;
    config.metrics_listen = args.metrics_listen;
    config.allow_private_webhooks = args.allow_private_webhooks;
    config.allow_http_status_api = args.allow_http_status_api;
    config.trusted_proxies = args.trusted_proxy.clone();
    config.worker.capture = !args.no_capture;
    if let Some(n) = args.diff_workers {
        config.worker.diff = n > 0;
        config.worker.diff_workers = n;
    }
    if let Some(n) = args.capture_sessions {
        config.worker.capture_sessions = n as usize;
    }
    #[cfg(feature = "capture")]
    {
        config.worker.capture_browsers = args.browsers.clone().map(|b| b.0);
    }
    config.worker.capture_network = NetworkPolicy {
        allow_private: !args.capture_deny_private,
        allow: args.capture_allow.clone(),
        deny: args.capture_deny.clone(),
        denied_loopback_ports: vec![args.listen.port()],
        ..NetworkPolicy::server()
    };
    config.worker.capture_allow_root = args.allow_root_capture;
    if let Some(secs) = args.lease_secs {
        config.worker.diff_lease = Duration::from_secs(secs);
        config.worker.capture_lease = Duration::from_secs(secs);
    }
    if let Some(url) = &args.smtp_url {
        let from = args.mail_from.as_deref().unwrap_or_default();
        config.mail = Some(dpxdt_server::notify::MailConfig::new(url, from)?);
    }
    if let Some(raw) = &args.admin_key {
        let (id, secret) = split_key(raw)?;
        config.admin_key = Some(storage::NewApiKey { id, secret });
    }
    Ok(config)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = config(&args)?;
    match args.command.unwrap_or(Command::Serve) {
        Command::Gc { dry_run } => {
            // A dry run only reads; a real one needs the directory to itself.
            let store = if dry_run {
                storage::Store::open_shared_at(&config.data_dir, &config.database, &config.artifacts)
            } else {
                storage::Store::open_at(&config.data_dir, &config.database, &config.artifacts)
            }
            .with_context(|| {
                format!(
                    "opening data directory {} (a running server collects its own garbage every --gc-interval)",
                    config.data_dir.display()
                )
            })?;
            let mut opts = config.gc.clone();
            opts.dry_run = dry_run;
            eprintln!("gc: looking at {}", config.data_dir.display());
            let report = tokio::task::spawn_blocking(move || {
                storage::gc::collect(&store, &opts, &mut |ids| {
                    eprintln!("gc: deleting; {} artifacts to check", ids.len());
                })
            })
            .await??;
            let verb = if dry_run { "would delete" } else { "deleted" };
            println!(
                "{verb} {} releases ({} runs), ended {} build claims on artifacts, {verb} {} artifacts, freeing {} bytes",
                report.releases, report.runs, report.claims, report.artifacts, report.bytes
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Migrate { to, artifacts_to } => {
            if !matches!(to, storage::DatabaseUrl::Postgres(_)) {
                anyhow::bail!("--to must be a postgres:// URL, not {to}");
            }
            let source =
                storage::Store::open_at(&config.data_dir, &config.database, &config.artifacts)
                    .with_context(|| {
                        format!(
                            "opening data directory {} (stop its server first)",
                            config.data_dir.display()
                        )
                    })?;
            let artifacts_to = match artifacts_to {
                Some(url) => storage::ArtifactsConfig::from(url),
                None => config.artifacts.clone(),
            };
            let target = storage::Store::open_shared_at(&config.data_dir, &to, &artifacts_to)
                .with_context(|| format!("opening {to}"))?;
            let report = storage::migrate::migrate(&source, &target, &mut std::io::stderr())
                .with_context(|| format!("migrating to {to}"))?;
            let rows: u64 = report.rows.iter().map(|(_, n)| n).sum();
            println!(
                "copied {rows} rows in {} tables and {} artifacts ({} were there already)",
                report.rows.len(),
                report.artifacts_copied,
                report.artifacts_present
            );
            let artifacts_shown = match &artifacts_to.url {
                storage::ArtifactsUrl::DataDir => {
                    format!("file://{}", config.data_dir.join("artifacts").display())
                }
                url => url.to_string(),
            };
            eprintln!(
                "migrate: done; serve with --database-url {to} --artifacts-url {artifacts_shown} --server-key-file {}",
                config
                    .server_key_file
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join(storage::secrets::KEY_FILE))
                    .display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Check => {
            let checks = storage::health::check_data_dir(
                &config.data_dir,
                &config.database,
                &config.artifacts,
            );
            for check in &checks {
                println!("{check}");
            }
            let ok = checks.iter().all(|c| c.ok);
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        Command::Serve => {
            let (store, first) = dpxdt_server::init_data_dir(&config)
                .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("listening on {}", args.listen))?;
            let addr = listener.local_addr()?;
            // Pages never reach the server itself (`--listen ...:0` picks the port here).
            config
                .worker
                .capture_network
                .denied_loopback_ports
                .push(addr.port());
            if let Some(key) = first {
                println!("First start: created the admin account and a superuser API key.");
                println!("  API key id:     {}", key.id);
                println!("  API key secret: {}", key.secret);
                println!("Create a build and its API key with:");
                println!(
                    "  curl -u {}:{} -F name=my-site http://{addr}/api/create_build",
                    key.id, key.secret
                );
                println!(
                    "or: dpxdt-server --data-dir {} create-build my-site",
                    config.data_dir.display()
                );
            }
            if let Some(password) = dpxdt_server::ui::ensure_admin_password(&store)? {
                println!("Review UI: log in at http://{addr}/login as admin, password {password}");
            }
            println!("dpxdt-server listening on http://{addr}/");
            dpxdt_server::serve_store(listener, store, config, shutdown_signal()).await?;
        }
        Command::CreateBuild { name, key_verdicts } => {
            // Shared: works beside a running server on the same directory.
            let store = storage::Store::open_shared_at(
                &config.data_dir,
                &config.database,
                &config.artifacts,
            )
            .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
            let build = store.blocking(|c| storage::create_build(c, &name))?;
            if key_verdicts {
                store.blocking(|c| storage::builds::set_key_verdicts(c, build, true))?;
            }
            let key = store.blocking(|c| {
                storage::create_api_key(c, Some(build), "created on the command line")
            })?;
            println!("build_id={build}");
            println!("api_key={}", key.id);
            println!("api_secret={}", key.secret);
        }
        Command::CreateWorkerKey { purpose } => {
            // Shared: works beside a running server on the same directory.
            let store = storage::Store::open_shared_at(
                &config.data_dir,
                &config.database,
                &config.artifacts,
            )
            .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
            let key = store.blocking(|c| storage::create_worker_key(c, &purpose))?;
            println!("{}:{}", key.id, key.secret);
        }
        Command::CreateUser {
            name,
            superuser,
            email,
        } => {
            let store = storage::Store::open_shared_at(
                &config.data_dir,
                &config.database,
                &config.artifacts,
            )
            .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
            let password = match std::env::var("DPXDT_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if let Some(email) = &email {
                // Checked before the account is made or changed.
                storage::users::validate_email(email.trim())?;
            }
            dpxdt_server::ui::create_user(&store, &name, &password, superuser)?;
            if let Some(email) = &email {
                dpxdt_server::ui::set_user_email(&store, &name, email)?;
            }
            println!("user {name} can log in now");
        }
        Command::Worker { server, api_key } => {
            let (id, secret) = split_key(&api_key)?;
            let client = workers::client_for(&server, &id, &secret)?;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let tasks =
                workers::spawn_all(workers::Link::Http(client), config.worker.clone(), stop_rx);
            shutdown_signal().await;
            let _ = stop_tx.send(true);
            workers::join_all(tasks, Duration::from_secs(10)).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The format of the log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Warp's own per-request events only repeat the API's request line.
    let quiet_warp = "warp::filters::trace=off".parse().expect("a directive");
    let filter = tracing_subscriber::EnvFilter::try_from_env("DPXDT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive(quiet_warp);
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log.json().with_current_span(true).init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dpxdt-server: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(run(args));
    // Whatever is still running (a request, a blocking task) gets a
    // bounded time to end; the process does not wait on it forever.
    runtime.shutdown_timeout(dpxdt_server::SHUTDOWN_GRACE);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dpxdt-server: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `--browsers`: engines, as one comma-separated value.
#[derive(Debug, Clone)]
struct Browsers(Vec<dpxdt_core::config::Engine>);

fn parse_browsers(list: &str) -> Result<Browsers, String> {
    dpxdt_core::config::Engine::parse_list(list).map(Browsers)
}
