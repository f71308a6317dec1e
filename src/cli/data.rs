//! `proxal data import …` and `proxal data import-builtin …`.
use crate::data::{self, Builtin, ImportOptions};
use crate::home::Home;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum DataCmd {
    /// Import a CSV, TSV, JSONL or Parquet file as a dataset
    Import {
        /// The file to import
        file: PathBuf,
        /// Name of the dataset to create
        #[arg(long)]
        name: String,
        /// Column holding the text
        #[arg(long, default_value = "text")]
        text_col: String,
        /// Column holding gold labels (omit for an unlabelled pool)
        #[arg(long)]
        label_col: Option<String>,
        /// Column assigning rows to pool/train, dev or test (omit: every row is pool)
        #[arg(long)]
        split_col: Option<String>,
        /// Column holding row ids (omit: row numbers)
        #[arg(long)]
        id_col: Option<String>,
        /// Hold out this share of the labelled rows as the test split, stratified by label
        /// (instead of --split-col)
        #[arg(long)]
        test_fraction: Option<f64>,
        /// Seed of the --test-fraction split
        #[arg(long, default_value_t = 0)]
        split_seed: u64,
    },
    /// Import a built-in benchmark dataset (fetched by `make assets`)
    ImportBuiltin {
        which: Builtin,
        /// Name to store it under (default: the built-in's name)
        #[arg(long)]
        name: Option<String>,
        /// Keep a seeded random sample of this many pool rows (dev rows are then dropped)
        #[arg(long)]
        sample_pool: Option<usize>,
        /// Keep a seeded random sample of this many test rows (dev rows are then dropped)
        #[arg(long)]
        sample_test: Option<usize>,
        #[arg(long, default_value_t = 0)]
        sample_seed: u64,
        /// Make the pool long-tailed: class sizes fall geometrically to 1/RATIO of their rows
        /// (classes in a seeded order; applied before --sample-pool; test rows are not made long-tailed)
        #[arg(long, value_name = "RATIO")]
        long_tail: Option<f64>,
    },
}

pub fn run(home: &Home, cmd: DataCmd) -> Result<()> {
    let report = match cmd {
        DataCmd::Import {
            file,
            name,
            text_col,
            label_col,
            split_col,
            id_col,
            test_fraction,
            split_seed,
        } => {
            let opts = ImportOptions {
                name,
                text_col,
                label_col,
                split_col,
                id_col,
                test_split: test_fraction.map(|fraction| data::TestSplit {
                    fraction,
                    seed: split_seed,
                }),
            };
            data::import_file(home, &file, &opts)?
        }
        DataCmd::ImportBuiltin {
            which,
            name,
            sample_pool,
            sample_test,
            sample_seed,
            long_tail,
        } => data::import_builtin_sample(
            home,
            which,
            name.as_deref(),
            data::Sample {
                pool: sample_pool,
                test: sample_test,
                seed: sample_seed,
                long_tail,
            },
        )?,
    };
    for w in &report.warnings {
        eprintln!("proxal: warning: {w}");
    }
    println!("{report}");
    Ok(())
}
