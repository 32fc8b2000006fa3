//! The image diff: how far a new screenshot is from its reference.
//!
//! Two measures come out of one pass over the pixels:
//!
//! - **distortion**, the original Depicted metric: the root-mean-square error
//!   over the red, green and blue channels (premultiplied by alpha), scaled to
//!   0..1. It is the number ImageMagick prints in parentheses for
//!   `compare -metric RMSE`.
//! - **changed pixels**, a perceptual count in the pixelmatch/odiff family: a
//!   pixel counts when its colour distance in YIQ space passes
//!   [`DiffOptions::threshold`], unless it lies in an ignore region or (with
//!   [`DiffOptions::antialiasing`]) looks like an anti-aliased edge. Changed
//!   pixels are grouped into bounding boxes ([`DiffReport::regions`]).
//!
//! Size rule (the original's): the reference is placed top-left on a canvas
//! the size of the new image, padded with opaque white or cropped, never
//! scaled. A size change always makes the pair different.
//!
//! The kernel works row band by row band on all cores (rayon), skips equal
//! rows and 64-byte chunks with a plain slice comparison (a vectorized
//! `memcmp`), and allocates nothing per pixel. A deliberately plain
//! [`reference_diff`] computes the same numbers pixel by pixel; tests and
//! benches hold the fast kernel to it.
//!
//! ```
//! use dpxdt_core::diff::{diff_images, DiffOptions, Image};
//!
//! let reference = Image::filled(4, 4, [255, 255, 255, 255]);
//! let mut new = reference.clone();
//! new.set_pixel(1, 2, [0, 0, 0, 255]);
//! let report = diff_images(&reference, &new, &DiffOptions::default());
//! assert_eq!(report.changed_pixels, 1);
//! assert!(report.is_different());
//! ```

mod align;
mod color;
mod image;
mod kernel;
mod png_io;
mod reference;
mod regions;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use self::image::Image;
pub use align::{Shift, ShiftKind};
pub use kernel::{DiffImage, diff_images, render_diff_image};
pub use png_io::{
    MAX_INFLATED_CHUNK, check_png_chunks, check_png_structure, decode_png, encode_diff_png,
    encode_rgba_png, load_png,
};
pub use reference::reference_diff;

/// The default pixel limit of a decoded image (100 megapixels). An image whose
/// header claims more is refused before any pixel memory is allocated.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// The default colour-distance threshold.
pub const DEFAULT_THRESHOLD: f64 = 0.1;

/// How to compare two images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffOptions {
    /// Colour distance (0..1, in YIQ space) a pixel must pass to count as
    /// changed. 0 counts every pixel whose bytes differ.
    pub threshold: f64,
    /// Do not count pixels that look like anti-aliased edges.
    pub antialiasing: bool,
    /// Rectangles (in new-image coordinates) that are never compared.
    pub ignore: Vec<Region>,
    /// Largest image (width × height) accepted by the decoder.
    pub max_pixels: u64,
    /// Render the diff image as a transparent mask with only the changed
    /// pixels painted, instead of over a faded copy of the reference.
    pub mask: bool,
    /// Align the images vertically first (see [`DiffReport::shifts`]).
    pub align: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            threshold: DEFAULT_THRESHOLD,
            antialiasing: false,
            ignore: Vec::new(),
            max_pixels: DEFAULT_MAX_PIXELS,
            mask: false,
            align: true,
        }
    }
}

impl DiffOptions {
    /// Checks the option values.
    pub fn validate(&self) -> Result<(), DiffError> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(DiffError::BadOption(format!(
                "threshold must be between 0 and 1, got {}",
                self.threshold
            )));
        }
        Ok(())
    }
}

/// An axis-aligned rectangle of pixels, corners inclusive. Written
/// `x1:y1-x2:y2` on the command line and in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    /// Left column.
    pub x1: u32,
    /// Top row.
    pub y1: u32,
    /// Right column (inclusive).
    pub x2: u32,
    /// Bottom row (inclusive).
    pub y2: u32,
}

impl Region {
    /// Whether the pixel at (x, y) is inside.
    #[inline]
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x1 && x <= self.x2 && y >= self.y1 && y <= self.y2
    }

    /// Parses `x1:y1-x2:y2` given as `field`; the error names the field
    /// and the form it takes.
    pub fn parse_field(field: &str, raw: &str) -> Result<Region, String> {
        raw.trim().parse().map_err(|_| {
            format!("{field} must be x1:y1-x2:y2 (pixels of the new image), not {raw:?}")
        })
    }

    /// Width in pixels (saturating: a region as wide as `u32` allows stays
    /// `u32::MAX`).
    pub fn width(&self) -> u32 {
        self.x2.saturating_sub(self.x1).saturating_add(1)
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.y2.saturating_sub(self.y1).saturating_add(1)
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}-{}:{}", self.x1, self.y1, self.x2, self.y2)
    }
}

impl FromStr for Region {
    type Err = DiffError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            DiffError::BadOption(format!(
                "bad region `{s}`: expected x1:y1-x2:y2 with x1 <= x2 and y1 <= y2"
            ))
        };
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let point = |p: &str| -> Option<(u32, u32)> {
            let (x, y) = p.split_once(':')?;
            Some((x.trim().parse().ok()?, y.trim().parse().ok()?))
        };
        let (x1, y1) = point(a).ok_or_else(bad)?;
        let (x2, y2) = point(b).ok_or_else(bad)?;
        if x1 > x2 || y1 > y2 {
            return Err(bad());
        }
        Ok(Region { x1, y1, x2, y2 })
    }
}

impl Serialize for Region {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a comparison found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffReport {
    /// Width of the compared canvas (the new image).
    pub width: u32,
    /// Height of the compared canvas (the new image).
    pub height: u32,
    /// Width of the reference image as given.
    pub reference_width: u32,
    /// Height of the reference image as given.
    pub reference_height: u32,
    /// Normalized RMSE over the colour channels, 0 (same) to 1, of the
    /// images as they are (the original metric, never aligned).
    pub distortion: f64,
    /// Pixels whose colour distance passed the threshold (outside ignore
    /// regions, and not anti-aliasing when that is detected), after
    /// alignment: rows in [`Self::shifts`] do not count.
    pub changed_pixels: u64,
    /// Pixels of the canvas.
    pub total_pixels: u64,
    /// `changed_pixels` as a percentage of `total_pixels`.
    pub percentage: f64,
    /// Bounding boxes of the changed areas, top to bottom (after alignment).
    pub regions: Vec<Region>,
    /// Bands of rows inserted into the new image or removed from the
    /// reference, found by aligning the images; empty when nothing moved
    /// or alignment is off.
    #[serde(default)]
    pub shifts: Vec<Shift>,
    /// [`Self::distortion`] after alignment (the same when nothing moved).
    #[serde(default)]
    pub aligned_distortion: f64,
    /// [`Self::changed_pixels`] before alignment (the same when nothing moved).
    #[serde(default)]
    pub unaligned_changed_pixels: u64,
}

impl DiffReport {
    /// The report of two images that are the same, `width` x `height`.
    pub fn identical(width: u32, height: u32) -> DiffReport {
        DiffReport {
            width,
            height,
            reference_width: width,
            reference_height: height,
            distortion: 0.0,
            changed_pixels: 0,
            total_pixels: u64::from(width) * u64::from(height),
            percentage: 0.0,
            regions: Vec::new(),
            shifts: Vec::new(),
            aligned_distortion: 0.0,
            unaligned_changed_pixels: 0,
        }
    }

    /// Whether the reference had another size than the new image.
    pub fn size_changed(&self) -> bool {
        self.width != self.reference_width || self.height != self.reference_height
    }

    /// Whether a person should look at this pair (the original rule): some
    /// pixel changed beyond the threshold, before or after alignment, or
    /// something moved, or the size changed.
    pub fn is_different(&self) -> bool {
        self.changed_pixels > 0
            || self.unaligned_changed_pixels > 0
            || !self.shifts.is_empty()
            || self.size_changed()
    }

    /// Whether something changed besides bands moving (`--pass-on-shift`):
    /// a pixel still differs after alignment, or the size changed in a way
    /// no shift explains.
    pub fn changed_beyond_shifts(&self) -> bool {
        self.changed_pixels > 0 || (self.size_changed() && self.shifts.is_empty())
    }
}

/// A comparison, with what the diff image is drawn from.
struct Compared {
    report: DiffReport,
    /// How the rows correspond, when aligned.
    aligned: Option<align::Alignment>,
}

/// Compares two images: aligned first when [`DiffOptions::align`] is on and
/// alignment explains some of the difference, else as they are.
fn compare(reference: &Image, new: &Image, opts: &DiffOptions) -> Compared {
    let (mut report, common) = kernel::diff_and_common_rows(reference, new, opts, opts.align);
    report.aligned_distortion = report.distortion;
    report.unaligned_changed_pixels = report.changed_pixels;
    if !opts.align || !report.is_different() {
        return Compared {
            report,
            aligned: None,
        };
    }
    let Some(alignment) = common.and_then(|common| align::align(reference, new, common)) else {
        return Compared {
            report,
            aligned: None,
        };
    };
    let after = alignment.diff(reference, new, opts);
    // Keep the alignment only when it explains part of the difference: a
    // false match of rows must not hide or invent changes.
    if after.changed_pixels >= report.changed_pixels {
        return Compared {
            report,
            aligned: None,
        };
    }
    report.changed_pixels = after.changed_pixels;
    report.percentage = after.percentage;
    report.regions = after.regions;
    report.aligned_distortion = after.distortion;
    report.shifts = alignment.shifts.clone();
    Compared {
        report,
        aligned: Some(alignment),
    }
}

/// The report of [`compare_images`] without the diff image: aligned
/// unless [`DiffOptions::align`] is off.
pub fn diff_aligned(reference: &Image, new: &Image, opts: &DiffOptions) -> DiffReport {
    compare(reference, new, opts).report
}

/// Compares two decoded images as [`diff_png_bytes`] and [`diff_files`] do
/// (aligned unless [`DiffOptions::align`] is off), and renders the diff
/// image when they differ: changes red, inserted bands green, removed
/// bands a purple line where they were.
pub fn compare_images(
    reference: &Image,
    new: &Image,
    opts: &DiffOptions,
) -> (DiffReport, Option<DiffImage>) {
    let compared = compare(reference, new, opts);
    if !compared.report.is_different() {
        return (compared.report, None);
    }
    let image = match &compared.aligned {
        Some(alignment) => {
            let moved = alignment.reference_image(reference, new);
            let mut image = render_diff_image(&moved, new, opts);
            let (inserted, removed) = alignment.marks();
            image.mark_shifts(&inserted, &removed, new);
            image
        }
        None => render_diff_image(reference, new, opts),
    };
    (compared.report, Some(image))
}

/// A report plus the encoded diff image (only when the pair is different).
#[derive(Debug, Clone)]
pub struct DiffOutcome {
    /// The numbers.
    pub report: DiffReport,
    /// PNG bytes of the diff image, `None` when nothing differs.
    pub diff_png: Option<Vec<u8>>,
}

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not a PNG image.
    #[error("{what}: not a PNG image")]
    NotPng {
        /// Which input (a path or "reference"/"new").
        what: String,
    },
    /// The PNG is truncated or corrupt.
    #[error("{what}: truncated or corrupt PNG: {detail}")]
    Corrupt {
        /// Which input.
        what: String,
        /// What the decoder said.
        detail: String,
    },
    /// The image has no pixels.
    #[error("{what}: image is empty ({width}x{height})")]
    Empty {
        /// Which input.
        what: String,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// The header claims more pixels than allowed (a decompression bomb).
    #[error(
        "{what}: image is {width}x{height} = {pixels} pixels, more than the limit of {limit} (raise it with --max-pixels)"
    )]
    TooLarge {
        /// Which input.
        what: String,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// width × height.
        pixels: u64,
        /// The limit.
        limit: u64,
    },
    /// A compressed ancillary chunk (an ICC profile, compressed text)
    /// inflates to more than it may: a decompression bomb.
    #[error(
        "{what}: its {chunk} chunk inflates to more than {limit} bytes (a decompression bomb?); \
         remove the chunk, e.g. with `optipng -strip all`"
    )]
    Bomb {
        /// Which input.
        what: String,
        /// The chunk type.
        chunk: String,
        /// The most it may inflate to.
        limit: usize,
    },
    /// The diff image could not be written.
    #[error("{}: cannot write diff image: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Encoding the diff image failed.
    #[error("cannot encode diff image: {0}")]
    Encode(#[source] png::EncodingError),
    /// An option has a bad value.
    #[error("{0}")]
    BadOption(String),
}

/// Decodes two PNGs (in parallel), compares them and encodes the diff image
/// when they differ.
pub fn diff_png_bytes(
    reference: &[u8],
    new: &[u8],
    opts: &DiffOptions,
) -> Result<DiffOutcome, DiffError> {
    opts.validate()?;
    if reference == new {
        let (width, height) = check_png_structure(new, "new image", opts.max_pixels)?;
        return Ok(DiffOutcome {
            report: DiffReport::identical(width, height),
            diff_png: None,
        });
    }
    let (reference, new) = rayon::join(
        || decode_png(reference, "reference image", opts.max_pixels),
        || decode_png(new, "new image", opts.max_pixels),
    );
    let (reference, new) = (reference?, new?);
    let (report, image) = compare_images(&reference, &new, opts);
    let diff_png = match image {
        Some(image) => {
            let mut out = Vec::new();
            encode_diff_png(&image, &mut out)?;
            Some(out)
        }
        None => None,
    };
    Ok(DiffOutcome { report, diff_png })
}

/// Compares two PNG files. When `output` is given and the images differ, the
/// diff image is written there (atomically: a temporary file renamed into
/// place, so a failure never leaves a partial file); when they do not differ
/// nothing is written and a stale file at `output` is left alone.
pub fn diff_files(
    reference: &Path,
    new: &Path,
    output: Option<&Path>,
    opts: &DiffOptions,
) -> Result<DiffReport, DiffError> {
    opts.validate()?;
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| DiffError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let (ref_bytes, new_bytes) = rayon::join(|| read(reference), || read(new));
    let (ref_bytes, new_bytes) = (ref_bytes?, new_bytes?);
    // The same bytes are the same image: nothing to decode or compare (the
    // common case in CI, where most pages did not change).
    if ref_bytes == new_bytes {
        let what = new.display().to_string();
        let (width, height) = check_png_structure(&new_bytes, &what, opts.max_pixels)?;
        return Ok(DiffReport::identical(width, height));
    }
    let (reference, new) = rayon::join(
        || {
            decode_png(
                &ref_bytes,
                &reference.display().to_string(),
                opts.max_pixels,
            )
        },
        || decode_png(&new_bytes, &new.display().to_string(), opts.max_pixels),
    );
    drop((ref_bytes, new_bytes));
    let (reference, new) = (reference?, new?);
    if output.is_none() {
        return Ok(diff_aligned(&reference, &new, opts));
    }
    let (report, image) = compare_images(&reference, &new, opts);
    // The decoded inputs are no longer needed; free them before encoding.
    drop((reference, new));
    if let (Some(path), Some(image)) = (output, image) {
        png_io::write_png_atomically(&image, path)?;
    }
    Ok(report)
}

#[cfg(test)]
mod png_bomb_tests;
#[cfg(test)]
mod tests;
