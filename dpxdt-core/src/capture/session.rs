//! One browser session and the steps of a capture in it.
//!
//! Each capture runs in a browser context of its own (CDP
//! `Target.createBrowserContext`), made ahead of it, switched to once the
//! previous capture is done and disposed after its own capture, so no
//! storage, cookie, cache entry, service worker or connection passes from
//! one capture (one build) to the next. chromedriver navigates the page;
//! every other command goes through our own DevTools session on it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use thirtyfour::prelude::*;

use super::devtools::DevTools;
use super::headers::HeaderRules;
use super::process::is_root;
use super::proxy::FilterProxy;
use super::{AsRoot, BrowserOptions, Capture, CaptureError, Probe, js};
use crate::config::{CaptureConfig, DEFAULT_MASK_COLOR};
use crate::diff::{DEFAULT_MAX_PIXELS, Image, decode_png, encode_rgba_png};

/// How long the page must stay settled before the screenshot.
const QUIET_MS: u64 = 30;

/// Longest wait for a new browser to give us a DevTools connection and a
/// first page (our own DevTools commands have no timeout of their own).
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times a command cut off by the page navigating is sent again.
const NAVIGATION_RETRIES: u32 = 3;

/// The window a capture's page opens in (as `--window-size` says for the
/// first one); each capture sets its own viewport.
const WINDOW: (u32, u32) = (1280, 800);

/// Settings of one page that are applied to the next one ahead of its
/// capture, which most likely asks for the same (captures of a build share
/// their config), so that it need not send them. Not extra headers: they
/// may hold credentials, and belong to one capture. Not stopped scripts:
/// every capture starts them again.
const CARRIED_SETTINGS: [&str; 8] = [
    "Network.setUserAgentOverride",
    "Emulation.setDeviceMetricsOverride",
    "Emulation.setDefaultBackgroundColorOverride",
    "Network.setBlockedURLs",
    "Emulation.setTimezoneOverride",
    "Emulation.setLocaleOverride",
    "Emulation.setEmulatedMedia",
    "Emulation.setTouchEmulationEnabled",
];

/// Tallest piece taken in one screenshot; taller shots are stitched from
/// tiles (GPU-backed Chromium cannot capture much more than 16,384 px).
pub(crate) const TILE_HEIGHT: u32 = 8192;

/// A rectangle of the page, in CSS pixels from its top-left corner.
#[derive(Debug, Clone, Copy)]
struct Clip {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

/// The tallest full-page shot, in CSS pixels, of a page `width` CSS pixels
/// wide at `scale` device pixels each: at most [`DEFAULT_MAX_PIXELS`]
/// device pixels, what the diff accepts by default.
fn max_shot_height(width: u32, scale: f64) -> u32 {
    let css_pixels = DEFAULT_MAX_PIXELS as f64 / (scale * scale);
    (css_pixels / f64::from(width.max(1))).min(f64::from(u32::MAX)) as u32
}

/// A Chromium session with our request-tracking prelude installed.
pub(crate) struct Session {
    /// Always `Some` until the session is quit or dropped.
    driver: Option<WebDriver>,
    default_user_agent: String,
    /// Our own DevTools connection to the browser: it makes and disposes
    /// the capture's browser contexts and carries the capture's commands.
    devtools: DevTools,
    /// The browser context and page the next (or current) capture runs in.
    page: Page,
    /// The context and page for the capture after it, being made (from
    /// the moment the current capture's page has loaded).
    spare: Mutex<Option<SpareTask>>,
    /// The page-load timeout given to chromedriver (a setting of the
    /// session, not of a page).
    page_timeout: Mutex<Option<Duration>>,
    /// The proxy all of this browser's traffic goes through.
    proxy: FilterProxy,
    /// Where the current capture's extra headers go.
    header_rules: Arc<Mutex<HeaderRules>>,
}

/// A browser context of its own and the page in it, where one capture
/// runs: disposed after it with all the page left (storage, cookies, cache,
/// service workers, open connections).
struct Page {
    context: String,
    /// Our DevTools session on the page, which every CDP command of the
    /// capture goes through (a round trip on our own connection is cheaper
    /// than one through chromedriver's `goog:cdp`).
    session: String,
    /// Settings in effect in this page, by CDP method: a capture only
    /// sends what differs (each call is a round trip).
    applied: Mutex<HashMap<&'static str, Value>>,
    /// The prelude installed for new documents: its source and identifier.
    prelude: Mutex<Option<(String, String)>>,
    /// The hook that adds extra headers, set up when first needed.
    fetch: tokio::sync::Mutex<Option<FetchHook>>,
    /// How long moving to it (and applying the settings carried over)
    /// took: after the previous capture, so not part of the next capture's
    /// time unless that one had to wait for it.
    made_in: Duration,
}

/// A browser context with a blank page and our DevTools session on it,
/// made ahead of the capture that will use it: a new context needs a
/// renderer process of its own, and starting one is most of what a fresh
/// context costs. It is started once the previous capture's page has
/// loaded, so that the renderer starts while that page settles (mostly
/// waiting) rather than while the next page loads.
struct Spare {
    context: String,
    target: String,
    session: String,
    /// Settings applied to it while it was made.
    applied: HashMap<&'static str, Value>,
    /// The prelude installed in it: its source and identifier.
    prelude: Option<(String, String)>,
}

/// What a spare page is given while it is made: the settings and prelude
/// of the capture before it, which the next one most likely shares.
#[derive(Default)]
struct Carried {
    settings: Vec<(&'static str, Value)>,
    prelude: Option<String>,
}

/// A [`Spare`] being made.
type SpareTask = tokio::task::JoinHandle<Result<Spare, CaptureError>>;

impl Spare {
    /// Makes one with `carried` applied. The context takes the browser's
    /// proxy settings (its command line), as no `proxyServer` is given, so
    /// its pages go through the filtering proxy too; it is disposed if our
    /// DevTools connection closes first (the session is being dropped).
    async fn make(devtools: DevTools, carried: Carried) -> Result<Spare, CaptureError> {
        let made = devtools
            .send(
                None,
                "Target.createBrowserContext",
                json!({ "disposeOnDetach": true }),
            )
            .await?;
        let context = id_in(&made, "browserContextId")?;
        let made = devtools
            .send(
                None,
                "Target.createTarget",
                json!({
                    "url": "about:blank",
                    "browserContextId": context,
                    "width": WINDOW.0,
                    "height": WINDOW.1,
                }),
            )
            .await?;
        let target = id_in(&made, "targetId")?;
        let attached = devtools
            .send(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await?;
        let session = id_in(&attached, "sessionId")?;
        // Sent together (the page handles them in order): one wait for
        // the new renderer instead of one per command.
        let mut commands: Vec<(&str, Value)> = vec![
            ("Page.enable", json!({})),
            ("Network.enable", json!({})),
            ("Network.setCacheDisabled", json!({ "cacheDisabled": true })),
        ];
        commands.extend(carried.settings.iter().map(|(m, p)| (*m, p.clone())));
        if let Some(source) = &carried.prelude {
            commands.push((
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": source }),
            ));
        }
        let replies = futures_util::future::try_join_all(
            commands
                .into_iter()
                .map(|(method, params)| devtools.send(Some(&session), method, params)),
        )
        .await?;
        let prelude = match (carried.prelude, replies.last()) {
            (Some(source), Some(reply)) => Some((source, id_in(reply, "identifier")?)),
            _ => None,
        };
        let mut applied = fresh_page_settings();
        applied.extend(carried.settings);
        Ok(Spare {
            context,
            target,
            session,
            applied,
            prelude,
        })
    }

    /// Starts making one in the background. Once it is made, chromedriver
    /// is asked for its windows, which makes it attach to the new page now
    /// (about 10 ms) rather than when the session switches to it.
    fn start(devtools: &DevTools, driver: &WebDriver, carried: Carried) -> SpareTask {
        let (devtools, driver) = (devtools.clone(), driver.clone());
        tokio::spawn(async move {
            let spare = Spare::make(devtools, carried).await?;
            // Only a head start: if it fails, the switch attaches.
            let _ = driver.windows().await;
            Ok(spare)
        })
    }

    /// The one `task` made.
    async fn finish(task: SpareTask) -> Result<Spare, CaptureError> {
        task.await
            .map_err(|e| CaptureError::browser_from("making a browser context", e))?
    }
}

impl Page {
    /// What of this page's settings the next page is given (see
    /// [`CARRIED_SETTINGS`]), and its prelude.
    fn carried(&self) -> Carried {
        let applied = self.applied.lock().expect("applied");
        Carried {
            settings: CARRIED_SETTINGS
                .iter()
                .filter_map(|m| Some((*m, applied.get(m)?.clone())))
                .collect(),
            prelude: self
                .prelude
                .lock()
                .expect("prelude")
                .as_ref()
                .map(|(source, _)| source.clone()),
        }
    }

    /// Makes the page of `spare` chromedriver's current window (the one
    /// it navigates).
    async fn open(driver: &WebDriver, spare: Spare) -> Result<Page, CaptureError> {
        // chromedriver names a window by its target's id.
        driver
            .switch_to_window(WindowHandle::from(spare.target.clone()))
            .await
            .map_err(|e| CaptureError::browser_from("switching to a fresh page", e))?;
        Ok(Page {
            context: spare.context,
            session: spare.session,
            applied: Mutex::new(spare.applied),
            prelude: Mutex::new(spare.prelude),
            fetch: Default::default(),
            made_in: Duration::ZERO,
        })
    }
}

/// Settings a fresh page starts with, as [`Session::cdp_setting`] would
/// send them: a capture that asks for these sends nothing.
fn fresh_page_settings() -> HashMap<&'static str, Value> {
    HashMap::from([
        ("Network.setBlockedURLs", json!({ "urls": [] })),
        ("Network.setExtraHTTPHeaders", json!({ "headers": {} })),
        (
            "Emulation.setTouchEmulationEnabled",
            json!({ "enabled": false, "maxTouchPoints": 1 }),
        ),
        (
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": false }),
        ),
    ])
}

/// The string `field` of a CDP result.
fn id_in(result: &Value, field: &str) -> Result<String, CaptureError> {
    result[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| CaptureError::browser(format!("no {field} in {result}")))
}

/// What pauses the requests of the capture's page that need extra headers
/// (through our DevTools session on it) and continues them with the
/// headers added.
struct FetchHook {
    devtools: DevTools,
    session: String,
    /// `Fetch.enable` patterns in effect (empty: disabled).
    patterns: Vec<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FetchHook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FetchHook {
    /// Listens for paused requests of `session` (which pauses none until
    /// [`FetchHook::set_patterns`]).
    fn new(devtools: &DevTools, session: &str, rules: Arc<Mutex<HeaderRules>>) -> FetchHook {
        let mut events = devtools.events();
        let (conn, ours) = (devtools.clone(), session.to_string());
        let task = tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                if event.session.as_deref() != Some(ours.as_str())
                    || event.method != "Fetch.requestPaused"
                {
                    continue;
                }
                let Some(continued) = continued_request(&event.params, &rules) else {
                    continue;
                };
                let (conn, ours) = (conn.clone(), ours.clone());
                // Each on its own, so one slow answer holds up no other request;
                // a request the page dropped meanwhile cannot be continued.
                tokio::spawn(async move {
                    let _ = conn
                        .send(Some(&ours), "Fetch.continueRequest", continued)
                        .await;
                });
            }
        });
        FetchHook {
            devtools: devtools.clone(),
            session: session.to_string(),
            patterns: Vec::new(),
            task,
        }
    }

    /// Pauses the requests matching `patterns` from now on (none: stops).
    async fn set_patterns(&mut self, patterns: Vec<String>) -> Result<(), CaptureError> {
        if self.patterns == patterns {
            return Ok(());
        }
        let (method, params) = if patterns.is_empty() {
            ("Fetch.disable", json!({}))
        } else {
            let list: Vec<Value> = patterns
                .iter()
                .map(|p| json!({ "urlPattern": p, "requestStage": "Request" }))
                .collect();
            ("Fetch.enable", json!({ "patterns": list }))
        };
        self.devtools
            .send(Some(&self.session), method, params)
            .await?;
        self.patterns = patterns;
        Ok(())
    }
}

/// The `Fetch.continueRequest` parameters for a paused request: its
/// headers with the extra ones `rules` gives for its URL.
fn continued_request(paused: &Value, rules: &Mutex<HeaderRules>) -> Option<Value> {
    let id = paused["requestId"].as_str()?;
    let url = paused["request"]["url"].as_str().unwrap_or_default();
    let extra = rules.lock().expect("header rules").for_url(url);
    let mut continued = json!({ "requestId": id });
    if !extra.is_empty() {
        let mut headers: Vec<Value> = paused["request"]["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| !extra.keys().any(|k| k.eq_ignore_ascii_case(name)))
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        headers.extend(
            extra
                .iter()
                .map(|(name, value)| json!({ "name": name, "value": value })),
        );
        continued["headers"] = json!(headers);
    }
    Some(continued)
}

impl Drop for Session {
    fn drop(&mut self) {
        // Forget the session instead of thirtyfour's blocking quit: we only
        // drop sessions when chromedriver is being killed anyway.
        if let Some(d) = self.driver.take() {
            let _ = d.leak();
        }
    }
}

/// Forgets a WebDriver handle when dropped (a no-op after a clean quit).
struct ForgetOnDrop(Option<WebDriver>);

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = d.leak();
        }
    }
}

impl Session {
    /// Starts a headless Chromium session with a fresh profile.
    pub(crate) async fn start(
        driver_url: &str,
        options: &BrowserOptions,
    ) -> Result<Session, CaptureError> {
        let mut args: Vec<String> = [
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--hide-scrollbars",
            "--mute-audio",
            "--force-color-profile=srgb",
            "--font-render-hinting=none",
            "--window-size=1280,800",
            // Every frame in the page's own renderer, so the prelude
            // (frozen clock, seeded random) runs in cross-site iframes too.
            "--disable-site-isolation-trials",
            // RenderDocument off: a navigation keeps the frame's renderer
            // objects, which saves about 10 ms a capture in a fresh context
            // (benches/README.md).
            "--disable-features=IsolateOrigins,site-per-process,RenderDocument",
            // Videos start paused on their first frame or poster.
            "--autoplay-policy=user-gesture-required",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !is_headless_shell(&options.chromium) {
            // The full browser; the headless shell is headless only.
            args.push("--headless=new".into());
        }
        let unprivileged = is_root() && options.as_root == AsRoot::Unprivileged;
        if std::env::var_os("DPXDT_NO_SANDBOX").is_some()
            || (is_root() && options.as_root == AsRoot::NoSandbox)
        {
            args.push("--no-sandbox".into());
        }
        // All traffic through the filtering proxy, loopback included; no
        // WebRTC path around it; chromedriver never reachable.
        let mut policy = options.network.clone();
        if let Some(port) = url::Url::parse(driver_url).ok().and_then(|u| u.port()) {
            policy.denied_loopback_ports.push(port);
        }
        let proxy = FilterProxy::start(&policy)
            .await
            .map_err(|e| CaptureError::launch_from("cannot start the filtering proxy", e))?;
        args.push(format!("--proxy-server=http://127.0.0.1:{}", proxy.port()));
        args.push("--proxy-bypass-list=<-loopback>".into());
        args.push("--force-webrtc-ip-handling-policy=disable_non_proxied_udp".into());
        args.extend(options.extra_args.iter().cloned());
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "eager",
            "goog:chromeOptions": {
                "binary": options.chromium.to_string_lossy(),
                "args": args,
            },
        });
        let Value::Object(map) = caps else {
            unreachable!("a json object literal")
        };
        let driver = WebDriver::new(driver_url, Capabilities::from(map))
            .await
            .map_err(|e| {
                let doing = if unprivileged {
                    "cannot start Chromium as user nobody with its sandbox on \
                     (the sandbox needs unprivileged user namespaces: \
                     sysctl kernel.unprivileged_userns_clone=1, or a container \
                     allowed to create them; otherwise run the server as a \
                     non-root user, or pass --allow-root-capture to run the \
                     browser as root without its sandbox)"
                } else {
                    "cannot start Chromium"
                };
                CaptureError::launch_from(doing, e)
            })?;
        let (devtools, page) = match first_page(&driver).await {
            Ok(opened) => opened,
            Err(e) => {
                quit_in_background(driver);
                return Err(CaptureError::launch_from("cannot set up Chromium", e));
            }
        };
        let mut session = Session {
            driver: Some(driver),
            default_user_agent: String::new(),
            spare: Mutex::default(),
            devtools,
            page,
            page_timeout: Mutex::default(),
            proxy,
            header_rules: Default::default(),
        };
        if let Err(e) = session.init().await {
            session.discard();
            return Err(CaptureError::launch_from("cannot set up Chromium", e));
        }
        Ok(session)
    }

    async fn init(&mut self) -> Result<(), CaptureError> {
        let ua = self
            .call(js::USER_AGENT, &[])
            .await?
            .map_err(CaptureError::browser)?;
        self.default_user_agent = ua.as_str().unwrap_or_default().to_string();
        Ok(())
    }

    /// Moves to a fresh browser context for the next capture (the spare
    /// one), and disposes of the one the last capture ran in with all its
    /// page left. Run after each capture, before the session serves another.
    pub(crate) async fn renew(&mut self) -> Result<(), CaptureError> {
        let start = Instant::now();
        let pending = self.spare.lock().expect("spare").take();
        let spare = match pending {
            Some(task) => Spare::finish(task).await?,
            None => Spare::make(self.devtools.clone(), self.page.carried()).await?,
        };
        let fresh = Page::open(self.d(), spare).await?;
        let old = std::mem::replace(&mut self.page, fresh);
        // Disposed after the switch, which it would slow down (the browser
        // shuts the old page's renderer down meanwhile).
        self.dispose_in_background(&old.context);
        self.page.made_in = start.elapsed();
        Ok(())
    }

    /// Starts making the spare context for the next capture, unless one is
    /// being made already.
    fn prepare_spare(&self) {
        let mut spare = self.spare.lock().expect("spare");
        if spare.is_none() {
            *spare = Some(Spare::start(&self.devtools, self.d(), self.page.carried()));
        }
    }

    /// Disposes of a browser context; nothing waits for it.
    fn dispose_in_background(&self, context: &str) {
        let devtools = self.devtools.clone();
        let params = json!({ "browserContextId": context });
        tokio::spawn(async move {
            let disposed = devtools
                .send(None, "Target.disposeBrowserContext", params)
                .await;
            if let Err(e) = disposed {
                // It goes when the session does (`disposeOnDetach`).
                tracing::debug!(error = %e, "cannot dispose a browser context");
            }
        });
    }

    /// Sends a CDP command to the capture's page, through our own DevTools
    /// session on it. A command cut off by a navigation (a page that moves
    /// itself on while it settles) is sent again in the new document once
    /// chromedriver has waited for it to load, as chromedriver does with
    /// its own commands.
    async fn cdp(&self, method: &str, params: Value) -> Result<Value, CaptureError> {
        let mut navigations = 0;
        loop {
            let sent = self
                .devtools
                .send(Some(&self.page.session), method, params.clone())
                .await;
            match sent {
                Err(e) if e.aborted_by_navigation() && navigations < NAVIGATION_RETRIES => {
                    navigations += 1;
                    self.wait_for_navigation().await?;
                }
                sent => return Ok(sent?),
            }
        }
    }

    /// Loads `url` in the page and waits for its `DOMContentLoaded` (the
    /// "eager" page load strategy), at most `timeout`. Through our own
    /// DevTools session rather than chromedriver's navigation command,
    /// which costs 10 to 30 ms more on a fresh page; chromedriver follows
    /// the navigation from the page's events all the same.
    async fn navigate(&self, url: &str, timeout: Duration) -> Result<(), CaptureError> {
        let mut events = self.devtools.events();
        let load_error = |reason: String| CaptureError::Load {
            url: url.to_string(),
            reason,
        };
        let navigated = self.cdp("Page.navigate", json!({ "url": url })).await?;
        if let Some(text) = navigated["errorText"].as_str().filter(|t| !t.is_empty()) {
            return Err(load_error(text.to_string()));
        }
        let session = self.page.session.as_str();
        let loaded = async {
            loop {
                match events.recv().await {
                    Ok(e)
                        if e.session.as_deref() == Some(session)
                            && e.method == "Page.domContentEventFired" =>
                    {
                        return Ok(());
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(CaptureError::browser("the DevTools connection closed"));
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, loaded).await {
            Ok(done) => done,
            Err(_) => Err(load_error("the page did not finish loading in time".into())),
        }
    }

    /// Waits until a navigation the page has started is done (by the page
    /// load strategy): chromedriver waits so before any command of its own.
    async fn wait_for_navigation(&self) -> Result<(), CaptureError> {
        self.d().current_url().await.map_err(browser_err)?;
        Ok(())
    }

    /// Sends a settings command unless the same one is already in effect.
    async fn cdp_setting(&self, method: &'static str, params: Value) -> Result<(), CaptureError> {
        let applied = &self.page.applied;
        if applied.lock().expect("applied").get(method) == Some(&params) {
            return Ok(());
        }
        applied.lock().expect("applied").remove(method);
        self.cdp(method, params.clone()).await?;
        applied.lock().expect("applied").insert(method, params);
        Ok(())
    }

    /// Installs the prelude for `config` (clock, seed, locale, budget) for the
    /// documents loaded from now on, replacing another one.
    async fn install_prelude(&self, config: &CaptureConfig) -> Result<(), CaptureError> {
        let source = js::prelude(&js::PreludeParams::of(config), js::FREEZE_CSS);
        self.set_prelude(source).await
    }

    /// Installs `source` as the prelude of the page's new documents, unless
    /// it already is.
    async fn set_prelude(&self, source: String) -> Result<(), CaptureError> {
        let installed = &self.page.prelude;
        let old = {
            let current = installed.lock().expect("prelude");
            match &*current {
                Some((same, _)) if *same == source => return Ok(()),
                Some((_, id)) => Some(id.clone()),
                None => None,
            }
        };
        if let Some(id) = old {
            self.cdp(
                "Page.removeScriptToEvaluateOnNewDocument",
                json!({ "identifier": id }),
            )
            .await?;
            *installed.lock().expect("prelude") = None;
        }
        let reply = self
            .cdp(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": source }),
            )
            .await?;
        let id = id_in(&reply, "identifier")?;
        *installed.lock().expect("prelude") = Some((source, id));
        Ok(())
    }

    /// Calls the JavaScript function expression `function` with `args` in
    /// the page and awaits the promise it may return. The inner error is
    /// what the script threw.
    async fn call(
        &self,
        function: &str,
        args: &[Value],
    ) -> Result<Result<Value, String>, CaptureError> {
        let args = Value::Array(args.to_vec());
        let reply = self
            .cdp(
                "Runtime.evaluate",
                json!({
                    "expression": format!("({function}).apply(null, {args})"),
                    "awaitPromise": true,
                    "returnByValue": true,
                }),
            )
            .await?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Ok(Err(exception_message(details)));
        }
        Ok(Ok(reply["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null)))
    }

    /// Calls a script that returns an array of strings (or nulls).
    async fn call_strings(
        &self,
        function: &str,
        args: &[Value],
    ) -> Result<Vec<Option<String>>, CaptureError> {
        let found = self
            .call(function, args)
            .await?
            .map_err(CaptureError::browser)?;
        Ok(found
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Pauses requests matching `patterns` and adds what `rules` says
    /// (no patterns: no request is paused).
    async fn route_headers(
        &self,
        rules: HeaderRules,
        patterns: Vec<String>,
    ) -> Result<(), CaptureError> {
        *self.header_rules.lock().expect("header rules") = rules;
        let mut fetch = self.page.fetch.lock().await;
        if patterns.is_empty() && fetch.as_ref().is_none_or(|f| f.patterns.is_empty()) {
            return Ok(());
        }
        let rules = &self.header_rules;
        let hook = fetch.get_or_insert_with(|| {
            FetchHook::new(&self.devtools, &self.page.session, Arc::clone(rules))
        });
        hook.set_patterns(patterns).await
    }

    fn d(&self) -> &WebDriver {
        self.driver.as_ref().expect("a live session has a driver")
    }

    /// Quits the session in the background (used when it may be broken).
    pub(crate) fn discard(mut self) {
        if let Some(driver) = self.driver.take() {
            quit_in_background(driver);
        }
    }

    /// Forgets the session without talking to chromedriver (which is being killed).
    pub(crate) fn abandon(self) {
        drop(self);
    }

    /// Takes one screenshot of `url` as `config` says, and reads what
    /// `probe` asks for just before it.
    pub(crate) async fn capture(
        &self,
        url: &str,
        config: &CaptureConfig,
        probe: &Probe,
    ) -> Result<Capture, CaptureError> {
        let start = Instant::now();
        let mut log = String::new();
        let mut step = |log: &mut String, what: &str| {
            let _ = writeln!(log, "[{:>5} ms] {what}", start.elapsed().as_millis());
        };
        step(&mut log, &format!("capture {url}"));
        let page_timeout = config.page_timeout();
        let resource_timeout = config.resource_timeout();

        // The page is fresh, in a browser context of its own: nothing an
        // earlier capture's page stored, cached or connected is there.
        step(
            &mut log,
            &format!(
                "fresh browser context (switched to in {} ms after the last capture)",
                self.page.made_in.as_millis()
            ),
        );
        self.proxy.take_refusals();
        let blocked = config.blocked_url_patterns();
        self.cdp_setting("Network.setBlockedURLs", json!({ "urls": blocked }))
            .await?;
        // Extra headers and credentials go only where they belong (the
        // host they name; credentials to the page's own host), unless the
        // config asks for the old everywhere behaviour.
        let rules = HeaderRules::new(url, config);
        let everywhere = if config.inject_headers_all_hosts {
            rules.for_url(url)
        } else {
            Default::default()
        };
        let patterns = if config.inject_headers_all_hosts {
            Vec::new()
        } else {
            rules.patterns()
        };
        if !rules.is_empty() {
            let where_to = if config.inject_headers_all_hosts {
                "every host (injectHeadersAllHosts)".to_string()
            } else {
                patterns.join(" ")
            };
            step(&mut log, &format!("extra headers for {where_to}"));
        }
        self.cdp_setting(
            "Network.setExtraHTTPHeaders",
            json!({ "headers": everywhere }),
        )
        .await?;
        self.route_headers(rules, patterns).await?;
        self.emulate_environment(config).await?;
        self.set_scripts_enabled(true).await?;
        self.install_prelude(config).await?;
        self.cdp_setting(
            "Emulation.setDefaultBackgroundColorOverride",
            json!({ "color": { "r": 255, "g": 255, "b": 255, "a": 1 } }),
        )
        .await?;
        for cookie in &config.cookies {
            let mut c = json!({
                "name": cookie.name,
                "value": cookie.value,
                "path": cookie.path.clone().unwrap_or_else(|| "/".into()),
            });
            match &cookie.domain {
                Some(d) => c["domain"] = json!(d),
                None => c["url"] = json!(url),
            }
            if let Some(s) = cookie.secure {
                c["secure"] = json!(s);
            }
            if let Some(h) = cookie.httponly {
                c["httpOnly"] = json!(h);
            }
            if let Some(e) = cookie.expires {
                c["expires"] = json!(e);
            }
            let ok = self.cdp("Network.setCookie", c).await?;
            if ok.get("success") == Some(&json!(false)) {
                return Err(CaptureError::browser(format!(
                    "cookie {} was refused by the browser (check its domain)",
                    cookie.name
                )));
            }
        }
        if !config.cookies.is_empty() {
            step(&mut log, &format!("set {} cookie(s)", config.cookies.len()));
        }

        // Load.
        if *self.page_timeout.lock().expect("page timeout") != Some(page_timeout) {
            self.d()
                .set_page_load_timeout(page_timeout)
                .await
                .map_err(browser_err)?;
            *self.page_timeout.lock().expect("page timeout") = Some(page_timeout);
        }
        self.navigate(url, page_timeout).await?;
        step(&mut log, "navigated");
        self.prepare_spare();
        // Settle, then freeze and decorate: one call.
        let user_css = config.inject_css.clone().unwrap_or_default();
        let settled = self
            .call(
                &js::SETTLE_THEN_STABILIZE,
                &[
                    json!(resource_timeout.as_millis() as u64),
                    json!(QUIET_MS),
                    json!(js::FREEZE_CSS),
                    json!(config.hide_selectors),
                    json!(user_css),
                ],
            )
            .await?
            .map_err(CaptureError::browser)?;
        let mut refused = self.proxy.take_refusals();
        let page = [Some(url), settled["href"].as_str()].map(|u| u.and_then(authority));
        if let Some(r) = refused
            .iter()
            .find(|r| page.iter().flatten().any(|a| *a == r.authority))
        {
            let (url, reason) = (url.to_string(), r.reason.clone());
            return Err(if r.by_policy {
                CaptureError::Refused { url, reason }
            } else {
                CaptureError::Load { url, reason }
            });
        }
        if settled["href"]
            .as_str()
            .is_some_and(|h| h.starts_with("chrome-error://"))
        {
            return Err(CaptureError::Load {
                url: url.to_string(),
                reason: "the browser showed an error page".into(),
            });
        }
        let status = settled["status"].as_u64().unwrap_or(0) as u16;
        step(
            &mut log,
            &format!(
                "loaded: HTTP {status}, settled after {} ms",
                settled["waitedMs"]
            ),
        );
        if status >= 400 {
            return Err(CaptureError::HttpStatus {
                url: url.to_string(),
                status,
            });
        }
        log_abandoned(&mut log, &settled, &mut step);
        for d in settled["dialogs"].as_array().into_iter().flatten() {
            step(
                &mut log,
                &format!("dismissed dialog: {}", d.as_str().unwrap_or("?")),
            );
        }
        if let Some(e) = settled["stabilizeError"].as_str() {
            return Err(CaptureError::Selector(e.to_string()));
        }
        let stabilized_height = settled["height"].clone();

        if let Some(code) = &config.inject_js {
            // The code is a function body, as in the original (`return` works).
            self.call(&format!("function () {{\n{code}\n}}"), &[])
                .await?
                .map_err(CaptureError::Script)?;
            step(&mut log, "ran injectJs");
        }
        if let Some(sel) = &config.wait_for_selector {
            // Leave time to report the miss before the whole capture times out.
            let remaining = page_timeout
                .saturating_sub(start.elapsed())
                .saturating_sub(Duration::from_millis(500));
            let found = self
                .call(
                    js::WAIT_FOR_SELECTOR,
                    &[json!(sel), json!(remaining.as_millis() as u64)],
                )
                .await?
                .map_err(CaptureError::browser)?;
            match found.as_str() {
                Some("found") => step(&mut log, &format!("waitForSelector {sel:?} matched")),
                Some("invalid") => {
                    return Err(CaptureError::Selector(format!(
                        "invalid waitForSelector {sel:?}"
                    )));
                }
                _ => {
                    return Err(CaptureError::Selector(format!(
                        "waitForSelector {sel:?} matched nothing after {} ms (the page's \
                         timers ran for settleTimeMs, {} ms of virtual time, and wait \
                         meanwhile)",
                        remaining.as_millis(),
                        config.settle_time_ms()
                    )));
                }
            }
        }
        let page_changed = config.inject_js.is_some() || config.wait_for_selector.is_some();
        if page_changed {
            self.settle(resource_timeout).await?;
        }

        // Size the shot.
        let doc_height = if page_changed {
            self.doc_height().await?
        } else {
            stabilized_height
                .as_u64()
                .unwrap_or(0)
                .min(u64::from(u32::MAX)) as u32
        };
        let (clip, cut) = shot_clip(config, doc_height);
        if let Some(note) = cut {
            step(&mut log, &note);
        }

        if !config.mask_selectors.is_empty() {
            let color = config.mask_color.as_deref().unwrap_or(DEFAULT_MASK_COLOR);
            let unmatched = self
                .call(js::MASK, &[json!(config.mask_selectors), json!(color)])
                .await?
                .map_err(CaptureError::Selector)?;
            if let Some(list) = unmatched.as_array().filter(|l| !l.is_empty()) {
                step(
                    &mut log,
                    &format!("maskSelectors matched nothing: {list:?}"),
                );
            }
        }
        if let Some(ms) = config.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            step(&mut log, &format!("waited delayMs {ms}"));
        }

        let located = if probe.locate.is_empty() {
            Vec::new()
        } else {
            let boxes: Vec<[u32; 4]> = probe
                .locate
                .iter()
                .map(|r| [r.x1, r.y1, r.x2, r.y2])
                .collect();
            self.call_strings(js::LOCATE, &[json!(boxes)]).await?
        };
        let links = if probe.links {
            let found = self.call_strings(&js::LINKS, &[]).await?;
            found.into_iter().flatten().collect()
        } else {
            Vec::new()
        };
        if probe.no_screenshot {
            step(&mut log, "no screenshot asked for");
            return Ok(Capture {
                png: Vec::new(),
                log,
                located,
                links,
            });
        }

        let png = self.take_shot(config, clip).await?;
        step(
            &mut log,
            &format!(
                "screenshot {}x{} ({} bytes)",
                clip.width,
                clip.height,
                png.len()
            ),
        );
        refused.extend(self.proxy.take_refusals());
        for r in &refused {
            let what = if r.by_policy {
                "refused by the network policy"
            } else {
                "failed to load"
            };
            step(&mut log, &format!("{what}: {} ({})", r.target, r.reason));
        }
        if let Some(errors) = settled["errors"].as_array().filter(|e| !e.is_empty()) {
            for e in errors {
                step(
                    &mut log,
                    &format!("page error: {}", e.as_str().unwrap_or("?")),
                );
            }
        }
        Ok(Capture {
            png,
            log,
            located,
            links,
        })
    }

    /// Takes the screenshot of the settled, decorated page. Its scripts are
    /// stopped first, so nothing changes it meanwhile. A page that
    /// navigates itself (a timer setting `location`) while Chromium takes
    /// the screenshot would leave `Page.captureScreenshot` unanswered for
    /// good; one it started just before is waited for (by chromedriver,
    /// which tracks navigations closely: the page's own DevTools events did
    /// not tell a pending one reliably).
    async fn take_shot(&self, config: &CaptureConfig, clip: Clip) -> Result<Vec<u8>, CaptureError> {
        self.set_scripts_enabled(false).await?;
        self.wait_for_navigation().await?;
        let viewport = config.viewport();
        let beyond = clip.x.saturating_add(clip.width) > viewport.width
            || clip.y.saturating_add(clip.height) > viewport.height;
        self.screenshot(clip, config.scale(), beyond).await
    }

    /// Whether the loaded page would look the same loaded afresh with other
    /// media features: none of its scripts asked for a media feature
    /// (`matchMedia`), it has no canvas (drawn by script, perhaps in the
    /// colours of the moment) and no frame it cannot be asked about.
    pub(crate) async fn media_blind(&self) -> Result<bool, CaptureError> {
        let blind = self
            .call(&js::MEDIA_BLIND, &[])
            .await?
            .map_err(CaptureError::browser)?;
        Ok(blind == Value::Bool(true))
    }

    /// Takes the page the last capture loaded again with `config`'s media
    /// features, for a mode that differs from that capture only in them
    /// (the caller checks, and [`Session::media_blind`]): no second load.
    pub(crate) async fn recapture_media(
        &self,
        config: &CaptureConfig,
    ) -> Result<Capture, CaptureError> {
        let start = Instant::now();
        let mut log = String::new();
        let mut step = |log: &mut String, what: &str| {
            let _ = writeln!(log, "[{:>5} ms] {what}", start.elapsed().as_millis());
        };
        let features: Vec<String> = config
            .media_features()
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect();
        step(
            &mut log,
            &format!(
                "the page of the capture before, with {} (no second load)",
                features.join(", ")
            ),
        );
        self.set_media(config).await?;
        self.set_scripts_enabled(true).await?;
        let timeout = config.resource_timeout().as_millis() as u64;
        let settled = self
            .call(
                &js::SETTLE_THEN_STABILIZE,
                &[
                    json!(timeout),
                    json!(QUIET_MS),
                    json!(""),
                    json!([]),
                    json!(""),
                ],
            )
            .await?
            .map_err(CaptureError::browser)?;
        step(
            &mut log,
            &format!("settled after {} ms", settled["waitedMs"]),
        );
        log_abandoned(&mut log, &settled, &mut step);
        let height = settled["height"]
            .as_u64()
            .unwrap_or(0)
            .min(u64::from(u32::MAX)) as u32;
        let (clip, cut) = shot_clip(config, height);
        if let Some(note) = cut {
            step(&mut log, &note);
        }
        let png = self.take_shot(config, clip).await?;
        step(
            &mut log,
            &format!(
                "screenshot {}x{} ({} bytes)",
                clip.width,
                clip.height,
                png.len()
            ),
        );
        Ok(Capture {
            png,
            log,
            located: Vec::new(),
            links: Vec::new(),
        })
    }

    /// Takes the screenshot of `clip` (page coordinates) at `scale` device
    /// pixels per CSS pixel. A clip more than [`TILE_HEIGHT`] device pixels
    /// tall is taken in tiles and stitched; `beyond` lets the clip reach
    /// past the viewport without resizing it.
    async fn screenshot(
        &self,
        clip: Clip,
        scale: f64,
        beyond: bool,
    ) -> Result<Vec<u8>, CaptureError> {
        // A multiple of 8 CSS pixels: whole device pixels at every seam, as
        // the scale is a multiple of 1/8.
        let tile_css = (((f64::from(TILE_HEIGHT) / scale).floor() as u32) / 8 * 8).max(8);
        if clip.height <= tile_css {
            return self.screenshot_tile(clip, beyond).await;
        }
        let mut rgba = Vec::new();
        let (mut width, mut height) = (None, 0u32);
        let mut top = 0;
        while top < clip.height {
            let rows = tile_css.min(clip.height - top);
            let tile = Clip {
                y: clip.y + top,
                height: rows,
                ..clip
            };
            let png = self.screenshot_tile(tile, true).await?;
            let image = decode_png(&png, "screenshot tile", DEFAULT_MAX_PIXELS)
                .map_err(|e| CaptureError::browser_from("decoding a screenshot tile", e))?;
            if *width.get_or_insert(image.width()) != image.width() {
                return Err(CaptureError::browser(format!(
                    "a screenshot tile came back {} pixels wide, not {}",
                    image.width(),
                    width.unwrap_or_default()
                )));
            }
            rgba.extend_from_slice(image.as_rgba());
            height += image.height();
            top += rows;
        }
        let image = Image::from_rgba(width.unwrap_or_default(), height, rgba)
            .expect("tiles add up to the clip");
        let mut png = Vec::new();
        encode_rgba_png(&image, &mut png)
            .map_err(|e| CaptureError::browser_from("encoding the screenshot", e))?;
        Ok(png)
    }

    async fn screenshot_tile(&self, clip: Clip, beyond: bool) -> Result<Vec<u8>, CaptureError> {
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "fromSurface": true,
                    "optimizeForSpeed": true,
                    "captureBeyondViewport": beyond,
                    "clip": { "x": clip.x, "y": clip.y, "width": clip.width, "height": clip.height, "scale": 1 },
                }),
            )
            .await?;
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| CaptureError::browser("screenshot without data"))?;
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| CaptureError::browser_from("screenshot is not base64", e))
    }

    /// Tells the browser what machine the page believes it is on, as the
    /// config says and never as this machine is: the user agent and
    /// `Accept-Language`, the time zone, the locale (for `Intl`), the CSS
    /// media features, the screen (viewport, pixel ratio, mobile) and touch.
    async fn emulate_environment(&self, config: &CaptureConfig) -> Result<(), CaptureError> {
        let ua = config
            .user_agent()
            .map_or_else(|| self.default_user_agent.clone(), str::to_string);
        self.cdp_setting(
            "Network.setUserAgentOverride",
            json!({ "userAgent": ua, "acceptLanguage": config.accept_language() }),
        )
        .await?;
        self.cdp_setting(
            "Emulation.setTimezoneOverride",
            json!({ "timezoneId": config.timezone() }),
        )
        .await
        .map_err(|e| CaptureError::browser_from(format!("time zone {}", config.timezone()), e))?;
        self.set_locale(config.locale()).await?;
        self.set_media(config).await?;
        let viewport = config.viewport();
        self.cdp_setting(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": viewport.width,
                "height": viewport.height,
                "deviceScaleFactor": config.scale(),
                "mobile": config.is_mobile(),
            }),
        )
        .await?;
        self.cdp_setting(
            "Emulation.setTouchEmulationEnabled",
            json!({ "enabled": config.is_mobile(), "maxTouchPoints": if config.is_mobile() { 5 } else { 1 } }),
        )
        .await
    }

    /// Sets the CSS media features `config` asks for (all of them, so the
    /// browser's own never show through).
    async fn set_media(&self, config: &CaptureConfig) -> Result<(), CaptureError> {
        let features: Vec<Value> = config
            .media_features()
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        self.cdp_setting(
            "Emulation.setEmulatedMedia",
            json!({ "media": "", "features": features }),
        )
        .await
    }

    /// Sets the page's locale. Chromium refuses to replace one locale
    /// override by another, so a different one is cleared first.
    async fn set_locale(&self, locale: &str) -> Result<(), CaptureError> {
        const METHOD: &str = "Emulation.setLocaleOverride";
        let wanted = json!({ "locale": locale });
        let current = self
            .page
            .applied
            .lock()
            .expect("applied")
            .get(METHOD)
            .cloned();
        if current.as_ref() == Some(&wanted) {
            return Ok(());
        }
        if current.is_some() {
            self.page.applied.lock().expect("applied").remove(METHOD);
            self.cdp(METHOD, json!({})).await?;
        }
        self.cdp_setting(METHOD, wanted)
            .await
            .map_err(|e| CaptureError::browser_from(format!("locale {locale}"), e))
    }

    /// Lets the page's scripts run, or stops them (CDP evaluation still works).
    async fn set_scripts_enabled(&self, enabled: bool) -> Result<(), CaptureError> {
        self.cdp_setting(
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": !enabled }),
        )
        .await
    }

    async fn settle(&self, resource_timeout: Duration) -> Result<Value, CaptureError> {
        self.call(
            &js::SETTLE,
            &[json!(resource_timeout.as_millis() as u64), json!(QUIET_MS)],
        )
        .await?
        .map_err(CaptureError::browser)
    }

    async fn doc_height(&self) -> Result<u32, CaptureError> {
        let v = self
            .call(js::DOC_HEIGHT, &[])
            .await?
            .map_err(CaptureError::browser)?;
        Ok(v.as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32)
    }
}

/// The rectangle to take: `clipRect`, or the viewport's width and the
/// document's height (full page, cut at [`max_shot_height`]: the note
/// says so) or the viewport's. The viewport keeps its size, so `100vh` and
/// fixed elements lay out as in a browser window; the shot reaches beyond.
fn shot_clip(config: &CaptureConfig, doc_height: u32) -> (Clip, Option<String>) {
    if let Some(c) = config.clip_rect {
        let clip = Clip {
            x: c.left,
            y: c.top,
            width: c.width,
            height: c.height,
        };
        return (clip, None);
    }
    let viewport = config.viewport();
    let mut height = viewport.height;
    let mut note = None;
    let max = max_shot_height(viewport.width, config.scale());
    if config.full_page() && doc_height > height {
        height = doc_height.min(max);
        if doc_height > max {
            note = Some(format!(
                "page is {doc_height}px high; cut at {max}px ({DEFAULT_MAX_PIXELS} pixels at most)"
            ));
        }
    }
    let clip = Clip {
        x: 0,
        y: 0,
        width: viewport.width,
        height,
    };
    (clip, note)
}

fn log_abandoned(log: &mut String, settled: &Value, step: &mut impl FnMut(&mut String, &str)) {
    if let Some(list) = settled["abandoned"].as_array().filter(|l| !l.is_empty()) {
        let items: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
        step(
            log,
            &format!(
                "gave up waiting (resourceTimeoutMs) for: {}",
                items.join("; ")
            ),
        );
    }
}

/// Our DevTools connection to the browser behind `driver`, and the first
/// page, in a browser context of its own.
async fn first_page(driver: &WebDriver) -> Result<(DevTools, Page), CaptureError> {
    let opened = async {
        let devtools = DevTools::connect(driver).await?;
        let spare = Spare::make(devtools.clone(), Carried::default()).await?;
        let page = Page::open(driver, spare).await?;
        Ok((devtools, page))
    };
    match tokio::time::timeout(SETUP_TIMEOUT, opened).await {
        Ok(opened) => opened,
        Err(_) => Err(CaptureError::browser("the browser did not answer in time")),
    }
}

/// Quits a chromedriver session in the background. Whether the quit
/// succeeds, fails (chromedriver is gone) or is cut off by the runtime
/// shutting down, the handle is then forgotten quietly instead of
/// thirtyfour's blocking fallback on drop. chromedriver runs a session's
/// commands one at a time, so the quit waits for a navigation still in
/// progress (up to the page timeout, at most 600 s): give it that long.
fn quit_in_background(driver: WebDriver) {
    let forget = ForgetOnDrop(Some(driver.clone()));
    tokio::spawn(async move {
        let _forget = forget;
        let _ = tokio::time::timeout(Duration::from_secs(660), driver.quit()).await;
    });
}

/// Whether `chromium` is Chromium's headless shell (`chrome-headless-shell`,
/// Debian's `chromium-headless-shell`) rather than the full browser.
fn is_headless_shell(chromium: &Path) -> bool {
    chromium
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("headless-shell"))
}

/// `host:port` of a URL (no brackets around IPv6 hosts), as the proxy
/// records its refusals.
fn authority(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(format!(
        "{}:{}",
        u.host_str()?.trim_matches(['[', ']']),
        u.port_or_known_default()?
    ))
}

fn browser_err(e: WebDriverError) -> CaptureError {
    CaptureError::browser_from("chromedriver", e)
}

/// What a script threw, from CDP's `exceptionDetails`: the message of an
/// `Error` (its first line, without the `Error: ` prefix), or the thrown value.
fn exception_message(details: &Value) -> String {
    let ex = &details["exception"];
    if let Some(desc) = ex["description"].as_str() {
        let first = desc.lines().next().unwrap_or_default();
        return first.strip_prefix("Error: ").unwrap_or(first).to_string();
    }
    match ex.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(v) if !v.is_null() => v.to_string(),
        _ => details["text"]
            .as_str()
            .unwrap_or("the script failed")
            .to_string(),
    }
}
