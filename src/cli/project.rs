//! Annotation-project commands: `init`, `next`, `label`, `status`, `export-model`, `predict`.
use crate::al::PolicyKind;
use crate::home::Home;
use crate::project::{self, labels::Columns, InitOptions, LabelOptions, NextOptions};
use anyhow::{bail, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Directory of the new project (created if missing)
    pub dir: PathBuf,
    /// The unlabelled pool: CSV, TSV, JSONL or Parquet
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "text")]
    pub text_col: String,
    /// Column of row ids (default: row numbers)
    #[arg(long)]
    pub id_col: Option<String>,
    /// Column of labels already known (pool rows become the first batch; test rows measure the model)
    #[arg(long)]
    pub label_col: Option<String>,
    /// Column assigning rows to pool / dev / test (default: all pool)
    #[arg(long)]
    pub split_col: Option<String>,
    /// Hold out this share of the labelled rows to measure the model, stratified by label
    /// (instead of --split-col)
    #[arg(long)]
    pub test_fraction: Option<f64>,
    /// Seed of the --test-fraction split
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// The label set, comma-separated (more can be added by `label --allow-new-labels`)
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// How batches are picked
    #[arg(long, value_enum, default_value_t = PolicyKind::Asvp)]
    pub policy: PolicyKind,
    #[arg(long, default_value = "margin")]
    pub strategy: String,
    /// Default batch size of `proxal next`
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backbone directory (default: the fetched all-MiniLM-L6-v2 under the home's assets/)
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct NextArgs {
    /// Project directory
    #[arg(long, default_value = ".")]
    pub project: PathBuf,
    /// Rows to ask for (default: the config's batch)
    #[arg(long)]
    pub batch: Option<usize>,
    /// Close the open batch even though some of its rows have no label (they return to the pool)
    #[arg(long)]
    pub skip_rest: bool,
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct LabelArgs {
    /// Answers: CSV/TSV (id and label columns), JSONL, or a Label Studio JSON export
    pub file: PathBuf,
    #[arg(long, default_value = ".")]
    pub project: PathBuf,
    #[arg(long, default_value = "id")]
    pub id_col: String,
    #[arg(long, default_value = "label")]
    pub label_col: String,
    /// Accept labels that are not in the label set yet (and add them)
    #[arg(long)]
    pub allow_new_labels: bool,
    /// Store the valid rows even when some rows are rejected
    #[arg(long)]
    pub partial: bool,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[arg(long, default_value = ".")]
    pub project: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[arg(long, default_value = ".")]
    pub project: PathBuf,
    /// Output directory (default: <project>/model)
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// A model directory written by `proxal export-model`
    #[arg(long)]
    pub model: PathBuf,
    /// Texts to label: CSV, TSV, JSONL or Parquet
    #[arg(long)]
    pub data: PathBuf,
    /// Output file (format by extension)
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "text")]
    pub text_col: String,
    /// Column of ids to copy to the output
    #[arg(long)]
    pub id_col: Option<String>,
}

pub fn init(home: &Home, a: InitArgs) -> Result<()> {
    let model_dir = home.model_dir_or_default(a.model_dir.as_deref());
    let model_dir = model_dir.canonicalize().unwrap_or(model_dir);
    let r = project::init(
        &a.dir,
        &InitOptions {
            data: a.data,
            text_col: a.text_col,
            id_col: a.id_col,
            label_col: a.label_col,
            split_col: a.split_col,
            test_split: a.test_fraction.map(|fraction| crate::data::TestSplit {
                fraction,
                seed: a.split_seed,
            }),
            labels: a.labels,
            policy: a.policy,
            strategy: a.strategy,
            batch: a.batch,
            seed: a.seed,
            model_dir,
        },
    )?;
    println!(
        "project {}: {} pool rows, {} held-out labelled rows, {} labels already known, label set: {}",
        r.dir.display(),
        r.pool,
        r.held_out,
        r.seed_labels,
        if r.label_set.is_empty() {
            "(empty: add labels with `label --allow-new-labels`)".to_string()
        } else {
            r.label_set.join(", ")
        }
    );
    println!(
        "next: `proxal next --project {}` exports the first batch",
        r.dir.display()
    );
    Ok(())
}

pub fn next(a: NextArgs) -> Result<()> {
    let r = project::next(
        &a.project,
        &NextOptions {
            batch: a.batch,
            skip_rest: a.skip_rest,
            progress: !a.quiet,
        },
    )?;
    if let Some(w) = &r.work {
        let mut parts = vec![format!("{} labels", w.labels)];
        if let Some(why) = &w.aligned {
            parts.push(format!(
                "aligned ({why}) with {}",
                w.method.as_deref().unwrap_or("?")
            ));
        }
        if let Some(a) = w.test_accuracy {
            parts.push(format!("held-out accuracy {a:.4}"));
        }
        println!("round {}: {}", w.round, parts.join(", "));
        if let Some(line) = &r.stopping {
            println!("  stopping: {line}");
        }
    }
    println!(
        "batch {}: {} rows ({})\n  annotate: {}\n  Label Studio tasks: {}\n  then: proxal label <file> --project {}",
        r.round,
        r.rows,
        r.selected_by,
        r.csv.display(),
        r.tasks.display(),
        a.project.display()
    );
    Ok(())
}

pub fn label(a: LabelArgs) -> Result<()> {
    let r = project::label(
        &a.project,
        &LabelOptions {
            file: a.file.clone(),
            cols: Columns {
                id: a.id_col,
                label: a.label_col,
            },
            allow_new_labels: a.allow_new_labels,
            partial: a.partial,
        },
    )?;
    const SHOWN: usize = 50;
    for e in r.rejected.iter().take(SHOWN) {
        eprintln!("{}: {e}", a.file.display());
    }
    if r.rejected.len() > SHOWN {
        eprintln!("… and {} more", r.rejected.len() - SHOWN);
    }
    if let Some(f) = &r.report_file {
        eprintln!("all rejected rows: {}", f.display());
    }
    if !r.rejected.is_empty() && !r.applied {
        bail!(
            "{} row(s) rejected: nothing stored (fix them, or pass --partial to store the valid rows)",
            r.rejected.len()
        );
    }
    let mut msg = format!("stored {} labels", r.stored);
    if r.already > 0 {
        msg.push_str(&format!(", {} already stored", r.already));
    }
    if r.unanswered > 0 {
        msg.push_str(&format!(", {} tasks without an answer", r.unanswered));
    }
    if !r.new_labels.is_empty() {
        msg.push_str(&format!("; new labels: {}", r.new_labels.join(", ")));
    }
    if !r.rejected.is_empty() {
        msg.push_str(&format!("; {} rows rejected", r.rejected.len()));
    }
    match r.open_round {
        Some(b) if r.remaining > 0 => {
            msg.push_str(&format!("; batch {b}: {} rows still to label", r.remaining))
        }
        Some(b) => msg.push_str(&format!(
            "; batch {b} is complete: `proxal next` for the next one"
        )),
        None => {}
    }
    println!("{msg}");
    Ok(())
}

pub fn status(a: StatusArgs) -> Result<()> {
    println!("{}", project::status(&a.project)?);
    Ok(())
}

pub fn export_model(a: ExportArgs) -> Result<()> {
    let r = project::model::export_model(&a.project, a.out.as_deref())?;
    println!(
        "model ({} labels, features {}, {} classes) → {}\n  use: proxal predict --model {} --data <file> --out <file>",
        r.card.trained_on_labels,
        r.card.features,
        r.card.labels.len(),
        r.dir.display(),
        r.dir.display()
    );
    Ok(())
}

pub fn predict(a: PredictArgs) -> Result<()> {
    let r = project::model::predict(&a.model, &a.data, &a.text_col, a.id_col.as_deref(), &a.out)?;
    println!("predicted {} rows → {}", r.rows, r.out.display());
    Ok(())
}
