//! `proxal embed`: run the backbone over every row of a dataset table once and cache the
//! vectors as a feature-store version (resumable, chunk by chunk).
use crate::backbone::{Backbone, EmbedOptions, Pooling};
use crate::data::Dataset;
use crate::features::embed::{embed_dataset, EmbedJob, EmbedReport};
use crate::features::store::{Store, DEFAULT_CHUNK_ROWS};
use crate::features::{Dtype, Shard};
use crate::home::Home;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Dataset name (as imported under datasets/<name>/)
    #[arg(long)]
    pub data: String,
    /// Model directory with config.json, tokenizer.json, model.safetensors (default: assets/minilm).
    /// Another backbone's features go to their own store, features/<data>@<model dir's name>
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
    /// Embed only shard I of N (`I/N`), or the shard a Slurm job array or a Kubernetes Indexed
    /// Job gives this process (`auto`); the version is whole once every shard is done
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// Say which shards of --version are done and which are missing, and exit
    #[arg(long)]
    pub status: bool,
    /// Store the vectors as f32 or f16 (half the disk and page cache; read back as f32, see
    /// experiments/results/f16.md for its effect on picks)
    #[arg(long, default_value = "f32", value_name = "f32|f16")]
    pub dtype: Dtype,
}

/// `--shard I/N | auto`.
pub(crate) fn shard_arg(s: Option<&str>) -> Result<Option<Shard>> {
    match s {
        None => Ok(None),
        Some("auto") => Shard::from_env(|k| std::env::var(k).ok()).map(Some),
        Some(s) => Shard::parse(s).map(Some),
    }
}

/// One line on where the shards of the version `r` wrote stand (nothing for a whole job).
pub(crate) fn print_shards(r: &EmbedReport, shard: Option<Shard>) {
    if let (Some(st), Some(sh)) = (&r.shards, shard) {
        if st.assembled {
            println!(
                "shard {}/{} done; all {} shards are: {} is complete",
                sh.index,
                sh.count,
                st.count,
                r.dir.display()
            );
        } else {
            println!(
                "shard {}/{} done; shards still missing: {:?}",
                sh.index,
                sh.count,
                st.missing()
            );
        }
    }
}

/// `--status`: the shards of version `v` of `data`.
pub(crate) fn print_status(store: &Store, v: u32) -> Result<()> {
    let st = store.shard_status(v)?;
    let dir = store.version_dir(v);
    if st.count == 0 {
        match store.manifest(v) {
            Ok(m) => println!(
                "{}: not embedded in shards; {} of {} rows written{}",
                dir.display(),
                m.rows_written(),
                m.rows,
                if m.complete { " (complete)" } else { "" }
            ),
            Err(_) => println!("{}: nothing written yet", dir.display()),
        }
        return Ok(());
    }
    println!(
        "{}: {} shards, {}",
        dir.display(),
        st.count,
        if st.assembled {
            "all done (complete)"
        } else {
            "not all done"
        }
    );
    for (i, s) in st.shards.iter().enumerate() {
        match s {
            Some((a, b)) if a == b => println!("  shard {i}: done ({b} chunks)"),
            Some((a, b)) => println!("  shard {i}: {a} of {b} chunks (missing)"),
            None => println!("  shard {i}: not started (missing)"),
        }
    }
    Ok(())
}

pub fn run(home: &Home, args: Args) -> Result<()> {
    let ds = Dataset::load(home, &args.data)?;
    let model_dir = home.model_dir_or_default(args.model_dir.as_deref());
    let store = Store::for_model(home, &ds.name, &model_dir);
    if args.status {
        return print_status(&store, args.version.unwrap_or(0));
    }
    let shard = shard_arg(args.shard.as_deref())?;
    let backbone = Backbone::load(&model_dir, &crate::device::current()?, false)?;
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
        shard,
        dtype: args.dtype,
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
    print_shards(&r, shard);
    Ok(())
}
