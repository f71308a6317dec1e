//! The feature store: chunked safetensors files + a manifest per version, memory-mapped reads.
//!
//! Contract shared with `proxy` and `strategy`: anything that serves rows of features in
//! contiguous blocks implements [`RowBlocks`]; the store's reader serves its mapped chunks
//! zero-copy (f32 chunks as they are, f16 chunks as f16 views that the readers convert to f32 a
//! work item at a time), and an in-memory `Array2<f32>` is one block.

use half::f16;
use half::slice::HalfFloatSliceExt;
use ndarray::{Array2, ArrayView1, ArrayView2, CowArray, Ix2};
use std::borrow::Cow;
use std::ops::Range;

pub mod embed;
pub mod shard;
pub mod store;
pub mod stream;
pub use shard::{Shard, ShardStatus, ShardWriter};
pub use store::{
    ChunkEntry, FeatureVersion, Manifest, Provenance, Store, Verify, VersionSpec, VersionWriter,
};
pub use stream::{map_blocks, map_rows, CHUNK_ROWS};

/// How a feature version stores its values. Readers always compute in f32: `f16` halves the disk
/// and page cache of a large pool, and its rows are widened to f32 as they are read. Written in
/// manifests by [`Dtype::name`]; reading an unknown name is [`Dtype::parse`]'s error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Dtype {
    #[default]
    F32,
    F16,
}

impl Dtype {
    /// The manifest's and the command line's name (`f32`, `f16`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
        }
    }
    pub fn parse(s: &str) -> anyhow::Result<Dtype> {
        match s {
            "f32" => Ok(Dtype::F32),
            "f16" => Ok(Dtype::F16),
            other => anyhow::bail!("unknown feature dtype '{other}' (expected f32 or f16)"),
        }
    }
    /// Bytes per stored value.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }
    /// The chunk tensor's dtype in the safetensors files.
    pub fn safetensors(self) -> safetensors::Dtype {
        match self {
            Dtype::F32 => safetensors::Dtype::F32,
            Dtype::F16 => safetensors::Dtype::F16,
        }
    }
}

impl TryFrom<String> for Dtype {
    type Error = anyhow::Error;
    fn try_from(s: String) -> anyhow::Result<Dtype> {
        Dtype::parse(&s)
    }
}

impl From<Dtype> for String {
    fn from(d: Dtype) -> String {
        d.name().into()
    }
}

impl std::str::FromStr for Dtype {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Dtype> {
        Dtype::parse(s)
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A contiguous block of rows as stored: f32 rows are served as they are, f16 rows are widened
/// to f32 on request ([`Block::rows`], [`Block::select`]), one work item at a time.
#[derive(Debug, Clone, Copy)]
pub enum Block<'a> {
    F32(ArrayView2<'a, f32>),
    F16(ArrayView2<'a, f16>),
}

impl<'a> Block<'a> {
    pub fn nrows(&self) -> usize {
        match self {
            Block::F32(b) => b.nrows(),
            Block::F16(b) => b.nrows(),
        }
    }
    pub fn ncols(&self) -> usize {
        match self {
            Block::F32(b) => b.ncols(),
            Block::F16(b) => b.ncols(),
        }
    }
    /// Rows `range` of the block in f32: a view for f32 blocks, a widened copy for f16 ones.
    pub fn rows(&self, range: Range<usize>) -> CowArray<'a, f32, Ix2> {
        match *self {
            Block::F32(b) => CowArray::from(b.slice_move(ndarray::s![range, ..])),
            Block::F16(b) => CowArray::from(widen(b, range)),
        }
    }
    /// Rows `rows` of the block (in the order given) as a new f32 matrix.
    pub fn select(&self, rows: &[usize]) -> Array2<f32> {
        match *self {
            Block::F32(b) => select_rows(b, rows),
            Block::F16(b) => widen(b, rows.iter().copied()),
        }
    }
    /// Row `r` in f32: borrowed from an f32 block, widened from an f16 one.
    pub fn row(&self, r: usize) -> Cow<'a, [f32]> {
        match *self {
            Block::F32(b) => row_cow(b.index_axis_move(ndarray::Axis(0), r)),
            Block::F16(b) => Cow::Owned(widen(b, r..r + 1).into_raw_vec_and_offset().0),
        }
    }
}

/// Rows `rows` of an f16 block (in the order given) widened to a new f32 matrix.
fn widen(b: ArrayView2<'_, f16>, rows: impl ExactSizeIterator<Item = usize>) -> Array2<f32> {
    let n = rows.len();
    let mut out = Vec::with_capacity(n * b.ncols());
    for r in rows {
        extend_f16_row(&mut out, b.row(r));
    }
    Array2::from_shape_vec((n, b.ncols()), out).expect("rows × dim values")
}

/// Rows of f32 features, served as contiguous blocks in row order.
pub trait RowBlocks: Sync {
    fn n_rows(&self) -> usize;
    fn dim(&self) -> usize;
    /// Contiguous blocks covering rows `0..n_rows()` in order: `(first_row, block)`.
    fn blocks(&self) -> Vec<(usize, Block<'_>)>;
    /// One row in f32 (borrowed where the rows are stored as contiguous f32).
    fn row(&self, i: usize) -> Cow<'_, [f32]>;
    /// Copy the given rows into a new matrix (in the order given).
    fn gather(&self, rows: &[usize]) -> Array2<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.dim());
        for &r in rows {
            out.extend_from_slice(&self.row(r));
        }
        Array2::from_shape_vec((rows.len(), self.dim()), out).expect("rows × dim values")
    }
}

/// A row as a slice: borrowed when contiguous, else copied.
pub fn row_cow(v: ArrayView1<'_, f32>) -> Cow<'_, [f32]> {
    match v.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(v.to_vec()),
    }
}

fn extend_f16_row(out: &mut Vec<f32>, row: ArrayView1<'_, f16>) {
    let at = out.len();
    out.resize(at + row.len(), 0.0);
    match row.as_slice() {
        // half's slice conversion uses the CPU's F16C instructions when it has them.
        Some(s) => s.convert_to_f32_slice(&mut out[at..]),
        None => {
            for (o, v) in out[at..].iter_mut().zip(row.iter()) {
                *o = v.to_f32();
            }
        }
    }
}

/// f32 values rounded to f16 (round to nearest even, as the store writes them).
pub fn to_f16(data: &[f32]) -> Vec<f16> {
    let mut out = vec![f16::ZERO; data.len()];
    out.convert_from_f32_slice(data);
    out
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
    fn blocks(&self) -> Vec<(usize, Block<'_>)> {
        vec![(0, Block::F32(self.view()))]
    }
    fn row(&self, i: usize) -> Cow<'_, [f32]> {
        row_cow(self.index_axis(ndarray::Axis(0), i))
    }
}
