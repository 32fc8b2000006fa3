//! The screenshot: its rectangle, tiles stitched for tall pages, and the
//! same page taken again with other media features.

use std::fmt::Write as _;
use std::time::Instant;

use serde_json::{Value, json};

use super::super::{Capture, CaptureError, js};
use super::{QUIET_MS, Session, log_abandoned};
use crate::config::CaptureConfig;
use crate::diff::{DEFAULT_MAX_PIXELS, Image, decode_png, encode_rgba_png};

/// Tallest piece taken in one screenshot; taller shots are stitched from
/// tiles (GPU-backed Chromium cannot capture much more than 16,384 px).
const TILE_HEIGHT: u32 = 8192;

/// A rectangle of the page, in CSS pixels from its top-left corner.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clip {
    pub(super) x: u32,
    pub(super) y: u32,
    pub(super) width: u32,
    pub(super) height: u32,
}

/// The tallest full-page shot, in CSS pixels, of a page `width` CSS pixels
/// wide at `scale` device pixels each: at most [`DEFAULT_MAX_PIXELS`]
/// device pixels, what the diff accepts by default.
pub(super) fn max_shot_height(width: u32, scale: f64) -> u32 {
    let css_pixels = DEFAULT_MAX_PIXELS as f64 / (scale * scale);
    (css_pixels / f64::from(width.max(1))).min(f64::from(u32::MAX)) as u32
}

impl Session {
    /// Takes the screenshot of the settled, decorated page. Its scripts are
    /// stopped first, so nothing changes it meanwhile. A page that
    /// navigates itself (a timer setting `location`) while Chromium takes
    /// the screenshot would leave `Page.captureScreenshot` unanswered for
    /// good; one it started just before is waited for (by chromedriver,
    /// which tracks navigations closely: the page's own DevTools events did
    /// not tell a pending one reliably).
    pub(super) async fn take_shot(
        &self,
        config: &CaptureConfig,
        clip: Clip,
    ) -> Result<Vec<u8>, CaptureError> {
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
        let (clip, cut) = shot_clip(config, css_pixels(&settled["height"]));
        if let Some(note) = cut {
            step(&mut log, &note);
        }
        let png = self.take_shot(config, clip).await?;
        step(&mut log, &shot_line(clip, &png));
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
    pub(super) async fn screenshot(
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
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| CaptureError::browser("screenshot without data"))?;
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| CaptureError::browser_from("screenshot is not base64", e))
    }
}

/// A length the page reported, in CSS pixels (0 when it is not a number).
pub(super) fn css_pixels(v: &Value) -> u32 {
    v.as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32
}

/// The capture log's line for a screenshot of `clip`.
pub(super) fn shot_line(clip: Clip, png: &[u8]) -> String {
    format!(
        "screenshot {}x{} ({} bytes)",
        clip.width,
        clip.height,
        png.len()
    )
}

/// The rectangle to take: `clipRect`, or the viewport's width and the
/// document's height (full page, cut at [`max_shot_height`]: the note
/// says so) or the viewport's. The viewport keeps its size, so `100vh` and
/// fixed elements lay out as in a browser window; the shot reaches beyond.
pub(super) fn shot_clip(config: &CaptureConfig, doc_height: u32) -> (Clip, Option<String>) {
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
