//! Real-browser capture: headless Chromium driven through chromedriver.
//!
//! One [`Browser`] owns one chromedriver process (on a free loopback port,
//! in its own process group) and a small pool of browser sessions that are
//! reused across captures. [`Browser::capture`] takes a URL and a
//! [`CaptureConfig`] and returns a PNG and a log:
//!
//! ```no_run
//! # async fn demo() -> Result<(), dpxdt_core::capture::CaptureError> {
//! use dpxdt_core::CaptureConfig;
//! use dpxdt_core::capture::{Browser, BrowserOptions};
//!
//! let browser = Browser::launch(BrowserOptions::default()).await?;
//! let shot = browser.capture("http://127.0.0.1:8000/", &CaptureConfig::default()).await?;
//! std::fs::write("home.png", &shot.png).unwrap();
//! browser.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Each capture runs in a browser context of its own, made ahead of it and
//! disposed after it: no storage, cookie, cache entry, service worker or
//! open connection passes from one capture (one build's page) to the next
//! in the same session.
//!
//! What a capture does, in order: set up its fresh page (blocked URLs,
//! extra headers, user agent and languages, time zone, locale, media
//! features, viewport, pixel ratio, touch, white background; most of it
//! carried over from the previous capture while the page was made),
//! install the prelude for the config's clock, seed, locale and
//! virtual-time budget, set the config's cookies, load the page, wait until
//! it is settled (in the page and its same-origin frames: document
//! complete, no pending fetch/XHR, images in view decoded, web fonts
//! loaded, no timer due within the virtual-time budget, quiet for a
//! moment; stragglers are abandoned after `resourceTimeoutMs`), freeze it
//! (below) and apply `hideSelectors` and `injectCss`, run `injectJs`, wait
//! for `waitForSelector`, paint `maskSelectors`, wait `delayMs`, stop the
//! page's scripts and take the screenshot.
//!
//! Full-page shots keep the viewport at its configured size, so `100vh`,
//! `position: fixed` and `sticky` lay out as in a browser window scrolled
//! to the top; the screenshot reaches below the viewport. Shots taller than
//! 8,192 px are taken in tiles and stitched (pixel-exact: each tile is a
//! clip of the same rendered page). A shot is cut at 100 megapixels.
//!
//! # Determinism
//! By default nothing of this machine reaches the page, in every frame
//! (iframes included, before any page script runs; the prelude is
//! `js/prelude.js`, plain JavaScript for any engine):
//! - virtual time: `Date`, `Date.now()`, `performance.now()` start at the
//!   config's `clock` (default [`DEFAULT_CLOCK`](crate::config::DEFAULT_CLOCK))
//!   and 1000, and move only as timers run. `setTimeout`, `setInterval`,
//!   `requestAnimationFrame` (a frame every 16 ms) and
//!   `requestIdleCallback` run in order of their due time, as fast as the
//!   page allows, until none is due within `settleTimeMs`; time moves only
//!   while the document is loaded and no request (body included), image
//!   or font is pending;
//! - `Math.random`, `crypto.getRandomValues` and `crypto.randomUUID`,
//!   seeded with `randomSeed` (default 0);
//! - the time zone, locale (`navigator.language(s)`, `Intl`,
//!   `Accept-Language`) and media features, set through CDP `Emulation`
//!   from the config's fields and their defaults, never from `TZ`, `LANG`
//!   or the browser's own settings;
//! - CSS animations and transitions (they jump to their end), in shadow
//!   roots too (the freeze stylesheet is adopted by every shadow root made
//!   with `attachShadow`, open or closed), running Web Animations
//!   (finished), the text caret (invisible), marquees (stopped as they are
//!   inserted);
//! - animated GIF, APNG, WebP and AVIF `<img>`s and CSS backgrounds show
//!   their first frame (decoded with `ImageDecoder`; needs the image to be
//!   readable by the page, i.e. same-origin or CORS-enabled), `<video>`s
//!   are paused on their first frame or poster and never autoplay;
//! - web fonts, images in view and requests are awaited in the page and in
//!   its same-origin frames.
//!
//! Not frozen: `event.timeStamp`, timers in Web Workers, declarative
//! closed shadow roots, animated backgrounds of pseudo-elements, and the
//! content of cross-origin frames beyond the prelude (they are asked to
//! freeze, not awaited). `"clock": "real"` gives the page the real clock,
//! real timers and unseeded `crypto` back. `dpxdt stability URL` shows
//! what still changes on a given page.
//!
//! Defaults: viewport 1280x800, full page, white background, resource
//! timeout 10 s, whole-capture timeout 30 s. Each capture is tried up to
//! [`BrowserOptions::attempts`] times when the failure may be transient.
//!
//! Every process is killed when the `Browser` is dropped or shut down, and
//! also when this process exits for any reason (see `process.rs`). The
//! browser's work runs on its own thread, so a `Browser` can be shared by
//! tests that each run their own tokio runtime (e.g. in a `static`).
//!
//! Every request of the page (documents, redirects, subresources, fetch,
//! XHR, WebSockets, iframes) goes through a filtering proxy that enforces
//! [`BrowserOptions::network`], each request checked on its own (the proxy
//! carries one request per connection); refusals are named in the log, and
//! a refused page fails with [`CaptureError::Refused`]. chromedriver's port
//! is never reachable from a page.
//!
//! `injectHeaders` go only with requests to the host they name (`"*"`:
//! the page's own host), and `httpUserName` / `httpPassword` only to the
//! page's own host, up front as `Authorization: Basic`: the requests that
//! need them are paused through a DevTools connection of our own (CDP
//! `Fetch`) and continued with the headers added, so a third-party script
//! or image host never sees them. `injectHeadersAllHosts: true` sends the
//! page host's headers and the credentials with every request instead.

mod chromium;
mod devtools;
mod engines;
mod firefox;
mod headers;
mod js;
mod pool;
pub(crate) mod process;
mod proxy;
mod shot;
mod steps;

pub use process::GroupKiller;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;

pub use crate::config::Engine;
use crate::config::{CaptureConfig, ConfigError};
use crate::diff::Region;
use crate::netpolicy::NetworkPolicy;
use pool::Inner;

/// Longest wait for an idle session before a capture gives up.
const SESSION_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Longest wait for a session to move to a fresh browser context after a
/// capture; a session that takes longer is replaced.
const RENEW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One screenshot and what happened while taking it.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The PNG bytes.
    pub png: Vec<u8>,
    /// A human-readable log: steps with timings, the HTTP status, blocked
    /// patterns, abandoned resources, page errors.
    pub log: String,
    /// A CSS selector per region of [`Probe::locate`]: the smallest
    /// element covering it, `None` where no single element does.
    pub located: Vec<Option<String>>,
    /// With [`Probe::links`]: the absolute http(s) URLs the rendered page
    /// links to (fragments dropped), in its frames and `<noscript>` too.
    pub links: Vec<String>,
}

/// What [`Browser::capture_with`] reads from the page besides the
/// screenshot, just before it would be taken.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Regions (page pixels) whose covering element to name in
    /// [`Capture::located`]: how `dpxdt stability` says what changed.
    pub locate: Vec<Region>,
    /// Collect the page's links into [`Capture::links`]: how `site_diff`
    /// crawls what the browser sees.
    pub links: bool,
    /// Take no screenshot ([`Capture::png`] is left empty).
    pub no_screenshot: bool,
}

/// Why a capture or the browser failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// chromedriver or Chromium could not be started.
    #[error("cannot start the browser: {doing}{}", caused(.source))]
    Launch {
        /// The step that failed.
        doing: String,
        /// The error beneath, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The capture config is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The URL is not an http(s) URL.
    #[error("invalid url {url}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The page did not load (connection refused, DNS failure, ...).
    #[error("page {url} did not load: {reason}")]
    Load {
        /// The URL captured.
        url: String,
        /// The browser's reason, e.g. `net::ERR_CONNECTION_REFUSED`.
        reason: String,
    },
    /// The capture network policy refused the page (or the page it
    /// redirected to).
    #[error("page {url} was refused by the capture network policy: {reason}")]
    Refused {
        /// The URL captured.
        url: String,
        /// Why, e.g. "127.0.0.1 is 127.0.0.1: this machine (loopback; ...)".
        reason: String,
    },
    /// The server answered with an HTTP error status.
    #[error("page {url} answered HTTP {status}")]
    HttpStatus {
        /// The URL captured.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The whole capture took longer than its timeout (`timeoutMs`).
    #[error("capture of {url} timed out after {timeout_ms} ms")]
    Timeout {
        /// The URL captured.
        url: String,
        /// The timeout that passed.
        timeout_ms: u64,
    },
    /// `waitForSelector` matched nothing in time, or a selector is invalid.
    #[error("{0}")]
    Selector(String),
    /// `injectJs` threw.
    #[error("injectJs failed: {0}")]
    Script(String),
    /// The browser or chromedriver failed in a way not listed above.
    #[error("browser error: {doing}{}", caused(.source))]
    Browser {
        /// The step that failed, or what went wrong.
        doing: String,
        /// The error beneath, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The browser was shut down.
    #[error("the browser is shut down")]
    Closed,
}

/// Any error, boxed: the cause kept inside a [`CaptureError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn caused(source: &Option<BoxError>) -> String {
    source
        .as_ref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default()
}

impl CaptureError {
    /// The browser could not be started: `doing` says what went wrong.
    pub fn launch(doing: impl Into<String>) -> Self {
        CaptureError::Launch {
            doing: doing.into(),
            source: None,
        }
    }

    /// The browser could not be started: `doing` failed with `source`.
    pub fn launch_from(doing: impl Into<String>, source: impl Into<BoxError>) -> Self {
        CaptureError::Launch {
            doing: doing.into(),
            source: Some(source.into()),
        }
    }

    /// The browser failed: `doing` says what went wrong.
    pub fn browser(doing: impl Into<String>) -> Self {
        CaptureError::Browser {
            doing: doing.into(),
            source: None,
        }
    }

    /// The browser failed: `doing` failed with `source`.
    pub fn browser_from(doing: impl Into<String>, source: impl Into<BoxError>) -> Self {
        CaptureError::Browser {
            doing: doing.into(),
            source: Some(source.into()),
        }
    }

    /// Whether trying again may help (a refused connection or timeout may be
    /// transient; a bad config or an HTTP 404 is not).
    pub fn is_retryable(&self) -> bool {
        match self {
            CaptureError::Load { .. }
            | CaptureError::Timeout { .. }
            | CaptureError::Browser { .. } => true,
            CaptureError::HttpStatus { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// The future a [`Capturer`] returns.
pub type CaptureFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Capture, CaptureError>> + Send + 'a>>;

/// Something that turns a URL and a config into a screenshot: the seam
/// between the capture engine and its users (local mode, the server's
/// capture worker, the check API). [`Browser`] is the implementation.
pub trait Capturer: Send + Sync {
    /// Captures `url` as `config` says.
    fn capture<'a>(&'a self, url: &'a str, config: &'a CaptureConfig) -> CaptureFuture<'a>;

    /// Captures `url` once per config of `configs` (the modes of one page),
    /// each result as [`Capturer::capture`] would give it. By default one
    /// capture after another; [`Browser`] takes modes that differ only in
    /// media features from one load where the page cannot tell.
    fn capture_modes<'a>(&'a self, url: &'a str, configs: &'a [CaptureConfig]) -> ModesFuture<'a> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(configs.len());
            for config in configs {
                out.push(self.capture(url, config).await);
            }
            out
        })
    }
}

/// The future [`Capturer::capture_modes`] returns.
pub type ModesFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Vec<Result<Capture, CaptureError>>> + Send + 'a>,
>;

impl Capturer for Browser {
    fn capture<'a>(&'a self, url: &'a str, config: &'a CaptureConfig) -> CaptureFuture<'a> {
        Box::pin(Browser::capture(self, url, config))
    }

    fn capture_modes<'a>(&'a self, url: &'a str, configs: &'a [CaptureConfig]) -> ModesFuture<'a> {
        Box::pin(Browser::capture_modes(self, url, configs))
    }
}

/// Refuses a URL that is not http, https or file.
fn check_url(url: &str) -> Result<(), CaptureError> {
    let parsed = url::Url::parse(url).map_err(|e| CaptureError::Url {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https" | "file") {
        return Err(CaptureError::Url {
            url: url.to_string(),
            reason: format!("scheme {} is not http, https or file", parsed.scheme()),
        });
    }
    Ok(())
}

/// Whether `next` asks for the page `prev` captured with other media
/// features only, and nothing that acts on the loaded page (`injectJs`,
/// `waitForSelector`, `maskSelectors`: done once, for the first load).
fn media_only_change(prev: &CaptureConfig, next: &CaptureConfig) -> bool {
    let bare = |c: &CaptureConfig| CaptureConfig {
        color_scheme: None,
        reduced_motion: None,
        forced_colors: None,
        ..c.clone()
    };
    bare(prev) == bare(next)
        && prev.media_features() != next.media_features()
        && next.inject_js.is_none()
        && next.wait_for_selector.is_none()
        && next.mask_selectors.is_empty()
}

/// How to start the browser.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// Chromium binary; default `$DPXDT_CHROMIUM`, else Chromium's headless
    /// shell `/usr/bin/chromium-headless-shell` when installed (it starts
    /// faster and loads pages faster than the full browser, and renders the
    /// same pixels), else `/usr/bin/chromium`.
    pub chromium: PathBuf,
    /// chromedriver binary; default `$DPXDT_CHROMEDRIVER` or `/usr/bin/chromedriver`.
    pub chromedriver: PathBuf,
    /// Firefox binary; default `$DPXDT_FIREFOX`, else `/usr/bin/firefox-esr`
    /// when installed, else `/usr/bin/firefox`.
    pub firefox: PathBuf,
    /// geckodriver binary; default `$DPXDT_GECKODRIVER`, else the one in
    /// `/usr/local/bin` or `/usr/bin`, on `PATH` or in cargo's bin directory.
    pub geckodriver: PathBuf,
    /// Engines started by [`Browser::launch`], so that a broken install
    /// fails there; default Chromium. Any other engine starts at its first
    /// capture.
    pub engines: Vec<Engine>,
    /// Most browser sessions used at once (= parallel captures); default 1.
    /// Sessions are started on first use and then reused.
    pub sessions: usize,
    /// Attempts per capture for retryable failures; default 2.
    pub attempts: u32,
    /// Extra Chromium command-line flags.
    pub extra_args: Vec<String>,
    /// Which addresses pages may reach; default [`NetworkPolicy::local`]
    /// (a server uses [`NetworkPolicy::server`]). chromedriver's port is
    /// refused whatever this says.
    pub network: NetworkPolicy,
    /// How to run the browser when this process runs as root, where
    /// Chromium's sandbox cannot start; default [`AsRoot::NoSandbox`] (a
    /// server uses [`AsRoot::Unprivileged`]). Ignored for other users.
    pub as_root: AsRoot,
}

/// How the browser runs when this process runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsRoot {
    /// chromedriver and Chromium run as the unprivileged user `nobody`,
    /// with Chromium's sandbox on. A page that escaped its renderer would
    /// still be `nobody` in a sandbox. Needs unprivileged user namespaces
    /// (Chromium's sandbox); without them the browser does not start and
    /// the error says so.
    Unprivileged,
    /// Chromium runs as root with its sandbox off: for pages one trusts,
    /// as in local mode and `cargo test`.
    #[default]
    NoSandbox,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        let env_path = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        BrowserOptions {
            chromium: env_path("DPXDT_CHROMIUM", default_chromium()),
            chromedriver: env_path("DPXDT_CHROMEDRIVER", "/usr/bin/chromedriver"),
            firefox: env_path("DPXDT_FIREFOX", default_firefox()),
            geckodriver: std::env::var_os("DPXDT_GECKODRIVER")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(default_geckodriver),
            engines: vec![Engine::Chromium],
            sessions: 1,
            attempts: 2,
            extra_args: Vec::new(),
            network: NetworkPolicy::local(),
            as_root: AsRoot::default(),
        }
    }
}

/// Firefox ESR (Debian's `firefox-esr`) when installed, else `firefox`.
fn default_firefox() -> &'static str {
    const ESR: &str = "/usr/bin/firefox-esr";
    if Path::new(ESR).exists() {
        ESR
    } else {
        "/usr/bin/firefox"
    }
}

/// geckodriver in `/usr/local/bin` or `/usr/bin` (where every user may
/// run it, the unprivileged one a server's browser runs as included), else
/// on `PATH`, else in cargo's bin directory (where `cargo install
/// geckodriver` puts it).
fn default_geckodriver() -> PathBuf {
    let system = ["/usr/local/bin/geckodriver", "/usr/bin/geckodriver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if let Some(found) = system {
        return found;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("geckodriver"))
            .find(|p| p.is_file())
    });
    let in_cargo = || {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        Some(home.join("bin/geckodriver")).filter(|p| p.is_file())
    };
    on_path
        .or_else(in_cargo)
        .unwrap_or_else(|| PathBuf::from("geckodriver"))
}

/// What to install for `engine`, when its browser or driver is missing.
pub fn install_hint(engine: Engine, options: &BrowserOptions) -> Option<String> {
    let missing = |p: &Path| !p.is_file();
    match engine {
        Engine::Chromium if missing(&options.chromium) => Some(format!(
            "{} is not installed (apt-get install chromium, or scripts/deps.sh)",
            options.chromium.display()
        )),
        Engine::Chromium if missing(&options.chromedriver) => Some(format!(
            "{} is not installed (apt-get install chromium-driver, or scripts/deps.sh)",
            options.chromedriver.display()
        )),
        Engine::Firefox if missing(&options.firefox) => Some(format!(
            "{} is not installed (apt-get install firefox-esr, or scripts/deps.sh)",
            options.firefox.display()
        )),
        Engine::Firefox if missing(&options.geckodriver) => Some(format!(
            "{} is not installed (cargo install geckodriver --locked, or scripts/deps.sh)",
            options.geckodriver.display()
        )),
        _ => None,
    }
}

/// The engines whose browser and driver are installed, as `options` names them.
pub fn installed_engines(options: &BrowserOptions) -> Vec<Engine> {
    [Engine::Chromium, Engine::Firefox]
        .into_iter()
        .filter(|e| install_hint(*e, options).is_none())
        .collect()
}

/// A start failure, with what to install when that is the cause.
fn installing(engine: Engine, error: &CaptureError, options: &BrowserOptions) -> String {
    match install_hint(engine, options) {
        Some(hint) => hint,
        None => error.to_string(),
    }
}

/// The headless shell when it is installed, else the full browser.
fn default_chromium() -> &'static str {
    const SHELL: &str = "/usr/bin/chromium-headless-shell";
    if std::path::Path::new(SHELL).exists() {
        SHELL
    } else {
        "/usr/bin/chromium"
    }
}

/// A running chromedriver with a pool of reusable headless Chromium sessions.
///
/// Cheap to share by reference across tasks: [`Browser::capture`] takes
/// `&self` and runs up to [`BrowserOptions::sessions`] captures at once.
pub struct Browser {
    /// Each engine's pool, started on first use (or at launch, for
    /// [`BrowserOptions::engines`]).
    pools: HashMap<Engine, tokio::sync::OnceCell<Result<Arc<Inner>, String>>>,
    options: BrowserOptions,
    runtime: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver_url", &self.driver_url())
            .field("sessions", &self.options.sessions)
            .finish()
    }
}

impl Browser {
    /// Starts chromedriver and one browser session (so a broken Chromium
    /// install fails here, not at the first capture).
    pub async fn launch(options: BrowserOptions) -> Result<Browser, CaptureError> {
        let (handle_tx, handle_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("dpxdt-browser".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = stop_rx.await;
                });
            })
            .map_err(|e| CaptureError::launch_from("cannot start the browser thread", e))?;
        let runtime = handle_rx
            .await
            .map_err(|_| CaptureError::launch("the browser thread died"))?
            .map_err(|e| CaptureError::launch_from("cannot start the browser's runtime", e))?;

        let mut pools = std::collections::HashMap::new();
        for engine in Engine::ALL {
            pools.insert(engine, tokio::sync::OnceCell::new());
        }
        let browser = Browser {
            pools,
            options: options.clone(),
            runtime,
            stop: Some(stop_tx),
        };
        for engine in options.engines.iter().copied() {
            // Dropping the browser on failure kills what did start.
            browser.pool(engine).await?;
        }
        Ok(browser)
    }

    /// The pool of `engine`'s sessions, started on first use. A start that
    /// failed fails every capture in that engine with the same error.
    async fn pool(&self, engine: Engine) -> Result<Arc<Inner>, CaptureError> {
        let cell = self.pools.get(&engine).expect("a cell per engine");
        let started = cell
            .get_or_init(|| async {
                let options = self.options.clone();
                let launched = self
                    .runtime
                    .spawn(async move { Inner::launch(engine, options).await })
                    .await;
                match launched {
                    Ok(Ok(inner)) => Ok(inner),
                    Ok(Err(e)) => Err(format!(
                        "{engine}: {}",
                        installing(engine, &e, &self.options)
                    )),
                    Err(e) => Err(format!("{engine}: the start-up task failed: {e}")),
                }
            })
            .await;
        started.clone().map_err(CaptureError::launch)
    }

    /// chromedriver's address (`http://127.0.0.1:<port>`), for logs; empty
    /// when Chromium has not been started.
    pub fn driver_url(&self) -> &str {
        self.pools
            .get(&Engine::Chromium)
            .and_then(|cell| cell.get())
            .and_then(|started| started.as_ref().ok())
            .map_or("", |inner| inner.driver_url.as_str())
    }

    /// Captures `url` with `config`, retrying retryable failures up to
    /// [`BrowserOptions::attempts`] times in all.
    pub async fn capture(
        &self,
        url: &str,
        config: &CaptureConfig,
    ) -> Result<Capture, CaptureError> {
        self.capture_with(url, config, &Probe::default()).await
    }

    /// [`Browser::capture`], reading what `probe` asks for from the page.
    pub async fn capture_with(
        &self,
        url: &str,
        config: &CaptureConfig,
        probe: &Probe,
    ) -> Result<Capture, CaptureError> {
        config.validate()?;
        check_url(url)?;
        if !config.modes.is_empty() {
            return Err(crate::config::ConfigError::Invalid {
                field: "modes",
                reason: "a config with modes stands for one capture per mode: \
                         capture each of its variants() (or use capture_modes)"
                    .into(),
            }
            .into());
        }
        let inner = self.pool(config.engine()).await?;
        let url = url.to_string();
        let config = config.clone();
        let probe = probe.clone();
        let task = self
            .runtime
            .spawn(async move { inner.capture_with_retries(&url, &config, &probe).await });
        // A caller that gives up (a worker whose lease ran out, a timeout
        // around this call) cancels the capture, which frees its session.
        let _cancel = AbortOnDrop(task.abort_handle());
        task.await
            .map_err(|e| CaptureError::browser_from("capture task failed", e))?
    }

    /// Captures `url` once per config of `configs` (the modes of one page),
    /// in order, each result as [`Browser::capture`] would give it. A mode
    /// that differs from the one before it only in its media features
    /// (`colorScheme`, `reducedMotion`, `forcedColors`) is taken from the
    /// page already loaded, with the new features applied and the page
    /// settled again, when the page cannot tell the difference (see
    /// `Session::media_blind`); any other mode gets a load of its own.
    pub async fn capture_modes(
        &self,
        url: &str,
        configs: &[CaptureConfig],
    ) -> Vec<Result<Capture, CaptureError>> {
        let mut out: Vec<Result<Capture, CaptureError>> = Vec::with_capacity(configs.len());
        let mut i = 0;
        while i < configs.len() {
            let reusable = configs
                .get(i + 1)
                .is_some_and(|next| media_only_change(&configs[i], next));
            let inner = match self.pool(configs[i].engine()).await {
                Ok(inner) if reusable && inner.engine == Engine::Chromium => inner,
                _ => {
                    out.push(self.capture(url, &configs[i]).await);
                    i += 1;
                    continue;
                }
            };
            // A run of modes one load may serve: in one task, so a
            // caller that gives up frees the session.
            let mut run = vec![configs[i].clone()];
            while let Some(next) = configs.get(i + run.len()) {
                if !media_only_change(&run[run.len() - 1], next) {
                    break;
                }
                run.push(next.clone());
            }
            // What a capture of its own would refuse is refused by one.
            if check_url(url).is_err() || run.iter().any(|c| c.validate().is_err()) {
                out.push(self.capture(url, &configs[i]).await);
                i += 1;
                continue;
            }
            let (target, configs_of_run) = (url.to_string(), run.clone());
            let task = self
                .runtime
                .spawn(async move { inner.capture_one_load(&target, &configs_of_run).await });
            let _cancel = AbortOnDrop(task.abort_handle());
            let results = match task.await {
                Ok(results) => results,
                Err(e) => vec![Err(CaptureError::browser_from("capture task failed", e))],
            };
            // What the shared load did not give is captured on its own.
            let mut results = results.into_iter();
            for (k, config) in run.iter().enumerate() {
                match results.next() {
                    Some(Ok(c)) => out.push(Ok(c)),
                    Some(Err(e)) if k == 0 => out.push(Err(e)),
                    _ => out.push(self.capture(url, config).await),
                }
            }
            i += run.len();
        }
        out
    }

    /// Kills chromedriver and its browsers and removes their profiles
    /// (what dropping the `Browser` does; this spells it out). Browsers are
    /// not asked to quit politely: there is nothing of theirs to keep, and
    /// a polite quit takes seconds.
    pub async fn shutdown(self) {
        drop(self);
    }
}

/// Aborts a task when dropped (a no-op once it has finished).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        for inner in self.pools.values().filter_map(|cell| cell.get()).flatten() {
            inner.kill();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
