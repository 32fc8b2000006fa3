//! Per-pixel judgements shared by the fast and the reference kernel: colour
//! distance in YIQ space, anti-aliasing detection, squared error for RMSE.
//!
//! Only pixels whose bytes differ reach these functions, so they favour
//! clarity over speed.

use super::{DiffOptions, Image, Region};

/// The YIQ distance between black and white: the largest possible delta.
const MAX_YIQ_DELTA: f32 = 35215.0;

/// What a differing pixel counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Inside an ignore region.
    Ignored,
    /// Differs, but less than the threshold.
    Below,
    /// Differs past the threshold, but looks like an anti-aliased edge.
    AntiAliased,
    /// A real change.
    Changed,
}

/// Everything a kernel needs to judge a pixel, computed once per diff.
pub(crate) struct Judge<'a> {
    pub reference: &'a Image,
    pub new: &'a Image,
    ignore: &'a [Region],
    antialiasing: bool,
    max_delta: f32,
}

impl<'a> Judge<'a> {
    pub fn new(reference: &'a Image, new: &'a Image, opts: &'a DiffOptions) -> Judge<'a> {
        let t = opts.threshold as f32;
        Judge {
            reference,
            new,
            ignore: &opts.ignore,
            antialiasing: opts.antialiasing,
            max_delta: MAX_YIQ_DELTA * t * t,
        }
    }

    /// Judges the pixel at (x, y), whose reference value `p` differs from its new value `q`.
    #[inline]
    pub fn judge(&self, x: u32, y: u32, p: [u8; 4], q: [u8; 4]) -> Verdict {
        if self.ignore.iter().any(|r| r.contains(x, y)) {
            return Verdict::Ignored;
        }
        let delta = yiq_delta(p, q);
        // With a zero threshold every visible difference counts; pixels that
        // blend to the same colour on white (say, two fully transparent
        // pixels with different RGB) never do.
        if delta <= self.max_delta {
            return Verdict::Below;
        }
        if self.antialiasing
            && (is_antialiased(self.reference, self.new, x, y)
                || is_antialiased(self.new, self.reference, x, y))
        {
            return Verdict::AntiAliased;
        }
        Verdict::Changed
    }
}

/// The squared error of one pixel for the RMSE: exact integer units of
/// 1/255² when both pixels are opaque, otherwise premultiplied by alpha as
/// ImageMagick does (returned in the second slot, already normalized).
#[inline]
pub(crate) fn squared_error(p: [u8; 4], q: [u8; 4]) -> (u64, f64) {
    if p[3] == 255 && q[3] == 255 {
        let d = |i: usize| (p[i] as i32 - q[i] as i32).pow(2) as u64;
        (d(0) + d(1) + d(2), 0.0)
    } else {
        let (pa, qa) = (p[3] as f64 / 255.0, q[3] as f64 / 255.0);
        let d = |i: usize| (pa * p[i] as f64 / 255.0 - qa * q[i] as f64 / 255.0).powi(2);
        (0, d(0) + d(1) + d(2))
    }
}

/// Blends a channel onto white by its alpha.
#[inline]
fn on_white(c: u8, a: u8) -> f32 {
    255.0 + (c as f32 - 255.0) * (a as f32 / 255.0)
}

#[inline]
fn blended(p: [u8; 4]) -> (f32, f32, f32) {
    (
        on_white(p[0], p[3]),
        on_white(p[1], p[3]),
        on_white(p[2], p[3]),
    )
}

/// Luma (the Y of YIQ) of a pixel blended onto white.
#[inline]
fn luma(p: [u8; 4]) -> f32 {
    let (r, g, b) = blended(p);
    r * 0.298_895_3 + g * 0.586_622_5 + b * 0.114_482_2
}

/// Perceptual colour distance in YIQ space (Kotsarenko and Ramos, 2010),
/// pixels blended onto white first.
#[inline]
pub(crate) fn yiq_delta(p: [u8; 4], q: [u8; 4]) -> f32 {
    let (r1, g1, b1) = blended(p);
    let (r2, g2, b2) = blended(q);
    let (dr, dg, db) = (r1 - r2, g1 - g2, b1 - b2);
    let y = dr * 0.298_895_3 + dg * 0.586_622_5 + db * 0.114_482_2;
    let i = dr * 0.595_978 - dg * 0.274_176_1 - db * 0.321_801_9;
    let q = dr * 0.211_470_2 - dg * 0.522_617_1 + db * 0.311_146_9;
    0.5053 * y * y + 0.299 * i * i + 0.1957 * q * q
}

/// The 3×3 neighbourhood of (x, y) without the centre, clipped to the image.
fn neighbours(img: &Image, x: u32, y: u32) -> impl Iterator<Item = (u32, u32)> {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x, y) = (x as i64, y as i64);
    (-1..=1i64)
        .flat_map(move |dy| (-1..=1i64).map(move |dx| (x + dx, y + dy)))
        .filter(move |&(nx, ny)| (nx, ny) != (x, y) && nx >= 0 && ny >= 0 && nx < w && ny < h)
        .map(|(nx, ny)| (nx as u32, ny as u32))
}

/// Whether (x, y) sits inside a flat area of `img`: at least three
/// neighbours of exactly its colour (a pixel on the image border counts the
/// outside as one such neighbour).
fn in_flat_area(img: &Image, x: u32, y: u32) -> bool {
    let centre = img.pixel(x, y);
    let on_border = x == 0 || y == 0 || x + 1 == img.width() || y + 1 == img.height();
    let mut same = usize::from(on_border);
    for (nx, ny) in neighbours(img, x, y) {
        if img.pixel(nx, ny) == centre {
            same += 1;
            if same >= 3 {
                return true;
            }
        }
    }
    false
}

/// Whether the pixel (x, y) of `img` looks like anti-aliasing: it lies
/// between a darker and a brighter neighbour, has at most two neighbours of
/// its own brightness, and the darkest or the brightest neighbour belongs to
/// a flat area in both images (the edge it smooths exists in both).
pub(crate) fn is_antialiased(img: &Image, other: &Image, x: u32, y: u32) -> bool {
    let centre = luma(img.pixel(x, y));
    let mut equal = 0;
    let (mut darkest, mut brightest) = (0.0f32, 0.0f32);
    let (mut dark_at, mut bright_at) = (None, None);
    for (nx, ny) in neighbours(img, x, y) {
        let d = luma(img.pixel(nx, ny)) - centre;
        if d == 0.0 {
            equal += 1;
            if equal > 2 {
                return false;
            }
        } else if d < darkest {
            darkest = d;
            dark_at = Some((nx, ny));
        } else if d > brightest {
            brightest = d;
            bright_at = Some((nx, ny));
        }
    }
    let flat_in_both = |at: Option<(u32, u32)>| {
        at.is_some_and(|(ax, ay)| in_flat_area(img, ax, ay) && in_flat_area(other, ax, ay))
    };
    match (dark_at, bright_at) {
        (Some(_), Some(_)) => flat_in_both(dark_at) || flat_in_both(bright_at),
        _ => false,
    }
}
