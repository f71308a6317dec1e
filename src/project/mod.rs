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
pub mod labels;
pub mod model;

use crate::al::run::{
    cold_start, ensure_v0, evaluate, policy_work, select_batch, selector_for, Ctx, PolicyState,
};
use crate::al::{LabelRecord, PolicyKind, ProgressRecord, RunConfig, RunDir, RunOptions};
use crate::cost::Stage;
use crate::data::{import_file, ImportOptions};
use crate::data::{Dataset, LabelMap, Split};
use crate::features::RowBlocks;
use crate::home::Home;
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

/// What `proxal init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data: PathBuf,
    pub text_col: String,
    pub id_col: Option<String>,
    /// Labels already in the file: labelled pool rows become the first batch; labelled
    /// test/dev rows are held out to measure the model.
    pub label_col: Option<String>,
    pub split_col: Option<String>,
    /// The label set (file labels are added after these).
    pub labels: Vec<String>,
    pub policy: PolicyKind,
    pub strategy: String,
    pub batch: usize,
    pub seed: u64,
    pub model_dir: PathBuf,
}

impl Project {
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
fn open_batch<'a>(batches: &'a [Batch], labelled: &HashSet<usize>) -> Option<&'a Batch> {
    batches
        .last()
        .filter(|b| b.closed.is_none() && b.rows.iter().any(|r| !labelled.contains(&r.row)))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn config_text(name: &str, o: &InitOptions) -> String {
    let model = o.model_dir.display().to_string();
    format!(
        r#"# proxal annotation project, made by `proxal init`. `proxal next` reads this file each time.
name = {name}
dataset = "{DATASET}"
policy = "{policy}"        # random | svpp | asvp | standard
seed = {seed}
initial = {batch}          # size of the first batch (random: nothing is labelled yet)
batch = {batch}            # batch size of `proxal next` (--batch overrides it)
rounds = 0               # unused by projects: label until you stop
strategy = "{strategy}"
proxy = "logreg"
eval_every = 1
eval_model = "linear-probe"  # measured on held-out labelled rows, if the data has any
model_dir = {model}

[asvp]
align_every = 3          # fine-tune on the labels and refresh the cache every 3 rounds
ft_threshold = 800       # LP-FT below this many labels, full fine-tune above

[train]
epochs = 3
batch_size = 16
max_len = 64
"#,
        name = toml::Value::String(name.to_string()),
        policy = o.policy.as_str(),
        seed = o.seed,
        batch = o.batch,
        strategy = o.strategy,
        model = toml::Value::String(model),
    )
}

/// What `init` made.
#[derive(Debug)]
pub struct InitReport {
    pub dir: PathBuf,
    pub pool: usize,
    pub held_out: usize,
    pub seed_labels: usize,
    pub label_set: Vec<String>,
}

/// `proxal init`: import the pool, write the policy, store labels already in the file.
pub fn init(dir: &Path, o: &InitOptions) -> Result<InitReport> {
    if Project::config_path(dir).exists() {
        bail!(
            "{} is already a proxal project (config.toml exists)",
            dir.display()
        );
    }
    if o.batch == 0 {
        bail!("--batch must be at least 1");
    }
    crate::strategy::from_name(&o.strategy)?;
    crate::backbone::ModelFiles::in_dir(&o.model_dir).with_context(|| {
        format!(
            "no backbone in {} (run `make assets`, or pass --model-dir)",
            o.model_dir.display()
        )
    })?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let home = Home::new(dir);
    let mut opts = ImportOptions::new(DATASET, &o.text_col);
    opts.id_col = o.id_col.clone();
    opts.label_col = o.label_col.clone();
    opts.split_col = o.split_col.clone();
    import_file(&home, &o.data, &opts)?;
    let mut ds = Dataset::load(&home, DATASET)?;
    // The label set: the given labels first (their order is the class order), then the file's.
    let mut names: Vec<String> = Vec::new();
    for l in o.labels.iter().map(|l| l.trim()) {
        if l.is_empty() || names.iter().any(|n| n == l) {
            continue;
        }
        if labels::looks_like_formula(l) || l.len() > labels::MAX_FIELD_BYTES {
            bail!("label '{l}' is not allowed (empty, too long, or starts like a spreadsheet formula)");
        }
        names.push(l.to_string());
    }
    for n in &ds.label_map.names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    if names != ds.label_map.names {
        let old = ds.label_map.clone();
        ds.labels = ds
            .labels
            .iter()
            .map(|l| l.map(|i| names.iter().position(|n| n == old.name(i)).unwrap() as u32))
            .collect();
        ds.label_map = LabelMap {
            names: names.clone(),
        };
        ds.save(&Dataset::dir(&home, DATASET), &o.data.display().to_string())?;
    }
    // Labelled pool rows are the first batch.
    let seeds = ds.labelled_rows_of(Split::Pool);
    let name: String = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let text = config_text(&name, o);
    let cfg: RunConfig = toml::from_str(&text).context("internal error: bad project config")?;
    cfg.validate()?;
    let p = Project {
        dir: dir.to_path_buf(),
        home: home.clone(),
        cfg,
    };
    if !seeds.is_empty() {
        let recs: Vec<LabelRecord> = seeds
            .iter()
            .map(|&r| LabelRecord {
                round: 0,
                row: r,
                id: ds.ids[r].clone(),
                label: ds.label_map.name(ds.labels[r].unwrap()).to_string(),
            })
            .collect();
        p.store_labels(&recs)?;
        p.write_batch(&Batch {
            round: 0,
            created_unix: now_unix(),
            selected_by: format!("labels already in {}", o.data.display()),
            work: None,
            rows: seeds
                .iter()
                .map(|&r| BatchRow {
                    row: r,
                    id: ds.ids[r].clone(),
                    score: 0.0,
                    predicted: None,
                    confidence: None,
                })
                .collect(),
            closed: None,
        })?;
    }
    // The config is written last: a project exists once it does.
    util::atomic_write(&Project::config_path(dir), text.as_bytes())?;
    let held_out = ds.labelled_rows_of(Split::Test).len();
    Ok(InitReport {
        dir: dir.to_path_buf(),
        pool: ds.count(Split::Pool),
        held_out,
        seed_labels: seeds.len(),
        label_set: names,
    })
}

/// Options of `proxal next`.
#[derive(Debug, Clone, Default)]
pub struct NextOptions {
    pub batch: Option<usize>,
    /// Close an open batch with rows still unlabelled (they go back to the pool).
    pub skip_rest: bool,
    pub progress: bool,
}

/// What `next` exported.
#[derive(Debug)]
pub struct NextReport {
    pub round: usize,
    pub rows: usize,
    pub csv: PathBuf,
    pub tasks: PathBuf,
    pub selected_by: String,
    pub work: Option<ProgressRecord>,
}

/// `proxal next`: do the policy's work for the labels so far and export the next batch.
pub fn next(dir: &Path, o: &NextOptions) -> Result<NextReport> {
    let p = Project::open(dir)?;
    let _lock = p.lock()?;
    let ds = p.dataset()?;
    let mut batches = p.batches()?;
    let labels = p.labels()?;
    let labelled: HashSet<usize> = labels.iter().map(|l| l.row).collect();
    if let Some(open) = open_batch(&batches, &labelled) {
        let pending = open
            .rows
            .iter()
            .filter(|r| !labelled.contains(&r.row))
            .count();
        if !o.skip_rest {
            bail!(
                "batch {} still has {pending} of {} rows without labels ({}): label them with `proxal label <file>`, or pass --skip-rest to return them to the pool",
                open.round,
                open.rows.len(),
                p.batch_dir(open.round).join("batch.csv").display()
            );
        }
        let mut b = open.clone();
        b.closed = Some(format!(
            "closed by `proxal next --skip-rest` with {pending} rows unlabelled"
        ));
        p.write_batch(&b)?;
        *batches.last_mut().unwrap() = b;
    }
    let round = batches.len();
    let mut cfg = p.cfg.clone();
    let k = o.batch.unwrap_or(cfg.batch);
    if k == 0 {
        bail!("--batch must be at least 1");
    }
    cfg.batch = k;
    cfg.initial = k;
    let unlabelled = ds
        .rows_of(Split::Pool)
        .into_iter()
        .filter(|r| !labelled.contains(r))
        .count();
    if unlabelled == 0 {
        bail!("every pool row is labelled: nothing left to ask");
    }
    let mut cx = Ctx::new(
        &p.home,
        &cfg,
        &ds,
        p.run_dir(),
        RunOptions {
            progress: o.progress,
            ..Default::default()
        },
    )?;
    // Work of a `next` that was killed before its batch was committed is done again.
    cx.ledger.truncate_after_round(round as i64 - 2)?;

    let (picks, selected_by, work, predictions) = if labels.is_empty() {
        let rows = cold_start(&cx);
        let n = rows.len();
        (
            rows.into_iter()
                .map(|row| crate::strategy::Pick { row, score: 0.0 })
                .collect::<Vec<_>>(),
            format!("random sample of {n} rows (nothing is labelled yet)"),
            None,
            None,
        )
    } else {
        // The work of round `round - 1`: its labels are all in.
        let r = round - 1;
        let v0 = ensure_v0(&mut cx, r == 0)?;
        fault_point("next-after-embed");
        let prev: Vec<ProgressRecord> = batches.iter().filter_map(|b| b.work.clone()).collect();
        let mut st = PolicyState::restore(&cx, &prev)?;
        let classes: HashSet<&str> = labels.iter().map(|l| l.label.as_str()).collect();
        if classes.len() < 2 || cfg.policy == PolicyKind::Random {
            let why = if cfg.policy == PolicyKind::Random {
                "random sample (policy random)".to_string()
            } else {
                format!(
                    "random sample ({} class labelled so far: a model needs two)",
                    classes.len()
                )
            };
            let rec = ProgressRecord {
                round: r,
                labels: labels.len(),
                features: None,
                logme: None,
                aligned: None,
                method: None,
                test_accuracy: None,
            };
            let picks = select_batch(
                &mut cx,
                r,
                &labels,
                &crate::al::run::Selector::Random,
                Some(&v0),
                None,
            )?;
            (picks, why, Some(rec), None)
        } else {
            let mut rec = policy_work(&mut cx, r, &labels, Some(&v0), &mut st, false)?;
            fault_point("next-after-policy-work");
            if !cx.test.is_empty() && r.is_multiple_of(cfg.eval_every) {
                let (rows, ys) = crate::al::run::labelled_xy(&cx, &labels);
                let s = evaluate(
                    &mut cx,
                    r,
                    &rows,
                    &ys,
                    Some(&v0),
                    st.current.as_ref(),
                    st.standard_model.as_ref(),
                    rec.aligned.is_some(),
                )?;
                rec.test_accuracy = Some(s.accuracy);
            }
            let sel = selector_for(
                &mut cx,
                r,
                &labels,
                Some(&v0),
                st.current.as_ref(),
                st.standard_model.as_ref(),
            )?;
            let picks = select_batch(&mut cx, r, &labels, &sel, Some(&v0), st.current.as_ref())?;
            let feats = st.current.as_ref().map(|c| &c.1).unwrap_or(&v0);
            let preds = sel.model().map(|m| {
                let rows: Vec<usize> = picks.iter().map(|p| p.row).collect();
                let proba = m.predict_proba(feats.gather(&rows).view());
                crate::proxy::argmax_rows(proba.view())
            });
            let by = format!(
                "{} on {} features ({} labels, policy {})",
                cfg.strategy,
                rec.features.as_deref().unwrap_or("v0"),
                labels.len(),
                cfg.policy.as_str()
            );
            (picks, by, Some(rec), preds)
        }
    };
    let rows: Vec<BatchRow> = picks
        .iter()
        .enumerate()
        .map(|(i, pk)| BatchRow {
            row: pk.row,
            id: ds.ids[pk.row].clone(),
            score: pk.score,
            predicted: predictions
                .as_ref()
                .map(|p| ds.label_map.name(p[i].0).to_string()),
            confidence: predictions.as_ref().map(|p| p[i].1),
        })
        .collect();
    let batch = Batch {
        round,
        created_unix: now_unix(),
        selected_by: selected_by.clone(),
        work: work.clone(),
        rows,
        closed: None,
    };
    let bdir = p.batch_dir(round);
    let csv = bdir.join("batch.csv");
    let tasks = bdir.join("tasks.json");
    util::atomic_write(&csv, &batch_csv(&ds, &batch)?)?;
    util::atomic_write(&tasks, &label_studio_tasks(&ds, &batch)?)?;
    util::atomic_write(
        &p.dir.join("batches").join("label-studio-config.xml"),
        label_studio_config(&ds.label_map.names).as_bytes(),
    )?;
    fault_point("next-before-commit");
    p.write_batch(&batch)?;
    Ok(NextReport {
        round,
        rows: batch.rows.len(),
        csv,
        tasks,
        selected_by,
        work,
    })
}

/// A text cell a spreadsheet would not run as a formula (OWASP: prefix a quote). Only the text
/// column is protected; `proxal label` reads ids and labels, never the text.
fn safe_cell(s: &str) -> String {
    if labels::looks_like_formula(s) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// `batch.csv`: one row per request, with an empty `label` column to fill in.
fn batch_csv(ds: &Dataset, b: &Batch) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "label", "text", "predicted", "confidence", "score"])?;
    for r in &b.rows {
        w.write_record([
            r.id.as_str(),
            "",
            &safe_cell(&ds.texts[r.row]),
            r.predicted.as_deref().unwrap_or(""),
            &r.confidence.map(|c| format!("{c:.4}")).unwrap_or_default(),
            &format!("{:.6}", r.score),
        ])?;
    }
    w.into_inner().map_err(|e| anyhow!("cannot write CSV: {e}"))
}

/// `tasks.json`: Label Studio tasks (text + proxal id), with the model's guess as a prediction.
fn label_studio_tasks(ds: &Dataset, b: &Batch) -> Result<Vec<u8>> {
    let tasks: Vec<serde_json::Value> = b
        .rows
        .iter()
        .map(|r| {
            let mut t = serde_json::json!({
                "data": { "text": ds.texts[r.row], "proxal_id": r.id, "proxal_round": b.round },
            });
            if let (Some(p), Some(c)) = (&r.predicted, r.confidence) {
                t["predictions"] = serde_json::json!([{
                    "model_version": format!("proxal round {}", b.round),
                    "score": c,
                    "result": [{
                        "from_name": "label", "to_name": "text", "type": "choices",
                        "value": { "choices": [p] }
                    }]
                }]);
            }
            t
        })
        .collect();
    Ok(serde_json::to_vec_pretty(&tasks)?)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The Label Studio labelling interface for the label set (a text and one choice).
fn label_studio_config(names: &[String]) -> String {
    let mut s = String::from(
        "<View>\n  <Text name=\"text\" value=\"$text\"/>\n  <Choices name=\"label\" toName=\"text\" choice=\"single\">\n",
    );
    for n in names {
        s.push_str(&format!("    <Choice value=\"{}\"/>\n", xml_escape(n)));
    }
    s.push_str("  </Choices>\n</View>\n");
    s
}

/// Options of `proxal label`.
#[derive(Debug, Clone)]
pub struct LabelOptions {
    pub file: PathBuf,
    pub cols: labels::Columns,
    pub allow_new_labels: bool,
    /// Store the valid rows even if some are rejected.
    pub partial: bool,
}

/// What `label` did.
#[derive(Debug)]
pub struct LabelReport {
    /// Whether anything was stored.
    pub applied: bool,
    pub stored: usize,
    pub already: usize,
    pub unanswered: usize,
    pub new_labels: Vec<String>,
    pub rejected: Vec<labels::RowError>,
    /// Full list of rejected rows (CSV), when there are any.
    pub report_file: Option<PathBuf>,
    pub open_round: Option<usize>,
    /// Rows of the batch still without labels after this import.
    pub remaining: usize,
}

/// `proxal label`: check every row of an annotators' file; store all valid rows atomically, or
/// none when any row is rejected (unless `partial`).
pub fn label(dir: &Path, o: &LabelOptions) -> Result<LabelReport> {
    let p = Project::open(dir)?;
    let _lock = p.lock()?;
    let ds = p.dataset()?;
    let batches = p.batches()?;
    let stored_recs = p.labels()?;
    let stored: HashMap<usize, String> = stored_recs
        .iter()
        .map(|l| (l.row, l.label.clone()))
        .collect();
    let labelled: HashSet<usize> = stored.keys().copied().collect();
    let open = open_batch(&batches, &labelled);
    let open_rows: HashSet<usize> = open
        .map(|b| b.rows.iter().map(|r| r.row).collect())
        .unwrap_or_default();
    let rows_by_id: HashMap<String, usize> = ds
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i))
        .collect();
    let read = labels::read_label_file(&o.file, &o.cols)?;
    let n_read = read.rows.len() + read.errors.len();
    let unanswered = read.unanswered;
    let checked = labels::check(
        read,
        &labels::Context {
            rows_by_id: &rows_by_id,
            open: &open_rows,
            open_round: open.map(|b| b.round),
            stored: &stored,
            label_set: &ds.label_map.names,
            allow_new_labels: o.allow_new_labels,
        },
    );
    let report_file = if checked.errors.is_empty() {
        None
    } else {
        let path = p.dir.join("imports").join(format!(
            "rejected-{}-{}.csv",
            now_unix(),
            o.file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["where", "id", "reason"])?;
        for e in &checked.errors {
            w.write_record([
                e.at.as_str(),
                &safe_cell(e.id.as_deref().unwrap_or("")),
                &e.reason,
            ])?;
        }
        util::atomic_write(
            &path,
            &w.into_inner()
                .map_err(|e| anyhow!("cannot write CSV: {e}"))?,
        )?;
        Some(path)
    };
    let apply = !checked.accept.is_empty() && (checked.errors.is_empty() || o.partial);
    let mut report = LabelReport {
        applied: apply,
        stored: 0,
        already: checked.already,
        unanswered,
        new_labels: vec![],
        rejected: checked.errors,
        report_file,
        open_round: open.map(|b| b.round),
        remaining: 0,
    };
    if n_read == 0 && unanswered == 0 {
        bail!("{}: no rows", o.file.display());
    }
    let mut now_labelled = labelled;
    if apply {
        let round = open
            .map(|b| b.round)
            .context("internal error: rows accepted without an open batch")?;
        if !checked.new_labels.is_empty() {
            let mut map = ds.label_map.clone();
            map.names.extend(checked.new_labels.iter().cloned());
            util::atomic_write(
                &Dataset::dir(&p.home, DATASET).join("labels.json"),
                serde_json::to_string_pretty(&map)?.as_bytes(),
            )?;
            report.new_labels = checked.new_labels.clone();
        }
        let mut all = stored_recs;
        for (row, id, label) in &checked.accept {
            all.push(LabelRecord {
                round,
                row: *row,
                id: id.clone(),
                label: label.clone(),
            });
            now_labelled.insert(*row);
        }
        fault_point("label-before-commit");
        p.store_labels(&all)?;
        report.stored = checked.accept.len();
    }
    report.remaining = open
        .map(|b| {
            b.rows
                .iter()
                .filter(|r| !now_labelled.contains(&r.row))
                .count()
        })
        .unwrap_or(0);
    Ok(report)
}

/// `proxal status`.
#[derive(Debug)]
pub struct Status {
    pub labels: usize,
    pub per_class: Vec<(String, usize)>,
    pub batches: usize,
    /// (round, labelled, size) of the open batch.
    pub open: Option<(usize, usize, usize)>,
    pub pool: usize,
    pub held_out: usize,
    /// The latest held-out accuracy: (round, accuracy).
    pub quality: Option<(usize, f64)>,
    pub features: String,
    /// Wall seconds per stage, and in all.
    pub cost: Vec<(Stage, f64)>,
    pub cost_total: f64,
    pub next_action: String,
}

pub fn status(dir: &Path) -> Result<Status> {
    let p = Project::open(dir)?;
    let ds = p.dataset()?;
    let batches = p.batches()?;
    let labels = p.labels()?;
    let labelled: HashSet<usize> = labels.iter().map(|l| l.row).collect();
    let mut counts: BTreeMap<&str, usize> =
        ds.label_map.names.iter().map(|n| (n.as_str(), 0)).collect();
    for l in &labels {
        *counts.entry(l.label.as_str()).or_default() += 1;
    }
    let per_class = ds
        .label_map
        .names
        .iter()
        .map(|n| (n.clone(), counts[n.as_str()]))
        .collect();
    let open = open_batch(&batches, &labelled).map(|b| {
        let done = b.rows.iter().filter(|r| labelled.contains(&r.row)).count();
        (b.round, done, b.rows.len())
    });
    let works: Vec<&ProgressRecord> = batches.iter().filter_map(|b| b.work.as_ref()).collect();
    let quality = works
        .iter()
        .rev()
        .find_map(|w| w.test_accuracy.map(|a| (w.round, a)));
    let features = current_features(&batches);
    let ledger_path = p.run_dir().ledger();
    let recs = if ledger_path.exists() {
        crate::cost::Ledger::read(&ledger_path)?
    } else {
        vec![]
    };
    // Records of a round whose batch was never committed are not counted.
    let committed = batches.len() as i64 - 2;
    let mut by_stage: BTreeMap<String, (Stage, f64)> = BTreeMap::new();
    for r in recs.iter().filter(|r| r.round as i64 <= committed) {
        let e = by_stage
            .entry(format!("{:?}", r.stage))
            .or_insert((r.stage, 0.0));
        e.1 += r.wall_seconds;
    }
    let cost: Vec<(Stage, f64)> = by_stage.into_values().collect();
    // Compute: the selection path plus the model that ships now (the latest `ship` round); the
    // test scoring and earlier ship training only measured quality (DESIGN.md "Metrics").
    let counted: Vec<&crate::cost::CostRecord> = recs
        .iter()
        .filter(|r| r.round as i64 <= committed)
        .collect();
    let last_ship = counted
        .iter()
        .filter(|r| r.stage == Stage::Ship)
        .map(|r| r.round)
        .max();
    let cost_total = counted
        .iter()
        .filter(|r| r.stage.is_path() || (r.stage == Stage::Ship && Some(r.round) == last_ship))
        .map(|r| r.wall_seconds)
        .sum();
    let pool = ds.count(Split::Pool);
    let held_out = ds.labelled_rows_of(Split::Test).len();
    let next_action = match open {
        Some((r, done, n)) => format!(
            "batch {r} is waiting for {} labels ({}): `proxal label <file>`; then `proxal next`",
            n - done,
            p.batch_dir(r).join("batch.csv").display()
        ),
        None if labelled.len() >= pool => "nothing: every pool row is labelled".into(),
        None if labels.is_empty() => format!(
            "`proxal next` picks a random first batch of {} rows",
            p.cfg.batch
        ),
        None => {
            let r = batches.len() - 1;
            let mut what = vec![];
            if !Dataset::dir(&p.home, DATASET).exists()
                || !crate::features::Store::new(&p.home, DATASET)
                    .manifest(0)
                    .map(|m| m.complete)
                    .unwrap_or(false)
            {
                what.push("embed the pool once (v0)".to_string());
            }
            if p.cfg.policy == PolicyKind::Asvp
                && p.cfg.asvp.align_every > 0
                && r > 0
                && r.is_multiple_of(p.cfg.asvp.align_every)
            {
                what.push(
                    "fine-tune on the labels and refresh the cache (scheduled alignment)".into(),
                );
            }
            if p.cfg.policy == PolicyKind::Standard {
                what.push("fine-tune on the labels and re-embed the pool".into());
            }
            what.push(format!(
                "select batch {} of {} rows with {}",
                batches.len(),
                p.cfg.batch,
                if p.cfg.policy == PolicyKind::Random {
                    "random sampling"
                } else {
                    p.cfg.strategy.as_str()
                }
            ));
            format!("`proxal next` will {}", what.join(", then "))
        }
    };
    Ok(Status {
        labels: labels.len(),
        per_class,
        batches: batches.len(),
        open,
        pool,
        held_out,
        quality,
        features,
        cost,
        cost_total,
        next_action,
    })
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "labels: {} of {} pool rows, in {} batches",
            self.labels, self.pool, self.batches
        )?;
        if let Some((r, done, n)) = self.open {
            writeln!(f, "open batch: {r} ({done} of {n} labelled)")?;
        }
        let classes: Vec<String> = self
            .per_class
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect();
        writeln!(f, "per class: {}", classes.join(", "))?;
        writeln!(f, "features: {}", self.features)?;
        match (self.quality, self.held_out) {
            (_, 0) => writeln!(f, "quality: no held-out labelled rows (import test rows with --label-col and --split-col to measure it)")?,
            (Some((r, a)), n) => writeln!(f, "quality: held-out accuracy {a:.4} on {n} rows (after round {r})")?,
            (None, n) => writeln!(f, "quality: not measured yet ({n} held-out rows)")?,
        }
        let stages: Vec<String> = self
            .cost
            .iter()
            .map(|(s, w)| format!("{} {w:.1} s", s.as_str()))
            .collect();
        writeln!(
            f,
            "compute: {:.1} s (path + the model that ships now; per stage, all rounds:{})",
            self.cost_total,
            if stages.is_empty() {
                " none".to_string()
            } else {
                format!(" {}", stages.join(", "))
            }
        )?;
        write!(f, "next: {}", self.next_action)
    }
}
