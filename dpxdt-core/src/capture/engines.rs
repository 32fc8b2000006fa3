//! A browser session of any engine: what the pool holds and a capture
//! borrows. Each engine's own module drives its browser; this one only
//! hands each call to the right one.

use super::{BrowserOptions, Capture, CaptureError, Probe, chromium, firefox};
use crate::config::{CaptureConfig, Engine};

/// One browser session, of one engine.
pub(crate) enum Session {
    /// Headless Chromium behind the pool's chromedriver.
    Chromium(chromium::Session),
    /// Headless Firefox behind a geckodriver of its own.
    Firefox(firefox::Session),
}

impl Session {
    /// Starts a session of `engine` (`driver_url`: the pool's shared
    /// driver, for the engines that have one).
    pub(crate) async fn start(
        engine: Engine,
        driver_url: &str,
        options: &BrowserOptions,
    ) -> Result<Session, CaptureError> {
        match engine {
            Engine::Chromium => Ok(Session::Chromium(
                chromium::Session::start(driver_url, options).await?,
            )),
            Engine::Firefox => Ok(Session::Firefox(firefox::Session::start(options).await?)),
            Engine::Webkit => Err(CaptureError::launch(
                "the webkit engine is not available yet",
            )),
        }
    }

    /// Moves to a fresh browser context for the next capture.
    pub(crate) async fn renew(&mut self) -> Result<(), CaptureError> {
        match self {
            Session::Chromium(s) => s.renew().await,
            Session::Firefox(s) => s.renew().await,
        }
    }

    /// Takes one screenshot of `url` as `config` says.
    pub(crate) async fn capture(
        &self,
        url: &str,
        config: &CaptureConfig,
        probe: &Probe,
    ) -> Result<Capture, CaptureError> {
        match self {
            Session::Chromium(s) => s.capture(url, config, probe).await,
            Session::Firefox(s) => s.capture(url, config, probe).await,
        }
    }

    /// Whether the loaded page may be taken again with other media
    /// features (only Chromium re-takes a page).
    pub(crate) async fn media_blind(&self) -> Result<bool, CaptureError> {
        match self {
            Session::Chromium(s) => s.media_blind().await,
            Session::Firefox(_) => Ok(false),
        }
    }

    /// The loaded page again with `config`'s media features.
    pub(crate) async fn recapture_media(
        &self,
        config: &CaptureConfig,
    ) -> Result<Capture, CaptureError> {
        match self {
            Session::Chromium(s) => s.recapture_media(config).await,
            Session::Firefox(_) => Err(CaptureError::browser(
                "only Chromium takes a loaded page again",
            )),
        }
    }

    /// Quits the session in the background (used when it may be broken).
    pub(crate) fn discard(self) {
        match self {
            Session::Chromium(s) => s.discard(),
            Session::Firefox(s) => s.discard(),
        }
    }

    /// Forgets the session (its driver is being killed).
    pub(crate) fn abandon(self) {
        match self {
            Session::Chromium(s) => s.abandon(),
            Session::Firefox(s) => s.abandon(),
        }
    }
}
