//! `proxal embed`: run the backbone over every row of a dataset table once and cache the
//! vectors as a feature-store version (resumable, chunk by chunk).
use crate::backbone::{Backbone, EmbedOptions, Pooling};
use crate::data::Dataset;
use crate::features::embed::{embed_dataset, EmbedJob};
use crate::features::store::{Store, DEFAULT_CHUNK_ROWS};
use crate::home::Home;
use anyhow::Result;
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
