//! The screenshot's rectangle and the stitching of tall shots, for every
//! engine.

use serde_json::Value;

use crate::config::CaptureConfig;
use crate::diff::{DEFAULT_MAX_PIXELS, Image, decode_png, encode_rgba_png};

use super::CaptureError;

/// Tallest piece taken in one screenshot; taller shots are stitched from
/// tiles (GPU-backed Chromium cannot capture much more than 16,384 px).
const TILE_HEIGHT: u32 = 8192;

/// A rectangle of the page, in CSS pixels from its top-left corner.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clip {
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// The tallest full-page shot, in CSS pixels, of a page `width` CSS pixels
/// wide at `scale` device pixels each: at most [`DEFAULT_MAX_PIXELS`]
/// device pixels, what the diff accepts by default.
pub(crate) fn max_shot_height(width: u32, scale: f64) -> u32 {
    let css_pixels = DEFAULT_MAX_PIXELS as f64 / (scale * scale);
    (css_pixels / f64::from(width.max(1))).min(f64::from(u32::MAX)) as u32
}

/// The screenshot of `clip` (page coordinates) at `scale` device pixels
/// per CSS pixel, taken by `shoot(tile, tiled)`: in one piece, or, when it
/// is more than [`TILE_HEIGHT`] device pixels tall, in tiles (`tiled`
/// true) stitched into one PNG.
pub(crate) async fn stitched<F, Fut>(
    clip: Clip,
    scale: f64,
    shoot: F,
) -> Result<Vec<u8>, CaptureError>
where
    F: Fn(Clip, bool) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, CaptureError>>,
{
    // A multiple of 8 CSS pixels: whole device pixels at every seam, as
    // the scale is a multiple of 1/8.
    let tile_css = (((f64::from(TILE_HEIGHT) / scale).floor() as u32) / 8 * 8).max(8);
    if clip.height <= tile_css {
        return shoot(clip, false).await;
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
        let png = shoot(tile, true).await?;
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

/// The PNG in a screenshot reply (CDP's and BiDi's both carry it as
/// base64 `data`).
pub(crate) fn shot_data(reply: &Value) -> Result<Vec<u8>, CaptureError> {
    let data = reply["data"]
        .as_str()
        .ok_or_else(|| CaptureError::browser("screenshot without data"))?;
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| CaptureError::browser_from("screenshot is not base64", e))
}

/// A length the page reported, in CSS pixels (0 when it is not a number).
pub(crate) fn css_pixels(v: &Value) -> u32 {
    v.as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32
}

/// The capture log's line for a screenshot of `clip`.
pub(crate) fn shot_line(clip: Clip, png: &[u8]) -> String {
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
pub(crate) fn shot_clip(config: &CaptureConfig, doc_height: u32) -> (Clip, Option<String>) {
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
