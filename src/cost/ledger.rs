//! The append-only cost ledger of one run.
use crate::util::{append_jsonl_line, read_jsonl_tolerant};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A pipeline stage, as recorded in the ledger (`snake_case` in JSON: `"proxy_fit"`, …).
///
/// Every stage but [`Stage::Evaluation`] is on a policy's path to its model and counts as compute
/// a user pays for. [`Stage::Ship`] is training the model the policy would ship at an evaluation
/// point: it counts at that point (docs/METRICS.md: H_m(a) includes training the model that
/// ships at a, once, for every policy alike) and, once a later point exists, it was only drawn for
/// the learning curve and counts as evaluation there. [`Stage::Evaluation`] (scoring the test split,
/// indicators logged only for analysis) is recorded but never compute cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading a dataset into the canonical table.
    Ingest,
    /// Embedding the dataset with the pretrained backbone (feature version v0).
    Embed,
    /// Re-embedding with a fine-tuned backbone into a new feature version (alignment).
    Refresh,
    /// Fitting the proxy (selection model) on cached features of the labelled rows.
    ProxyFit,
    /// Scoring the unlabelled pool (probabilities, uncertainty, gradient embeddings).
    Scoring,
    /// Picking the batch from the scores (top-k, k-means++, k-center, clustering).
    Selection,
    /// Indicators that steer a policy (e.g. LogME of the labelled cache).
    Indicator,
    /// Buying labels from the oracle (usually 0 s: the money is in `labels_bought`).
    Labelling,
    /// Fine-tuning the backbone (full, or LP-FT).
    FineTune,
    /// Training a linear head on frozen features.
    LinearProbe,
    /// Training the model the policy ships at this evaluation point when the policy's own work did
    /// not already produce it: svpp's/asvp's final linear probe or fine-tune, and the re-embedding a
    /// probe on a fine-tuned backbone's features needs. Compute at its own point only.
    Ship,
    /// Scoring the shipped model on the test split, and numbers logged only for analysis;
    /// reported apart, never in compute cost.
    Evaluation,
    /// Any stage name this version does not know (read from a newer ledger).
    #[serde(other)]
    Other,
}

impl Stage {
    /// Every stage, in pipeline order (the order plots stack them in).
    pub const ALL: [Stage; 13] = [
        Stage::Ingest,
        Stage::Embed,
        Stage::Refresh,
        Stage::ProxyFit,
        Stage::Scoring,
        Stage::Selection,
        Stage::Indicator,
        Stage::Labelling,
        Stage::FineTune,
        Stage::LinearProbe,
        Stage::Ship,
        Stage::Evaluation,
        Stage::Other,
    ];

    /// The name used in JSON and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Embed => "embed",
            Stage::Refresh => "refresh",
            Stage::ProxyFit => "proxy_fit",
            Stage::Scoring => "scoring",
            Stage::Selection => "selection",
            Stage::Indicator => "indicator",
            Stage::Labelling => "labelling",
            Stage::FineTune => "fine_tune",
            Stage::LinearProbe => "linear_probe",
            Stage::Ship => "ship",
            Stage::Evaluation => "evaluation",
            Stage::Other => "other",
        }
    }

    /// Whether the stage is on the policy's selection path: compute at every later point
    /// (everything but [`Stage::Ship`] and [`Stage::Evaluation`]).
    pub fn is_path(self) -> bool {
        !matches!(self, Stage::Ship | Stage::Evaluation)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of `ledger.jsonl`: one execution of one stage.
///
/// ```json
/// {"run":"banking77-svpp","round":3,"stage":"proxy_fit","wall_seconds":0.42,"cpu_seconds":0.81,
///  "device":"cpu:2-core","rows":800,"labels_bought":0}
/// ```
///
/// `round` is the round whose work it is: the report counts a record towards the evaluation point
/// of its round when it was appended before that round's evaluation records, and towards the next
/// evaluation point when appended after them (e.g. selecting the next batch at the end of a round).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRecord {
    /// Run name (the run directory's name).
    pub run: String,
    /// Active-learning round (0: cold start and one-off work such as embedding v0).
    pub round: usize,
    pub stage: Stage,
    /// Wall-clock seconds; what a rented machine is billed for.
    pub wall_seconds: f64,
    /// CPU seconds of this process (user + system, all threads) during the stage.
    pub cpu_seconds: f64,
    /// Where it ran: `cpu:<n>-core` or `cuda:<i>` (see [`Prices`](super::Prices) for pricing).
    pub device: String,
    /// Rows processed (embedded, scored, trained on, …).
    pub rows: usize,
    /// Labels bought from the oracle by this record (normally only [`Stage::Labelling`]).
    pub labels_bought: usize,
    /// Rows put through the backbone to embed them (embed, refresh, a shipped model's refresh):
    /// machine-independent work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded_rows: Option<usize>,
    /// Rows put forward and backward through the backbone by the optimiser steps actually run
    /// (Σ batch sizes; one row-epoch per row per epoch): machine-independent fine-tuning work.
    /// Absent from ledgers written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_rows: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl CostRecord {
    /// Whether this record trained the backbone but does not say how many rows it trained on (a
    /// fine-tune in a ledger older than `trained_rows`; migrated records say so in their note).
    pub fn training_untracked(&self) -> bool {
        self.trained_rows.is_none()
            && (self.stage == Stage::FineTune
                || self
                    .note
                    .as_deref()
                    .is_some_and(|n| n.contains(STEPS_NOT_RECORDED)))
    }
}

/// The note marker of a migrated training record whose optimiser steps were not recorded.
pub const STEPS_NOT_RECORDED: &str = "steps not recorded";

/// The device name of this machine's CPU: `cpu:<n>-core` (n = available parallelism).
pub fn cpu_device() -> String {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("cpu:{n}-core")
}

/// The ledger's device name for a candle device: `cpu:<n>-core`, `cuda:<i>`, `metal:<i>`.
pub fn device_of(device: &candle_core::Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => cpu_device(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// A run's `ledger.jsonl`, open for appending. Each append is one line, fsynced before it returns.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: std::fs::File,
    run: String,
    device: String,
}

impl Ledger {
    /// Open (creating if missing) the ledger at `path` for run `run`, on the process's device
    /// (`crate::device::current`, the CPU unless one was chosen; change it with
    /// [`Ledger::set_device`]). A torn last line left by a kill is
    /// dropped from the file (with a warning) so that new records start on a fresh line.
    pub fn open(path: &Path, run: &str) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        if path.exists() {
            let read = read_jsonl_tolerant::<CostRecord>(path)?;
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if read.torn_tail.is_some() || !(bytes.is_empty() || bytes.ends_with(b"\n")) {
                if let Some(t) = &read.torn_tail {
                    tracing::warn!("{}: dropping a torn last line ({t:?})", path.display());
                }
                crate::util::rewrite_jsonl(path, &read.records)?;
            }
        }
        let file = open_append(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            run: run.to_string(),
            // The process's device (crate::device): on a GPU instance every stage is paid at
            // its rate. An unreadable $PROXAL_DEVICE has already failed where a backbone loaded.
            device: crate::device::current()
                .map(|d| device_of(&d))
                .unwrap_or_else(|_| cpu_device()),
        })
    }

    /// The device later records are attributed to (e.g. `"cuda:0"`, see [`device_of`]).
    pub fn set_device(&mut self, device: impl Into<String>) {
        self.device = device.into();
    }

    pub fn device(&self) -> &str {
        &self.device
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn run(&self) -> &str {
        &self.run
    }

    /// Append a record as given (fsynced).
    pub fn append(&mut self, record: &CostRecord) -> Result<()> {
        append_jsonl_line(&mut self.file, record)
            .with_context(|| format!("ledger {}", self.path.display()))
    }

    /// Append a record measured elsewhere, on the ledger's device.
    pub fn record(
        &mut self,
        round: usize,
        stage: Stage,
        wall_seconds: f64,
        cpu_seconds: f64,
        rows: usize,
        labels_bought: usize,
    ) -> Result<()> {
        let record = CostRecord {
            run: self.run.clone(),
            round,
            stage,
            wall_seconds,
            cpu_seconds,
            device: self.device.clone(),
            rows,
            labels_bought,
            embedded_rows: None,
            trained_rows: None,
            note: None,
        };
        self.append(&record)
    }

    /// Run `f`, time it (wall and process CPU seconds) and append one record for `stage`, then
    /// return `f`'s result. A stage that fails still cost its seconds: it is recorded with the
    /// note `"failed"` and the error is returned.
    pub fn meter<T>(
        &mut self,
        round: usize,
        stage: Stage,
        rows: usize,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let m = Meter::start(round, stage).rows(rows);
        let out = f();
        let m = if out.is_err() { m.note("failed") } else { m };
        m.finish(self)?;
        out
    }

    /// Like [`Ledger::meter`], for a closure that does not fail.
    pub fn meter_ok<T>(
        &mut self,
        round: usize,
        stage: Stage,
        rows: usize,
        f: impl FnOnce() -> T,
    ) -> Result<T> {
        self.meter(round, stage, rows, || Ok(f()))
    }

    /// Every record in the ledger file (a torn last line is skipped with a warning).
    pub fn records(&self) -> Result<Vec<CostRecord>> {
        Self::read(&self.path)
    }

    /// Read a ledger file: every complete record in order. A torn last line (kill -9 during an
    /// append) is ignored with a warning; a malformed line elsewhere is an error naming the line.
    pub fn read(path: &Path) -> Result<Vec<CostRecord>> {
        let read = read_jsonl_tolerant::<CostRecord>(path)?;
        if let Some(t) = &read.torn_tail {
            tracing::warn!("{}: ignoring a torn last line ({t:?})", path.display());
        }
        Ok(read.records)
    }

    /// Drop every record of a round after `round` (`-1`: drop all), atomically: a resumed run
    /// redoes an interrupted round from its start and must not pay for it twice.
    pub fn truncate_after_round(&mut self, round: i64) -> Result<()> {
        let records = self.records()?;
        let keep: Vec<CostRecord> = records
            .iter()
            .filter(|r| (r.round as i64) <= round)
            .cloned()
            .collect();
        if keep.len() != records.len() {
            crate::util::rewrite_jsonl(&self.path, &keep)?;
            self.file = open_append(&self.path)?;
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open ledger {}", path.display()))
}

/// A running measurement of one stage: started with [`Meter::start`], appended with
/// [`Meter::finish`]. It borrows nothing, so the timed code may use the ledger itself (for a
/// closure, [`Ledger::meter`] is shorter).
#[derive(Debug)]
#[must_use = "a Meter records nothing until finish() is called"]
pub struct Meter {
    round: usize,
    stage: Stage,
    rows: usize,
    labels_bought: usize,
    embedded_rows: Option<usize>,
    trained_rows: Option<usize>,
    device: Option<String>,
    note: Option<String>,
    wall0: Instant,
    cpu0: f64,
    /// Seconds spent before this process took over the work (a resumed job's durable part).
    earlier: (f64, f64),
}

impl Meter {
    /// Start the clocks (wall and process CPU).
    pub fn start(round: usize, stage: Stage) -> Self {
        Self {
            round,
            stage,
            rows: 0,
            labels_bought: 0,
            embedded_rows: None,
            trained_rows: None,
            device: None,
            note: None,
            wall0: Instant::now(),
            cpu0: crate::util::process_cpu_seconds(),
            earlier: (0.0, 0.0),
        }
    }
    /// Add wall and CPU seconds spent on this stage's work before this process (e.g. by a killed
    /// run whose durable chunks a resumed job reuses), so that the record counts the whole work.
    pub fn plus_earlier(mut self, wall: f64, cpu: f64) -> Self {
        self.earlier = (self.earlier.0 + wall, self.earlier.1 + cpu);
        self
    }
    pub fn rows(mut self, rows: usize) -> Self {
        self.rows = rows;
        self
    }
    pub fn labels_bought(mut self, n: usize) -> Self {
        self.labels_bought = n;
        self
    }
    /// Rows embedded by the stage (see [`CostRecord::embedded_rows`]).
    pub fn embedded_rows(mut self, n: usize) -> Self {
        self.embedded_rows = Some(n);
        self
    }
    /// Rows trained on by the optimiser steps run (see [`CostRecord::trained_rows`]).
    pub fn trained_rows(mut self, n: usize) -> Self {
        self.trained_rows = Some(n);
        self
    }
    /// Attribute this record to another device than the ledger's.
    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
    /// Stop the clocks and append the record to `ledger`; returns what was appended.
    pub fn finish(self, ledger: &mut Ledger) -> Result<CostRecord> {
        let wall = self.wall0.elapsed().as_secs_f64() + self.earlier.0;
        let cpu = (crate::util::process_cpu_seconds() - self.cpu0).max(0.0) + self.earlier.1;
        let record = CostRecord {
            run: ledger.run.clone(),
            round: self.round,
            stage: self.stage,
            wall_seconds: wall,
            cpu_seconds: cpu,
            device: self.device.unwrap_or_else(|| ledger.device.clone()),
            rows: self.rows,
            labels_bought: self.labels_bought,
            embedded_rows: self.embedded_rows,
            trained_rows: self.trained_rows,
            note: self.note,
        };
        ledger.append(&record)?;
        Ok(record)
    }
}
