//! The steps of a capture that are the same in every engine: from the
//! settled page to the screenshot. Each engine loads the page its own way
//! and then hands it over here as a [`Page`]: something that runs a script
//! in the page and takes a screenshot of it.

use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::proxy::{FilterProxy, Refusal};
use super::shot::{Clip, css_pixels, shot_clip, shot_line};
use super::{Capture, CaptureError, Probe, js};
use crate::config::{CaptureConfig, DEFAULT_MASK_COLOR};

/// How long the page must stay settled before the screenshot.
pub(crate) const QUIET_MS: u64 = 30;

/// A loaded page, as an engine drives it.
pub(crate) trait Page: Sync {
    /// Calls the JavaScript function expression `function` with `args` in
    /// the page and awaits the promise it may return. The inner error is
    /// what the script threw.
    fn call(
        &self,
        function: &str,
        args: &[Value],
    ) -> impl Future<Output = Result<Result<Value, String>, CaptureError>> + Send;

    /// Waits for a navigation the page has started by now (`injectJs`
    /// setting `location`) to reach its new document, where the engine can
    /// tell one is under way.
    fn follow_navigation(&self) -> impl Future<Output = Result<(), CaptureError>> + Send {
        async { Ok(()) }
    }

    /// Takes the screenshot of `clip` of the settled page, as `config`
    /// asks (its scale), stopping what the engine can stop first.
    fn take_shot(
        &self,
        config: &CaptureConfig,
        clip: Clip,
    ) -> impl Future<Output = Result<Vec<u8>, CaptureError>> + Send;
}

/// A capture's log: one line per step, with the time since it started.
pub(crate) struct Log {
    start: Instant,
    text: String,
}

impl Log {
    /// A log whose clock starts now.
    pub(crate) fn start() -> Log {
        Log {
            start: Instant::now(),
            text: String::new(),
        }
    }

    /// Adds a line.
    pub(crate) fn step(&mut self, what: &str) {
        let _ = writeln!(
            self.text,
            "[{:>5} ms] {what}",
            self.start.elapsed().as_millis()
        );
    }

    /// Time since the capture started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Lines for what the settle step gave up waiting for.
    pub(crate) fn abandoned(&mut self, settled: &Value) {
        if let Some(list) = settled["abandoned"].as_array().filter(|l| !l.is_empty()) {
            let items: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            self.step(&format!(
                "gave up waiting (resourceTimeoutMs) for: {}",
                items.join("; ")
            ));
        }
    }

    /// The text.
    pub(crate) fn into_text(self) -> String {
        self.text
    }
}

/// Waits until the page is settled, then freezes and decorates it (the
/// freeze stylesheet, `hideSelectors`, `injectCss`): one call. With
/// `decorate` false only what the page already has is kept (a re-take).
pub(crate) async fn settle_and_stabilize(
    page: &impl Page,
    config: &CaptureConfig,
    decorate: bool,
) -> Result<Value, CaptureError> {
    let resource_timeout = config.resource_timeout().as_millis() as u64;
    let args = if decorate {
        [
            json!(resource_timeout),
            json!(QUIET_MS),
            json!(js::FREEZE_CSS),
            json!(config.hide_selectors),
            json!(config.inject_css.clone().unwrap_or_default()),
        ]
    } else {
        [
            json!(resource_timeout),
            json!(QUIET_MS),
            json!(""),
            json!([]),
            json!(""),
        ]
    };
    page.call(&js::SETTLE_THEN_STABILIZE, &args)
        .await?
        .map_err(CaptureError::browser)
}

/// Everything after the page loaded and settled (`settled` is what
/// [`settle_and_stabilize`] answered): the checks of what was loaded,
/// `injectJs`, `waitForSelector`, masks, `delayMs`, what `probe` asks for,
/// and the screenshot.
pub(crate) async fn finish(
    page: &impl Page,
    proxy: &FilterProxy,
    url: &str,
    config: &CaptureConfig,
    probe: &Probe,
    settled: Value,
    mut log: Log,
) -> Result<Capture, CaptureError> {
    let mut refused = proxy.take_refusals();
    check_loaded(url, &settled, &refused)?;
    let status = settled["status"].as_u64().unwrap_or(0) as u16;
    log.step(&format!(
        "loaded: HTTP {status}, settled after {} ms",
        settled["waitedMs"]
    ));
    if status >= 400 {
        return Err(CaptureError::HttpStatus {
            url: url.to_string(),
            status,
        });
    }
    log.abandoned(&settled);
    for d in settled["dialogs"].as_array().into_iter().flatten() {
        log.step(&format!("dismissed dialog: {}", d.as_str().unwrap_or("?")));
    }
    if let Some(e) = settled["stabilizeError"].as_str() {
        return Err(CaptureError::Selector(e.to_string()));
    }
    let page_changed = run_page_steps(page, config, &mut log).await?;
    let doc_height = if page_changed {
        let v = page
            .call(js::DOC_HEIGHT, &[])
            .await?
            .map_err(CaptureError::browser)?;
        css_pixels(&v)
    } else {
        css_pixels(&settled["height"])
    };
    let (clip, cut) = shot_clip(config, doc_height);
    if let Some(note) = cut {
        log.step(&note);
    }
    mask(page, config, &mut log).await?;
    if let Some(ms) = config.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        log.step(&format!("waited delayMs {ms}"));
    }
    let (located, links) = read_probe(page, probe).await?;
    if probe.no_screenshot {
        log.step("no screenshot asked for");
        return Ok(Capture {
            png: Vec::new(),
            log: log.into_text(),
            located,
            links,
        });
    }
    let png = page.take_shot(config, clip).await?;
    log.step(&shot_line(clip, &png));
    refused.extend(proxy.take_refusals());
    for r in &refused {
        let what = if r.by_policy {
            "refused by the network policy"
        } else {
            "failed to load"
        };
        log.step(&format!("{what}: {} ({})", r.target, r.reason));
    }
    for e in settled["errors"].as_array().into_iter().flatten() {
        log.step(&format!("page error: {}", e.as_str().unwrap_or("?")));
    }
    Ok(Capture {
        png,
        log: log.into_text(),
        located,
        links,
    })
}

/// Fails when the page itself (or where it went) was refused or did not
/// load, or the browser showed its own error page instead.
fn check_loaded(url: &str, settled: &Value, refused: &[Refusal]) -> Result<(), CaptureError> {
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
    const ERROR_PAGES: [&str; 3] = ["chrome-error://", "about:neterror", "about:certerror"];
    if let Some(href) = settled["href"].as_str()
        && ERROR_PAGES.iter().any(|p| href.starts_with(p))
    {
        return Err(CaptureError::Load {
            url: url.to_string(),
            reason: "the browser showed an error page".into(),
        });
    }
    Ok(())
}

/// Runs `injectJs` and waits for `waitForSelector`, then lets the page
/// settle again; whether either changed the page.
async fn run_page_steps(
    page: &impl Page,
    config: &CaptureConfig,
    log: &mut Log,
) -> Result<bool, CaptureError> {
    if let Some(code) = &config.inject_js {
        // The code is a function body, as in the original (`return` works).
        page.call(&format!("function () {{\n{code}\n}}"), &[])
            .await?
            .map_err(CaptureError::Script)?;
        log.step("ran injectJs");
        page.follow_navigation().await?;
    }
    if let Some(sel) = &config.wait_for_selector {
        // Leave time to report the miss before the whole capture times out.
        let remaining = config
            .page_timeout()
            .saturating_sub(log.elapsed())
            .saturating_sub(Duration::from_millis(500));
        let found = page
            .call(
                js::WAIT_FOR_SELECTOR,
                &[json!(sel), json!(remaining.as_millis() as u64)],
            )
            .await?
            .map_err(CaptureError::browser)?;
        match found.as_str() {
            Some("found") => log.step(&format!("waitForSelector {sel:?} matched")),
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
    let changed = config.inject_js.is_some() || config.wait_for_selector.is_some();
    if changed {
        let timeout = config.resource_timeout().as_millis() as u64;
        page.call(&js::SETTLE, &[json!(timeout), json!(QUIET_MS)])
            .await?
            .map_err(CaptureError::browser)?;
    }
    Ok(changed)
}

/// Paints `maskSelectors`.
async fn mask(page: &impl Page, config: &CaptureConfig, log: &mut Log) -> Result<(), CaptureError> {
    if config.mask_selectors.is_empty() {
        return Ok(());
    }
    let color = config.mask_color.as_deref().unwrap_or(DEFAULT_MASK_COLOR);
    let unmatched = page
        .call(js::MASK, &[json!(config.mask_selectors), json!(color)])
        .await?
        .map_err(CaptureError::Selector)?;
    if let Some(list) = unmatched.as_array().filter(|l| !l.is_empty()) {
        log.step(&format!("maskSelectors matched nothing: {list:?}"));
    }
    Ok(())
}

/// What `probe` asks to read from the page: the elements covering its
/// regions, and the page's links.
async fn read_probe(
    page: &impl Page,
    probe: &Probe,
) -> Result<(Vec<Option<String>>, Vec<String>), CaptureError> {
    let located = if probe.locate.is_empty() {
        Vec::new()
    } else {
        let boxes: Vec<[u32; 4]> = probe
            .locate
            .iter()
            .map(|r| [r.x1, r.y1, r.x2, r.y2])
            .collect();
        call_strings(page, js::LOCATE, &[json!(boxes)]).await?
    };
    let links = if probe.links {
        let found = call_strings(page, &js::LINKS, &[]).await?;
        found.into_iter().flatten().collect()
    } else {
        Vec::new()
    };
    Ok((located, links))
}

/// Calls a script that returns an array of strings (or nulls).
async fn call_strings(
    page: &impl Page,
    function: &str,
    args: &[Value],
) -> Result<Vec<Option<String>>, CaptureError> {
    let found = page
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

/// `host:port` of a URL (no brackets around IPv6 hosts), as the proxy
/// records its refusals.
pub(crate) fn authority(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(format!(
        "{}:{}",
        u.host_str()?.trim_matches(['[', ']']),
        u.port_or_known_default()?
    ))
}
