//! `dpxdt stability`: captures one page several times and finds what
//! changes between the captures (the flakes), with the element covering
//! each changed region, so a person learns what to hide, mask or fix.
//! A config with modes is checked once per mode ([`check_modes`]).

use std::collections::BTreeSet;

use dpxdt_core::CaptureConfig;
use dpxdt_core::capture::{Browser, CaptureError, Probe};
use dpxdt_core::config::ConfigError;
use dpxdt_core::diff::{DiffError, DiffOptions, Image, Region, decode_png, diff_images};

/// A region of the page that changed between captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flake {
    /// Where, in page pixels (the union of what changed there).
    pub region: Region,
    /// In how many captures after the first it differed from the first.
    pub changed_in: usize,
    /// A CSS selector of the smallest element covering the region, when
    /// one element does.
    pub selector: Option<String>,
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StabilityReport {
    /// How many captures were taken.
    pub captures: usize,
    /// The size of the first capture.
    pub size: (u32, u32),
    /// Other sizes later captures came back with, with their capture number (1-based).
    pub other_sizes: Vec<(usize, (u32, u32))>,
    /// The regions that changed, top to bottom.
    pub flakes: Vec<Flake>,
    /// How many captures after the first differed from it (in size or pixels).
    pub differing: usize,
}

impl StabilityReport {
    /// Whether every capture was identical to the first.
    pub fn is_stable(&self) -> bool {
        self.flakes.is_empty() && self.other_sizes.is_empty()
    }
}

/// Why a stability check could not finish.
#[derive(Debug, thiserror::Error)]
pub enum StabilityError {
    /// A capture failed.
    #[error("capture {number} failed: {source}")]
    Capture {
        /// Which capture (1-based).
        number: usize,
        /// Why.
        #[source]
        source: CaptureError,
    },
    /// A screenshot could not be decoded.
    #[error(transparent)]
    Decode(#[from] DiffError),
    /// The config cannot be used (a mode names the mode and field).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The check of one mode failed.
    #[error("mode {mode:?}: {source}")]
    InMode {
        /// The mode.
        mode: String,
        /// Why.
        #[source]
        source: Box<StabilityError>,
    },
}

/// [`check`] of each mode of `config` in turn (of `config` itself when it
/// has none): one report per mode, with its name, in the config's order.
/// `progress` gets the mode with each capture number. A bad mode fails
/// before anything is captured.
pub async fn check_modes(
    browser: &Browser,
    url: &str,
    config: &CaptureConfig,
    repeat: usize,
    mut progress: impl FnMut(Option<&str>, usize, &[u8]),
) -> Result<Vec<(Option<String>, StabilityReport)>, StabilityError> {
    let variants = config.variants()?;
    let mut reports = Vec::with_capacity(variants.len());
    for (mode, config) in variants {
        let report = check(browser, url, &config, repeat, |n, png| {
            progress(mode.as_deref(), n, png)
        })
        .await
        .map_err(|e| match &mode {
            Some(m) => StabilityError::InMode {
                mode: m.clone(),
                source: Box::new(e),
            },
            None => e,
        })?;
        reports.push((mode, report));
    }
    Ok(reports)
}

/// Captures `url` `repeat` times (at least 2) with `config` (without
/// modes: see [`check_modes`]) and compares every capture with the first,
/// pixel for pixel. `progress` is called with the number of each capture
/// as it starts; the extra capture that names the elements comes last,
/// numbered `repeat + 1`.
pub async fn check(
    browser: &Browser,
    url: &str,
    config: &CaptureConfig,
    repeat: usize,
    mut progress: impl FnMut(usize, &[u8]),
) -> Result<StabilityReport, StabilityError> {
    let repeat = repeat.max(2);
    let exact = DiffOptions {
        threshold: 0.0,
        ..DiffOptions::default()
    };
    let mut first: Option<Image> = None;
    let mut other_sizes = Vec::new();
    let mut differing = 0;
    let mut changed: Seen = Vec::new();
    for number in 1..=repeat {
        let shot = browser
            .capture(url, config)
            .await
            .map_err(|source| StabilityError::Capture { number, source })?;
        progress(number, &shot.png);
        let image = decode_png(&shot.png, &format!("capture {number}"), exact.max_pixels)?;
        let Some(reference) = &first else {
            first = Some(image);
            continue;
        };
        if (image.width(), image.height()) != (reference.width(), reference.height()) {
            other_sizes.push((number, (image.width(), image.height())));
            differing += 1;
            continue;
        }
        let report = diff_images(reference, &image, &exact);
        if report.is_different() {
            differing += 1;
        }
        for region in report.regions {
            add_region(&mut changed, region, number);
        }
    }
    let first = first.expect("at least one capture");
    let mut regions: Vec<(Region, usize)> = changed
        .into_iter()
        .map(|(region, captures)| (region, captures.len()))
        .collect();
    regions.sort_by_key(|(r, _)| (r.y1, r.x1));
    let selectors = if regions.is_empty() {
        Vec::new()
    } else {
        let probe = Probe {
            locate: regions.iter().map(|(r, _)| *r).collect(),
            no_screenshot: true,
            ..Probe::default()
        };
        let number = repeat + 1;
        progress(number, &[]);
        browser
            .capture_with(url, config, &probe)
            .await
            .map_err(|source| StabilityError::Capture { number, source })?
            .located
    };
    let flakes = regions
        .into_iter()
        .enumerate()
        .map(|(i, (region, changed_in))| Flake {
            region,
            changed_in,
            selector: selectors.get(i).cloned().flatten(),
        })
        .collect();
    Ok(StabilityReport {
        captures: repeat,
        size: (first.width(), first.height()),
        other_sizes,
        flakes,
        differing,
    })
}

/// A changed region and the captures (by number) it changed in.
type Seen = Vec<(Region, BTreeSet<usize>)>;

/// Adds a region that changed in capture `number`: one that overlaps or
/// touches a region seen before joins it, and regions it bridges become one.
fn add_region(seen: &mut Seen, region: Region, number: usize) {
    let mut region = region;
    let mut captures = BTreeSet::from([number]);
    while let Some(i) = seen.iter().position(|(r, _)| touches(r, &region)) {
        let (other, others) = seen.swap_remove(i);
        region = union(&other, &region);
        captures.extend(others);
    }
    seen.push((region, captures));
}

fn touches(a: &Region, b: &Region) -> bool {
    a.x1 <= b.x2.saturating_add(1)
        && b.x1 <= a.x2.saturating_add(1)
        && a.y1 <= b.y2.saturating_add(1)
        && b.y1 <= a.y2.saturating_add(1)
}

fn union(a: &Region, b: &Region) -> Region {
    Region {
        x1: a.x1.min(b.x1),
        y1: a.y1.min(b.y1),
        x2: a.x2.max(b.x2),
        y2: a.y2.max(b.y2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x1: u32, y1: u32, x2: u32, y2: u32) -> Region {
        Region { x1, y1, x2, y2 }
    }

    #[test]
    fn regions_of_several_captures_are_merged_and_counted_once_per_capture() {
        let mut seen = Vec::new();
        add_region(&mut seen, r(0, 0, 9, 9), 2);
        add_region(&mut seen, r(100, 100, 109, 109), 2);
        add_region(&mut seen, r(5, 5, 20, 20), 3);
        // Two regions of one capture touching one seen region count once.
        add_region(&mut seen, r(0, 0, 1, 1), 4);
        add_region(&mut seen, r(19, 19, 20, 20), 4);
        let counted = |seen: &Seen| {
            let mut out: Vec<_> = seen.iter().map(|(r, c)| (*r, c.len())).collect();
            out.sort_by_key(|(r, _)| (r.y1, r.x1));
            out
        };
        assert_eq!(
            counted(&seen),
            [(r(0, 0, 20, 20), 3), (r(100, 100, 109, 109), 1)]
        );
        // A region bridging the two joins them.
        add_region(&mut seen, r(21, 21, 99, 99), 5);
        assert_eq!(counted(&seen), [(r(0, 0, 109, 109), 4)]);
    }
}
