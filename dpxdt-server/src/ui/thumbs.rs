//! Thumbnails for the release page: the top of a screenshot, scaled down
//! with `fast_image_resize`, made on first request and kept as an artifact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use dpxdt_core::ArtifactId;
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// Width of a thumbnail in pixels (twice the CSS width, for sharp screens).
pub const THUMB_WIDTH: u32 = 440;
/// Height of a thumbnail in pixels: the top of a tall page is what identifies it.
pub const THUMB_HEIGHT: u32 = 300;
/// Largest screenshot a thumbnail is made of.
const MAX_PIXELS: u64 = 100_000_000;

/// Screenshots decoded for thumbnails at once (each up to 400 MB of RGBA).
const CONCURRENT_RENDERS: usize = 2;

/// Who is making which thumbnail: one render per artifact at a time (the
/// others wait for it and then find it cached), and at most
/// [`CONCURRENT_RENDERS`] renders in all.
pub(crate) struct Renders {
    by_key: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    slots: tokio::sync::Semaphore,
}

impl Default for Renders {
    fn default() -> Self {
        Renders {
            by_key: Mutex::default(),
            slots: tokio::sync::Semaphore::new(CONCURRENT_RENDERS),
        }
    }
}

impl Renders {
    /// Waits until nobody else renders `key`; hold the guard while rendering.
    pub(crate) async fn one_at_a_time(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, w| w.strong_count() > 0);
            match map.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// Waits for one of the render slots.
    pub(crate) async fn slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.slots
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }
}

/// Scales the top of a PNG screenshot down to at most
/// [`THUMB_WIDTH`]x[`THUMB_HEIGHT`] (never up), as PNG bytes.
pub fn make_thumbnail(png_bytes: &[u8]) -> Result<Vec<u8>, String> {
    let img = dpxdt_core::diff::decode_png(png_bytes, "screenshot", MAX_PIXELS)
        .map_err(|e| e.to_string())?;
    let (w, h) = (img.width(), img.height());
    // The crop keeps the thumbnail's aspect ratio at its final width.
    let crop_h =
        h.min(((u64::from(w) * u64::from(THUMB_HEIGHT)) / u64::from(THUMB_WIDTH)).max(1) as u32);
    let (tw, th) = if w <= THUMB_WIDTH {
        (w, crop_h)
    } else {
        (
            THUMB_WIDTH,
            ((u64::from(crop_h) * u64::from(THUMB_WIDTH) + u64::from(w) / 2) / u64::from(w)).max(1)
                as u32,
        )
    };
    let top = img.as_rgba()[..(w as usize * crop_h as usize * 4)].to_vec();
    let rgba = if (tw, th) == (w, crop_h) {
        top
    } else {
        let src = Image::from_vec_u8(w, crop_h, top, PixelType::U8x4).map_err(|e| e.to_string())?;
        let mut dst = Image::new(tw, th, PixelType::U8x4);
        Resizer::new()
            .resize(
                &src,
                &mut dst,
                &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
            )
            .map_err(|e| e.to_string())?;
        dst.into_vec()
    };
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, tw, th);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&rgba).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// The cache key of the thumbnail of `id`, as stored.
pub fn key(id: &ArtifactId) -> String {
    format!("{id}:{THUMB_WIDTH}x{THUMB_HEIGHT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_for_one_screenshot_renders_it_once() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let renders = Arc::new(Renders::default());
        let cached = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (renders, cached, made) = (renders.clone(), cached.clone(), made.clone());
                tokio::spawn(async move {
                    let _mine = renders.one_at_a_time("screenshot").await;
                    if !cached.load(Ordering::SeqCst) {
                        let _slot = renders.slot().await;
                        tokio::task::yield_now().await;
                        made.fetch_add(1, Ordering::SeqCst);
                        cached.store(true, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(made.load(Ordering::SeqCst), 1);
        // Another screenshot is not held up by a finished one.
        let _other = renders.one_at_a_time("another").await;
        assert_eq!(renders.slots.available_permits(), CONCURRENT_RENDERS);
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgba);
        let mut writer = enc.write_header().unwrap();
        let data: Vec<u8> = (0..w * h)
            .flat_map(|i| [(i % 251) as u8, 0, 0, 255])
            .collect();
        writer.write_image_data(&data).unwrap();
        writer.finish().unwrap();
        out
    }

    fn size(bytes: &[u8]) -> (u32, u32) {
        let img = dpxdt_core::diff::decode_png(bytes, "t", MAX_PIXELS).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn a_tall_wide_page_keeps_its_top_at_thumbnail_width() {
        assert_eq!(size(&make_thumbnail(&png(1280, 1500)).unwrap()), (440, 300));
        assert_eq!(size(&make_thumbnail(&png(880, 1000)).unwrap()), (440, 300));
    }

    #[test]
    fn a_small_image_is_never_scaled_up() {
        assert_eq!(size(&make_thumbnail(&png(100, 50)).unwrap()), (100, 50));
        assert_eq!(size(&make_thumbnail(&png(100, 900)).unwrap()), (100, 68));
    }

    #[test]
    fn bytes_that_are_not_png_are_an_error() {
        assert!(make_thumbnail(b"GIF89a").unwrap_err().contains("PNG"));
    }
}
