//! Headless Firefox, driven through WebDriver BiDi.
//!
//! Each session is one Firefox behind a geckodriver of its own (geckodriver
//! serves one session at a time). geckodriver only creates the session;
//! every command then goes over Firefox's BiDi socket, on the same
//! connection type as Chromium's DevTools (`devtools.rs`).
//!
//! Each capture runs in a user context of its own (BiDi's isolated
//! cookie, storage and cache jar), made after the capture before it and
//! removed after its own. The capture's time zone, locale (with
//! `Accept-Language`), user agent, viewport and pixel ratio are set on it
//! through BiDi `emulation` and `browsingContext.setViewport`; the
//! prelude is a preload script of the user context, so it runs in every
//! frame before the page's scripts. Media features are Firefox
//! preferences, set through the browser's privileged realm; a session
//! runs one capture at a time, so they belong to that capture.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::devtools::DevTools;
use super::headers::HeaderRules;
use super::process::{Driver, DriverProcess, User, is_root};
use super::proxy::FilterProxy;
use super::shot::{Clip, shot_data, stitched};
use super::steps::{self, Log};
use super::{AsRoot, BrowserOptions, Capture, CaptureError, Probe, js};
use crate::config::CaptureConfig;

/// Longest wait for geckodriver to start Firefox and answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Firefox preferences of every session: all traffic through the
/// filtering proxy (loopback included), nothing of Firefox's own on the
/// network (updates, telemetry, captive-portal and connectivity checks,
/// safe browsing, prefetching), no scrollbars, no autoplay.
fn prefs() -> Value {
    let mut prefs = serde_json::Map::new();
    let mut set = |name: &str, value: Value| {
        prefs.insert(name.to_string(), value);
    };
    for name in [
        "network.proxy.allow_hijacking_localhost",
        "network.dns.disablePrefetch",
        "layout.testing.scrollbars.always-hidden",
        "privacy.trackingprotection.enabled",
    ] {
        set(name, json!(true));
    }
    for name in [
        "network.captive-portal-service.enabled",
        "network.connectivity-service.enabled",
        "network.prefetch-next",
        "network.predictor.enabled",
        "app.update.auto",
        "app.update.enabled",
        "toolkit.telemetry.enabled",
        "toolkit.telemetry.unified",
        "datareporting.healthreport.uploadEnabled",
        "datareporting.policy.dataSubmissionEnabled",
        "browser.safebrowsing.malware.enabled",
        "browser.safebrowsing.phishing.enabled",
        "browser.safebrowsing.downloads.enabled",
        "browser.safebrowsing.blockedURIs.enabled",
        "extensions.update.enabled",
        "extensions.getAddons.cache.enabled",
        "browser.region.update.enabled",
        "browser.search.update",
        "media.peerconnection.enabled",
        "browser.ping-centre.telemetry",
        "dom.push.enabled",
        "geo.enabled",
    ] {
        set(name, json!(false));
    }
    set("network.proxy.no_proxies_on", json!(""));
    // Every site in the page's own content processes (no process per site),
    // so the prelude runs in cross-site frames too and a fresh user
    // context's first load does not wait for a new process: half its time.
    set("fission.autostart", json!(false));
    // Scrollbars over the page, taking no room (as Chromium's are hidden).
    set("ui.useOverlayScrollbars", json!(1));
    set("network.http.speculative-parallel-limit", json!(0));
    // Block all autoplay: videos start paused on their first frame.
    set("media.autoplay.default", json!(5));
    set(
        "services.settings.server",
        json!("data:,#remote-settings-off"),
    );
    Value::Object(prefs)
}

/// What a capture sets on its user context and tab, carried over to the
/// spare one made for the next capture (which most likely asks the same).
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    timezone: String,
    locale: String,
    user_agent: Option<String>,
    viewport: (u32, u32, f64),
    prelude: String,
}

impl Settings {
    fn of(config: &CaptureConfig) -> Settings {
        let viewport = config.viewport();
        Settings {
            timezone: config.timezone().to_string(),
            locale: config.locale().to_string(),
            user_agent: config.user_agent().map(str::to_string),
            viewport: (viewport.width, viewport.height, config.scale()),
            prelude: js::prelude(&js::PreludeParams::of(config), js::FREEZE_CSS),
        }
    }
}

/// A user context and the tab in it that one capture runs in.
struct Tab {
    user_context: String,
    context: String,
    /// The settings in effect, and the preload script's id.
    applied: Option<(Settings, String)>,
    /// Whether requests to the analytics hosts are paused already.
    intercepting: bool,
}

/// One headless Firefox and the tab of the current capture.
pub(crate) struct Session {
    /// Its geckodriver: killed with Firefox when the session is dropped.
    _process: DriverProcess,
    bidi: DevTools,
    /// The browser window's privileged realm, where preferences are set.
    chrome: String,
    proxy: FilterProxy,
    tab: Tab,
    /// The tab for the next capture, being made (from the moment the
    /// current capture's page has loaded).
    spare: Mutex<Option<tokio::task::JoinHandle<Result<Tab, CaptureError>>>>,
    /// The media preferences in effect (colour scheme, motion, colours).
    media: Mutex<Option<[i64; 3]>>,
    /// User contexts of past captures, still to be removed.
    retired: Mutex<Vec<String>>,
}

impl Session {
    /// Starts geckodriver and a headless Firefox with a fresh profile.
    pub(crate) async fn start(options: &BrowserOptions) -> Result<Session, CaptureError> {
        tokio::time::timeout(START_TIMEOUT, Session::start_in_time(options))
            .await
            .unwrap_or_else(|_| {
                Err(CaptureError::launch(format!(
                    "Firefox did not start within {} s",
                    START_TIMEOUT.as_secs()
                )))
            })
    }

    async fn start_in_time(options: &BrowserOptions) -> Result<Session, CaptureError> {
        let user = (is_root() && options.as_root == AsRoot::Unprivileged).then(User::nobody);
        let process =
            DriverProcess::start(Driver::Geckodriver, &options.geckodriver, user.as_ref()).await?;
        // Neither geckodriver nor Firefox's own socket is ever reachable
        // from a page.
        let mut policy = options.network.clone();
        if let Some(port) = url::Url::parse(&process.url).ok().and_then(|u| u.port()) {
            policy.denied_loopback_ports.push(port);
        }
        policy.denied_loopback_ports.push(process.websocket_port);
        let proxy = FilterProxy::start(&policy)
            .await
            .map_err(|e| CaptureError::launch_from("cannot start the filtering proxy", e))?;
        let through = format!("127.0.0.1:{}", proxy.port());
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "firefox",
            "webSocketUrl": true,
            "pageLoadStrategy": "eager",
            "proxy": { "proxyType": "manual", "httpProxy": through, "sslProxy": through },
            "moz:firefoxOptions": {
                "binary": options.firefox.to_string_lossy(),
                "args": ["-headless"],
                "prefs": prefs(),
            },
        }}});
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| CaptureError::launch_from("cannot make an HTTP client", e))?;
        let created: Value = client
            .post(format!("{}/session", process.url))
            .json(&caps)
            .send()
            .await
            .map_err(|e| CaptureError::launch_from("cannot ask geckodriver for a session", e))?
            .json()
            .await
            .map_err(|e| CaptureError::launch_from("cannot read geckodriver's answer", e))?;
        let socket = created["value"]["capabilities"]["webSocketUrl"]
            .as_str()
            .ok_or_else(|| {
                CaptureError::launch(format!(
                    "cannot start Firefox: {}",
                    created["value"]["message"]
                        .as_str()
                        .unwrap_or("geckodriver named no WebDriver BiDi socket")
                ))
            })?;
        let bidi = DevTools::connect_to(socket).await?;
        let tree = bidi
            .send(
                None,
                "browsingContext.getTree",
                json!({ "moz:scope": "chrome", "maxDepth": 0 }),
            )
            .await?;
        let chrome = tree["contexts"][0]["context"]
            .as_str()
            .ok_or_else(|| CaptureError::launch("Firefox shows no browser window"))?
            .to_string();
        let tab = new_tab(&bidi, None).await?;
        bidi.send(
            None,
            "browsingContext.activate",
            json!({ "context": tab.context }),
        )
        .await?;
        Ok(Session {
            _process: process,
            bidi,
            chrome,
            proxy,
            tab,
            spare: Mutex::new(None),
            media: Mutex::new(None),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// Moves to a fresh user context for the next capture (the spare one)
    /// and removes the one the last capture ran in, with its tab.
    pub(crate) async fn renew(&mut self) -> Result<(), CaptureError> {
        let pending = self.spare.lock().expect("spare").take();
        let fresh = match pending {
            Some(task) => task
                .await
                .map_err(|e| CaptureError::browser_from("making a tab failed", e))??,
            None => new_tab(&self.bidi, None).await?,
        };
        self.send(
            "browsingContext.activate",
            json!({ "context": fresh.context }),
        )
        .await?;
        let old = std::mem::replace(&mut self.tab, fresh);
        // Removed while the next capture's page settles, with the next
        // spare made (not while that page loads, which it would slow).
        self.retired.lock().expect("retired").push(old.user_context);
        Ok(())
    }

    /// Starts making the tab for the next capture, with this capture's
    /// settings, unless one is being made already.
    fn prepare_spare(&self, settings: &Settings) {
        let mut spare = self.spare.lock().expect("spare");
        if spare.is_none() {
            let (bidi, settings) = (self.bidi.clone(), settings.clone());
            let retired = std::mem::take(&mut *self.retired.lock().expect("retired"));
            *spare = Some(tokio::spawn(async move {
                remove_user_contexts(bidi.clone(), retired).await;
                new_tab(&bidi, Some(&settings)).await
            }));
        }
    }

    /// Quits the session (Firefox and its geckodriver are killed).
    pub(crate) fn discard(self) {
        drop(self);
    }

    /// Forgets the session (the same as quitting it: nothing is shared).
    pub(crate) fn abandon(self) {
        drop(self);
    }

    async fn send(&self, method: &str, params: Value) -> Result<Value, CaptureError> {
        Ok(self.bidi.send(None, method, params).await?)
    }

    /// Takes one screenshot of `url` as `config` says.
    pub(crate) async fn capture(
        &self,
        url: &str,
        config: &CaptureConfig,
        probe: &Probe,
    ) -> Result<Capture, CaptureError> {
        let mut log = Log::start();
        log.step(&format!("capture {url}"));
        log.step("fresh user context (Firefox)");
        self.proxy.take_refusals();
        let settings = Settings::of(config);
        let carried = self.tab.applied.as_ref();
        futures_util::future::try_join(
            apply(&self.bidi, &self.tab.user_context, &settings, carried),
            self.set_media(config),
        )
        .await?;
        log.step("settings applied");
        let rules = HeaderRules::new(url, config);
        if !rules.is_empty() {
            // Only with injectHeadersAllHosts (the config says so otherwise).
            let headers: Vec<Value> = rules
                .for_url(url)
                .iter()
                .map(|(name, value)| json!({ "name": name, "value": { "type": "string", "value": value } }))
                .collect();
            self.send(
                "network.setExtraHeaders",
                json!({ "headers": headers, "userContexts": [self.tab.user_context] }),
            )
            .await?;
            log.step("extra headers for every host (injectHeadersAllHosts)");
        }
        let _blocker = self.block_requests(config).await?;
        self.set_cookies(url, config).await?;
        if !config.cookies.is_empty() {
            log.step(&format!("set {} cookie(s)", config.cookies.len()));
        }
        self.navigate(url, config.page_timeout()).await?;
        log.step("navigated");
        self.prepare_spare(&settings);
        let settled = steps::settle_and_stabilize(self, config, true).await?;
        steps::finish(self, &self.proxy, url, config, probe, settled, log).await
    }

    /// Blocks the requests the config blocks (the known analytics hosts,
    /// and any URL containing a `resourcesToIgnore` entry) as Chromium's
    /// `Network.setBlockedURLs` does: the tab's matching requests are
    /// paused (all of them when `resourcesToIgnore` is set, else only those
    /// to the analytics hosts) and each failed or let go by the same rule,
    /// [`CaptureConfig::is_ignored`]. Blocking lasts while the returned
    /// guard lives.
    async fn block_requests(&self, config: &CaptureConfig) -> Result<Blocker, CaptureError> {
        // Listening before anything is paused, so no request is missed.
        let mut events = self.bidi.events();
        let context = self.tab.context.clone();
        if !self.tab.intercepting {
            intercept_analytics(&self.bidi, &context).await?;
        }
        if config.resources_to_ignore.iter().any(|r| !r.is_empty()) {
            self.send(
                "network.addIntercept",
                json!({ "phases": ["beforeRequestSent"], "contexts": [context] }),
            )
            .await?;
        }
        let (bidi, config) = (self.bidi.clone(), config.clone());
        let task = tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let p = &event.params;
                if event.method != "network.beforeRequestSent"
                    || p["isBlocked"] != Value::Bool(true)
                    || p["context"].as_str() != Some(context.as_str())
                {
                    continue;
                }
                let request = p["request"]["request"].clone();
                let blocked = p["request"]["url"]
                    .as_str()
                    .is_some_and(|u| config.is_ignored(u));
                let method = if blocked {
                    "network.failRequest"
                } else {
                    "network.continueRequest"
                };
                let (bidi, params) = (bidi.clone(), json!({ "request": request }));
                // Each answered on its own: one slow answer holds no other.
                tokio::spawn(async move {
                    if let Err(e) = bidi.send(None, method, params).await {
                        tracing::debug!(error = %e, "cannot answer a paused request");
                    }
                });
            }
        });
        Ok(Blocker(task))
    }

    /// Sets the media features as Firefox preferences, unless they are
    /// set already.
    async fn set_media(&self, config: &CaptureConfig) -> Result<(), CaptureError> {
        let [scheme, motion, colors] = config.media_features().map(|(_, value)| value);
        let wanted = [
            // layout.css.prefers-color-scheme.content-override: 0 dark, 1 light.
            i64::from(scheme != "dark"),
            i64::from(motion == "reduce"),
            // browser.display.document_color_use: 2 always the user's colours.
            if colors == "active" { 2 } else { 0 },
        ];
        if *self.media.lock().expect("media") == Some(wanted) {
            return Ok(());
        }
        let script = format!(
            "Services.prefs.setIntPref('layout.css.prefers-color-scheme.content-override', {});
             Services.prefs.setIntPref('ui.prefersReducedMotion', {});
             Services.prefs.setIntPref('browser.display.document_color_use', {});",
            wanted[0], wanted[1], wanted[2]
        );
        let reply = self
            .send(
                "script.evaluate",
                json!({
                    "expression": script,
                    "target": { "context": self.chrome },
                    "awaitPromise": false,
                }),
            )
            .await?;
        if reply["type"] != "success" {
            return Err(CaptureError::browser(format!(
                "cannot set Firefox's media preferences: {}",
                reply["exceptionDetails"]["text"]
            )));
        }
        *self.media.lock().expect("media") = Some(wanted);
        Ok(())
    }

    /// Sets the config's cookies in the capture's user context.
    async fn set_cookies(&self, url: &str, config: &CaptureConfig) -> Result<(), CaptureError> {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        for cookie in &config.cookies {
            let mut c = json!({
                "name": cookie.name,
                "value": { "type": "string", "value": cookie.value },
                "domain": cookie.domain.clone().unwrap_or_else(|| host.clone()),
                "path": cookie.path.clone().unwrap_or_else(|| "/".into()),
            });
            if let Some(s) = cookie.secure {
                c["secure"] = json!(s);
            }
            if let Some(h) = cookie.httponly {
                c["httpOnly"] = json!(h);
            }
            if let Some(e) = cookie.expires {
                c["expiry"] = json!(e);
            }
            let partition = json!({ "type": "storageKey", "userContext": self.tab.user_context });
            self.send(
                "storage.setCookie",
                json!({ "cookie": c, "partition": partition }),
            )
            .await
            .map_err(|e| {
                CaptureError::browser(format!(
                    "cookie {} was refused by the browser (check its domain): {e}",
                    cookie.name
                ))
            })?;
        }
        Ok(())
    }

    /// Loads `url` and waits for its `DOMContentLoaded`, at most `timeout`.
    async fn navigate(&self, url: &str, timeout: Duration) -> Result<(), CaptureError> {
        let load_error = |reason: String| CaptureError::Load {
            url: url.to_string(),
            reason,
        };
        let navigated = self.bidi.send(
            None,
            "browsingContext.navigate",
            json!({ "context": self.tab.context, "url": url, "wait": "interactive" }),
        );
        match tokio::time::timeout(timeout, navigated).await {
            Ok(Ok(_)) => Ok(()),
            // Firefox names the network error (`NS_ERROR_CONNECTION_REFUSED`).
            Ok(Err(e)) => Err(load_error(e.to_string())),
            Err(_) => Err(load_error("the page did not finish loading in time".into())),
        }
    }

    /// Takes one piece of the screenshot (page coordinates, at the
    /// viewport's pixel ratio).
    async fn shot_tile(&self, clip: Clip) -> Result<Vec<u8>, CaptureError> {
        let shot = self
            .send(
                "browsingContext.captureScreenshot",
                json!({
                    "context": self.tab.context,
                    "origin": "document",
                    "clip": { "type": "box", "x": clip.x, "y": clip.y, "width": clip.width, "height": clip.height },
                }),
            )
            .await?;
        shot_data(&shot)
    }
}

impl steps::Page for Session {
    async fn call(
        &self,
        function: &str,
        args: &[Value],
    ) -> Result<Result<Value, String>, CaptureError> {
        // The answer as JSON text: BiDi's own serialization of objects is
        // a tree of typed values.
        let args = Value::Array(args.to_vec());
        let expression =
            format!("(async () => JSON.stringify(await ({function}).apply(null, {args})))()");
        let reply = self
            .send(
                "script.evaluate",
                json!({
                    "expression": expression,
                    "target": { "context": self.tab.context },
                    "awaitPromise": true,
                    "resultOwnership": "none",
                }),
            )
            .await?;
        if reply["type"] == "exception" {
            return Ok(Err(exception_message(&reply["exceptionDetails"])));
        }
        match reply["result"]["value"].as_str() {
            Some(text) => serde_json::from_str(text)
                .map(Ok)
                .map_err(|e| CaptureError::browser_from("a script's answer is not JSON", e)),
            None => Ok(Ok(Value::Null)),
        }
    }

    async fn take_shot(&self, config: &CaptureConfig, clip: Clip) -> Result<Vec<u8>, CaptureError> {
        stitched(clip, config.scale(), |tile, _| self.shot_tile(tile)).await
    }
}

/// Answers a capture's paused requests until dropped.
struct Blocker(tokio::task::JoinHandle<()>);

impl Drop for Blocker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Removes user contexts, with their tabs and all they stored.
async fn remove_user_contexts(bidi: DevTools, user_contexts: Vec<String>) {
    for user_context in user_contexts {
        let params = json!({ "userContext": user_context });
        if let Err(e) = bidi.send(None, "browser.removeUserContext", params).await {
            tracing::debug!(error = %e, "cannot remove a user context");
        }
    }
}

/// Makes a user context with `settings` applied (when given: set on the
/// user context, they are in effect from the tab's first document) and a
/// tab in it, in the background: shown by [`Session::renew`].
async fn new_tab(bidi: &DevTools, settings: Option<&Settings>) -> Result<Tab, CaptureError> {
    let made = bidi
        .send(None, "browser.createUserContext", json!({}))
        .await?;
    let user_context = made["userContext"]
        .as_str()
        .ok_or_else(|| CaptureError::browser("Firefox made no user context"))?
        .to_string();
    let applied = match settings {
        Some(settings) => Some((
            settings.clone(),
            apply(bidi, &user_context, settings, None).await?,
        )),
        None => None,
    };
    let tab = bidi
        .send(
            None,
            "browsingContext.create",
            json!({ "type": "tab", "userContext": user_context, "background": true }),
        )
        .await?;
    let context = tab["context"]
        .as_str()
        .ok_or_else(|| CaptureError::browser("Firefox made no tab"))?
        .to_string();
    // A spare tab is made ready to block too; no capture uses the first.
    let intercepting = settings.is_some();
    if intercepting {
        intercept_analytics(bidi, &context).await?;
    }
    Ok(Tab {
        user_context,
        context,
        applied,
        intercepting,
    })
}

/// Pauses the tab's requests to the known analytics hosts (answered by
/// the capture's [`Blocker`]), and has their events sent to us.
async fn intercept_analytics(bidi: &DevTools, context: &str) -> Result<(), CaptureError> {
    bidi.send(
        None,
        "session.subscribe",
        json!({ "events": ["network.beforeRequestSent"], "contexts": [context] }),
    )
    .await?;
    let hosts: Vec<Value> = crate::config::ALWAYS_IGNORED_HOSTS
        .iter()
        .map(|h| json!({ "type": "pattern", "hostname": h }))
        .collect();
    bidi.send(
        None,
        "network.addIntercept",
        json!({ "phases": ["beforeRequestSent"], "contexts": [context], "urlPatterns": hosts }),
    )
    .await?;
    Ok(())
}

/// Sends the settings of `wanted` that differ from `have` (all of them on
/// a fresh tab), side by side; returns the preload script's id.
async fn apply(
    bidi: &DevTools,
    user_context: &str,
    wanted: &Settings,
    have: Option<&(Settings, String)>,
) -> Result<String, CaptureError> {
    let old = have.map(|(s, _)| s);
    let contexts = json!([user_context]);
    let mut calls: Vec<(&str, Value)> = Vec::new();
    if old.is_none_or(|o| o.timezone != wanted.timezone) {
        calls.push((
            "emulation.setTimezoneOverride",
            json!({ "timezone": wanted.timezone, "userContexts": contexts }),
        ));
    }
    if old.is_none_or(|o| o.locale != wanted.locale) {
        calls.push((
            "emulation.setLocaleOverride",
            json!({ "locale": wanted.locale, "userContexts": contexts }),
        ));
    }
    // A fresh tab has the browser's own agent: nothing to reset.
    if (old.is_some() || wanted.user_agent.is_some())
        && old.is_none_or(|o| o.user_agent != wanted.user_agent)
    {
        calls.push((
            "emulation.setUserAgentOverride",
            json!({ "userAgent": wanted.user_agent, "userContexts": contexts }),
        ));
    }
    if old.is_none_or(|o| o.viewport != wanted.viewport) {
        let (width, height, scale) = wanted.viewport;
        calls.push((
            "browsingContext.setViewport",
            json!({
                "userContexts": contexts,
                "viewport": { "width": width, "height": height },
                "devicePixelRatio": scale,
            }),
        ));
    }
    let sent = futures_util::future::try_join_all(
        calls
            .into_iter()
            .map(|(method, params)| bidi.send(None, method, params)),
    );
    let prelude = async {
        match have {
            Some((s, id)) if s.prelude == wanted.prelude => Ok(id.clone()),
            _ => {
                if let Some((_, id)) = have {
                    bidi.send(None, "script.removePreloadScript", json!({ "script": id }))
                        .await?;
                }
                let added = bidi
                    .send(
                        None,
                        "script.addPreloadScript",
                        json!({
                            "functionDeclaration": format!("() => {{\n{}\n}}", wanted.prelude),
                            "userContexts": [user_context],
                        }),
                    )
                    .await?;
                added["script"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| CaptureError::browser("Firefox named no preload script"))
            }
        }
    };
    let (_, id) =
        futures_util::future::try_join(async { sent.await.map_err(CaptureError::from) }, prelude)
            .await?;
    Ok(id)
}

/// What a script threw, from BiDi's `exceptionDetails`: the text of an
/// `Error` without its `Error: ` prefix, or the thrown value.
fn exception_message(details: &Value) -> String {
    let ex = &details["exception"];
    if let Some(Value::String(s)) = ex.get("value") {
        return s.clone();
    }
    let text = details["text"].as_str().unwrap_or("the script failed");
    text.strip_prefix("Error: ").unwrap_or(text).to_string()
}
