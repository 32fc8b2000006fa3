//! `dpxdt stability`: captures one page several times and finds what
//! changes between the captures (the flakes), with the element covering
//! each changed region, so a person learns what to hide, mask or fix.

use dpxdt_core::CaptureConfig;
use dpxdt_core::capture::{Browser, CaptureError, Probe};
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
}

/// Captures `url` `repeat` times (at least 2) with `config` and compares
/// every capture with the first, pixel for pixel. `progress` is called with
/// the number of each capture as it starts; the extra capture that names
/// the elements comes last, numbered `repeat + 1`.
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
    // (region, captures it changed in)
    let mut changed: Vec<(Region, usize)> = Vec::new();
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
        for region in merge(report.regions) {
            add_region(&mut changed, region);
        }
    }
    let first = first.expect("at least one capture");
    let mut regions = changed;
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

/// Adds the regions of one capture: a region that overlaps or touches one
/// seen before grows it (and counts once more), else it is new.
fn add_region(seen: &mut Vec<(Region, usize)>, region: Region) {
    match seen.iter_mut().find(|(r, _)| touches(r, &region)) {
        Some((r, count)) => {
            *r = union(r, &region);
            *count += 1;
        }
        None => seen.push((region, 1)),
    }
    // A grown region may now touch another one.
    let mut i = 0;
    while i < seen.len() {
        let mut j = i + 1;
        let mut merged = false;
        while j < seen.len() {
            if touches(&seen[i].0, &seen[j].0) {
                let (other, count) = seen.remove(j);
                seen[i].0 = union(&seen[i].0, &other);
                seen[i].1 = seen[i].1.max(count);
                merged = true;
            } else {
                j += 1;
            }
        }
        if !merged {
            i += 1;
        }
    }
}

/// The regions of one diff with the ones that touch merged.
fn merge(regions: Vec<Region>) -> Vec<Region> {
    let mut out: Vec<Region> = Vec::new();
    for region in regions {
        let mut region = region;
        while let Some(i) = out.iter().position(|r| touches(r, &region)) {
            region = union(&out.swap_remove(i), &region);
        }
        out.push(region);
    }
    out
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
    fn regions_of_several_captures_are_merged_and_counted() {
        let mut seen = Vec::new();
        add_region(&mut seen, r(0, 0, 9, 9));
        add_region(&mut seen, r(100, 100, 109, 109));
        add_region(&mut seen, r(5, 5, 20, 20));
        assert_eq!(seen, [(r(0, 0, 20, 20), 2), (r(100, 100, 109, 109), 1)]);
        // A region bridging the two joins them.
        add_region(&mut seen, r(21, 21, 99, 99));
        assert_eq!(seen, [(r(0, 0, 109, 109), 3)]);
    }

    #[test]
    fn touching_regions_of_one_diff_become_one() {
        let merged = merge(vec![r(0, 0, 4, 4), r(5, 0, 9, 4), r(50, 50, 60, 60)]);
        assert_eq!(merged.len(), 2);
        assert!(merged.contains(&r(0, 0, 9, 4)));
    }
}
