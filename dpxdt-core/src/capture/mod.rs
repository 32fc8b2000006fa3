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

mod devtools;
mod headers;
mod js;
pub(crate) mod process;
mod proxy;
mod session;

pub use process::GroupKiller;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::config::{CaptureConfig, ConfigError};
use crate::diff::Region;
use crate::netpolicy::NetworkPolicy;
use process::{DriverProcess, is_root};
use session::Session;

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
            sessions: 1,
            attempts: 2,
            extra_args: Vec::new(),
            network: NetworkPolicy::local(),
            as_root: AsRoot::default(),
        }
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
    inner: Arc<Inner>,
    runtime: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
}

struct Inner {
    options: BrowserOptions,
    process: Mutex<Option<DriverProcess>>,
    driver_url: String,
    /// Idle sessions. A capture waits here for one; sessions come back
    /// after each capture, and broken ones are replaced in the background.
    pool_tx: mpsc::UnboundedSender<Session>,
    pool_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Session>>,
    /// Why the last session start failed, for a capture that waits in vain.
    last_start_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver_url", &self.inner.driver_url)
            .field("sessions", &self.inner.options.sessions)
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

        let sessions = options.sessions.max(1);
        let opts = options.clone();
        let started = runtime
            .spawn(async move {
                let user =
                    (is_root() && opts.as_root == AsRoot::Unprivileged).then(process::User::nobody);
                let process = DriverProcess::start(&opts.chromedriver, user.as_ref()).await?;
                let first = Session::start(&process.url, &opts).await;
                match first {
                    Ok(s) => Ok((process, s)),
                    Err(e) => {
                        drop(process);
                        Err(e)
                    }
                }
            })
            .await
            .map_err(|e| CaptureError::launch_from("the start-up task failed", e))?;
        let (process, first) = match started {
            Ok(v) => v,
            Err(e) => {
                let _ = stop_tx.send(());
                return Err(e);
            }
        };
        let (pool_tx, pool_rx) = mpsc::unbounded_channel();
        let _ = pool_tx.send(first);
        let inner = Arc::new(Inner {
            options: BrowserOptions {
                sessions,
                ..options
            },
            driver_url: process.url.clone(),
            process: Mutex::new(Some(process)),
            pool_tx,
            pool_rx: tokio::sync::Mutex::new(pool_rx),
            last_start_error: Mutex::new(None),
        });
        // Warm the other sessions up while the caller gets ready.
        for _ in 1..sessions {
            let inner = Arc::clone(&inner);
            runtime.spawn(async move { inner.add_session().await });
        }
        Ok(Browser {
            inner,
            runtime,
            stop: Some(stop_tx),
        })
    }

    /// chromedriver's address (`http://127.0.0.1:<port>`), for logs.
    pub fn driver_url(&self) -> &str {
        &self.inner.driver_url
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
        let inner = Arc::clone(&self.inner);
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
            if !reusable {
                out.push(self.capture(url, &configs[i]).await);
                i += 1;
                continue;
            }
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
            let inner = Arc::clone(&self.inner);
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

/// A session taken from the pool for one capture. Given back or replaced
/// explicitly; dropped without either (the capture was cancelled halfway),
/// it is replaced, since the browser may still be busy with the page.
struct Borrowed<'a> {
    inner: &'a Arc<Inner>,
    session: Option<Session>,
}

impl Borrowed<'_> {
    fn get(&self) -> &Session {
        self.session
            .as_ref()
            .expect("a borrowed session until returned")
    }

    /// Moves the session to a fresh browser context and then puts it back
    /// into the pool (or replaces it, if that fails), in the background:
    /// the capture's caller need not wait for it.
    fn renew_then_give_back(mut self) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        let inner = Arc::clone(self.inner);
        tokio::spawn(async move {
            match tokio::time::timeout(RENEW_TIMEOUT, session.renew()).await {
                Ok(Ok(())) => inner.give_back(session),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot renew a browser session");
                    inner.replace(session);
                }
                Err(_) => {
                    tracing::warn!("renewing a browser session timed out");
                    inner.replace(session);
                }
            }
        });
    }

    /// Quits the session and starts another in its place (as dropping does).
    fn replace(self) {
        drop(self);
    }
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.inner.replace(s);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.inner.kill();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Inner {
    fn kill(&self) {
        if let Ok(mut rx) = self.pool_rx.try_lock() {
            rx.close();
            while let Ok(s) = rx.try_recv() {
                s.abandon();
            }
        }
        if let Some(mut p) = self.process.lock().expect("process").take() {
            p.kill();
        }
    }

    async fn capture_with_retries(
        self: &Arc<Self>,
        url: &str,
        config: &CaptureConfig,
        probe: &Probe,
    ) -> Result<Capture, CaptureError> {
        let attempts = self.options.attempts.max(1);
        let mut earlier = String::new();
        let mut attempt = 1;
        loop {
            match self.capture_once(url, config, probe).await {
                Ok(mut c) => {
                    if !earlier.is_empty() {
                        c.log = format!("{earlier}{}", c.log);
                    }
                    return Ok(c);
                }
                Err(e) if attempt < attempts && e.is_retryable() => {
                    tracing::debug!(url, attempt, error = %e, "capture failed, retrying");
                    earlier.push_str(&format!("attempt {attempt} failed: {e}\n"));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Puts `session` back into the pool (forgets it when the browser is
    /// shutting down).
    fn give_back(&self, session: Session) {
        if let Err(mpsc::error::SendError(s)) = self.pool_tx.send(session) {
            s.abandon();
        }
    }

    /// Quits `session` in the background and starts another into the pool
    /// (only forgets it when the browser is shutting down).
    fn replace(self: &Arc<Self>, session: Session) {
        if self.pool_tx.is_closed() || tokio::runtime::Handle::try_current().is_err() {
            session.abandon();
            return;
        }
        session.discard();
        tokio::spawn(Arc::clone(self).add_session());
    }

    /// Starts one more session into the pool (retrying a little).
    async fn add_session(self: Arc<Self>) {
        for attempt in 0..3 {
            if self.process.lock().expect("process").is_none() {
                return; // shut down
            }
            match Session::start(&self.driver_url, &self.options).await {
                Ok(s) => {
                    // A closed pool means the browser is shutting down.
                    if let Err(mpsc::error::SendError(s)) = self.pool_tx.send(s) {
                        s.abandon();
                    }
                    return;
                }
                Err(e) => {
                    if self.pool_tx.is_closed() || self.process.lock().expect("process").is_none() {
                        // The browser is shutting down.
                        return;
                    }
                    tracing::warn!(attempt, error = %e, "cannot start a browser session");
                    *self.last_start_error.lock().expect("error") = Some(e.to_string());
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Captures `configs[0]` as [`Inner::capture_with_retries`] does, then
    /// each further config (which differs from the one before only in media
    /// features) from the same load while the page cannot tell. Returns the
    /// results it has: fewer than `configs` when the page can tell or a
    /// re-take failed (the caller captures the rest on their own).
    async fn capture_one_load(
        self: &Arc<Self>,
        url: &str,
        configs: &[CaptureConfig],
    ) -> Vec<Result<Capture, CaptureError>> {
        let first = &configs[0];
        let session = match self.borrow().await {
            Ok(s) => s,
            Err(e) => return vec![Err(e)],
        };
        let timeout = first.page_timeout();
        let probe = Probe::default();
        let result = tokio::time::timeout(timeout, session.get().capture(url, first, &probe)).await;
        let mut out = Vec::new();
        let keep = match result {
            Ok(Ok(c)) => {
                out.push(Ok(c));
                true
            }
            Ok(Err(e)) => {
                let keep = e.keeps_session();
                out.push(Err(e));
                keep
            }
            Err(_) => {
                out.push(Err(CaptureError::Timeout {
                    url: url.to_string(),
                    timeout_ms: timeout.as_millis() as u64,
                }));
                false
            }
        };
        let mut broken = !keep;
        if out[0].is_ok() {
            for config in &configs[1..] {
                match session.get().media_blind().await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
                let again = tokio::time::timeout(
                    config.page_timeout(),
                    session.get().recapture_media(config),
                )
                .await;
                match again {
                    Ok(Ok(c)) => out.push(Ok(c)),
                    _ => {
                        broken = true;
                        break;
                    }
                }
            }
        }
        if broken {
            session.replace();
        } else {
            session.renew_then_give_back();
        }
        if out[0].as_ref().is_err_and(|e| e.is_retryable()) {
            // As a capture of its own would be: tried again.
            out[0] = self.capture_with_retries(url, first, &probe).await;
        }
        out
    }

    /// Takes a session from the pool, waiting for a free one.
    async fn borrow(self: &Arc<Self>) -> Result<Borrowed<'_>, CaptureError> {
        // Waiting for a busy pool is queueing, not the page's fault: the
        // capture's own timeout starts once it has a session.
        let mut rx = self.pool_rx.lock().await;
        match tokio::time::timeout(SESSION_WAIT, rx.recv()).await {
            Ok(Some(s)) => Ok(Borrowed {
                inner: self,
                session: Some(s),
            }),
            Ok(None) => Err(CaptureError::Closed),
            Err(_) => {
                let why = self.last_start_error.lock().expect("error").clone();
                Err(CaptureError::browser(format!(
                    "no browser session became free within {} s{}",
                    SESSION_WAIT.as_secs(),
                    why.map(|w| format!(" (last session start failed: {w})"))
                        .unwrap_or_default()
                )))
            }
        }
    }

    async fn capture_once(
        self: &Arc<Self>,
        url: &str,
        config: &CaptureConfig,
        probe: &Probe,
    ) -> Result<Capture, CaptureError> {
        let timeout = config.page_timeout();
        let session = self.borrow().await?;
        let result = tokio::time::timeout(timeout, session.get().capture(url, config, probe)).await;
        let keep = match &result {
            Ok(Ok(_)) => true,
            // A page-level failure leaves a usable session; anything else
            // may have broken it, so it is replaced.
            Ok(Err(e)) => e.keeps_session(),
            Err(_) => false,
        };
        if keep {
            session.renew_then_give_back();
        } else {
            session.replace();
        }
        match result {
            Ok(r) => r,
            Err(_) => Err(CaptureError::Timeout {
                url: url.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }
}

impl CaptureError {
    fn keeps_session(&self) -> bool {
        matches!(
            self,
            CaptureError::Load { .. }
                | CaptureError::Refused { .. }
                | CaptureError::HttpStatus { .. }
                | CaptureError::Selector(_)
                | CaptureError::Script(_)
        )
    }
}
