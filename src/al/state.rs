//! The run directory: everything a run has done, written so that a `kill -9` at any moment loses
//! nothing and a rerun resumes at the last finished round.
//!
//! ```text
//! experiments/runs/<name>/
//!   config.toml        the config the run started with (a rerun with a different one is refused)
//!   labelled.jsonl     append-only, fsynced per batch: {round, row, id, label}
//!   progress.jsonl     one record per finished round (what the round did)
//!   rounds.jsonl       one record per evaluation point (see `report::RoundRecord`)
//!   ledger.jsonl       the cost ledger (see `cost::Ledger`)
//!   features/          this run's refreshed feature versions (standard, asvp)
//!   checkpoints/       fine-tuned models
//! ```
use crate::util;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One bought label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRecord {
    /// The round whose batch it was (0 = initial set).
    pub round: usize,
    /// Row index in the dataset table.
    pub row: usize,
    pub id: String,
    pub label: String,
}

/// What a finished round did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressRecord {
    pub round: usize,
    pub labels: usize,
    /// Feature version selection used after this round ("v0", "run:v3", …); None for random.
    pub features: Option<String>,
    /// LogME of the labelled rows on the features used for selection (svpp, asvp).
    pub logme: Option<f64>,
    /// Why the features were refreshed this round, if they were.
    pub aligned: Option<String>,
    /// Training method used this round for alignment / the standard model, if any.
    pub method: Option<String>,
    pub test_accuracy: Option<f64>,
    /// The alignment check this round ran, if any (asvp with a validated trigger or method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<AlignCheck>,
    /// The stopping criteria's signals at the start of this round (docs/STOPPING.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<crate::al::stopping::StopSignals>,
    /// asvp, after an alignment that feeds a selection: the share of the next batch that the
    /// proxy on the cache before the alignment would have picked too (docs/ALIGNMENT.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick_overlap: Option<f64>,
}

/// An alignment check (docs/ALIGNMENT.md): fine-tuned candidates against the linear probe on the
/// cache the policy selects with, all trained on the same labelled rows and judged on the same
/// held-out ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignCheck {
    /// Labelled rows trained on and held out.
    pub train_rows: usize,
    pub val_rows: usize,
    /// Validation accuracy of the linear probe on the current cache.
    pub probe_accuracy: f64,
    /// Validation accuracy of each fine-tuned candidate ("lp-ft", "fine-tune").
    pub candidates: Vec<(String, f64)>,
    /// The best candidate, its accuracy gain over the probe and the standard error of that
    /// gain (paired over the validation rows).
    pub best: String,
    pub gain: f64,
    pub gain_se: f64,
    /// Did the gain reach `min_gain`? Then the run aligned
    /// with `best`.
    pub pays: bool,
    /// The backbone the candidates started from, when not the pretrained one: the checkpoint
    /// that made the cache (`check_from = "cache"`), named by its feature version ("run:v1").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The `min_gain` the check was judged with, so that replaying the records after the
    /// setting changed (a project's config) gives the decisions that were made (None: records
    /// made before it was kept; the current setting is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gain: Option<f64>,
}

impl ProgressRecord {
    /// A round's record before its policy work: what it started from, nothing done yet.
    pub fn start(round: usize, labels: usize) -> Self {
        ProgressRecord {
            round,
            labels,
            features: None,
            logme: None,
            aligned: None,
            method: None,
            test_accuracy: None,
            check: None,
            stop: None,
            pick_overlap: None,
        }
    }
}

pub struct RunDir {
    pub dir: PathBuf,
}

impl RunDir {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn labelled(&self) -> PathBuf {
        self.dir.join("labelled.jsonl")
    }
    pub fn progress(&self) -> PathBuf {
        self.dir.join("progress.jsonl")
    }
    pub fn rounds(&self) -> PathBuf {
        self.dir.join("rounds.jsonl")
    }
    pub fn ledger(&self) -> PathBuf {
        self.dir.join("ledger.jsonl")
    }
    pub fn features(&self) -> PathBuf {
        self.dir.join("features")
    }
    pub fn checkpoint(&self, round: usize) -> PathBuf {
        self.dir
            .join("checkpoints")
            .join(format!("round-{round:03}"))
    }

    /// Create the directory with `config_text`, or check that an existing run was started with
    /// the same configuration (compared as parsed TOML, so comments and layout may differ).
    pub fn init(&self, config_text: &str) -> Result<bool> {
        let path = self.config();
        if path.exists() {
            let old = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let a: toml::Value = toml::from_str(&old)
                .with_context(|| format!("{}: invalid TOML", path.display()))?;
            let b: toml::Value = toml::from_str(config_text)?;
            if a != b {
                bail!(
                    "{} was started with a different config: move it away (or name the run differently) to start afresh",
                    self.dir.display()
                );
            }
            return Ok(true);
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        util::atomic_write(&path, config_text.as_bytes())?;
        Ok(false)
    }

    /// Labels bought so far (a torn last line from a kill is dropped and the file repaired).
    pub fn read_labels(&self) -> Result<Vec<LabelRecord>> {
        read_repaired(&self.labelled())
    }
    pub fn append_labels(&self, recs: &[LabelRecord]) -> Result<()> {
        util::append_jsonl(&self.labelled(), recs)
    }
    pub fn read_progress(&self) -> Result<Vec<ProgressRecord>> {
        read_repaired(&self.progress())
    }
    pub fn append_progress(&self, progress: &ProgressRecord) -> Result<()> {
        util::append_jsonl(&self.progress(), std::slice::from_ref(progress))
    }

    /// Drop the evaluation records of rounds after `round` (a round interrupted after its
    /// evaluation record but before its progress record is redone from its start, and writes
    /// that record again).
    pub fn truncate_rounds_after(&self, round: i64) -> Result<()> {
        let path = self.rounds();
        let records: Vec<crate::report::RoundRecord> = read_repaired(&path)?;
        let keep: Vec<_> = records
            .iter()
            .filter(|r| (r.round as i64) <= round)
            .collect();
        if keep.len() != records.len() {
            util::rewrite_jsonl(&path, &keep)?;
        }
        Ok(())
    }
}

/// Read a JSONL file, rewriting it without a torn last line if there is one.
pub fn read_repaired<T: Serialize + serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(vec![]);
    }
    let read = util::read_jsonl_tolerant::<T>(path)?;
    let (recs, torn) = (read.records, read.torn_tail.is_some());
    if torn {
        tracing::warn!(
            "{}: dropped a torn last line (the process was killed mid-write)",
            path.display()
        );
        util::rewrite_jsonl(path, &recs)?;
    }
    Ok(recs)
}
