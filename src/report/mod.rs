//! Reports over a set of runs: learning curves, labels and compute to reach a target accuracy,
//! savings vs random and vs standard AL, total cost — as Markdown, self-contained HTML, CSV, JSON
//! and PNG/SVG figures.
//!
//! Input: run directories `experiments/runs/<name>/`, each with
//! - `config.toml` — at least `name`, `policy` (random | standard | svpp | asvp), `dataset`;
//!   optional `seed`, `strategy` and a `[prices]` table ([`PricesConfig`]);
//! - `ledger.jsonl` — [`CostRecord`](crate::cost::CostRecord)s (see [`Ledger`](crate::cost::Ledger));
//! - `rounds.jsonl` — one [`RoundRecord`] per evaluation point.
//!
//! Every number is recomputed from these raw files ([`metrics`]); nothing is cached.
pub mod metrics;
pub mod plots;
pub mod render;

use crate::cost::{CostRecord, Ledger, Prices, PricesConfig};
use crate::util::read_jsonl_tolerant;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use metrics::{MetricOptions, Metrics};

/// File names inside a run directory.
pub const CONFIG_FILE: &str = "config.toml";
pub const LEDGER_FILE: &str = "ledger.jsonl";
pub const ROUNDS_FILE: &str = "rounds.jsonl";

/// One line of a run's `rounds.jsonl`: the shipped model evaluated at one evaluation point.
///
/// ```json
/// {"round":3,"labels":800,"test_accuracy":0.8412,"test_macro_f1":0.8320}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RoundRecord {
    /// Active-learning round of the evaluation (0: the cold-start set).
    pub round: usize,
    /// Labels bought so far (the labelled set the model was trained on).
    pub labels: usize,
    /// Accuracy on the test split, as a fraction in [0, 1].
    pub test_accuracy: f64,
    /// Macro-averaged F1 on the test split, in [0, 1].
    pub test_macro_f1: f64,
    /// Mean test recall over the pool's tail classes, when the pool is imbalanced
    /// (`train::eval::tail_classes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_tail_recall: Option<f64>,
    /// With a successor (PLASM, `[successor]`): what the test accuracy measures is the
    /// successor's; this is the acquisition model's (a linear probe on the features it selects
    /// with, trained on the same labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquisition_accuracy: Option<f64>,
    /// Rows the acquisition model pseudo-labelled for the successor's training set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudo_labels: Option<usize>,
    /// The share of those pseudo-labels that agree with the gold labels (a simulated run knows them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudo_label_accuracy: Option<f64>,
}

/// What the report needs from a run's `config.toml`.
#[derive(Debug, Clone)]
pub struct RunMeta {
    pub name: String,
    pub policy: String,
    pub dataset: String,
    pub seed: Option<i64>,
    pub strategy: Option<String>,
    /// What sets an asvp run apart from the fixed schedule, for its group's label: its trigger
    /// when not `schedule`, `validate` when it chooses the training method by validation, `cache`
    /// when its checks continue the backbone that made the cache, `random` when they validate
    /// on random picks, and `labels` when it aligns at fixed label counts.
    pub variant: Option<String>,
    pub prices: Option<PricesConfig>,
    /// The config without `name`, `seed` and `[prices]`, canonicalised: runs with equal keys are
    /// seeds of one method and are averaged together.
    pub group_key: String,
}

/// A loaded run directory.
#[derive(Debug, Clone)]
pub struct RunInput {
    pub dir: PathBuf,
    pub meta: RunMeta,
    /// Evaluation points in round order (a round evaluated twice, after a resume, keeps the last).
    pub rounds: Vec<RoundRecord>,
    /// Ledger records in file (chronological) order.
    pub ledger: Vec<CostRecord>,
    /// The runs' alignment checks (asvp with a checked trigger or method): (round, labels,
    /// check), from `progress.jsonl` when there is one.
    pub checks: Vec<(usize, usize, crate::al::AlignCheck)>,
}

fn canonical(v: &toml::Value, out: &mut String) {
    match v {
        toml::Value::Table(t) => {
            let mut keys: Vec<&String> = t.keys().collect();
            keys.sort();
            out.push('{');
            for k in keys {
                out.push_str(&format!("{k:?}="));
                canonical(&t[k], out);
                out.push(';');
            }
            out.push('}');
        }
        toml::Value::Array(a) => {
            out.push('[');
            for x in a {
                canonical(x, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The resolved config (every default filled in) without the keys its policy never reads, so
/// that runs which did the same thing group together however their files were written; None for
/// a config this proxal cannot parse (the raw table is used then).
fn what_the_run_did(text: &str) -> Option<toml::Table> {
    let cfg: crate::al::RunConfig = toml::from_str(text).ok()?;
    let unused: &[&str] = match cfg.policy {
        crate::al::PolicyKind::Random => &["strategy", "proxy", "asvp"],
        crate::al::PolicyKind::Svpp => &["asvp"],
        crate::al::PolicyKind::Standard => &["proxy", "asvp"],
        crate::al::PolicyKind::Asvp => &[],
    };
    let mut t = toml::Table::try_from(&cfg).ok()?;
    for k in unused {
        t.remove(*k);
    }
    Some(t)
}

/// Parse the parts of a run config the report uses.
pub fn parse_meta(text: &str, path: &Path, dir_name: &str) -> Result<RunMeta> {
    let v: toml::Value =
        toml::from_str(text).with_context(|| format!("{}: invalid TOML", path.display()))?;
    let t = v
        .as_table()
        .with_context(|| format!("{}: not a TOML table", path.display()))?;
    let s = |k: &str| t.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let name = s("name").unwrap_or_else(|| dir_name.to_string());
    let dataset = s("dataset")
        .with_context(|| format!("{}: no `dataset` (a string) in the config", path.display()))?;
    let policy = match t.get("policy") {
        Some(toml::Value::String(p)) => p.to_lowercase(),
        Some(toml::Value::Table(p)) => p
            .get("kind")
            .and_then(|k| k.as_str())
            .map(str::to_lowercase)
            .with_context(|| format!("{}: [policy] has no `kind`", path.display()))?,
        _ => bail!(
            "{}: no `policy` (random | standard | svpp | asvp) in the config",
            path.display()
        ),
    };
    let seed = t.get("seed").and_then(|x| x.as_integer());
    let strategy = s("strategy");
    let asvp = |k: &str| {
        t.get("asvp")
            .and_then(|a| a.get(k))
            .and_then(|x| x.as_str())
            .map(str::to_string)
    };
    let variant: Vec<String> = [
        asvp("trigger").filter(|x| x != "schedule"),
        asvp("method").filter(|x| x != "threshold"),
        asvp("check_from").filter(|x| x != "pretrained"),
        asvp("val_source").filter(|x| x != "labels"),
        t.get("asvp")
            .and_then(|a| a.get("align_at_labels"))
            .and_then(|x| x.as_array())
            .filter(|x| !x.is_empty())
            .map(|_| "labels".to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let variant = (policy == "asvp" && !variant.is_empty()).then(|| variant.join("-"));
    let prices = match t.get("prices") {
        Some(p) => Some(PricesConfig::from_toml(p).with_context(|| path.display().to_string())?),
        None => None,
    };
    let mut key_table = what_the_run_did(text).unwrap_or_else(|| t.clone());
    for k in ["name", "seed", "prices"] {
        key_table.remove(k);
    }
    let mut group_key = String::new();
    canonical(&toml::Value::Table(key_table), &mut group_key);
    Ok(RunMeta {
        name,
        policy,
        dataset,
        seed,
        strategy,
        variant,
        prices,
        group_key,
    })
}

/// Load a run directory: config, evaluation points and ledger. Errors are one line naming the
/// file (missing directory, missing or malformed config, ledger or rounds).
pub fn load_run(dir: &Path) -> Result<RunInput> {
    if !dir.is_dir() {
        bail!("run directory {} does not exist", dir.display());
    }
    let dir_name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("run")
        .to_string();
    let cfg_path = dir.join(CONFIG_FILE);
    if !cfg_path.is_file() {
        bail!(
            "{}: no {CONFIG_FILE} (is this a run directory?)",
            dir.display()
        );
    }
    let text = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("cannot read {}", cfg_path.display()))?;
    let meta = parse_meta(&text, &cfg_path, &dir_name)?;

    let ledger_path = dir.join(LEDGER_FILE);
    if !ledger_path.is_file() {
        bail!(
            "{}: no {LEDGER_FILE}: the run has no cost ledger",
            dir.display()
        );
    }
    let ledger = Ledger::read(&ledger_path)?;

    let rounds_path = dir.join(ROUNDS_FILE);
    if !rounds_path.is_file() {
        bail!(
            "{}: no {ROUNDS_FILE}: the run has no evaluation point yet",
            dir.display()
        );
    }
    let read = read_jsonl_tolerant::<RoundRecord>(&rounds_path)?;
    if let Some(t) = &read.torn_tail {
        tracing::warn!(
            "{}: ignoring a torn last line ({t:?})",
            rounds_path.display()
        );
    }
    let mut rounds: Vec<RoundRecord> = Vec::with_capacity(read.records.len());
    for r in read.records {
        if !(0.0..=1.0).contains(&r.test_accuracy) {
            bail!(
                "{}: round {}: test_accuracy {} is not a fraction in [0, 1]",
                rounds_path.display(),
                r.round,
                r.test_accuracy
            );
        }
        match rounds.iter_mut().find(|x| x.round == r.round) {
            Some(x) => *x = r,
            None => rounds.push(r),
        }
    }
    rounds.sort_by_key(|r| r.round);
    if rounds.is_empty() {
        bail!("{}: no evaluation point yet", rounds_path.display());
    }
    let progress_path = dir.join("progress.jsonl");
    let checks = if progress_path.is_file() {
        read_jsonl_tolerant::<crate::al::ProgressRecord>(&progress_path)?
            .records
            .into_iter()
            .filter_map(|p| p.check.map(|c| (p.round, p.labels, c)))
            .collect()
    } else {
        vec![]
    };
    Ok(RunInput {
        dir: dir.to_path_buf(),
        meta,
        rounds,
        ledger,
        checks,
    })
}

/// Options of [`generate`].
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    pub metrics: MetricOptions,
    /// Overrides of the price per label and per device-hour (applied last).
    pub prices: PricesConfig,
}

/// The prices of a report: defaults, then the runs' `[prices]` tables (which must agree), then
/// the overrides.
pub fn resolve_prices(runs: &[RunInput], overrides: &PricesConfig) -> Result<Prices> {
    let mut merged = PricesConfig::default();
    let mut from: std::collections::BTreeMap<String, String> = Default::default();
    for r in runs {
        let Some(p) = &r.meta.prices else { continue };
        if let Some(x) = p.price_per_label {
            if overrides.price_per_label.is_none() {
                if let Some(prev) = merged.price_per_label.filter(|prev| *prev != x) {
                    bail!(
                        "runs disagree on price_per_label ({} says {prev}, {} says {x}): pass --price-per-label",
                        from["label"],
                        r.meta.name
                    );
                }
            }
            merged.price_per_label = Some(x);
            from.insert("label".into(), r.meta.name.clone());
        }
        for (d, x) in &p.price_per_device_hour {
            if !overrides.price_per_device_hour.contains_key(d) {
                if let Some(prev) = merged
                    .price_per_device_hour
                    .get(d)
                    .filter(|prev| **prev != *x)
                {
                    bail!(
                        "runs disagree on the price per hour of {d} ({} says {prev}, {} says {x}): pass --price-per-hour {d}=USD",
                        from[d],
                        r.meta.name
                    );
                }
            }
            merged.price_per_device_hour.insert(d.clone(), *x);
            from.insert(d.clone(), r.meta.name.clone());
        }
    }
    let mut prices = Prices::default();
    prices.apply(&merged);
    prices.apply(overrides);
    Ok(prices)
}

/// Load runs, checking they are on one dataset and have distinct names.
pub fn load_runs(dirs: &[PathBuf]) -> Result<Vec<RunInput>> {
    if dirs.is_empty() {
        bail!("no run directories given");
    }
    let mut runs: Vec<RunInput> = Vec::with_capacity(dirs.len());
    for d in dirs {
        let r = load_run(d)?;
        if let Some(o) = runs.iter().find(|o| o.meta.dataset != r.meta.dataset) {
            bail!(
                "runs on different datasets: {} is on {}, {} is on {} (report one dataset at a time)",
                o.meta.name,
                o.meta.dataset,
                r.meta.name,
                r.meta.dataset
            );
        }
        if let Some(o) = runs.iter().find(|o| o.meta.name == r.meta.name) {
            bail!(
                "run {} given twice ({} and {})",
                r.meta.name,
                o.dir.display(),
                r.dir.display()
            );
        }
        runs.push(r);
    }
    Ok(runs)
}

/// The files a report wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub dir: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub csv: PathBuf,
    pub json: PathBuf,
    pub figures: Vec<PathBuf>,
}

/// Compute the metrics of `runs` (already loaded) and write every report file into `out`.
pub fn write_report(
    runs: &[RunInput],
    opts: &ReportOptions,
    out: &Path,
) -> Result<(Metrics, ReportFiles)> {
    let prices = resolve_prices(runs, &opts.prices)?;
    let m = metrics::compute(runs, &prices, &opts.metrics)?;
    let figs = plots::figures(&m)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let w = |name: &str, bytes: &[u8]| -> Result<PathBuf> {
        let p = out.join(name);
        crate::util::atomic_write(&p, bytes)?;
        Ok(p)
    };
    let mut figures = Vec::new();
    for f in &figs {
        figures.push(w(&format!("{}.png", f.stem), &f.png)?);
        figures.push(w(&format!("{}.svg", f.stem), f.svg.as_bytes())?);
    }
    let files = ReportFiles {
        dir: out.to_path_buf(),
        markdown: w("report.md", render::markdown(&m, &figs).as_bytes())?,
        html: w("report.html", render::html(&m, &figs).as_bytes())?,
        csv: w("report.csv", render::csv(&m).as_bytes())?,
        json: w("report.json", render::json(&m)?.as_bytes())?,
        figures,
    };
    Ok((m, files))
}

/// Load the run directories and write the report into `out`.
pub fn generate(
    dirs: &[PathBuf],
    opts: &ReportOptions,
    out: &Path,
) -> Result<(Metrics, ReportFiles)> {
    let runs = load_runs(dirs)?;
    write_report(&runs, opts, out)
}
