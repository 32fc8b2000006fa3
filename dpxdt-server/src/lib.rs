//! The Depicted server: HTTP API, SQLite storage, durable work queue and
//! the capture and diff workers.
//!
//! [`serve`] runs the whole server on a listener the caller bound (tests
//! bind `127.0.0.1:0`), with the in-process workers unless
//! [`Config::in_process_workers`] is off. The `dpxdt-server` binary is glue
//! around it.
#![deny(missing_docs)]

pub mod error;
pub mod http;
pub mod notify;
pub mod storage;
pub mod telemetry;
pub mod ui;
pub mod workers;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use storage::{NewApiKey, Store, StoreError};

/// What every handler, page and background task can reach: the store and
/// the configuration, both cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database and artifacts.
    pub store: Store,
    /// The server's configuration.
    pub config: Arc<Config>,
}

/// Default most bytes of one upload: 50 MiB.
pub const DEFAULT_UPLOAD_LIMIT: u64 = 50 << 20;

/// Server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the database and the artifacts.
    pub data_dir: PathBuf,
    /// Where artifact bytes are kept (default: the data directory).
    pub artifacts: storage::ArtifactsConfig,
    /// Where the database is (default: a SQLite file in the data directory).
    pub database: storage::DatabaseUrl,
    /// The server key's file (default: `server.key` in the data directory);
    /// replicas on one database share one.
    pub server_key_file: Option<PathBuf>,
    /// Most bytes of one upload; more is refused with 413.
    pub upload_limit: u64,
    /// Base URL people reach the server at, for links in replies
    /// (default: `http://` + the request's Host header).
    pub public_url: Option<String>,
    /// Run the capture and diff workers inside the server process.
    pub in_process_workers: bool,
    /// A superuser key to make sure exists (for deployments and tests that
    /// configure the workers' key up front).
    pub admin_key: Option<NewApiKey>,
    /// Worker settings for the in-process workers.
    pub worker: workers::WorkerConfig,
    /// SMTP server and sender for e-mail notifications (none: no e-mail).
    pub mail: Option<notify::MailConfig>,
    /// Let webhooks call loopback, private-network and link-local
    /// addresses. Off by default: webhook URLs come from build owners, who
    /// could otherwise make the server call services only it can reach.
    pub allow_private_webhooks: bool,
    /// Let commit-status APIs be plain `http://` (off: `https://` only, as
    /// the token travels with every status; for tests and closed networks).
    pub allow_http_status_api: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the
    /// login rate limits); requests from anywhere else are taken as they come.
    pub trusted_proxies: Vec<dpxdt_core::netpolicy::Rule>,
    /// What each build may store and do (runs per release, releases per
    /// hour, stored bytes, queued captures).
    pub limits: storage::Limits,
    /// How often the server collects garbage (`storage::gc`); zero: never.
    pub gc_interval: std::time::Duration,
    /// Where to serve `/metrics` to anyone, besides the main port (where
    /// it needs a superuser key): an address of a private scrape network.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The retention defaults and grace period of each collection.
    pub gc: storage::gc::GcOptions,
}

impl Config {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            artifacts: storage::ArtifactsConfig::default(),
            database: storage::DatabaseUrl::default(),
            server_key_file: None,
            upload_limit: DEFAULT_UPLOAD_LIMIT,
            public_url: None,
            in_process_workers: true,
            admin_key: None,
            worker: workers::WorkerConfig::default(),
            mail: None,
            allow_private_webhooks: false,
            allow_http_status_api: false,
            trusted_proxies: Vec::new(),
            limits: storage::Limits::default(),
            gc_interval: std::time::Duration::from_secs(24 * 3600),
            metrics_listen: None,
            gc: storage::gc::GcOptions::default(),
        }
    }
}

/// Collects garbage every `gc_interval` (the first time one interval after
/// the start) until `stop` turns true.
fn spawn_gc(
    state: AppState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = state.config.gc_interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let (store, opts) = (state.store.clone(), state.config.gc.clone());
            let run = tokio::task::spawn_blocking(move || {
                storage::gc::collect(&store, &opts, &mut |_| {})
            });
            match run.await {
                Ok(Ok(report)) => tracing::info!(?report, "scheduled garbage collection"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "garbage collection failed; it runs again next time")
                }
                Err(e) => tracing::error!(error = %e, "garbage collection stopped"),
            }
        }
    })
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory or database could not be opened.
    #[error("opening the data directory: {0}")]
    Store(#[from] StoreError),
    /// The listener has no local address.
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
    /// Opening the data directory did not finish.
    #[error("opening the data directory: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Opens (creating and migrating) the data directory. On an empty one it
/// creates the admin account and a superuser API key, returned once so the
/// caller can show it.
pub fn init_data_dir(config: &Config) -> Result<(Store, Option<NewApiKey>), StoreError> {
    let mut store = Store::open_at(&config.data_dir, &config.database, &config.artifacts)?;
    if let Some(path) = &config.server_key_file {
        store = store.with_key_file(path);
    }
    let first = store.blocking(storage::bootstrap)?;
    if let Some(key) = &config.admin_key {
        store.blocking(|c| storage::ensure_api_key(c, key))?;
    }
    Ok((store, first))
}

/// How long requests in flight may go on after a stop before they are cut off.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves the API on `listener` until `shutdown` completes, then stops the
/// in-process workers and returns (requests still running
/// [`SHUTDOWN_GRACE`] after the stop are cut off).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (store, _) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || init_data_dir(&config)).await??
    };
    serve_store(listener, store, config, shutdown).await
}

/// [`serve`] with a store that is already open.
pub async fn serve_store(
    listener: tokio::net::TcpListener,
    store: Store,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    telemetry::install();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut worker_tasks = Vec::new();
    store.blocking(storage::remove_internal_keys)?;
    if config.in_process_workers {
        let local = workers::Local::new(store.clone(), config.limits, config.upload_limit);
        worker_tasks = workers::spawn_all(
            workers::Link::Local(local),
            config.worker.clone(),
            stop_rx.clone(),
        );
    }
    let state = AppState {
        store,
        config: Arc::new(config),
    };
    tracing::info!(%addr, "serving the API");
    worker_tasks.push(notify::spawn_notifier(state.clone(), addr, stop_rx.clone()));
    if !state.config.gc_interval.is_zero() {
        worker_tasks.push(spawn_gc(state.clone(), stop_rx.clone()));
    }
    let mut stop_for_server = stop_rx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut stop_for_grace = stop_rx.clone();
    use warp::Filter as _;
    if let Some(metrics_addr) = state.config.metrics_listen {
        let scrape = tokio::net::TcpListener::bind(metrics_addr).await?;
        tracing::info!(addr = %scrape.local_addr()?, "serving /metrics without a key");
        let mut stop = stop_rx.clone();
        let only = http::request_id::traced(
            http::metrics_route(&state, true)
                .or(warp::any().map(|| {
                    http::ApiError::NotFound("only /metrics is served here".into()).into_response()
                }))
                .unify(),
        );
        worker_tasks.push(tokio::spawn(
            warp::serve(only)
                .incoming(scrape)
                .graceful(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .run(),
        ));
    }
    let app = http::request_id::traced(
        http::metrics_route(&state, false)
            .or(http::health_routes(&state))
            .unify()
            .or(ui::with_ui(state.clone(), http::routes(state)))
            .unify(),
    );
    let server = warp::serve(app)
        .incoming(listener)
        .graceful(async move {
            let _ = stop_for_server.wait_for(|stop| *stop).await;
        })
        .run();
    tokio::select! {
        () = server => {}
        () = async {
            let _ = stop_for_grace.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!(
                "requests still running {} s after the stop; cut off",
                SHUTDOWN_GRACE.as_secs()
            );
        }
    }
    workers::join_all(worker_tasks, Duration::from_secs(10)).await;
    Ok(())
}
