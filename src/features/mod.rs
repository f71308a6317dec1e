//! The feature store: chunked safetensors files + a manifest per version, memory-mapped reads.
//!
//! Contract shared with `proxy` and `strategy`: anything that serves rows of features in
//! contiguous blocks implements [`RowBlocks`]; the store's reader serves its mapped chunks
//! zero-copy, and an in-memory `Array2<f32>` is one block.

use ndarray::{Array2, ArrayView1, ArrayView2};

pub mod embed;
pub mod shard;
pub mod store;
pub mod stream;
pub use shard::{Shard, ShardStatus, ShardWriter};
pub use store::{
    ChunkEntry, FeatureVersion, Manifest, Provenance, Store, Verify, VersionSpec, VersionWriter,
};
pub use stream::{map_blocks, map_rows, CHUNK_ROWS};

/// Rows of f32 features, served as contiguous blocks in row order.
pub trait RowBlocks: Sync {
    fn n_rows(&self) -> usize;
    fn dim(&self) -> usize;
    /// Contiguous blocks covering rows `0..n_rows()` in order: `(first_row, block)`.
    fn blocks(&self) -> Vec<(usize, ArrayView2<'_, f32>)>;
    /// One row.
    fn row(&self, i: usize) -> ArrayView1<'_, f32>;
    /// Copy the given rows into a new matrix (in the order given).
    fn gather(&self, rows: &[usize]) -> Array2<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.dim());
        for &r in rows {
            extend_row(&mut out, self.row(r));
        }
        Array2::from_shape_vec((rows.len(), self.dim()), out).expect("rows × dim values")
    }
}

/// Rows `rows` of `block` (in the order given) as a new matrix: one `memcpy` per row where rows
/// are contiguous, which ndarray's `select` is not (it goes element by element).
pub fn select_rows(block: ArrayView2<'_, f32>, rows: &[usize]) -> Array2<f32> {
    let mut out = Vec::with_capacity(rows.len() * block.ncols());
    for &r in rows {
        extend_row(&mut out, block.row(r));
    }
    Array2::from_shape_vec((rows.len(), block.ncols()), out).expect("rows × dim values")
}

fn extend_row(out: &mut Vec<f32>, row: ArrayView1<'_, f32>) {
    match row.as_slice() {
        Some(s) => out.extend_from_slice(s),
        None => out.extend(row.iter().copied()),
    }
}

/// An in-memory matrix (owned or a view) is one block.
impl<S: ndarray::Data<Elem = f32> + Sync> RowBlocks for ndarray::ArrayBase<S, ndarray::Ix2> {
    fn n_rows(&self) -> usize {
        self.nrows()
    }
    fn dim(&self) -> usize {
        self.ncols()
    }
    fn blocks(&self) -> Vec<(usize, ArrayView2<'_, f32>)> {
        vec![(0, self.view())]
    }
    fn row(&self, i: usize) -> ArrayView1<'_, f32> {
        self.index_axis(ndarray::Axis(0), i)
    }
}
