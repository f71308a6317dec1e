//! Streaming feature rows: apply a closure to chosen rows of any [`RowBlocks`] (the memory-mapped
//! store, or an in-memory matrix) in parallel chunks, zero-copy where the rows are contiguous, so a
//! 1M-row pool is processed without materialising it (the proxy's scoring, core-set, BADGE and
//! Cluster-Margin all read features this way).
use super::{Block, RowBlocks};
use ndarray::ArrayView2;
use rayon::prelude::*;

/// Rows per work item when streaming: big enough for efficient matmuls, small enough that each
/// worker's temporaries (chunk × classes probabilities) stay in the megabytes.
pub const CHUNK_ROWS: usize = 2048;

/// Apply `f(rows, x)` to the given `rows` of `features` (sorted ascending, unique) in chunks of
/// at most [`CHUNK_ROWS`], in parallel, returning the results in row order. `x` holds the features
/// of exactly those rows: a zero-copy view of an f32 block when the rows are contiguous, else a
/// copy (and always an f32 copy of f16 rows, one work item at a time).
pub fn map_rows<T, F>(features: &dyn RowBlocks, rows: &[usize], f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&[usize], ArrayView2<f32>) -> T + Sync,
{
    map_blocks(features, rows, |rs, first, block| {
        let a = rs[0] - first;
        let b = rs[rs.len() - 1] - first;
        if b - a + 1 == rs.len() {
            f(rs, block.rows(a..b + 1).view())
        } else {
            let local: Vec<usize> = rs.iter().map(|r| r - first).collect();
            f(rs, block.select(&local).view())
        }
    })
}

/// The work split of [`map_rows`]: `f(rows, first_row_of_block, block)` for runs of at most
/// [`CHUNK_ROWS`] of `rows` that lie in one block, in parallel, results in row order.
pub fn map_blocks<T, F>(features: &dyn RowBlocks, rows: &[usize], f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&[usize], usize, Block<'_>) -> T + Sync,
{
    debug_assert!(
        rows.windows(2).all(|w| w[0] < w[1]),
        "map_rows: rows must be sorted and unique"
    );
    let blocks = features.blocks();
    // Work items: (block index, range into `rows`).
    let mut items: Vec<(usize, usize, usize)> = Vec::new();
    let mut bi = 0;
    let mut i = 0;
    while i < rows.len() {
        let r = rows[i];
        while bi < blocks.len() && blocks[bi].0 + blocks[bi].1.nrows() <= r {
            bi += 1;
        }
        assert!(
            bi < blocks.len(),
            "map_rows: row {r} is beyond the last block"
        );
        let end_row = blocks[bi].0 + blocks[bi].1.nrows();
        let mut j = i;
        while j < rows.len() && rows[j] < end_row && j - i < CHUNK_ROWS {
            j += 1;
        }
        items.push((bi, i, j));
        i = j;
    }
    items
        .into_par_iter()
        .map(|(bi, lo, hi)| {
            let (first, block) = &blocks[bi];
            f(&rows[lo..hi], *first, *block)
        })
        .collect()
}
