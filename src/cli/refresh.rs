//! `proxal refresh --data <name> --from-checkpoint <dir>`: feature alignment. Re-embed every row
//! of a dataset with a fine-tuned backbone into a new feature version, exactly as `proxal embed`
//! does (same pooling, normalisation and truncation as v0 unless overridden; resumable).
use crate::backbone::{Backbone, EmbedOptions};
use crate::data::Dataset;
use crate::features::embed::{embed_dataset, like_v0, EmbedJob};
use crate::features::store::{Store, DEFAULT_CHUNK_ROWS};
use crate::features::Dtype;
use crate::home::Home;
use anyhow::{bail, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset name (as imported under datasets/<name>/)
    #[arg(long)]
    pub data: String,
    /// A fine-tuned model directory (config.json, tokenizer.json, model.safetensors), e.g. a
    /// run's checkpoints/round-NNN
    #[arg(long)]
    pub from_checkpoint: PathBuf,
    /// The pretrained backbone the checkpoint was fine-tuned from: its feature store gets the new
    /// version (default: assets/minilm; as `proxal embed --model-dir`)
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Feature version to write (default: the next free one; a half-written one is resumed)
    #[arg(long)]
    pub version: Option<u32>,
    /// Sentences per forward pass
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
    /// Refresh only shard I of N (`I/N`, or `auto` from Slurm / Kubernetes; needs --version)
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// Store the vectors as f32 or f16 (default: as v0 stores them)
    #[arg(long, value_name = "f32|f16")]
    pub dtype: Option<Dtype>,
}

pub fn run(home: &Home, args: Args) -> Result<()> {
    let ds = Dataset::load(home, &args.data)?;
    let model_dir = home.model_dir_or_default(args.model_dir.as_deref());
    let store = Store::for_model(home, &ds.name, &model_dir);
    let shard = super::embed::shard_arg(args.shard.as_deref())?;
    if shard.is_some() && args.version.is_none() {
        bail!("--shard needs --version: every shard must write the same version");
    }
    // Embed the way v0 was embedded, so versions stay comparable.
    let (options, dtype) = like_v0(
        &store,
        EmbedOptions {
            batch: args.batch,
            ..Default::default()
        },
    )?;
    let version = match args.version {
        Some(0) => bail!("version 0 is the pretrained backbone's; refresh writes v1 or later"),
        Some(v) => v,
        None => {
            // Resume a version this checkpoint left half-written, else take the next free one.
            let ckpt = args.from_checkpoint.display().to_string();
            let next = store.next_version()?.max(1);
            match next
                .checked_sub(1)
                .filter(|&v| v > 0)
                .map(|v| (v, store.manifest(v)))
            {
                Some((v, Ok(m)))
                    if !m.complete && m.source.checkpoint.as_deref() == Some(&ckpt) =>
                {
                    v
                }
                _ => next,
            }
        }
    };
    let backbone = Backbone::load(&args.from_checkpoint, &crate::device::current()?, false)?;
    let job = EmbedJob {
        version,
        options,
        chunk_rows: DEFAULT_CHUNK_ROWS,
        checkpoint: Some(args.from_checkpoint.display().to_string()),
        progress: !args.quiet,
        shard,
        dtype: args.dtype.unwrap_or(dtype),
    };
    let r = embed_dataset(&backbone, &ds, &store, &job)?;
    println!(
        "{}: {} rows × {} from {} ({} embedded in {:.1} s)",
        r.dir.display(),
        r.rows,
        r.dim,
        args.from_checkpoint.display(),
        r.embedded_rows,
        r.seconds
    );
    super::embed::print_shards(&r, shard);
    Ok(())
}
