//! The embedding job: run a backbone over every row of a dataset table once and cache the vectors
//! as a feature-store version, chunk by chunk, resumable (shared by `proxal embed`, `proxal
//! refresh` and the active-learning loop's v0 embedding and refreshes).
use crate::backbone::{Backbone, EmbedOptions, Pooling};
use crate::cost::{device_of, Ledger, Meter, Stage};
use crate::data::Dataset;
use crate::features::shard::{Shard, ShardStatus, ShardWriter, SHARDS_DIR};
use crate::features::store::{Provenance, Store, VersionSpec, VersionWriter};
use crate::features::Dtype;
use anyhow::{Context, Result};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The cost ledger kept in each version directory: one record per chunk embedded.
pub const COST_FILE: &str = "cost.jsonl";

/// What [`embed_dataset`] needs beyond the backbone and the data.
#[derive(Debug, Clone)]
pub struct EmbedJob {
    pub version: u32,
    pub options: EmbedOptions,
    pub chunk_rows: usize,
    /// The fine-tuned checkpoint the backbone came from (`None` for pretrained).
    pub checkpoint: Option<String>,
    pub progress: bool,
    /// Embed only this shard's chunks (`features::shard`); `None`: the whole version.
    pub shard: Option<Shard>,
    /// How the version stores the vectors (f32, or f16 for half the disk and page cache).
    pub dtype: Dtype,
}

/// How to embed and store a new version of `store` so that it is comparable with its v0: v0's
/// truncation, pooling, normalisation and dtype over `options` (the caller's batch and defaults);
/// `options` and f32 when there is no v0 yet. Shared by `proxal refresh` and the runs.
pub fn like_v0(store: &Store, mut options: EmbedOptions) -> Result<(EmbedOptions, Dtype)> {
    let Some(m) = store.manifest_if_any(0)? else {
        return Ok((options, Dtype::F32));
    };
    options.max_len = m.source.max_len;
    options.normalize = m.source.normalize;
    options.pooling = if m.source.pooling == Pooling::Cls.as_str() {
        Pooling::Cls
    } else {
        Pooling::Mean
    };
    Ok((options, m.dtype))
}

/// What an embed job did.
#[derive(Debug, Clone)]
pub struct EmbedReport {
    pub dir: PathBuf,
    pub rows: usize,
    pub dim: usize,
    /// Rows already durable when the job started (resume).
    pub resumed_rows: usize,
    pub embedded_rows: usize,
    pub seconds: f64,
    /// For a shard: where all shards stand after this one (`assembled`: the version is whole).
    pub shards: Option<ShardStatus>,
}

/// Where an embed job's chunks go: a whole version, or one shard of it.
enum Sink {
    Whole(VersionWriter),
    Shard(ShardWriter),
}

impl Sink {
    fn dir(&self) -> &Path {
        match self {
            Sink::Whole(w) => w.dir(),
            Sink::Shard(w) => w.dir(),
        }
    }
    /// The chunks still to write.
    fn todo(&self) -> Range<usize> {
        match self {
            Sink::Whole(w) => w.next_chunk()..w.n_chunks(),
            Sink::Shard(w) => w.next_chunk()..w.range().end,
        }
    }
    fn chunk_range(&self, c: usize) -> Range<usize> {
        match self {
            Sink::Whole(w) => w.chunk_range(c),
            Sink::Shard(w) => w.chunk_range(c),
        }
    }
    fn write_chunk(&mut self, c: usize, data: &[f32]) -> Result<()> {
        match self {
            Sink::Whole(w) => w.write_chunk(c, data),
            Sink::Shard(w) => w.write_chunk(c, data),
        }
    }
    /// (rows durable, rows to hold) of what this job writes.
    fn progress(&self, total: usize) -> (usize, usize) {
        match self {
            Sink::Whole(w) => (w.rows_done(), total),
            Sink::Shard(w) => (w.rows_done(), w.rows_owned()),
        }
    }
}

/// Embed every row of `ds` (table order) into version `job.version` of `store`, resuming at
/// the first missing chunk. Each chunk is sorted by token length and batched on its own, so
/// its content does not depend on what ran before: a resumed version is bit-identical to an
/// uninterrupted one. Shared by `proxal embed` and `proxal refresh`.
pub fn embed_dataset(
    backbone: &Backbone,
    ds: &Dataset,
    store: &Store,
    job: &EmbedJob,
) -> Result<EmbedReport> {
    let t0 = std::time::Instant::now();
    let embedder = backbone.embedder(job.options.clone())?;
    // A refresh embeds with a fine-tuned backbone: its weights are the checkpoint's, not those
    // of the directory the backbone was first loaded from.
    let weights_sha256 = match &job.checkpoint {
        Some(dir) => crate::util::sha256_file(&Path::new(dir).join(crate::backbone::WEIGHTS_FILE))?,
        None => backbone.id.weights_sha256.clone(),
    };
    let spec = VersionSpec {
        dataset: ds.name.clone(),
        dataset_fingerprint: ds.fingerprint.clone(),
        rows: ds.len(),
        dim: backbone.dim(),
        dtype: job.dtype,
        chunk_rows: job.chunk_rows,
        source: Provenance {
            backbone: backbone.id.name.clone(),
            backbone_dir: backbone.id.dir.clone(),
            weights_sha256,
            tokenizer_sha256: backbone.id.tokenizer_sha256.clone(),
            checkpoint: job.checkpoint.clone(),
            pooling: embedder.options().pooling.as_str().to_string(),
            normalize: embedder.options().normalize,
            max_len: embedder.options().max_len,
        },
    };
    let mut w = match job.shard {
        None => Sink::Whole(store.writer(job.version, spec)?),
        Some(shard) => Sink::Shard(store.shard_writer(job.version, spec, shard)?),
    };
    let (resumed_rows, owned_rows) = w.progress(ds.len());
    let bar = if job.progress {
        let bar = indicatif::ProgressBar::new(owned_rows as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} rows  {per_sec}  ETA {eta}",
            )
            .expect("valid template"),
        );
        bar.set_message(match job.shard {
            None => format!("embed {} v{}", ds.name, job.version),
            Some(sh) => format!(
                "embed {} v{} shard {}/{}",
                ds.name, job.version, sh.index, sh.count
            ),
        });
        bar.set_position(resumed_rows as u64);
        bar.reset_eta();
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut embedded_rows = 0;
    let stage = if job.checkpoint.is_some() {
        Stage::Refresh
    } else {
        Stage::Embed
    };
    // A shard meters into its own file; the shards' files become the version's when it is whole.
    let (cost_path, cost_label) = match job.shard {
        None => (
            w.dir().join(COST_FILE),
            format!("features:{}/v{}", ds.name, job.version),
        ),
        Some(sh) => (
            w.dir().join(SHARDS_DIR).join(sh.cost_file()),
            format!(
                "features:{}/v{}#{}/{}",
                ds.name, job.version, sh.index, sh.count
            ),
        ),
    };
    // Opened only when there is work: a finished version's job writes nothing.
    let todo = w.todo();
    let mut cost = if todo.is_empty() {
        None
    } else {
        let mut l = Ledger::open(&cost_path, &cost_label)?;
        l.set_device(device_of(backbone.device()));
        Some(l)
    };
    let mut meter = Meter::start(0, stage);
    for c in todo {
        let range = w.chunk_range(c);
        let texts: Vec<&str> = ds.texts[range.clone()].iter().map(String::as_str).collect();
        // Sorted and batched within the chunk only; the bar moves per batch.
        let enc = embedder.encode(&texts)?;
        let rows = embedder.embed_encoded_with(&enc, |n| bar.inc(n as u64))?;
        w.write_chunk(c, &rows)
            .with_context(|| format!("writing chunk {c} of {}", w.dir().display()))?;
        embedded_rows += range.len();
        // What this chunk cost, kept beside the version so that every run selecting with it
        // can be charged for it (see `al`); per chunk, so a killed job's work is not lost.
        std::mem::replace(&mut meter, Meter::start(0, stage))
            .rows(range.len())
            .embedded_rows(range.len())
            .finish(
                cost.as_mut()
                    .expect("opened when there are chunks to write"),
            )?;
    }
    bar.finish_and_clear();
    drop(cost);
    let shards = match job.shard {
        None => None,
        Some(_) => Some(store.finish_shards(job.version)?),
    };
    Ok(EmbedReport {
        dir: w.dir().to_path_buf(),
        rows: ds.len(),
        dim: backbone.dim(),
        resumed_rows,
        embedded_rows,
        seconds: t0.elapsed().as_secs_f64(),
        shards,
    })
}
