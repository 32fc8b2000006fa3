//! The plain reference kernel: every pixel, one at a time, one thread.
//!
//! It exists to be obviously right. Tests hold the fast kernel to the same
//! numbers on random and real images, and benches show what the fast one
//! gains.

use super::color::{Judge, Verdict, squared_error};
use super::kernel::finish_report;
use super::regions::{TILE, TileHit, group_tiles};
use super::{DiffOptions, DiffReport, Image, Region};

/// Compares `reference` with `new` pixel by pixel; same result as
/// [`diff_images`](super::diff_images), slower.
pub fn reference_diff(reference: &Image, new: &Image, opts: &DiffOptions) -> DiffReport {
    let aligned = reference.on_canvas(new.width(), new.height());
    let judge = Judge::new(&aligned, new, opts);
    let (tiles_x, tiles_y) = (new.width().div_ceil(TILE), new.height().div_ceil(TILE));
    let mut grid: Vec<Option<Region>> = vec![None; (tiles_x * tiles_y) as usize];
    let (mut sq_int, mut sq_float, mut changed) = (0u64, 0.0f64, 0u64);
    for y in 0..new.height() {
        for x in 0..new.width() {
            let (p, q) = (aligned.pixel(x, y), new.pixel(x, y));
            if p == q {
                continue;
            }
            let verdict = judge.judge(x, y, p, q);
            if verdict == Verdict::Ignored {
                continue;
            }
            let (si, sf) = squared_error(p, q);
            sq_int += si;
            sq_float += sf;
            if verdict == Verdict::Changed {
                changed += 1;
                let cell = &mut grid[((y / TILE) * tiles_x + x / TILE) as usize];
                let b = cell.get_or_insert(Region {
                    x1: x,
                    y1: y,
                    x2: x,
                    y2: y,
                });
                b.x1 = b.x1.min(x);
                b.y1 = b.y1.min(y);
                b.x2 = b.x2.max(x);
                b.y2 = b.y2.max(y);
            }
        }
    }
    let tiles = grid
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            b.map(|bounds| TileHit {
                tx: i as u32 % tiles_x,
                ty: i as u32 / tiles_x,
                bounds,
            })
        })
        .collect();
    finish_report(
        reference,
        new,
        sq_int,
        sq_float,
        changed,
        group_tiles(tiles),
    )
}
