//! Versioned, chunked, memory-mapped feature store.
//!
//! ```text
//! features/<dataset>/v<k>/manifest.json
//! features/<dataset>/v<k>/chunk-00000.safetensors   one tensor "features" [rows, dim], f32 or f16
//! features/<dataset>/v<k>/chunk-00001.safetensors   …
//! ```
//! v0 holds the pretrained backbone's features, v1, v2, … refreshed ones (fine-tuned
//! checkpoints). Every chunk but the last has `chunk_rows` rows. Writing is append-only: a chunk
//! is written to a temp file, fsynced and renamed, and only then listed in the manifest (itself
//! replaced atomically), so a job killed at any moment leaves a valid prefix and resumes at the
//! first missing chunk. Reading maps each chunk and serves views over the mapped bytes: no copy,
//! and only touched pages become resident. A version stores f32 (the default) or f16 (`--dtype
//! f16`: half the disk and page cache; the readers widen each work item's rows to f32, so every
//! score is computed in f32 from the rounded values).
use super::{Block, Dtype, RowBlocks};
use crate::data::Dataset;
use crate::home::Home;
use anyhow::{anyhow, bail, Context, Result};
use half::f16;
use memmap2::Mmap;
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const TENSOR_NAME: &str = "features";
pub const DEFAULT_CHUNK_ROWS: usize = 4096;

/// Rows per chunk of the versions `proxal run` and `proxal next` write (v0 and refreshed ones):
/// [`DEFAULT_CHUNK_ROWS`], or `PROXAL_CHUNK_ROWS` when set to a positive number (tests use small
/// chunks to kill a job between two chunks of a small dataset).
pub fn chunk_rows() -> usize {
    std::env::var("PROXAL_CHUNK_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(DEFAULT_CHUNK_ROWS)
}
pub const FORMAT_VERSION: u32 = 1;

/// Where a version's rows came from: the backbone and how it was run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Backbone name (model directory name, e.g. `minilm`).
    pub backbone: String,
    /// The model directory the weights were loaded from.
    pub backbone_dir: String,
    /// sha256 of `model.safetensors`.
    pub weights_sha256: String,
    /// sha256 of `tokenizer.json`.
    pub tokenizer_sha256: String,
    /// The fine-tuned checkpoint these features came from; `None` for pretrained (v0).
    pub checkpoint: Option<String>,
    /// `mean` or `cls`.
    pub pooling: String,
    pub normalize: bool,
    pub max_len: usize,
}

impl Provenance {
    /// Rows written by hand rather than by a backbone (benchmarks and tests): no weights, no
    /// tokenizer, mean pooling, not normalised.
    pub fn synthetic() -> Provenance {
        Provenance {
            backbone: "synthetic".into(),
            backbone_dir: String::new(),
            weights_sha256: String::new(),
            tokenizer_sha256: String::new(),
            checkpoint: None,
            pooling: "mean".into(),
            normalize: false,
            max_len: 0,
        }
    }
}

/// One durable chunk file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    pub file: String,
    pub rows: usize,
    pub bytes: u64,
    pub sha256: String,
}

/// `manifest.json` of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub dataset: String,
    pub dataset_fingerprint: String,
    /// Rows the finished version holds (the dataset's row count).
    pub rows: usize,
    pub dim: usize,
    pub dtype: Dtype,
    pub chunk_rows: usize,
    pub source: Provenance,
    /// Durable chunks, in order. A chunk appears here only after its file is fsynced.
    pub chunks: Vec<ChunkEntry>,
    pub complete: bool,
    pub created_at: String,
    pub updated_at: String,
    pub code_version: String,
}

impl Manifest {
    /// A new, empty version as `spec` describes it.
    pub fn new(spec: &VersionSpec, now: String) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            dataset: spec.dataset.clone(),
            dataset_fingerprint: spec.dataset_fingerprint.clone(),
            rows: spec.rows,
            dim: spec.dim,
            dtype: spec.dtype,
            chunk_rows: spec.chunk_rows,
            source: spec.source.clone(),
            chunks: vec![],
            complete: spec.rows == 0,
            created_at: now.clone(),
            updated_at: now,
            code_version: code_version(),
        }
    }
    pub fn rows_written(&self) -> usize {
        self.chunks.iter().map(|c| c.rows).sum()
    }
    /// Table rows chunk `c` holds (empty past the end).
    pub fn chunk_range(&self, c: usize) -> Range<usize> {
        let a = c * self.chunk_rows;
        a.min(self.rows)..(a + self.chunk_rows).min(self.rows)
    }
    pub fn n_chunks(&self) -> usize {
        self.rows.div_ceil(self.chunk_rows)
    }
}

/// What a new version will hold; checked against an existing manifest on resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSpec {
    pub dataset: String,
    pub dataset_fingerprint: String,
    pub rows: usize,
    pub dim: usize,
    /// How the values are stored (f32, or f16 rounded to nearest even).
    pub dtype: Dtype,
    pub chunk_rows: usize,
    pub source: Provenance,
}

/// How much to check when opening a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// File sizes, safetensors headers and the sha256 of every chunk (reads every byte once,
    /// through the page cache, not the mapping).
    #[default]
    Checksums,
    /// File sizes and headers only; call [`FeatureVersion::verify`] later for the checksums.
    Sizes,
}

/// The versions of one dataset's features: `features/<dataset>/`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    dataset: String,
}

fn version_name(v: u32) -> String {
    format!("v{v}")
}

pub(super) fn chunk_name(c: usize) -> String {
    format!("chunk-{c:05}.safetensors")
}

impl Store {
    /// The store of `dataset` embedded by the backbone in `model_dir` ([`Home::feature_dir_for`]).
    pub fn for_model(home: &Home, dataset: &str, model_dir: &Path) -> Self {
        Store {
            dir: home.feature_dir_for(dataset, model_dir),
            dataset: dataset.to_string(),
        }
    }

    /// The store of `dataset` under a home directory (the default backbone's).
    pub fn new(home: &Home, dataset: &str) -> Self {
        Store {
            dir: home.feature_dir(dataset),
            dataset: dataset.to_string(),
        }
    }

    /// A store rooted at an explicit directory.
    pub fn at(dir: impl Into<PathBuf>, dataset: &str) -> Self {
        Store {
            dir: dir.into(),
            dataset: dataset.to_string(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    pub fn version_dir(&self, v: u32) -> PathBuf {
        self.dir.join(version_name(v))
    }

    /// Versions that have a manifest, ascending.
    pub fn versions(&self) -> Result<Vec<u32>> {
        let mut out: Vec<u32> = self
            .version_dirs()?
            .into_iter()
            .filter(|&v| self.version_dir(v).join(MANIFEST_FILE).is_file())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    fn version_dirs(&self) -> Result<Vec<u32>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", self.dir.display())),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.with_context(|| format!("cannot list {}", self.dir.display()))?;
            if let Some(v) = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix('v'))
                .and_then(|n| n.parse::<u32>().ok())
            {
                if e.path().is_dir() {
                    out.push(v);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The first version number not used by any `v<k>` directory (0 for an empty store).
    pub fn next_version(&self) -> Result<u32> {
        Ok(self.version_dirs()?.last().map(|v| v + 1).unwrap_or(0))
    }

    /// The highest complete version, if any.
    pub fn latest_complete(&self) -> Result<Option<u32>> {
        for v in self.versions()?.into_iter().rev() {
            if self.manifest(v)?.complete {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Version `v`'s manifest if it has one yet (one that cannot be read is an error naming it).
    pub fn manifest_if_any(&self, v: u32) -> Result<Option<Manifest>> {
        let path = self.version_dir(v).join(MANIFEST_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        read_manifest(&path).map(Some)
    }

    pub fn manifest(&self, v: u32) -> Result<Manifest> {
        read_manifest(&self.version_dir(v).join(MANIFEST_FILE))
    }

    /// Start version `v`, or resume it if its manifest exists and describes the same rows
    /// (dataset, fingerprint, dimension, chunking, backbone and options). Listed chunks are
    /// checked (size and sha256); the list is cut at the first bad or missing one.
    pub fn writer(&self, v: u32, spec: VersionSpec) -> Result<VersionWriter> {
        if spec.dim == 0 || spec.chunk_rows == 0 {
            bail!("feature dimension and chunk rows must be positive");
        }
        let dir = self.version_dir(v);
        let mpath = dir.join(MANIFEST_FILE);
        // A dataset's versions share one dimension: proxies and selections move between them.
        for other in self.versions()? {
            if other == v {
                continue;
            }
            let m = self.manifest(other)?;
            if m.dim != spec.dim {
                bail!(
                    "dimension mismatch: {} holds {}-dim features, the new version {} would hold {}-dim ones (use another dataset name for another backbone family)",
                    self.version_dir(other).join(MANIFEST_FILE).display(),
                    m.dim,
                    version_name(v),
                    spec.dim
                );
            }
        }
        let mut manifest = if mpath.is_file() {
            let m = read_manifest(&mpath)?;
            check_resume(&mpath, &m, &spec)?;
            m
        } else {
            if self.is_sharded_in_progress(v)? {
                bail!(
                    "{}: this version is being embedded in shards; finish it with --shard (`proxal embed --status` lists them)",
                    dir.display()
                );
            }
            Manifest::new(&spec, now_utc())
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // Keep the longest valid prefix of listed chunks.
        let good = valid_prefix(&dir, &manifest.chunks, 0, &spec);
        let changed = good < manifest.chunks.len() || !mpath.is_file();
        manifest.chunks.truncate(good);
        manifest.complete = manifest.rows_written() == manifest.rows;
        let mut w = VersionWriter { dir, manifest };
        if changed {
            w.save_manifest()?;
        }
        Ok(w)
    }

    /// Open version `v` for reading. It must be complete.
    pub fn open(&self, v: u32, verify: Verify) -> Result<FeatureVersion> {
        FeatureVersion::open(&self.version_dir(v), verify)
    }

    /// Open version `v` and check it was built from exactly this dataset table.
    pub fn open_for(&self, v: u32, dataset: &Dataset, verify: Verify) -> Result<FeatureVersion> {
        let fv = self.open(v, verify)?;
        fv.check_dataset(&dataset.fingerprint, dataset.len())?;
        Ok(fv)
    }
}

pub(super) fn check_resume(mpath: &Path, m: &Manifest, spec: &VersionSpec) -> Result<()> {
    let p = mpath.display();
    if m.dim != spec.dim {
        bail!("{p}: dimension mismatch: the version holds {}-dim features, this backbone gives {}-dim ones", m.dim, spec.dim);
    }
    if m.dataset_fingerprint != spec.dataset_fingerprint || m.rows != spec.rows {
        bail!(
            "{p}: dataset fingerprint mismatch: the version was built from a different table of '{}' ({} rows, {}…) than the current one ({} rows, {}…); use another --version",
            m.dataset,
            m.rows,
            &m.dataset_fingerprint[..m.dataset_fingerprint.len().min(12)],
            spec.rows,
            &spec.dataset_fingerprint[..spec.dataset_fingerprint.len().min(12)]
        );
    }
    if m.dtype != spec.dtype {
        bail!(
            "{p}: the version stores {} values, not {} (keep one dtype per version; use another --version)",
            m.dtype,
            spec.dtype
        );
    }
    if m.chunk_rows != spec.chunk_rows {
        bail!(
            "{p}: the version uses {} rows per chunk, not {}",
            m.chunk_rows,
            spec.chunk_rows
        );
    }
    if m.source != spec.source {
        let (a, b) = (&m.source, &spec.source);
        let what = if a.weights_sha256 != b.weights_sha256 {
            format!(
                "backbone weights {} vs {}",
                &a.weights_sha256[..12.min(a.weights_sha256.len())],
                &b.weights_sha256[..12.min(b.weights_sha256.len())]
            )
        } else if a.pooling != b.pooling || a.normalize != b.normalize || a.max_len != b.max_len {
            format!(
                "options pooling={} normalize={} max_len={} vs pooling={} normalize={} max_len={}",
                a.pooling, a.normalize, a.max_len, b.pooling, b.normalize, b.max_len
            )
        } else {
            "backbone or checkpoint differs".to_string()
        };
        bail!("{p}: the version was built differently ({what}); use another --version");
    }
    Ok(())
}

pub(super) fn read_manifest(path: &Path) -> Result<Manifest> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a feature-store manifest", path.display()))?;
    if m.format != FORMAT_VERSION {
        bail!(
            "{}: manifest format {} is not supported (expected {FORMAT_VERSION})",
            path.display(),
            m.format
        );
    }
    Ok(m)
}

/// Writes the chunks of one version, in order.
pub struct VersionWriter {
    dir: PathBuf,
    manifest: Manifest,
}

impl VersionWriter {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn is_complete(&self) -> bool {
        self.manifest.complete
    }
    pub fn n_chunks(&self) -> usize {
        self.manifest.n_chunks()
    }
    /// The first chunk not yet durable (== `n_chunks()` when complete).
    pub fn next_chunk(&self) -> usize {
        self.manifest.chunks.len()
    }
    pub fn rows_done(&self) -> usize {
        self.manifest.rows_written()
    }
    /// Dataset rows chunk `c` holds.
    pub fn chunk_range(&self, c: usize) -> Range<usize> {
        self.manifest.chunk_range(c)
    }

    /// Write chunk `c` (must be `next_chunk()`): `data` is `rows × dim` floats, row-major.
    pub fn write_chunk(&mut self, c: usize, data: &[f32]) -> Result<()> {
        if c != self.next_chunk() {
            bail!(
                "chunks are written in order: expected chunk {}, got {c}",
                self.next_chunk()
            );
        }
        let rows = self.chunk_range(c).len();
        if rows == 0 {
            bail!("chunk {c} is past the end ({} rows)", self.manifest.rows);
        }
        let m = &self.manifest;
        let entry = write_chunk_file(&self.dir, c, rows, m.dim, m.dtype, data)?;
        self.manifest.chunks.push(entry);
        self.manifest.complete = self.manifest.rows_written() == self.manifest.rows;
        self.save_manifest()
    }

    fn save_manifest(&mut self) -> Result<()> {
        self.manifest.updated_at = now_utc();
        let bytes = serde_json::to_vec_pretty(&self.manifest)?;
        crate::util::atomic_write(&self.dir.join(MANIFEST_FILE), &bytes)
    }
}

/// How many of `chunks` (chunk `first` on, in order) are intact in `dir`: named and sized as
/// `spec` says, their bytes matching their sha256. A resumed writer keeps that prefix.
pub(super) fn valid_prefix(
    dir: &Path,
    chunks: &[ChunkEntry],
    first: usize,
    spec: &VersionSpec,
) -> usize {
    chunks
        .iter()
        .enumerate()
        .take_while(|&(k, c)| {
            let i = first + k;
            c.file == chunk_name(i)
                && c.rows == spec.chunk_rows.min(spec.rows - i * spec.chunk_rows)
                && check_chunk_file(&dir.join(&c.file), c, true).is_ok()
        })
        .count()
}

/// Write chunk `c` (`rows × dim` floats, stored as `dtype`) into `dir` durably; its manifest entry.
pub(super) fn write_chunk_file(
    dir: &Path,
    c: usize,
    rows: usize,
    dim: usize,
    dtype: Dtype,
    data: &[f32],
) -> Result<ChunkEntry> {
    if data.len() != rows * dim {
        bail!(
            "chunk {c}: expected {rows}×{dim} = {} floats, got {}",
            rows * dim,
            data.len()
        );
    }
    let file = chunk_name(c);
    let bytes = encode_chunk(data, rows, dim, dtype)
        .map_err(|e| anyhow!("{}: {e}", dir.join(&file).display()))?;
    crate::util::atomic_write(&dir.join(&file), &bytes)?;
    Ok(ChunkEntry {
        file,
        rows,
        bytes: bytes.len() as u64,
        sha256: crate::util::sha256_hex(&bytes),
    })
}

/// One chunk as safetensors bytes: tensor "features", `[rows, dim]`, F32 or F16 (rounded to
/// nearest even).
pub fn encode_chunk(data: &[f32], rows: usize, dim: usize, dtype: Dtype) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(data.len() * dtype.size());
    match dtype {
        Dtype::F32 => {
            for v in data {
                raw.extend_from_slice(&v.to_le_bytes());
            }
        }
        Dtype::F16 => {
            let halves = super::to_f16(data);
            // f16 tops out at 65504: a finite value past it would be stored as infinity.
            if let Some(i) =
                (0..data.len()).find(|&i| data[i].is_finite() && !halves[i].is_finite())
            {
                bail!(
                    "row {} of the chunk holds {} (column {}), beyond f16's range (±65504): store this version as f32",
                    i / dim.max(1),
                    data[i],
                    i % dim.max(1)
                );
            }
            for v in halves {
                raw.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let view = safetensors::tensor::TensorView::new(dtype.safetensors(), vec![rows, dim], &raw)
        .map_err(|e| anyhow!("cannot build the chunk tensor: {e}"))?;
    safetensors::serialize([(TENSOR_NAME, view)], None)
        .map_err(|e| anyhow!("cannot encode a chunk: {e}"))
}

/// Size (and with `checksum`, sha256) of a chunk file against its manifest entry.
pub(super) fn check_chunk_file(path: &Path, c: &ChunkEntry, checksum: bool) -> Result<()> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{}: chunk file missing", path.display()))?;
    if meta.len() != c.bytes {
        bail!(
            "{}: truncated or corrupt chunk: {} bytes, the manifest says {}",
            path.display(),
            meta.len(),
            c.bytes
        );
    }
    if checksum {
        let got = crate::util::sha256_file(path)?;
        if got != c.sha256 {
            bail!(
                "{}: corrupt chunk: sha256 {} does not match the manifest's {}",
                path.display(),
                got,
                c.sha256
            );
        }
    }
    Ok(())
}

struct MappedChunk {
    map: Mmap,
    /// Byte offset of the values in the file.
    start: usize,
    rows: usize,
    path: PathBuf,
}

/// A complete version opened for reading: chunks memory-mapped, rows served zero-copy.
pub struct FeatureVersion {
    dir: PathBuf,
    manifest: Manifest,
    dtype: Dtype,
    chunks: Vec<MappedChunk>,
}

impl FeatureVersion {
    /// Open the version in `dir` (must be complete).
    pub fn open(dir: &Path, verify: Verify) -> Result<Self> {
        let mpath = dir.join(MANIFEST_FILE);
        if !mpath.is_file() {
            if dir.join(super::shard::SHARDS_DIR).is_dir() {
                bail!(
                    "{}: version is being embedded in shards and not all are done: `proxal embed --status` lists them",
                    dir.display()
                );
            }
            bail!(
                "no feature version at {} ({} missing): run `proxal embed` first",
                dir.display(),
                MANIFEST_FILE
            );
        }
        let manifest = read_manifest(&mpath)?;
        if !manifest.complete || manifest.rows_written() != manifest.rows {
            bail!(
                "{}: version is incomplete ({} of {} rows): rerun `proxal embed` to finish it",
                mpath.display(),
                manifest.rows_written(),
                manifest.rows
            );
        }
        let dtype = manifest.dtype;
        let mut chunks = Vec::with_capacity(manifest.chunks.len());
        for (i, c) in manifest.chunks.iter().enumerate() {
            let path = dir.join(&c.file);
            let expect_rows = manifest
                .chunk_rows
                .min(manifest.rows - i * manifest.chunk_rows);
            if c.rows != expect_rows {
                bail!(
                    "{}: chunk {} lists {} rows, expected {expect_rows}",
                    mpath.display(),
                    c.file,
                    c.rows
                );
            }
            check_chunk_file(&path, c, verify == Verify::Checksums)?;
            chunks.push(map_chunk(&path, c.rows, manifest.dim, dtype)?);
        }
        Ok(FeatureVersion {
            dir: dir.to_path_buf(),
            manifest,
            dtype,
            chunks,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Check every chunk's sha256 (for versions opened with [`Verify::Sizes`]).
    pub fn verify(&self) -> Result<()> {
        for (c, e) in self.chunks.iter().zip(&self.manifest.chunks) {
            check_chunk_file(&c.path, e, true)?;
        }
        Ok(())
    }

    /// Refuse to serve rows for a different dataset table.
    pub fn check_dataset(&self, fingerprint: &str, rows: usize) -> Result<()> {
        let m = &self.manifest;
        if m.dataset_fingerprint != fingerprint || m.rows != rows {
            bail!(
                "{}: dataset fingerprint mismatch: these features were computed from a different table of '{}' ({} rows) than the one loaded ({rows} rows); re-embed with `proxal embed`",
                self.dir.join(MANIFEST_FILE).display(),
                m.dataset,
                m.rows
            );
        }
        Ok(())
    }

    pub fn n_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// How the version stores its values.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Chunk `i` as a `[rows, dim]` view over the mapped file, in the version's dtype.
    pub fn chunk(&self, i: usize) -> Block<'_> {
        let c = &self.chunks[i];
        let dim = self.manifest.dim;
        let bytes = &c.map[c.start..c.start + c.rows * dim * self.dtype.size()];
        // SAFETY (both arms): map_chunk checked that the data is aligned for the dtype and of
        // this length; any bit pattern is a valid f32 and a valid f16.
        match self.dtype {
            Dtype::F32 => {
                let (pre, floats, post) = unsafe { bytes.align_to::<f32>() };
                debug_assert!(pre.is_empty() && post.is_empty());
                Block::F32(
                    ArrayView2::from_shape((c.rows, dim), floats).expect("chunk shape checked"),
                )
            }
            Dtype::F16 => {
                let (pre, halves, post) = unsafe { bytes.align_to::<f16>() };
                debug_assert!(pre.is_empty() && post.is_empty());
                Block::F16(
                    ArrayView2::from_shape((c.rows, dim), halves).expect("chunk shape checked"),
                )
            }
        }
    }

    /// Rows `range` in f32 when they lie in one chunk (a view of an f32 version, a widened
    /// copy of an f16 one), else `None` (use `gather`).
    pub fn slice(&self, range: Range<usize>) -> Option<ndarray::CowArray<'_, f32, ndarray::Ix2>> {
        let cr = self.manifest.chunk_rows;
        if range.is_empty() || range.end > self.manifest.rows {
            return None;
        }
        let c = range.start / cr;
        if (range.end - 1) / cr != c {
            return None;
        }
        let a = range.start - c * cr;
        Some(self.chunk(c).rows(a..a + range.len()))
    }
}

fn map_chunk(path: &Path, rows: usize, dim: usize, dtype: Dtype) -> Result<MappedChunk> {
    use std::io::Read;
    let corrupt = |why: String| anyhow!("{}: corrupt chunk: {why}", path.display());
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let file_len = f
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    // The header is read with read(), not through the mapping: a page fault on a mapping of a
    // file in the page cache can map a whole large folio (MiBs) — opening must not cost that.
    let mut n8 = [0u8; 8];
    f.read_exact(&mut n8)
        .map_err(|_| corrupt("shorter than a safetensors header".into()))?;
    let n = u64::from_le_bytes(n8);
    if n > 1 << 20 || 8 + n > file_len {
        return Err(corrupt(format!("header length {n} does not fit the file")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|_| corrupt("truncated header".into()))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| corrupt(format!("not a safetensors header ({e})")))?;
    let t = header
        .get(TENSOR_NAME)
        .ok_or_else(|| corrupt(format!("no tensor '{TENSOR_NAME}'")))?;
    let shape: Vec<u64> = t
        .get("shape")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
        .unwrap_or_default();
    let offs: Vec<u64> = t
        .get("data_offsets")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
        .unwrap_or_default();
    let got = t.get("dtype").and_then(|v| v.as_str()).unwrap_or("?");
    // safetensors' dtype names (`F32`, `F16`) are its serde names.
    let want = serde_json::to_value(dtype.safetensors()).expect("a dtype serialises");
    if want != got || shape != [rows as u64, dim as u64] {
        return Err(corrupt(format!(
            "tensor is {got} {shape:?}, expected {} [{rows}, {dim}] (the manifest's dtype is {dtype})",
            want.as_str().unwrap_or("?")
        )));
    }
    let nbytes = (rows * dim * dtype.size()) as u64;
    if offs.len() != 2
        || offs[1].checked_sub(offs[0]) != Some(nbytes)
        || 8 + n + offs[1] != file_len
    {
        return Err(corrupt(format!(
            "data offsets {offs:?} do not match the tensor and file size"
        )));
    }
    let start = (8 + n + offs[0]) as usize;
    if !start.is_multiple_of(dtype.size()) || !cfg!(target_endian = "little") {
        bail!(
            "{}: chunk data is not {}-byte aligned little-endian {dtype}",
            path.display(),
            dtype.size()
        );
    }
    // SAFETY: chunk files are never modified in place (new data goes to a new file + rename).
    let map = unsafe { Mmap::map(&f) }.with_context(|| format!("cannot map {}", path.display()))?;
    if map.len() as u64 != file_len {
        bail!("{}: file changed while opening", path.display());
    }
    Ok(MappedChunk {
        map,
        start,
        rows,
        path: path.to_path_buf(),
    })
}

impl RowBlocks for FeatureVersion {
    fn n_rows(&self) -> usize {
        self.manifest.rows
    }
    fn dim(&self) -> usize {
        self.manifest.dim
    }
    fn blocks(&self) -> Vec<(usize, Block<'_>)> {
        (0..self.chunks.len())
            .map(|i| (i * self.manifest.chunk_rows, self.chunk(i)))
            .collect()
    }
    fn row(&self, i: usize) -> Cow<'_, [f32]> {
        let cr = self.manifest.chunk_rows;
        let c = i / cr;
        self.chunk(c).row(i - c * cr)
    }
}

/// `CARGO_PKG_NAME CARGO_PKG_VERSION`.
pub fn code_version() -> String {
    format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

/// Current UTC time as RFC 3339 (`2025-01-31T12:00:00Z`).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
