//! What machine the page believes it runs on: user agent, languages, time
//! zone, locale, media features, screen and touch, from the config.

use serde_json::{Value, json};

use super::super::CaptureError;
use super::Session;
use crate::config::CaptureConfig;

impl Session {
    /// Tells the browser what machine the page believes it is on, as the
    /// config says and never as this machine is: the user agent and
    /// `Accept-Language`, the time zone, the locale (for `Intl`), the CSS
    /// media features, the screen (viewport, pixel ratio, mobile) and touch.
    pub(super) async fn emulate_environment(
        &self,
        config: &CaptureConfig,
    ) -> Result<(), CaptureError> {
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
    pub(super) async fn set_media(&self, config: &CaptureConfig) -> Result<(), CaptureError> {
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
    pub(super) async fn set_locale(&self, locale: &str) -> Result<(), CaptureError> {
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
}
