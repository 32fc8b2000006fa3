//! Grouping changed pixels into regions.
//!
//! The canvas is divided into [`TILE`]×[`TILE`] tiles. Tiles holding a changed
//! pixel that touch (including diagonally) form one region, reported as the
//! bounding box of its changed pixels. Changes closer than about a tile
//! therefore merge into one box, which is what a reviewer wants to see: one
//! box per changed word or widget, not one per glyph.

use std::collections::HashMap;

use super::Region;

/// Tile edge in pixels; also the height of a kernel band.
pub(crate) const TILE: u32 = 16;

/// A tile with at least one changed pixel, and their bounding box.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TileHit {
    pub tx: u32,
    pub ty: u32,
    pub bounds: Region,
}

/// Merges touching tiles into regions, sorted top to bottom, then left to right.
pub(crate) fn group_tiles(tiles: Vec<TileHit>) -> Vec<Region> {
    let index: HashMap<(u32, u32), usize> = tiles
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.tx, t.ty), i))
        .collect();
    let mut parent: Vec<usize> = (0..tiles.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, t) in tiles.iter().enumerate() {
        // Looking at the four neighbours before this tile in raster order
        // (left, and the three above) connects every touching pair once.
        let before = [(-1i64, 0i64), (-1, -1), (0, -1), (1, -1)];
        for (dx, dy) in before {
            let (nx, ny) = (t.tx as i64 + dx, t.ty as i64 + dy);
            if nx < 0 || ny < 0 {
                continue;
            }
            if let Some(&j) = index.get(&(nx as u32, ny as u32)) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[a] = b;
                }
            }
        }
    }
    let mut merged: HashMap<usize, Region> = HashMap::new();
    for (i, t) in tiles.iter().enumerate() {
        let r = root(&mut parent, i);
        merged
            .entry(r)
            .and_modify(|b| {
                b.x1 = b.x1.min(t.bounds.x1);
                b.y1 = b.y1.min(t.bounds.y1);
                b.x2 = b.x2.max(t.bounds.x2);
                b.y2 = b.y2.max(t.bounds.y2);
            })
            .or_insert(t.bounds);
    }
    let mut regions: Vec<Region> = merged.into_values().collect();
    regions.sort_by_key(|r| (r.y1, r.x1, r.y2, r.x2));
    regions
}
