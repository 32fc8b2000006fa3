//! Chromium's screenshot, and the same page taken again with other media
//! features.

use serde_json::{Value, json};

use super::super::shot::{Clip, css_pixels, shot_clip, shot_data, shot_line, stitched};
use super::super::steps::{self, Log};
use super::super::{Capture, CaptureError, js};
use super::Session;
use crate::config::CaptureConfig;

impl Session {
    /// Takes the screenshot of the settled, decorated page. Its scripts are
    /// stopped first, so nothing changes it meanwhile. A page that
    /// navigates itself (a timer setting `location`) while Chromium takes
    /// the screenshot would leave `Page.captureScreenshot` unanswered for
    /// good; one it started just before is waited for.
    pub(super) async fn take_shot(
        &self,
        config: &CaptureConfig,
        clip: Clip,
    ) -> Result<Vec<u8>, CaptureError> {
        // A navigation the page started while it settled (a meta refresh
        // at load) ends first, with scripts on, so its target is shown as
        // it loads; one started after that is waited for with them off.
        self.wait_for_started_navigation().await?;
        self.set_scripts_enabled(false).await?;
        self.wait_for_started_navigation().await?;
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
        let mut log = Log::start();
        let features: Vec<String> = config
            .media_features()
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect();
        log.step(&format!(
            "the page of the capture before, with {} (no second load)",
            features.join(", ")
        ));
        self.set_media(config).await?;
        self.set_scripts_enabled(true).await?;
        let settled = steps::settle_and_stabilize(self, config, false).await?;
        log.step(&format!("settled after {} ms", settled["waitedMs"]));
        log.abandoned(&settled);
        let (clip, cut) = shot_clip(config, css_pixels(&settled["height"]));
        if let Some(note) = cut {
            log.step(&note);
        }
        let png = self.take_shot(config, clip).await?;
        log.step(&shot_line(clip, &png));
        Ok(Capture {
            png,
            log: log.into_text(),
            located: Vec::new(),
            links: Vec::new(),
        })
    }

    /// Takes the screenshot of `clip` (page coordinates) at `scale` device
    /// pixels per CSS pixel, in tiles when it is tall; `beyond` lets the
    /// clip reach past the viewport without resizing it.
    pub(super) async fn screenshot(
        &self,
        clip: Clip,
        scale: f64,
        beyond: bool,
    ) -> Result<Vec<u8>, CaptureError> {
        stitched(clip, scale, |tile, tiled| {
            self.screenshot_tile(tile, beyond || tiled)
        })
        .await
    }

    pub(super) async fn screenshot_tile(
        &self,
        clip: Clip,
        beyond: bool,
    ) -> Result<Vec<u8>, CaptureError> {
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
        shot_data(&shot)
    }
}
