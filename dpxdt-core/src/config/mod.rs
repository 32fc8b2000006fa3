//! The capture config: how to take one screenshot.
//!
//! The JSON field names are the original's (`viewportSize`, `injectCss`, ...)
//! so existing configs keep working; fields the original did not have are
//! marked *new*. Unknown fields are refused with a message that lists the
//! known ones, so a typo never silently does nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod devices;
mod engine;
mod locale;
mod modes;

pub use devices::{DEVICES, Device};
pub use engine::Engine;
pub use modes::{MAX_MODES, MODE_SEPARATOR, Mode, moded_name};

/// Viewport used when a config names none (the original used PhantomJS's 400x300).
pub const DEFAULT_VIEWPORT: ViewportSize = ViewportSize {
    width: 1280,
    height: 800,
};
/// Per-resource timeout when `resourceTimeoutMs` is not set, as in the original.
pub const DEFAULT_RESOURCE_TIMEOUT_MS: u64 = 10_000;
/// Whole-page timeout when `timeoutMs` is not set.
pub const DEFAULT_PAGE_TIMEOUT_MS: u64 = 30_000;
/// Colour painted over `maskSelectors` when `maskColor` is not set.
pub const DEFAULT_MASK_COLOR: &str = "#ff00ff";
/// Largest accepted viewport or clip edge, in CSS pixels.
pub const MAX_EDGE: u32 = 16_384;
/// The instant the page's clock stands still at when `clock` is not set.
pub const DEFAULT_CLOCK: &str = "2024-01-01T12:00:00Z";
/// What [`CaptureConfig::redacted`] puts in place of a secret.
pub const REDACTED: &str = "(hidden)";
/// `clock` value that lets the page see the real, running clock.
pub const REAL_CLOCK: &str = "real";
/// The page's time zone when `timezone` is not set.
pub const DEFAULT_TIMEZONE: &str = "UTC";
/// The page's locale when `locale` is not set.
pub const DEFAULT_LOCALE: &str = "en-US";
/// Virtual time the page's timers get before the screenshot when
/// `settleTimeMs` is not set.
pub const DEFAULT_SETTLE_TIME_MS: u64 = 1_000;
/// Largest `settleTimeMs`.
pub const MAX_SETTLE_TIME_MS: u64 = 60_000;
/// Hosts whose requests are always blocked: analytics never belongs in a screenshot.
pub const ALWAYS_IGNORED_HOSTS: &[&str] = &[
    "www.google-analytics.com",
    "ssl.google-analytics.com",
    "google-analytics.com",
    "www.googletagmanager.com",
    "stats.g.doubleclick.net",
    "connect.facebook.net",
    "static.hotjar.com",
    "cdn.segment.com",
    "plausible.io",
];

/// The browser viewport in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewportSize {
    /// Width in CSS pixels.
    pub width: u32,
    /// Height in CSS pixels.
    pub height: u32,
}

/// A rectangle of the page to keep, in CSS pixels from the page's top-left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipRect {
    /// Distance from the left edge.
    pub left: u32,
    /// Distance from the top edge.
    pub top: u32,
    /// Width of the rectangle.
    pub width: u32,
    /// Height of the rectangle.
    pub height: u32,
}

/// A cookie set before the page loads (PhantomJS field names, with common aliases).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cookie {
    /// Cookie name.
    pub name: String,
    /// Cookie value.
    pub value: String,
    /// Domain; defaults to the page's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Path; defaults to `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only sent over HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    /// Hidden from page scripts.
    #[serde(
        default,
        alias = "httpOnly",
        alias = "http_only",
        skip_serializing_if = "Option::is_none"
    )]
    pub httponly: Option<bool>,
    /// Expiry as seconds since the Unix epoch.
    #[serde(default, alias = "expiry", skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// How to capture one page. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaptureConfig {
    /// The URL to capture; the original server stored it inside the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// Browser viewport; default [`DEFAULT_VIEWPORT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewport_size: Option<ViewportSize>,
    /// Keep only this rectangle of the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_rect: Option<ClipRect>,
    /// Cookies set before the page loads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<Cookie>,
    /// HTTP basic auth user name.
    #[serde(
        default,
        alias = "httpUsername",
        skip_serializing_if = "Option::is_none"
    )]
    pub http_user_name: Option<String>,
    /// HTTP basic auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_password: Option<String>,
    /// CSS added to the page before the screenshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_css: Option<String>,
    /// JavaScript run in the page before the screenshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_js: Option<String>,
    /// Requests whose URL contains any of these substrings are blocked
    /// (the hosts in [`ALWAYS_IGNORED_HOSTS`] always are).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources_to_ignore: Vec<String>,
    /// Timeout per resource in milliseconds; default [`DEFAULT_RESOURCE_TIMEOUT_MS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_timeout_ms: Option<u64>,
    /// User-Agent header and `navigator.userAgent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Extra request headers by host: `{host: {header: value}}`, sent
    /// with requests to that host (`host` or `host:port`); `"*"` means the
    /// captured page's own host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inject_headers: BTreeMap<String, BTreeMap<String, String>>,
    /// *New.* Send the page host's `injectHeaders` and the basic-auth
    /// credentials with every request of the page, third-party hosts
    /// included (default false: only to the page's own host).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inject_headers_all_hosts: bool,
    /// *New.* Capture the whole document height (default true) or only the viewport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_page: Option<bool>,
    /// *New.* Elements matching these CSS selectors are hidden (`visibility: hidden`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hide_selectors: Vec<String>,
    /// *New.* Elements matching these CSS selectors are painted a solid colour.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask_selectors: Vec<String>,
    /// *New.* The mask colour (any CSS colour); default [`DEFAULT_MASK_COLOR`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_color: Option<String>,
    /// *New.* Wait until an element matches this CSS selector before the screenshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_selector: Option<String>,
    /// *New.* Extra wait in milliseconds after the page is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// *New.* Whole-capture timeout in milliseconds; default [`DEFAULT_PAGE_TIMEOUT_MS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// *New.* The instant the page's clock stands still at, in RFC 3339 UTC
    /// form (`2024-05-01T09:30:00Z`), or `"real"` for the running clock;
    /// default [`DEFAULT_CLOCK`]. See the capture module for what it freezes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// *New.* Seed of the page's `Math.random`, `crypto.getRandomValues`
    /// and `crypto.randomUUID` (0 to 4294967295); default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<i64>,
    /// *New.* Virtual time, in milliseconds, the page's timers and
    /// animation frames get before the screenshot (0 to 60,000); default
    /// [`DEFAULT_SETTLE_TIME_MS`]. Not with `"clock": "real"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_time_ms: Option<i64>,
    /// *New.* The page's IANA time zone (`"Europe/Berlin"`); default
    /// [`DEFAULT_TIMEZONE`], whatever the machine's `TZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// *New.* The page's BCP 47 locale (`"de-DE"`): `navigator.language`,
    /// `Intl`, `Accept-Language`; default [`DEFAULT_LOCALE`], whatever the
    /// machine's `LANG`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// *New.* `prefers-color-scheme`: `"light"` (default) or `"dark"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color_scheme: Option<String>,
    /// *New.* `prefers-reduced-motion`: `"no-preference"` (default) or `"reduce"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduced_motion: Option<String>,
    /// *New.* `forced-colors`: `"none"` (default) or `"active"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_colors: Option<String>,
    /// *New.* Device pixels per CSS pixel (0.5 to 4); the screenshot is
    /// this many times the viewport's size. Default 1, or the device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_scale_factor: Option<f64>,
    /// *New.* A mobile browser: the viewport meta tag applies, with touch
    /// events. Default false, or the device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<bool>,
    /// *New.* A named device preset (`"Pixel 7"`; `dpxdt devices` lists
    /// them): its viewport, scale, mobile, touch and user agent, each
    /// unless set by its own field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// *New.* The browser engine that takes the screenshot: `"chromium"`
    /// (the default), `"firefox"` or `"webkit"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// *New.* Named variants of this capture, each a screenshot of its own
    /// named `<name>@<mode>` (see [`Mode`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modes: Vec<Mode>,
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not valid JSON, a wrong type or an unknown field (serde's message lists the known fields).
    #[error("invalid capture config: {0}")]
    Json(#[from] serde_json::Error),
    /// A field with a value out of range.
    #[error("invalid capture config: {field}: {reason}")]
    Invalid {
        /// The JSON field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// One of `modes` cannot be used.
    #[error("mode {mode:?}: {reason}")]
    Mode {
        /// The mode's name (empty when it has none).
        mode: String,
        /// What is wrong with it, naming the field.
        reason: String,
    },
}

impl CaptureConfig {
    /// Parses and validates a JSON config. An empty string is the empty config.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        if json.trim().is_empty() {
            return Ok(CaptureConfig::default());
        }
        let config: CaptureConfig = serde_json::from_str(json)?;
        config.validate()?;
        Ok(config)
    }

    /// Canonical JSON (fields in declaration order, unset fields left out).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a capture config always serializes")
    }

    /// Checks ranges that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                field,
                reason: reason.into(),
            }
        }
        if let Some(v) = self.viewport_size
            && (v.width == 0 || v.height == 0 || v.width > MAX_EDGE || v.height > MAX_EDGE)
        {
            return Err(invalid(
                "viewportSize",
                format!(
                    "{}x{} is outside 1..={MAX_EDGE} on some edge",
                    v.width, v.height
                ),
            ));
        }
        if let Some(c) = self.clip_rect
            && (c.width == 0 || c.height == 0 || c.width > MAX_EDGE || c.height > MAX_EDGE)
        {
            return Err(invalid(
                "clipRect",
                format!(
                    "{}x{} is outside 1..={MAX_EDGE} on some edge",
                    c.width, c.height
                ),
            ));
        }
        for (field, value, max) in [
            ("resourceTimeoutMs", self.resource_timeout_ms, 600_000),
            ("timeoutMs", self.timeout_ms, 600_000),
            ("delayMs", self.delay_ms, 60_000),
        ] {
            if let Some(v) = value
                && v > max
            {
                return Err(invalid(field, format!("{v} is more than {max}")));
            }
        }
        for cookie in &self.cookies {
            if cookie.name.is_empty() {
                return Err(invalid("cookies", "a cookie has an empty name"));
            }
        }
        if let Some(clock) = &self.clock
            && clock != REAL_CLOCK
        {
            parse_instant_ms(clock).map_err(|reason| invalid("clock", reason))?;
        }
        if let Some(seed) = self.random_seed
            && !(0..=i64::from(u32::MAX)).contains(&seed)
        {
            return Err(invalid(
                "randomSeed",
                format!("{seed} is outside 0..={}", u32::MAX),
            ));
        }
        self.validate_environment()?;
        if let Some(name) = &self.browser {
            let engine = Engine::parse(name).map_err(|r| invalid("browser", r))?;
            if let Some((field, why)) = engine.unsupported(self) {
                return Err(invalid(
                    "browser",
                    format!("{engine} cannot honour {field}: {why}"),
                ));
            }
        }
        if self.modes.len() > MAX_MODES {
            return Err(invalid(
                "modes",
                format!("{} modes; at most {MAX_MODES}", self.modes.len()),
            ));
        }
        if !self.modes.is_empty() {
            self.variants()?;
        }
        Ok(())
    }

    /// Checks the fields that say what machine the page believes it runs
    /// on: time, place, screen and preferences.
    fn validate_environment(&self) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid { field, reason };
        if let Some(ms) = self.settle_time_ms
            && !(0..=MAX_SETTLE_TIME_MS as i64).contains(&ms)
        {
            return Err(invalid(
                "settleTimeMs",
                format!("{ms} is outside 0..={MAX_SETTLE_TIME_MS}"),
            ));
        }
        if let Some(zone) = &self.timezone {
            locale::check_timezone(zone).map_err(|r| invalid("timezone", r))?;
        }
        if let Some(tag) = &self.locale {
            locale::check_locale(tag).map_err(|r| invalid("locale", r))?;
        }
        for (field, value, allowed) in [
            ("colorScheme", &self.color_scheme, &["light", "dark"]),
            (
                "reducedMotion",
                &self.reduced_motion,
                &["no-preference", "reduce"],
            ),
            ("forcedColors", &self.forced_colors, &["none", "active"]),
        ] {
            if let Some(v) = value
                && !allowed.contains(&v.as_str())
            {
                return Err(invalid(
                    field,
                    format!("{v:?} is not one of {}", allowed.join(", ")),
                ));
            }
        }
        if let Some(scale) = self.device_scale_factor {
            if !(0.5..=4.0).contains(&scale) {
                return Err(invalid(
                    "deviceScaleFactor",
                    format!("{scale} is outside 0.5..=4"),
                ));
            }
            // Whole device pixels at every tile seam of a tall shot.
            if (scale * 8.0).fract() != 0.0 {
                return Err(invalid(
                    "deviceScaleFactor",
                    format!("{scale} is not a multiple of 1/8 (like 1.5, 2.625 or 3)"),
                ));
            }
        }
        if self.settle_time_ms.is_some() && self.clock.as_deref() == Some(REAL_CLOCK) {
            return Err(invalid(
                "settleTimeMs",
                "there is no virtual time with \"clock\": \"real\"".into(),
            ));
        }
        if let Some(name) = &self.device
            && devices::find(name).is_none()
        {
            return Err(invalid(
                "device",
                format!(
                    "{name:?} is not a known device; known: {}",
                    devices::names()
                ),
            ));
        }
        let scale = self.scale();
        let (what, w, h) = match self.clip_rect {
            Some(c) => ("clipRect", c.width, c.height),
            None => ("viewport", self.viewport().width, self.viewport().height),
        };
        if f64::from(w) * scale > f64::from(MAX_EDGE) || f64::from(h) * scale > f64::from(MAX_EDGE)
        {
            return Err(invalid(
                "deviceScaleFactor",
                format!(
                    "a {w}x{h} {what} at scale {scale} is more than {MAX_EDGE} pixels on an edge"
                ),
            ));
        }
        Ok(())
    }

    /// The engine that takes the screenshot (`browser`; call on a
    /// validated config: an unknown name counts as the default).
    pub fn engine(&self) -> Engine {
        self.browser
            .as_deref()
            .and_then(|b| Engine::parse(b).ok())
            .unwrap_or_default()
    }

    /// The device preset named by `device`, if any.
    pub fn device_preset(&self) -> Option<&'static Device> {
        self.device.as_deref().and_then(devices::find)
    }

    /// The page's time zone.
    pub fn timezone(&self) -> &str {
        self.timezone.as_deref().unwrap_or(DEFAULT_TIMEZONE)
    }

    /// The page's locale.
    pub fn locale(&self) -> &str {
        self.locale.as_deref().unwrap_or(DEFAULT_LOCALE)
    }

    /// The languages the page's requests accept, most wanted first
    /// (`Accept-Language` without its weights, which the browser adds).
    pub fn accept_language(&self) -> String {
        locale::accept_language(self.locale())
    }

    /// Virtual time the page's timers get before the screenshot, in ms.
    pub fn settle_time_ms(&self) -> u64 {
        self.settle_time_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .unwrap_or(DEFAULT_SETTLE_TIME_MS)
            .min(MAX_SETTLE_TIME_MS)
    }

    /// Device pixels per CSS pixel.
    pub fn scale(&self) -> f64 {
        self.device_scale_factor
            .or(self.device_preset().map(|d| d.scale))
            .unwrap_or(1.0)
    }

    /// Whether the page is shown as in a mobile browser, with touch.
    pub fn is_mobile(&self) -> bool {
        self.mobile
            .or(self.device_preset().map(|d| d.mobile))
            .unwrap_or(false)
    }

    /// The user agent asked for, by `userAgent` or the device; `None`:
    /// the browser's own.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent
            .as_deref()
            .or(self.device_preset().map(|d| d.user_agent))
    }

    /// The CSS media features the page is shown with, as
    /// `(feature, value)` pairs: every one of them, defaults included, so
    /// that the browser's own settings never show through.
    pub fn media_features(&self) -> [(&'static str, &str); 3] {
        [
            (
                "prefers-color-scheme",
                self.color_scheme.as_deref().unwrap_or("light"),
            ),
            (
                "prefers-reduced-motion",
                self.reduced_motion.as_deref().unwrap_or("no-preference"),
            ),
            (
                "forced-colors",
                self.forced_colors.as_deref().unwrap_or("none"),
            ),
        ]
    }

    /// The instant the page's clock stands still at, in milliseconds since
    /// the Unix epoch, or `None` for the real clock (`"clock": "real"`).
    /// Call on a validated config: an invalid `clock` counts as the default.
    pub fn frozen_clock_ms(&self) -> Option<i64> {
        match self.clock.as_deref() {
            Some(REAL_CLOCK) => None,
            Some(instant) => parse_instant_ms(instant).ok(),
            None => parse_instant_ms(DEFAULT_CLOCK).ok(),
        }
    }

    /// The seed of the page's `Math.random`.
    pub fn random_seed(&self) -> u32 {
        self.random_seed
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(0)
    }

    /// This config with its secrets replaced by [`REDACTED`]: cookie values,
    /// `httpPassword` and `injectHeaders` values. What people who cannot
    /// edit a build are shown of its captures.
    pub fn redacted(&self) -> CaptureConfig {
        let mut out = self.clone();
        for cookie in &mut out.cookies {
            cookie.value = REDACTED.into();
        }
        if out.http_password.is_some() {
            out.http_password = Some(REDACTED.into());
        }
        for headers in out.inject_headers.values_mut() {
            for value in headers.values_mut() {
                *value = REDACTED.into();
            }
        }
        out
    }

    /// The viewport to use: `viewportSize`, else the device's, else
    /// [`DEFAULT_VIEWPORT`].
    pub fn viewport(&self) -> ViewportSize {
        self.viewport_size
            .or(self.device_preset().map(|d| ViewportSize {
                width: d.width,
                height: d.height,
            }))
            .unwrap_or(DEFAULT_VIEWPORT)
    }

    /// Whether to capture the whole document height.
    pub fn full_page(&self) -> bool {
        self.full_page.unwrap_or(true)
    }

    /// The whole-capture timeout.
    pub fn page_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_PAGE_TIMEOUT_MS))
    }

    /// The per-resource timeout.
    pub fn resource_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.resource_timeout_ms
                .unwrap_or(DEFAULT_RESOURCE_TIMEOUT_MS),
        )
    }

    /// The blocked-resource rule, written once: the wildcard patterns
    /// (`*` matches anything) the browser is given through CDP's
    /// `Network.setBlockedURLs`. The always-ignored analytics hosts become
    /// `*://HOST/*`; each non-empty `resourcesToIgnore` entry `S` becomes
    /// `*S*` (any URL containing it).
    pub fn blocked_url_patterns(&self) -> Vec<String> {
        let mut out: Vec<String> = ALWAYS_IGNORED_HOSTS
            .iter()
            .map(|h| format!("*://{h}/*"))
            .collect();
        out.extend(
            self.resources_to_ignore
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| format!("*{s}*")),
        );
        out
    }

    /// Whether a request to `url` is blocked: whether it matches one of
    /// [`Self::blocked_url_patterns`], as the browser matches them.
    pub fn is_ignored(&self, url: &str) -> bool {
        self.blocked_url_patterns()
            .iter()
            .any(|p| wildcard_match(p, url))
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters (possibly empty) and everything else for itself. Greedy with
/// one backtrack point, so linear for patterns like ours.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Milliseconds since the Unix epoch of an RFC 3339 instant in UTC.
fn parse_instant_ms(text: &str) -> Result<i64, String> {
    let time = humantime::parse_rfc3339(text).map_err(|e| {
        format!("{text:?} is not an instant like \"2024-05-01T09:30:00Z\" or \"real\" ({e})")
    })?;
    let ms = match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    };
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL_EXAMPLE: &str = r#"{
        "clipRect": {"left": 0, "top": 0, "width": 100, "height": 200},
        "cookies": [{"name": "my-cookie-name", "value": "my-cookie-value", "domain": ".example.com"}],
        "httpUserName": "my-username",
        "httpPassword": "my-password",
        "injectCss": ".my-css-rules-here { display: none; }",
        "injectJs": "document.getElementById('foobar').innerText = 'foo';",
        "resourcesToIgnore": ["www.google-analytics.com", "bad.example.com"],
        "resourceTimeoutMs": 60000,
        "userAgent": "My fancy user agent",
        "viewportSize": {"width": 1024, "height": 768},
        "injectHeaders": {"example.com": {"X-Test": "1"}}
    }"#;

    #[test]
    fn the_original_readme_example_parses() {
        let c = CaptureConfig::from_json(ORIGINAL_EXAMPLE).unwrap();
        assert_eq!(
            c.viewport(),
            ViewportSize {
                width: 1024,
                height: 768
            }
        );
        assert_eq!(c.clip_rect.unwrap().height, 200);
        assert_eq!(c.cookies[0].domain.as_deref(), Some(".example.com"));
        assert_eq!(c.http_user_name.as_deref(), Some("my-username"));
        assert_eq!(c.resource_timeout().as_millis(), 60_000);
        assert_eq!(c.inject_headers["example.com"]["X-Test"], "1");
        // Canonical JSON round-trips to the same config.
        assert_eq!(CaptureConfig::from_json(&c.to_json()).unwrap(), c);
        assert!(c.to_json().contains("\"viewportSize\""));
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = CaptureConfig::from_json("{}").unwrap();
        assert_eq!(c, CaptureConfig::from_json("  ").unwrap());
        assert_eq!(c.viewport(), DEFAULT_VIEWPORT);
        assert!(c.full_page());
        assert_eq!(c.resource_timeout().as_millis(), 10_000);
        assert_eq!(c.to_json(), "{}");
    }

    #[test]
    fn unknown_fields_are_refused_listing_known_ones() {
        let err = CaptureConfig::from_json(r#"{"viewportsize": {"width": 1, "height": 1}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `viewportsize`"), "{err}");
        assert!(err.contains("viewportSize"), "{err}");
        let err = CaptureConfig::from_json(r#"{"viewportSize": {"width": 1, "heigth": 1}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("heigth"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (json, field) in [
            (
                r#"{"viewportSize": {"width": 0, "height": 10}}"#,
                "viewportSize",
            ),
            (
                r#"{"viewportSize": {"width": 100000, "height": 10}}"#,
                "viewportSize",
            ),
            (
                r#"{"clipRect": {"left": 0, "top": 0, "width": 0, "height": 1}}"#,
                "clipRect",
            ),
            (r#"{"delayMs": 1000000}"#, "delayMs"),
            (r#"{"cookies": [{"name": "", "value": "x"}]}"#, "cookies"),
            (r#"{"clock": "yesterday"}"#, "clock"),
            (r#"{"clock": "2024-13-01T00:00:00Z"}"#, "clock"),
            (r#"{"randomSeed": -1}"#, "randomSeed"),
            (r#"{"randomSeed": 4294967296}"#, "randomSeed"),
            (r#"{"settleTimeMs": -1}"#, "settleTimeMs"),
            (r#"{"settleTimeMs": 60001}"#, "settleTimeMs"),
            (r#"{"timezone": "Mars/Olympus_Mons"}"#, "timezone"),
            (r#"{"locale": "xx-YY"}"#, "locale"),
            (r#"{"colorScheme": "blue"}"#, "colorScheme"),
            (r#"{"reducedMotion": "yes"}"#, "reducedMotion"),
            (r#"{"forcedColors": "on"}"#, "forcedColors"),
            (r#"{"deviceScaleFactor": 9}"#, "deviceScaleFactor"),
            (r#"{"deviceScaleFactor": 1.3}"#, "1/8"),
            (r#"{"clock": "real", "settleTimeMs": 10}"#, "settleTimeMs"),
            (
                r#"{"clipRect": {"left": 0, "top": 0, "width": 9000, "height": 9000}, "deviceScaleFactor": 2}"#,
                "clipRect at scale",
            ),
            (r#"{"locale": "EN-us"}"#, "en-US"),
            (
                r#"{"viewportSize": {"width": 9000, "height": 10}, "deviceScaleFactor": 2}"#,
                "deviceScaleFactor",
            ),
            (r#"{"device": "Nokia 3310"}"#, "iPhone 15"),
        ] {
            let err = CaptureConfig::from_json(json).unwrap_err().to_string();
            assert!(err.contains(field), "{json}: {err}");
        }
        assert!(
            CaptureConfig::from_json(r#"{"viewportSize": {"width": -1, "height": 1}}"#).is_err()
        );
        assert!(CaptureConfig::from_json("[1]").is_err());
    }

    #[test]
    fn redaction_hides_cookies_passwords_and_headers() {
        let c = CaptureConfig::from_json(ORIGINAL_EXAMPLE)
            .unwrap()
            .redacted();
        let json = c.to_json();
        for secret in ["my-cookie-value", "my-password", "\"1\""] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
        assert!(
            json.contains("my-cookie-name") && json.contains("X-Test"),
            "{json}"
        );
        assert_eq!(c.http_password.as_deref(), Some(REDACTED));
    }

    #[test]
    fn the_clock_is_frozen_unless_real() {
        let c = CaptureConfig::from_json("{}").unwrap();
        assert_eq!(c.frozen_clock_ms(), Some(1_704_110_400_000));
        assert_eq!(c.random_seed(), 0);
        let c = CaptureConfig::from_json(r#"{"clock": "1970-01-01T00:00:01.5Z", "randomSeed": 7}"#)
            .unwrap();
        assert_eq!(c.frozen_clock_ms(), Some(1500));
        assert_eq!(c.random_seed(), 7);
        let c = CaptureConfig::from_json(r#"{"clock": "real"}"#).unwrap();
        assert_eq!(c.frozen_clock_ms(), None);
    }

    #[test]
    fn the_page_environment_has_machine_independent_defaults() {
        let c = CaptureConfig::from_json("{}").unwrap();
        assert_eq!((c.timezone(), c.locale()), ("UTC", "en-US"));
        assert_eq!(c.accept_language(), "en-US,en");
        assert_eq!(c.settle_time_ms(), 1_000);
        assert_eq!(c.scale(), 1.0);
        assert!(!c.is_mobile() && c.user_agent().is_none());
        assert_eq!(
            c.media_features(),
            [
                ("prefers-color-scheme", "light"),
                ("prefers-reduced-motion", "no-preference"),
                ("forced-colors", "none")
            ]
        );
        let phone =
            CaptureConfig::from_json(r#"{"device": "iPhone 15", "userAgent": "me"}"#).unwrap();
        assert_eq!((phone.viewport().width, phone.scale()), (393, 3.0));
        assert!(phone.is_mobile());
        assert_eq!(phone.user_agent(), Some("me"));
    }

    #[test]
    fn ignored_resources_include_analytics_hosts() {
        let c = CaptureConfig::from_json(r#"{"resourcesToIgnore": ["/slow.js"]}"#).unwrap();
        assert!(c.is_ignored("https://www.google-analytics.com/analytics.js"));
        assert!(c.is_ignored("http://127.0.0.1:8000/static/slow.js"));
        assert!(!c.is_ignored("http://127.0.0.1:8000/static/fast.js"));
        // A host rule is the host exactly, as the browser applies it.
        assert!(!c.is_ignored("https://www.google-analytics.com.example/x"));
        let patterns = c.blocked_url_patterns();
        assert!(patterns.contains(&"*/slow.js*".to_string()));
        assert!(patterns.contains(&"*://www.google-analytics.com/*".to_string()));
        assert_eq!(patterns.len(), ALWAYS_IGNORED_HOSTS.len() + 1);
        let empty = CaptureConfig::from_json(r#"{"resourcesToIgnore": [""]}"#).unwrap();
        assert_eq!(
            empty.blocked_url_patterns().len(),
            ALWAYS_IGNORED_HOSTS.len()
        );
    }

    #[test]
    fn wildcards_match_like_the_browser() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("*abc*", "xxabcxx", true),
            ("*abc*", "xxabxcx", false),
            ("*://h/*", "https://h/a/b", true),
            ("*://h/*", "https://hh/a", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("abc", "abc", true),
            ("abc", "abcd", false),
        ] {
            assert_eq!(
                wildcard_match(pattern, text),
                expected,
                "{pattern} ~ {text}"
            );
        }
    }
}
