//! One browser session and the steps of a capture in it.
//!
//! Each capture runs in a browser context of its own (CDP
//! `Target.createBrowserContext`), made ahead of it, switched to once the
//! previous capture is done and disposed after its own capture, so no
//! storage, cookie, cache entry, service worker or connection passes from
//! one capture (one build) to the next. chromedriver holds the session and
//! follows the page; every command, loading the page included, goes
//! through our own DevTools session on it. Here: the session and the steps
//! of a capture; `context.rs`: the page and the spare one made ahead;
//! `emulate.rs`: the machine the page believes it runs on; `fetch.rs`:
//! extra headers; `shot.rs`: the screenshot.

use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use thirtyfour::prelude::*;

use super::devtools::DevTools;
use super::headers::HeaderRules;
use super::process::is_root;
use super::proxy::FilterProxy;
use super::shot::Clip;
use super::steps::{self, Log};
use super::{AsRoot, BrowserOptions, Capture, CaptureError, Probe, js};
use crate::config::CaptureConfig;

mod context;
mod emulate;
mod fetch;
mod shot;

use context::{Page, Spare, SpareTask, first_page, id_in};
use fetch::FetchHook;

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
        // Until the session below owns it, a start that is cut off (the
        // runtime shutting down while a pool fills in the background)
        // forgets the handle instead of thirtyfour's blocking quit and its
        // warning.
        let mut pending = ForgetOnDrop(Some(driver.clone()));
        let (devtools, page) = match first_page(&driver).await {
            Ok(opened) => opened,
            Err(e) => {
                pending.0.take();
                quit_in_background(driver);
                return Err(CaptureError::launch_from("cannot set up Chromium", e));
            }
        };
        pending.0.take();
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
        let fresh = Page::open(self.d(), &self.devtools, spare).await?;
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

    /// Waits until a navigation the page has started by now is done, as
    /// [`Session::wait_for_navigation`], but asks chromedriver (a round trip
    /// of 15 to 30 ms) only when the page's events tell one is under way:
    /// a command's reply from the page comes after the events of every
    /// navigation it started before.
    async fn wait_for_started_navigation(&self) -> Result<(), CaptureError> {
        self.cdp("Runtime.evaluate", json!({ "expression": "0" }))
            .await?;
        if self.page.navigations.lock().expect("navigations").pending() {
            self.wait_for_navigation().await?;
        }
        Ok(())
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
        let mut log = Log::start();
        log.step(&format!("capture {url}"));
        let page_timeout = config.page_timeout();

        // The page is fresh, in a browser context of its own: nothing an
        // earlier capture's page stored, cached or connected is there.
        log.step(&format!(
            "fresh browser context (switched to in {} ms after the last capture)",
            self.page.made_in.as_millis()
        ));
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
            log.step(&format!("extra headers for {where_to}"));
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
            log.step(&format!("set {} cookie(s)", config.cookies.len()));
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
        log.step("navigated");
        self.prepare_spare();
        // Settle, then freeze and decorate: one call.
        let settled = steps::settle_and_stabilize(self, config, true).await?;
        steps::finish(self, &self.proxy, url, config, probe, settled, log).await
    }

    /// Lets the page's scripts run, or stops them (CDP evaluation still works).
    async fn set_scripts_enabled(&self, enabled: bool) -> Result<(), CaptureError> {
        self.cdp_setting(
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": !enabled }),
        )
        .await
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

impl steps::Page for Session {
    async fn call(
        &self,
        function: &str,
        args: &[Value],
    ) -> Result<Result<Value, String>, CaptureError> {
        Session::call(self, function, args).await
    }

    async fn follow_navigation(&self) -> Result<(), CaptureError> {
        self.wait_for_started_navigation().await
    }

    async fn take_shot(&self, config: &CaptureConfig, clip: Clip) -> Result<Vec<u8>, CaptureError> {
        Session::take_shot(self, config, clip).await
    }
}
