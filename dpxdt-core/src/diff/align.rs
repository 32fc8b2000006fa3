//! Vertical alignment of two screenshots before they are compared, so that
//! a band inserted near the top of a long page (a banner, a notice) is
//! reported as one shift instead of making everything below it a change.
//!
//! The rows of the two images are matched the way a text diff matches
//! lines: common rows at the top and bottom are matched first (a plain
//! slice comparison, which is all an unchanged pair or a single insertion
//! needs), then rows that occur exactly once on each side and are not one
//! flat colour anchor the rest (patience diff), recursively between the
//! anchors. What is left between matched rows is an insertion (rows only in
//! the new image), a removal (rows only in the reference) or a replacement
//! (rows that changed). Flat rows (page background) never anchor, so blank
//! space cannot pull unrelated content into line. The work is bounded: each
//! row is hashed once, and every step shrinks the ranges it recurses into.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::kernel::{CommonRows, finish_report};
use super::{DiffOptions, DiffReport, Image, Region, diff_images};

/// Whether a band of rows was added to the new image or taken out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShiftKind {
    /// Rows only in the new image; `y` is in the new image.
    Inserted,
    /// Rows only in the reference; `y` is in the reference.
    Removed,
}

/// A band of rows that one image has and the other lacks, which moves
/// everything below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    /// Inserted or removed.
    pub kind: ShiftKind,
    /// First row of the band (new image for inserted, reference for removed).
    pub y: u32,
    /// Rows in the band.
    pub height: u32,
}

/// Tallest image aligned (a 1-pixel-wide image within the pixel limit could
/// otherwise have 100 million rows, and alignment keeps a few bytes per row).
pub(crate) const MAX_ROWS: u32 = 200_000;

/// Rows the anchor search may look at in all, per row of the two images:
/// past it, what is left is compared as it is, so no input makes the
/// search slower than linear.
const SEARCH_BUDGET_PER_ROW: u64 = 8;

/// Where a row of the aligned reference comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// This reference row, known to be equal to the new row.
    Same(u32),
    /// This reference row, which may differ (a changed block).
    Reference(u32),
    /// Nowhere: the row was inserted, so it is compared with itself.
    Inserted,
    /// Nowhere: a changed block grew, so the row is compared with white.
    Blank,
}

/// How the new image's rows correspond to the reference's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alignment {
    /// For each row of the new image, its counterpart.
    pub(crate) rows: Vec<Source>,
    /// The inserted and removed bands, top to bottom.
    pub(crate) shifts: Vec<Shift>,
    /// For each removed band, the new-image row it was removed above.
    pub(crate) removed_at: Vec<u32>,
}

impl Alignment {
    /// What the diff image marks: for each new row whether it was
    /// inserted, and each removed band's new-image row and height.
    pub(crate) fn marks(&self) -> (Vec<bool>, Vec<(u32, u32)>) {
        let inserted = self.rows.iter().map(|s| *s == Source::Inserted).collect();
        let removed = self.shifts.iter().filter(|s| s.kind == ShiftKind::Removed);
        let removed = self
            .removed_at
            .iter()
            .zip(removed)
            .map(|(&at, s)| (at, s.height))
            .collect();
        (inserted, removed)
    }

    /// The reference rearranged to the new image's rows: what the new image
    /// is compared with once aligned.
    pub(crate) fn reference_image(&self, reference: &Image, new: &Image) -> Image {
        let stride = new.width() as usize * 4;
        let mut data = vec![255u8; stride * new.height() as usize];
        for (y, (source, out)) in self
            .rows
            .iter()
            .zip(data.chunks_exact_mut(stride))
            .enumerate()
        {
            match *source {
                Source::Same(r) | Source::Reference(r) => out.copy_from_slice(reference.row(r)),
                Source::Inserted => out.copy_from_slice(new.row(y as u32)),
                Source::Blank => {}
            }
        }
        Image::from_rgba(new.width(), new.height(), data).expect("rows of the new image's size")
    }
}

impl Alignment {
    /// Compares the new image with the aligned reference. Rows matched as
    /// equal and inserted rows are skipped; each run of the other rows
    /// (changed blocks, and rows a grown block added, compared with white)
    /// goes through the diff kernel on its own, so nothing is copied for
    /// the rows that match.
    pub(crate) fn diff(&self, reference: &Image, new: &Image, opts: &DiffOptions) -> DiffReport {
        let compared = |s: &Source| matches!(s, Source::Reference(_) | Source::Blank);
        let stride = new.width() as usize * 4;
        let (mut changed, mut squares, mut regions) = (0u64, 0.0f64, Vec::new());
        let mut y = 0usize;
        while y < self.rows.len() {
            if !compared(&self.rows[y]) {
                y += 1;
                continue;
            }
            let start = y;
            while y < self.rows.len() && compared(&self.rows[y]) {
                y += 1;
            }
            let (y0, y1) = (start as u32, y as u32);
            let mut old = vec![255u8; stride * (y - start)];
            for (source, out) in self.rows[start..y].iter().zip(old.chunks_exact_mut(stride)) {
                if let Source::Reference(r) = *source {
                    out.copy_from_slice(reference.row(r));
                }
            }
            let old = Image::from_rgba(new.width(), y1 - y0, old).expect("sized above");
            let cur = Image::from_rgba(
                new.width(),
                y1 - y0,
                new.as_rgba()[start * stride..y * stride].to_vec(),
            )
            .expect("rows of the new image");
            let run_opts = DiffOptions {
                ignore: opts
                    .ignore
                    .iter()
                    .filter(|r| r.y2 >= y0 && r.y1 < y1)
                    .map(|r| Region {
                        y1: r.y1.max(y0) - y0,
                        y2: r.y2.min(y1 - 1) - y0,
                        ..*r
                    })
                    .collect(),
                ..opts.clone()
            };
            let report = diff_images(&old, &cur, &run_opts);
            changed += report.changed_pixels;
            squares += report.distortion.powi(2) * 3.0 * report.total_pixels as f64;
            regions.extend(report.regions.into_iter().map(|r| Region {
                y1: r.y1 + y0,
                y2: r.y2 + y0,
                ..r
            }));
        }
        let mut report = finish_report(reference, new, 0, squares, changed, regions);
        report.shifts = self.shifts.clone();
        report
    }
}

/// A run of matched or unmatched rows. Positions are where the run starts
/// in each image; a run with no rows on one side sits before that row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal {
        old: u32,
        new: u32,
        len: u32,
    },
    Insert {
        old: u32,
        new: u32,
        len: u32,
    },
    Delete {
        old: u32,
        new: u32,
        len: u32,
    },
    Replace {
        old: u32,
        old_len: u32,
        new: u32,
        new_len: u32,
    },
}

impl Op {
    fn key(&self) -> (u32, u32) {
        match *self {
            Op::Equal { old, new, .. }
            | Op::Insert { old, new, .. }
            | Op::Delete { old, new, .. }
            | Op::Replace { old, new, .. } => (new, old),
        }
    }
}

/// The two images' rows, with hashes and flatness of the rows that are
/// not matched at the top or bottom.
struct Rows<'a> {
    old: &'a Image,
    new: &'a Image,
    old_base: u32,
    new_base: u32,
    old_hash: Vec<u64>,
    new_hash: Vec<u64>,
    old_flat: Vec<bool>,
    new_flat: Vec<bool>,
    /// Rows the anchor search may still look at.
    budget: std::cell::Cell<u64>,
}

impl Rows<'_> {
    fn same(&self, o: u32, n: u32) -> bool {
        self.old.row(o) == self.new.row(n)
    }

    fn same_hashed(&self, o: u32, n: u32) -> bool {
        self.old_hash[(o - self.old_base) as usize] == self.new_hash[(n - self.new_base) as usize]
            && self.same(o, n)
    }
}

/// Aligns `new` with `reference`. `None` when the widths differ (no
/// alignment: the images are compared as they are) or when the rows line
/// up as they are.
pub(crate) fn align(reference: &Image, new: &Image, common: CommonRows) -> Option<Alignment> {
    if reference.width() != new.width() || reference.height().max(new.height()) > MAX_ROWS {
        return None;
    }
    let ops = row_ops(reference, new, common);
    let identity = reference.height() == new.height()
        && ops.iter().all(|op| match *op {
            Op::Equal { old, new, .. } => old == new,
            Op::Replace {
                old,
                old_len,
                new,
                new_len,
            } => old == new && old_len == new_len,
            Op::Insert { .. } | Op::Delete { .. } => false,
        });
    if identity {
        return None;
    }
    let mut rows = vec![Source::Blank; new.height() as usize];
    let mut shifts = Vec::new();
    let mut removed_at = Vec::new();
    for op in ops {
        match op {
            Op::Equal { old, new, len } => {
                for i in 0..len {
                    rows[(new + i) as usize] = Source::Same(old + i);
                }
            }
            Op::Insert { new, len, .. } => {
                rows[new as usize..(new + len) as usize].fill(Source::Inserted);
                shifts.push(Shift {
                    kind: ShiftKind::Inserted,
                    y: new,
                    height: len,
                });
            }
            Op::Delete { old, new, len } => {
                shifts.push(Shift {
                    kind: ShiftKind::Removed,
                    y: old,
                    height: len,
                });
                removed_at.push(new);
            }
            Op::Replace {
                old,
                old_len,
                new,
                new_len,
            } => {
                for i in 0..old_len.min(new_len) {
                    rows[(new + i) as usize] = Source::Reference(old + i);
                }
            }
        }
    }
    Some(Alignment {
        rows,
        shifts,
        removed_at,
    })
}

/// The runs that turn the reference's rows into the new image's, in order.
fn row_ops(old: &Image, new: &Image, common: CommonRows) -> Vec<Op> {
    let (oh, nh) = (old.height(), new.height());
    // The rows shared at the top and bottom, found by the diff kernel.
    let CommonRows { top, bottom } = common;
    let (o1, n1) = (oh - bottom, nh - bottom);
    let describe = |image: &Image, range: std::ops::Range<u32>| -> (Vec<u64>, Vec<bool>) {
        range
            .map(|y| (row_hash(image.row(y)), is_flat(image.row(y))))
            .unzip()
    };
    let (old_hash, old_flat) = describe(old, top..o1);
    let (new_hash, new_flat) = describe(new, top..n1);
    let rows = Rows {
        old,
        new,
        old_base: top,
        new_base: top,
        old_hash,
        new_hash,
        old_flat,
        new_flat,
        budget: std::cell::Cell::new(SEARCH_BUDGET_PER_ROW * u64::from(oh + nh)),
    };
    let mut ops = Vec::new();
    if top > 0 {
        ops.push(Op::Equal {
            old: 0,
            new: 0,
            len: top,
        });
    }
    let mut work = vec![(top, o1, top, n1)];
    while let Some((o0, o1, n0, n1)) = work.pop() {
        split(&rows, o0, o1, n0, n1, &mut ops, &mut work);
    }
    if bottom > 0 {
        ops.push(Op::Equal {
            old: o1,
            new: n1,
            len: bottom,
        });
    }
    ops.sort_by_key(Op::key);
    merge(ops)
}

/// Matches the rows of `old[o0..o1]` and `new[n0..n1]`: common rows at both
/// ends, then unique anchors with the ranges between them queued as `work`.
fn split(
    rows: &Rows<'_>,
    mut o0: u32,
    mut o1: u32,
    mut n0: u32,
    mut n1: u32,
    ops: &mut Vec<Op>,
    work: &mut Vec<(u32, u32, u32, u32)>,
) {
    let mut len = 0;
    while o0 + len < o1 && n0 + len < n1 && rows.same_hashed(o0 + len, n0 + len) {
        len += 1;
    }
    if len > 0 {
        ops.push(Op::Equal {
            old: o0,
            new: n0,
            len,
        });
        o0 += len;
        n0 += len;
    }
    let mut len = 0;
    while o1 - len > o0 && n1 - len > n0 && rows.same_hashed(o1 - len - 1, n1 - len - 1) {
        len += 1;
    }
    if len > 0 {
        ops.push(Op::Equal {
            old: o1 - len,
            new: n1 - len,
            len,
        });
        o1 -= len;
        n1 -= len;
    }
    let (old_len, new_len) = (o1 - o0, n1 - n0);
    if old_len == 0 && new_len == 0 {
        return;
    }
    if old_len == 0 {
        ops.push(Op::Insert {
            old: o0,
            new: n0,
            len: new_len,
        });
        return;
    }
    if new_len == 0 {
        ops.push(Op::Delete {
            old: o0,
            new: n0,
            len: old_len,
        });
        return;
    }
    let cost = u64::from(old_len + new_len);
    let anchors = if rows.budget.get() >= cost {
        rows.budget.set(rows.budget.get() - cost);
        unique_anchors(rows, o0, o1, n0, n1)
    } else {
        Vec::new()
    };
    if anchors.is_empty() {
        ops.push(Op::Replace {
            old: o0,
            old_len,
            new: n0,
            new_len,
        });
        return;
    }
    let (mut po, mut pn) = (o0, n0);
    for (ao, an) in anchors {
        work.push((po, ao, pn, an));
        ops.push(Op::Equal {
            old: ao,
            new: an,
            len: 1,
        });
        (po, pn) = (ao + 1, an + 1);
    }
    work.push((po, o1, pn, n1));
}

/// Rows that occur once in each range, are not flat and are equal, as
/// (old, new) pairs in the longest order both sides agree on.
fn unique_anchors(rows: &Rows<'_>, o0: u32, o1: u32, n0: u32, n1: u32) -> Vec<(u32, u32)> {
    // hash -> (count in old, row in old, count in new, row in new)
    let mut seen: HashMap<u64, (u32, u32, u32, u32)> = HashMap::new();
    for o in o0..o1 {
        let i = (o - rows.old_base) as usize;
        if !rows.old_flat[i] {
            let e = seen.entry(rows.old_hash[i]).or_default();
            e.0 += 1;
            e.1 = o;
        }
    }
    for n in n0..n1 {
        let i = (n - rows.new_base) as usize;
        if !rows.new_flat[i]
            && let Some(e) = seen.get_mut(&rows.new_hash[i])
        {
            e.2 += 1;
            e.3 = n;
        }
    }
    let mut pairs: Vec<(u32, u32)> = seen
        .into_values()
        .filter(|&(co, o, cn, n)| co == 1 && cn == 1 && rows.same(o, n))
        .map(|(_, o, _, n)| (o, n))
        .collect();
    pairs.sort_by_key(|&(_, n)| n);
    longest_increasing_by_old(&pairs)
}

/// The longest subsequence of `pairs` (sorted by new row) whose old rows
/// increase too (patience sorting, O(k log k)).
fn longest_increasing_by_old(pairs: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut tails: Vec<usize> = Vec::new();
    let mut prev = vec![usize::MAX; pairs.len()];
    for (i, &(o, _)) in pairs.iter().enumerate() {
        let at = tails.partition_point(|&t| pairs[t].0 < o);
        if at > 0 {
            prev[i] = tails[at - 1];
        }
        if at == tails.len() {
            tails.push(i);
        } else {
            tails[at] = i;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut i = tails.last().copied().unwrap_or(usize::MAX);
    while i != usize::MAX {
        out.push(pairs[i]);
        i = prev[i];
    }
    out.reverse();
    out
}

/// Joins neighbouring runs of the same kind.
fn merge(ops: Vec<Op>) -> Vec<Op> {
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    for op in ops {
        let joined = match (out.last_mut(), op) {
            (
                Some(Op::Equal { old, new, len }),
                Op::Equal {
                    old: o,
                    new: n,
                    len: l,
                },
            ) if *old + *len == o && *new + *len == n => {
                *len += l;
                true
            }
            (
                Some(Op::Insert { old, new, len }),
                Op::Insert {
                    old: o,
                    new: n,
                    len: l,
                },
            ) if *old == o && *new + *len == n => {
                *len += l;
                true
            }
            (
                Some(Op::Delete { old, new, len }),
                Op::Delete {
                    old: o,
                    new: n,
                    len: l,
                },
            ) if *old + *len == o && *new == n => {
                *len += l;
                true
            }
            _ => false,
        };
        if !joined {
            out.push(op);
        }
    }
    out
}

/// A fast, non-cryptographic hash of a row's bytes: four independent lanes
/// of multiply-rotate over 8-byte words, so the multiplications overlap.
/// Equal hashes are always confirmed by comparing the rows.
fn row_hash(row: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut lanes = [K, K.rotate_left(17), K.rotate_left(31), K.rotate_left(47)];
    let mut blocks = row.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            *lane = (*lane ^ w).wrapping_mul(K).rotate_left(29);
        }
    }
    let mut h = row.len() as u64;
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(K).rotate_left(23);
    }
    for &b in blocks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K);
    }
    h ^ (h >> 32)
}

/// Whether every pixel of the row has the same value.
fn is_flat(row: &[u8]) -> bool {
    let Some(first) = row.get(..4) else {
        return true;
    };
    row.chunks_exact(4).all(|p| p == first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_agreeing_order_is_kept() {
        let pairs = [(5, 0), (1, 1), (2, 2), (9, 3), (3, 4)];
        assert_eq!(longest_increasing_by_old(&pairs), [(1, 1), (2, 2), (3, 4)]);
        assert!(longest_increasing_by_old(&[]).is_empty());
    }

    #[test]
    fn neighbouring_runs_are_joined() {
        let ops = vec![
            Op::Equal {
                old: 0,
                new: 0,
                len: 2,
            },
            Op::Equal {
                old: 2,
                new: 2,
                len: 3,
            },
            Op::Insert {
                old: 5,
                new: 5,
                len: 1,
            },
            Op::Insert {
                old: 5,
                new: 6,
                len: 2,
            },
            Op::Equal {
                old: 5,
                new: 8,
                len: 1,
            },
        ];
        assert_eq!(
            merge(ops),
            [
                Op::Equal {
                    old: 0,
                    new: 0,
                    len: 5
                },
                Op::Insert {
                    old: 5,
                    new: 5,
                    len: 3
                },
                Op::Equal {
                    old: 5,
                    new: 8,
                    len: 1
                },
            ]
        );
    }

    #[test]
    fn flat_rows_and_hashes() {
        assert!(is_flat(&[1, 2, 3, 4, 1, 2, 3, 4]));
        assert!(!is_flat(&[1, 2, 3, 4, 1, 2, 3, 5]));
        let a: Vec<u8> = (0..5120u32).map(|i| (i % 251) as u8).collect();
        let mut b = a.clone();
        b[4000] ^= 1;
        assert_eq!(row_hash(&a), row_hash(&a.clone()));
        assert_ne!(row_hash(&a), row_hash(&b));
    }
}
