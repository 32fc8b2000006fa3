//! The fast diff kernel and the diff-image renderer.
//!
//! The canvas is cut into bands of [`TILE`] rows, processed on all cores.
//! Inside a band, equal rows and equal 64-byte chunks are skipped with a
//! slice comparison (which the standard library turns into a vectorized
//! `memcmp`); only differing pixels are judged one by one. Screenshots of
//! the same page are equal almost everywhere, so most of the work is the
//! comparison itself, at memory speed.

use rayon::prelude::*;

use super::color::{Judge, Verdict, squared_error};
use super::regions::{TILE, TileHit, group_tiles};
use super::{DiffOptions, DiffReport, Image, Region};

/// Pixels compared per chunk before falling back to pixel by pixel.
const CHUNK_PIXELS: usize = 16;

/// What one band of rows contributed.
#[derive(Default)]
struct BandStats {
    sq_int: u64,
    sq_float: f64,
    changed: u64,
    tiles: Vec<TileHit>,
    /// First row that differs from the reference row at the same height.
    first_unequal: Option<u32>,
    /// Last row that differs from the reference row as far from the bottom.
    last_unequal_from_bottom: Option<u32>,
}

/// How many rows the two images share at the top (same rows) and at the
/// bottom (rows as far from the bottom), as alignment starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CommonRows {
    pub(crate) top: u32,
    pub(crate) bottom: u32,
}

/// Compares `reference` with `new` under `opts` (the fast kernel).
pub fn diff_images(reference: &Image, new: &Image, opts: &DiffOptions) -> DiffReport {
    diff_and_common_rows(reference, new, opts, false).0
}

/// [`diff_images`], also finding the rows the images share at the top and
/// bottom when `common` is set: found on the same pass, while the rows are
/// in cache, so alignment need not read both images again.
pub(crate) fn diff_and_common_rows(
    reference: &Image,
    new: &Image,
    opts: &DiffOptions,
    common: bool,
) -> (DiffReport, Option<CommonRows>) {
    let canvas;
    let aligned = if (reference.width(), reference.height()) == (new.width(), new.height()) {
        reference
    } else {
        canvas = reference.on_canvas(new.width(), new.height());
        &canvas
    };
    let judge = Judge::new(aligned, new, opts);
    let bottom = (common && reference.width() == new.width()).then_some(FromBottom {
        reference,
        canvas: aligned,
        offset: i64::from(new.height()) - i64::from(reference.height()),
    });
    let bands = new.height().div_ceil(TILE);
    let stats: Vec<BandStats> = (0..bands)
        .into_par_iter()
        .map(|band| scan_band(&judge, band, bottom.as_ref()))
        .collect();

    let mut sq_int = 0u64;
    let mut sq_float = 0.0f64;
    let mut changed = 0u64;
    let mut tiles = Vec::new();
    let (mut first_unequal, mut last_unequal) = (None::<u32>, None::<u32>);
    for band in stats {
        sq_int += band.sq_int;
        sq_float += band.sq_float;
        changed += band.changed;
        tiles.extend(band.tiles);
        first_unequal = first_unequal.or(band.first_unequal);
        last_unequal = band.last_unequal_from_bottom.or(last_unequal);
    }
    let rows = bottom.map(|_| {
        let shared = reference.height().min(new.height());
        let top = first_unequal.unwrap_or(new.height()).min(shared);
        let bottom = last_unequal.map_or(new.height(), |y| new.height() - 1 - y);
        CommonRows {
            top,
            bottom: bottom.min(shared - top),
        }
    });
    let report = finish_report(
        reference,
        new,
        sq_int,
        sq_float,
        changed,
        group_tiles(tiles),
    );
    (report, rows)
}

/// The reference as seen from the bottom: new row `y` is compared with
/// reference row `y - offset`.
struct FromBottom<'a> {
    reference: &'a Image,
    /// The reference on the new image's canvas (rows recently read).
    canvas: &'a Image,
    offset: i64,
}

impl FromBottom<'_> {
    /// Whether new row `y` equals the reference row as far from the bottom.
    fn same(&self, y: u32, new_row: &[u8], same_height_equal: bool) -> bool {
        if self.offset == 0 {
            return same_height_equal;
        }
        let r = i64::from(y) - self.offset;
        if r < 0 || r >= i64::from(self.reference.height()) {
            return false;
        }
        let r = r as u32;
        // Rows of the canvas above the new image's height are the
        // reference's own rows, and were read moments ago.
        let row = if r < self.canvas.height() {
            self.canvas.row(r)
        } else {
            self.reference.row(r)
        };
        row == new_row
    }
}

/// Builds the report from the accumulated sums (shared with the reference kernel).
pub(crate) fn finish_report(
    reference: &Image,
    new: &Image,
    sq_int: u64,
    sq_float: f64,
    changed: u64,
    regions: Vec<Region>,
) -> DiffReport {
    let total = new.width() as u64 * new.height() as u64;
    let sum = sq_int as f64 / (255.0 * 255.0) + sq_float;
    let distortion = if total == 0 {
        0.0
    } else {
        (sum / (3.0 * total as f64)).sqrt()
    };
    DiffReport {
        width: new.width(),
        height: new.height(),
        reference_width: reference.width(),
        reference_height: reference.height(),
        distortion,
        changed_pixels: changed,
        total_pixels: total,
        percentage: if total == 0 {
            0.0
        } else {
            changed as f64 * 100.0 / total as f64
        },
        regions,
        shifts: Vec::new(),
        aligned_distortion: distortion,
        unaligned_changed_pixels: changed,
    }
}

#[inline]
fn px(bytes: &[u8], i: usize) -> [u8; 4] {
    [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]
}

fn scan_band(judge: &Judge<'_>, band: u32, bottom: Option<&FromBottom<'_>>) -> BandStats {
    let mut stats = BandStats::default();
    let width = judge.new.width();
    let y_end = ((band + 1) * TILE).min(judge.new.height());
    // Bounding box of the changed pixels per tile column, sized lazily:
    // most bands of most diffs have none.
    let mut boxes: Vec<Option<Region>> = Vec::new();
    for y in band * TILE..y_end {
        let (r, n) = (judge.reference.row(y), judge.new.row(y));
        let equal = r == n;
        if let Some(bottom) = bottom {
            if !equal && stats.first_unequal.is_none() {
                stats.first_unequal = Some(y);
            }
            if !bottom.same(y, n, equal) {
                stats.last_unequal_from_bottom = Some(y);
            }
        }
        if equal {
            continue;
        }
        for (c, (rc, nc)) in r
            .chunks(CHUNK_PIXELS * 4)
            .zip(n.chunks(CHUNK_PIXELS * 4))
            .enumerate()
        {
            if rc == nc {
                continue;
            }
            let x0 = (c * CHUNK_PIXELS) as u32;
            for i in (0..rc.len()).step_by(4) {
                let (p, q) = (px(rc, i), px(nc, i));
                if p == q {
                    continue;
                }
                let x = x0 + (i / 4) as u32;
                match judge.judge(x, y, p, q) {
                    Verdict::Ignored => continue,
                    Verdict::Changed => {
                        stats.changed += 1;
                        if boxes.is_empty() {
                            boxes.resize(width.div_ceil(TILE) as usize, None);
                        }
                        let slot = &mut boxes[(x / TILE) as usize];
                        *slot = Some(match *slot {
                            None => Region {
                                x1: x,
                                y1: y,
                                x2: x,
                                y2: y,
                            },
                            Some(b) => Region {
                                x1: b.x1.min(x),
                                y1: b.y1.min(y),
                                x2: b.x2.max(x),
                                y2: b.y2.max(y),
                            },
                        });
                    }
                    Verdict::Below | Verdict::AntiAliased => {}
                }
                let (si, sf) = squared_error(p, q);
                stats.sq_int += si;
                stats.sq_float += sf;
            }
        }
    }
    stats.tiles = boxes
        .into_iter()
        .enumerate()
        .filter_map(|(tx, b)| {
            b.map(|bounds| TileHit {
                tx: tx as u32,
                ty: band,
                bounds,
            })
        })
        .collect();
    stats
}

/// A rendered diff image: one palette index per pixel (a quarter of the
/// memory of RGBA, and a quarter of the bytes to compress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffImage {
    width: u32,
    height: u32,
    mask: bool,
    indices: Vec<u8>,
}

/// Palette slots after the grey ramp (overlay) or after transparent (mask).
const RED: u8 = 64;
const YELLOW: u8 = 65;
const BLUE: u8 = 66;
const PURPLE: u8 = 68;
const MASK_CLEAR: u8 = 0;
const MASK_RED: u8 = 1;
const MASK_YELLOW: u8 = 2;
const MASK_BLUE: u8 = 3;
const MASK_GREEN: u8 = 4;
const MASK_PURPLE: u8 = 5;
/// Rows of the line that marks where a band was removed.
const REMOVED_LINE: u32 = 3;
/// First of 32 green tones (overlay mode): inserted rows, faded like the
/// reference, so the band's content stays readable.
const GREEN_RAMP: u8 = 69;

impl DiffImage {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Palette indices, one byte per pixel, row-major.
    pub fn indices(&self) -> &[u8] {
        &self.indices
    }

    /// The RGBA palette: in overlay mode 64 greys (the faded reference),
    /// then red (changed), yellow (anti-aliasing), blue (ignored), green
    /// (inserted band), purple (where a band was removed); in mask mode
    /// transparent, then the same marks.
    pub fn palette(&self) -> Vec<[u8; 4]> {
        let marks = [
            [255, 0, 0, 255],
            [255, 200, 0, 255],
            [90, 140, 255, 255],
            [150, 225, 150, 255],
            [150, 40, 200, 255],
        ];
        let mut palette = Vec::with_capacity(101);
        if self.mask {
            palette.push([0, 0, 0, 0]);
        } else {
            palette.extend((0..64u8).map(|i| {
                let v = 192 + i;
                [v, v, v, 255]
            }));
        }
        palette.extend(marks);
        if !self.mask {
            palette.extend((0..32u8).map(|i| {
                let v = 160 + 3 * i;
                [v - 50, v, v - 50, 255]
            }));
        }
        palette
    }

    /// Expands to RGBA (for callers that want pixels rather than a PNG).
    pub fn to_rgba(&self) -> Image {
        let palette = self.palette();
        let data = self
            .indices
            .iter()
            .flat_map(|&i| palette[i as usize])
            .collect();
        Image::from_rgba(self.width, self.height, data).expect("size matches")
    }

    /// Whether this is a transparent mask rather than an overlay.
    pub fn is_mask(&self) -> bool {
        self.mask
    }

    /// Shades inserted rows green (a faded green copy of the new rows, or
    /// flat green in a mask) and draws a purple line where each removed
    /// band was: `inserted` says for each row of the new image whether it
    /// was inserted, `removed` gives each removed band's new-image row and
    /// height.
    pub(crate) fn mark_shifts(&mut self, inserted: &[bool], removed: &[(u32, u32)], new: &Image) {
        let purple = if self.mask { MASK_PURPLE } else { PURPLE };
        let width = self.width as usize;
        for (y, _) in inserted
            .iter()
            .enumerate()
            .filter(|(_, inserted)| **inserted)
        {
            let out = &mut self.indices[y * width..(y + 1) * width];
            if self.mask {
                out.fill(MASK_GREEN);
            } else {
                fade_row(new.row(y as u32), out);
                for slot in out.iter_mut() {
                    *slot = GREEN_RAMP + *slot / 2;
                }
            }
        }
        for &(at, height) in removed {
            let start = at.min(self.height.saturating_sub(REMOVED_LINE));
            for y in start..(start + REMOVED_LINE).min(self.height) {
                let y = y as usize;
                self.indices[y * width..(y + 1) * width].fill(purple);
            }
            // The label, "-<rows>", just above the line (below it at the top).
            let label = format!("-{height}");
            let top = if start >= LABEL_HEIGHT + 2 {
                start - LABEL_HEIGHT - 2
            } else {
                start + REMOVED_LINE + 2
            };
            self.draw_label(&label, 4, top, purple);
        }
    }

    /// Draws `text` (digits and `-`) at (x, y) in the 3x5 font, scaled by
    /// [`LABEL_SCALE`], clipped to the image.
    fn draw_label(&mut self, text: &str, x: u32, y: u32, color: u8) {
        let width = self.width as usize;
        for (i, c) in text.chars().enumerate() {
            let Some(glyph) = glyph(c) else { continue };
            let gx = x + i as u32 * 4 * LABEL_SCALE;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..3u32 {
                    if bits & (0b100 >> col) == 0 {
                        continue;
                    }
                    for dy in 0..LABEL_SCALE {
                        for dx in 0..LABEL_SCALE {
                            let (px, py) = (
                                gx + col * LABEL_SCALE + dx,
                                y + row as u32 * LABEL_SCALE + dy,
                            );
                            if px < self.width && py < self.height {
                                self.indices[py as usize * width + px as usize] = color;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How much the label font is scaled.
const LABEL_SCALE: u32 = 2;
/// Rows of a label.
const LABEL_HEIGHT: u32 = 5 * LABEL_SCALE;

/// A character of the 3x5 label font, one row of three bits per byte.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        _ => return None,
    })
}

/// Renders the diff image: changed pixels red, anti-aliased pixels yellow,
/// differing pixels in ignore regions blue, over a faded grey copy of the
/// reference (or over transparency with [`DiffOptions::mask`]).
pub fn render_diff_image(reference: &Image, new: &Image, opts: &DiffOptions) -> DiffImage {
    let canvas;
    let aligned = if (reference.width(), reference.height()) == (new.width(), new.height()) {
        reference
    } else {
        canvas = reference.on_canvas(new.width(), new.height());
        &canvas
    };
    let judge = Judge::new(aligned, new, opts);
    let width = new.width() as usize;
    let mut indices = vec![0u8; width * new.height() as usize];
    let (red, yellow, blue) = if opts.mask {
        (MASK_RED, MASK_YELLOW, MASK_BLUE)
    } else {
        (RED, YELLOW, BLUE)
    };
    indices
        .par_chunks_mut(width.max(1))
        .enumerate()
        .for_each(|(y, out)| {
            let y = y as u32;
            let (r, n) = (aligned.row(y), new.row(y));
            if opts.mask {
                out.fill(MASK_CLEAR);
            } else {
                fade_row(r, out);
            }
            if r == n {
                return;
            }
            for (x, slot) in out.iter_mut().enumerate() {
                let (p, q) = (px(r, x * 4), px(n, x * 4));
                if p == q {
                    continue;
                }
                *slot = match judge.judge(x as u32, y, p, q) {
                    Verdict::Changed => red,
                    Verdict::AntiAliased => yellow,
                    Verdict::Ignored => blue,
                    Verdict::Below => *slot,
                };
            }
        });
    DiffImage {
        width: new.width(),
        height: new.height(),
        mask: opts.mask,
        indices,
    }
}

/// Maps a row of RGBA to grey-ramp indices: luma of the pixel blended onto
/// white, faded to a quarter of its contrast (index 0 = grey 192, 63 = white).
///
/// Written in 16-bit integer steps without branches so that the compiler
/// vectorizes it; blending uses `(a + 1) / 256` for `a / 255`, exact for
/// opaque and fully transparent pixels and off by at most one level between.
fn fade_row(rgba: &[u8], out: &mut [u8]) {
    // Fixed-size blocks of 16 pixels: split into channel lanes first, then
    // the same arithmetic on every lane, which the compiler turns into SIMD.
    const LANES: usize = 16;
    let mut src = rgba.chunks_exact(LANES * 4);
    let mut dst = out.chunks_exact_mut(LANES);
    for (p, o) in (&mut src).zip(&mut dst) {
        let mut ch = [[0u16; LANES]; 4];
        for i in 0..LANES {
            for (c, lane) in ch.iter_mut().enumerate() {
                lane[i] = p[i * 4 + c] as u16;
            }
        }
        for i in 0..LANES {
            o[i] = fade_pixel(ch[0][i], ch[1][i], ch[2][i], ch[3][i]);
        }
    }
    for (p, o) in src.remainder().chunks_exact(4).zip(dst.into_remainder()) {
        *o = fade_pixel(p[0] as u16, p[1] as u16, p[2] as u16, p[3] as u16);
    }
}

#[inline(always)]
fn fade_pixel(r: u16, g: u16, b: u16, a: u16) -> u8 {
    let a1 = a + 1;
    let r = 255 - (((255 - r) * a1) >> 8);
    let g = 255 - (((255 - g) * a1) >> 8);
    let b = 255 - (((255 - b) * a1) >> 8);
    let luma = (77 * r + 150 * g + 29 * b) >> 8;
    (63 - ((255 - luma) >> 2)) as u8
}
