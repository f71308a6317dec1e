//! `proxal embed`: run the backbone over every row of a dataset table once and cache the
//! vectors as a feature-store version (resumable, chunk by chunk).
use crate::backbone::{Backbone, EmbedOptions, Pooling};
use crate::cost::{device_of, Ledger, Meter, Stage};
use crate::data::Dataset;
use crate::features::store::{Provenance, Store, VersionSpec, DEFAULT_CHUNK_ROWS};
use crate::home::Home;
use anyhow::{Context, Result};
use candle_core::Device;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Dataset name (as imported under datasets/<name>/)
    #[arg(long)]
    pub data: String,
    /// Model directory with config.json, tokenizer.json, model.safetensors (default: assets/minilm)
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Feature version to write (default 0 for the pretrained backbone)
    #[arg(long)]
    pub version: Option<u32>,
    /// Sentences per forward pass
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Truncate texts at this many tokens ([CLS] and [SEP] included)
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    /// Sentence pooling
    #[arg(long, value_enum, default_value_t = Pooling::Mean)]
    pub pooling: Pooling,
    /// Do not L2-normalise the vectors
    #[arg(long)]
    pub no_normalize: bool,
    /// Rows per chunk file (a resumed job redoes at most one chunk)
    #[arg(long, default_value_t = DEFAULT_CHUNK_ROWS, hide = true)]
    pub chunk_rows: usize,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

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
    let spec = VersionSpec {
        dataset: ds.name.clone(),
        dataset_fingerprint: ds.fingerprint.clone(),
        rows: ds.len(),
        dim: backbone.dim(),
        chunk_rows: job.chunk_rows,
        source: Provenance {
            backbone: backbone.id.name.clone(),
            backbone_dir: backbone.id.dir.clone(),
            weights_sha256: backbone.id.weights_sha256.clone(),
            tokenizer_sha256: backbone.id.tokenizer_sha256.clone(),
            checkpoint: job.checkpoint.clone(),
            pooling: embedder.options().pooling.as_str().to_string(),
            normalize: embedder.options().normalize,
            max_len: embedder.options().max_len,
        },
    };
    let mut w = store.writer(job.version, spec)?;
    let resumed_rows = w.rows_done();
    let bar = if job.progress {
        let bar = indicatif::ProgressBar::new(ds.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} rows  {per_sec}  ETA {eta}",
            )
            .expect("valid template"),
        );
        bar.set_message(format!("embed {} v{}", ds.name, job.version));
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
    let mut cost = Ledger::open(
        &w.dir().join(COST_FILE),
        &format!("features:{}/v{}", ds.name, job.version),
    )?;
    cost.set_device(device_of(backbone.device()));
    let mut meter = Meter::start(0, stage);
    for c in w.next_chunk()..w.n_chunks() {
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
            .finish(&mut cost)?;
    }
    bar.finish_and_clear();
    Ok(EmbedReport {
        dir: w.dir().to_path_buf(),
        rows: ds.len(),
        dim: backbone.dim(),
        resumed_rows,
        embedded_rows,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

pub fn run(home: &Home, args: Args) -> Result<()> {
    let ds = Dataset::load(home, &args.data)?;
    let model_dir = args
        .model_dir
        .clone()
        .unwrap_or_else(|| home.default_model_dir());
    let backbone = Backbone::load(&model_dir, &Device::Cpu, false)?;
    let store = Store::new(home, &ds.name);
    let job = EmbedJob {
        version: args.version.unwrap_or(0),
        options: EmbedOptions {
            batch: args.batch,
            max_len: args.max_len,
            pooling: args.pooling,
            normalize: !args.no_normalize,
        },
        chunk_rows: args.chunk_rows,
        checkpoint: None,
        progress: !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let r = embed_dataset(&backbone, &ds, &store, &job)?;
    if r.embedded_rows == 0 {
        println!(
            "{}: already complete ({} rows × {})",
            r.dir.display(),
            r.rows,
            r.dim
        );
    } else {
        println!(
            "{}: {} rows × {} ({} embedded in {:.1} s, {:.0} rows/s{})",
            r.dir.display(),
            r.rows,
            r.dim,
            r.embedded_rows,
            r.seconds,
            r.embedded_rows as f64 / r.seconds.max(1e-9),
            if r.resumed_rows > 0 {
                format!(", resumed after {} rows", r.resumed_rows)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
