//! Annotation projects: active learning with people as the oracle.
//!
//! `proxal init` turns a user's unlabelled file into a project directory; `proxal next` does
//! whatever the policy says is due and exports the next batch to annotate; `proxal label` imports
//! the answers; `proxal status` says where things stand; `proxal export-model` writes the current
//! model and `proxal predict` applies it to a file.
//!
//! ```text
//! <project>/
//!   config.toml          the policy (a run config: policy, strategy, batch, [asvp], [train])
//!   datasets/pool/       the imported pool (canonical table; its labels.json is the label set)
//!   features/pool/v0…    the embedding cache; v1, v2, … are refreshed versions (asvp, standard)
//!   labelled.jsonl       every stored label; replaced atomically by each import
//!   batches/round-NNN/   manifest.json (the batch, committed last), batch.csv, tasks.json
//!   checkpoints/         fine-tuned models (alignment)
//!   ledger.jsonl         compute spent, per round and stage
//!   imports/             per-row reports of rejected label files
//! ```
//!
//! Crash safety: every file is written whole and renamed into place. A batch exists once its
//! manifest does; a `next` killed before that leaves no batch, and rerunning it redoes the same
//! work (same seed, same labels: same batch) after dropping the interrupted round's ledger
//! records. A `label` killed before its rename stores nothing; after it, everything.
mod export;
mod import;
mod init;
pub mod labels;
pub mod model;
mod next;
mod status;

use export::{batch_csv, label_studio_config, label_studio_tasks, safe_cell};
pub use import::{label, LabelOptions, LabelReport};
pub use init::{init, InitOptions, InitReport};
pub use next::{next, NextOptions, NextReport};
pub use status::{status, Status};

use crate::al::run::{
    cold_start, ensure_v0, round_step, select_batch, PolicyState, RoundContext, StepPlan,
};
use crate::al::{
    LabelRecord, PolicyKind, ProgressRecord, RunConfig, RunDir, RunOptions, SelectWith, Trigger,
};
use crate::cost::Stage;
use crate::data::{import_file, ImportOptions};
use crate::data::{Dataset, LabelMap, Split};
use crate::features::RowBlocks;
use crate::home::Home;
use crate::oracle::{Annotations, Oracle};
use crate::util;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The dataset name of a project's pool.
pub const DATASET: &str = "pool";

/// Abort the process at a named point when `PROXAL_FAULT` names it: tests use it to simulate a
/// `kill -9` at the worst moments.
pub fn fault_point(name: &str) {
    if std::env::var("PROXAL_FAULT").is_ok_and(|v| v == name) {
        eprintln!("proxal: PROXAL_FAULT={name}: aborting");
        std::process::abort();
    }
}

/// One row of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchRow {
    pub row: usize,
    pub id: String,
    /// The strategy's score (why the row was picked; 0 for random picks).
    pub score: f32,
    /// The selection model's guess, offered as a pre-annotation.
    pub predicted: Option<String>,
    pub confidence: Option<f32>,
}

/// A batch requested from the annotators (`batches/round-NNN/manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub round: usize,
    pub created_unix: u64,
    /// How the rows were chosen.
    pub selected_by: String,
    /// What the policy did before choosing (the previous round's work); None for batch 0.
    pub work: Option<ProgressRecord>,
    pub rows: Vec<BatchRow>,
    /// Set when the batch was closed with rows still unlabelled (they went back to the pool).
    #[serde(default)]
    pub closed: Option<String>,
}

/// An open project.
pub struct Project {
    pub dir: PathBuf,
    /// The project directory as a home: `datasets/`, `features/` live inside it.
    pub home: Home,
    pub cfg: RunConfig,
}

impl Project {
    /// The backbone the project selects with (its config's `model_dir`, else the default).
    pub fn model_dir(&self) -> PathBuf {
        self.home
            .model_dir_or_default(self.cfg.model_dir.as_deref())
    }

    /// The feature store of that backbone's pretrained features ([`Home::feature_dir_for`]).
    pub fn v0_store(&self) -> crate::features::Store {
        crate::features::Store::for_model(&self.home, DATASET, &self.model_dir())
    }

    pub fn config_path(dir: &Path) -> PathBuf {
        dir.join("config.toml")
    }

    pub fn open(dir: &Path) -> Result<Project> {
        let path = Self::config_path(dir);
        if !path.exists() {
            bail!(
                "{} is not a proxal project (no config.toml): create one with `proxal init {} --data <file>`",
                dir.display(),
                dir.display()
            );
        }
        let cfg = RunConfig::load(&path)?;
        if cfg.dataset != DATASET {
            bail!(
                "{}: a project's dataset must be '{DATASET}'",
                path.display()
            );
        }
        crate::device::from_config(cfg.device.as_deref(), &path)?;
        Ok(Project {
            dir: dir.to_path_buf(),
            home: Home::new(dir),
            cfg,
        })
    }

    pub fn run_dir(&self) -> RunDir {
        RunDir::new(self.dir.clone())
    }
    pub fn batch_dir(&self, round: usize) -> PathBuf {
        self.dir.join("batches").join(format!("round-{round:03}"))
    }
    fn manifest_path(&self, round: usize) -> PathBuf {
        self.batch_dir(round).join("manifest.json")
    }

    /// Hold the project's lock for the life of the returned file: one command at a time.
    pub fn lock(&self) -> Result<std::fs::File> {
        let path = self.dir.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another proxal command is working on {}; wait for it to finish",
                self.dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(anyhow!("cannot lock {}: {e}", path.display()))
            }
        }
    }

    pub fn dataset(&self) -> Result<Dataset> {
        Dataset::load(&self.home, DATASET)
    }

    pub fn labels(&self) -> Result<Vec<LabelRecord>> {
        self.run_dir().read_labels()
    }

    /// Every committed batch, in order (round 0, 1, …).
    pub fn batches(&self) -> Result<Vec<Batch>> {
        let mut out = Vec::new();
        loop {
            let p = self.manifest_path(out.len());
            if !p.exists() {
                break;
            }
            let b: Batch = serde_json::from_slice(
                &std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?,
            )
            .with_context(|| format!("{}: not a batch manifest", p.display()))?;
            if b.round != out.len() {
                bail!("{}: says round {}", p.display(), b.round);
            }
            out.push(b);
        }
        Ok(out)
    }

    fn write_batch(&self, b: &Batch) -> Result<()> {
        util::atomic_write(
            &self.manifest_path(b.round),
            serde_json::to_string_pretty(b)?.as_bytes(),
        )
    }

    /// Store the whole labelled set (atomically: all of it or the old file).
    fn store_labels(&self, recs: &[LabelRecord]) -> Result<()> {
        util::rewrite_jsonl(&self.run_dir().labelled(), recs)
    }
}

/// The feature version the latest committed batch was selected on ("v0", "run:v3").
pub(crate) fn current_features(batches: &[Batch]) -> String {
    batches
        .iter()
        .rev()
        .filter_map(|b| b.work.as_ref())
        .find_map(|w| w.features.clone())
        .unwrap_or_else(|| "v0".into())
}

/// The open batch: the last one, if it is not closed and has rows without labels.
pub(super) fn open_batch<'a>(batches: &'a [Batch], labelled: &HashSet<usize>) -> Option<&'a Batch> {
    batches
        .last()
        .filter(|b| b.closed.is_none() && b.rows.iter().any(|r| !labelled.contains(&r.row)))
}

pub(super) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
