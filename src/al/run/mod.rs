//! `proxal run`: one active-learning run, resumable.
mod align;
mod round;

pub(crate) use align::*;
pub(crate) use round::*;

use super::config::{
    AsvpConfig, CheckFrom, EvalModel, MethodChoice, PolicyKind, RunConfig, SelectWith, Trigger,
    ValSource,
};
use super::state::{AlignCheck, LabelRecord, ProgressRecord, RunDir};
use crate::backbone::{Backbone, EmbedOptions};
use crate::cost::{CostRecord, Ledger, Stage};
use crate::data::{Dataset, Split};
use crate::features::embed::{embed_dataset, EmbedJob, COST_FILE};
use crate::features::{FeatureVersion, RowBlocks, Store, Verify};
use crate::home::Home;
use crate::oracle::{Oracle, Simulated};
use crate::proxy::{LogReg, LogRegConfig, Proxy, ProxyConfig};
use crate::report::RoundRecord;
use crate::strategy::{self, Strategy};
use crate::train::{fine_tune, FineTuneOptions, FineTuned, Head, Method, Scores};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Options of one invocation (not part of the run's identity).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Progress bars and per-round lines on stderr.
    pub progress: bool,
    /// Stop after this many rounds in this invocation (tests simulate a crash with it).
    pub stop_after_rounds: Option<usize>,
}

/// What a run ended with.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub dir: PathBuf,
    pub rounds_done: usize,
    pub labels: usize,
    pub last_accuracy: Option<f64>,
    pub resumed: bool,
}

pub(crate) struct RoundContext<'a> {
    pub(crate) cfg: &'a RunConfig,
    pub(crate) home: &'a Home,
    pub(crate) run: RunDir,
    pub(crate) ds: &'a Dataset,
    pub(crate) ledger: Ledger,
    pub(crate) model_dir: PathBuf,
    pub(crate) embed: EmbedOptions,
    /// How v0 stores its features; refreshed versions follow it (f32 when the run embeds v0).
    pub(crate) dtype: crate::features::Dtype,
    pub(crate) pool: Vec<usize>,
    pub(crate) test: Vec<usize>,
    pub(crate) strategy: Box<dyn Strategy>,
    pub(crate) opts: RunOptions,
    /// The successor's pretrained features (`[successor]`, PLASM), once opened.
    pub(crate) successor: Option<FeatureVersion>,
}

impl RoundContext<'_> {
    fn say(&self, msg: &str) {
        if self.opts.progress {
            eprintln!("[{}] {msg}", self.cfg.name);
        }
    }
    fn ft_options(&self, seed: u64) -> FineTuneOptions {
        FineTuneOptions {
            hyper: self.cfg.train.clone(),
            pooling: self.embed.pooling,
            normalize: self.embed.normalize,
            seed,
            progress: self.opts.progress,
            validation: None,
        }
    }
    fn round_seed(&self, round: usize, salt: u64) -> u64 {
        self.cfg
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(round as u64 * 7919)
            .wrapping_add(salt)
    }
}

/// Run (or resume) the active-learning run described by `config_path`.
pub fn run(home: &Home, config_path: &Path, opts: RunOptions) -> Result<RunSummary> {
    let cfg = RunConfig::load(config_path)?;
    crate::device::from_config(cfg.device.as_deref(), config_path)?;
    let text = std::fs::read_to_string(config_path)?;
    let run = RunDir::new(home.runs().join(&cfg.name));
    let resumed = run.init(&text)?;
    let ds = Dataset::load(home, &cfg.dataset)?;
    if ds.label_map.is_empty() {
        bail!(
            "dataset '{}' has no labels: `proxal run` simulates the oracle from gold labels",
            ds.name
        );
    }
    let needed = cfg.labels_after(cfg.rounds);
    let pool = ds.count(Split::Pool);
    if needed > pool {
        bail!("the schedule buys {needed} labels but the pool has only {pool} rows");
    }
    let mut ctx = RoundContext::new(home, &cfg, &ds, run, opts)?;
    if ctx.test.is_empty() {
        bail!(
            "dataset '{}' has no test split to evaluate on: import it again with --split-col COLUMN or --test-fraction F (a stratified, seeded share of the labelled rows)",
            ds.name
        );
    }
    drive(&mut ctx, resumed)
}

impl<'a> RoundContext<'a> {
    /// The shared state of one run (or annotation project) over `ds`, writing into `run`.
    /// Evaluation uses the test rows that have gold labels.
    pub(crate) fn new(
        home: &'a Home,
        cfg: &'a RunConfig,
        ds: &'a Dataset,
        run: RunDir,
        opts: RunOptions,
    ) -> Result<RoundContext<'a>> {
        let pool = ds.rows_of(Split::Pool);
        let test = ds.labelled_rows_of(Split::Test);
        let model_dir = home.model_dir_or_default(cfg.model_dir.as_deref());
        let ledger = Ledger::open(&run.ledger(), &cfg.name)?;
        // Refreshed versions must be comparable with v0: embed (and store) them the way v0 was.
        let (embed, dtype) = crate::features::embed::like_v0(
            &Store::for_model(home, &cfg.dataset, &model_dir),
            EmbedOptions {
                batch: cfg.embed_batch,
                max_len: cfg.embed_max_len,
                ..Default::default()
            },
        )?;
        let strategy = strategy::from_name_with(&cfg.strategy, &cfg.subpool)?;
        Ok(RoundContext {
            cfg,
            home,
            run,
            ds,
            ledger,
            model_dir,
            embed,
            dtype,
            pool,
            test,
            strategy,
            opts,
            successor: None,
        })
    }
}

fn drive(ctx: &mut RoundContext, resumed: bool) -> Result<RunSummary> {
    let cfg = ctx.cfg;
    let progress = ctx.run.read_progress()?;
    let done_rounds = progress.len();
    if progress.iter().enumerate().any(|(i, p)| p.round != i) {
        bail!("{}: rounds out of order", ctx.run.progress().display());
    }
    // Drop ledger and evaluation records of a round that was interrupted: it is redone from
    // its start.
    ctx.ledger.truncate_after_round(done_rounds as i64 - 1)?;
    ctx.run.truncate_rounds_after(done_rounds as i64 - 1)?;
    let mut labels = ctx.run.read_labels()?;
    // Labels bought for the interrupted round (or the one after it) stay stored and are not bought
    // again, but the truncation just dropped their ledger records: record them again.
    let mut kept: std::collections::BTreeMap<usize, usize> = Default::default();
    for l in labels.iter().filter(|l| l.round >= done_rounds) {
        *kept.entry(l.round).or_default() += 1;
    }
    for (round, n) in kept {
        ctx.ledger.record(round, Stage::Labelling, 0.0, 0.0, 0, n)?;
    }
    if resumed {
        ctx.say(&format!(
            "resuming after round {} ({} labels stored)",
            done_rounds as i64 - 1,
            labels.len()
        ));
    }
    let ds = ctx.ds;
    let mut oracle = Simulated::new(ds)?;

    // v0: the pretrained features every proxy policy starts from.
    let v0 = if cfg.policy.needs_v0(cfg.eval_model) {
        Some(ensure_v0(ctx, done_rounds == 0)?)
    } else {
        None
    };
    // The successor's pretrained features: the model that ships is trained on them, so their
    // one-off embedding is the policy's compute (`embed`), charged in round 0 as v0's.
    if let Some(sc) = &cfg.successor {
        let options = sc.embed_options(cfg);
        // A successor that is the run's own backbone (self-training with pseudo-labels) reads
        // the store v0 came from: its embedding is charged once, as v0.
        let shared = v0.is_some()
            && ctx.home.feature_dir_for(&ds.name, &sc.model_dir)
                == ctx.home.feature_dir_for(&ds.name, &ctx.model_dir);
        let fv = ensure_pretrained(
            ctx,
            &sc.model_dir,
            &options,
            (done_rounds == 0 && !shared).then_some(Stage::Embed),
        )?;
        ctx.successor = Some(fv);
    }
    let mut policy_state = PolicyState::restore(ctx, &progress)?;
    let mut last_accuracy = progress.iter().rev().find_map(|p| p.test_accuracy);

    // A run that stopped on a criterion (docs/STOPPING.md) is finished.
    let stopped = progress
        .last()
        .and_then(|p| p.stop.as_ref())
        .is_some_and(|s| s.stopped);
    let rounds = if stopped {
        0..0
    } else {
        done_rounds..cfg.rounds + 1
    };
    for (rounds_this_call, round) in rounds.enumerate() {
        if ctx
            .opts
            .stop_after_rounds
            .is_some_and(|n| rounds_this_call >= n)
        {
            break;
        }
        // 1. Labels in: the batch of this round, chosen at the end of the previous one.
        if !labels.iter().any(|l| l.round == round) {
            if round > 0 {
                // Labels of round r are bought before round r-1 is marked finished.
                bail!(
                    "{}: round {} is finished but its next batch is missing",
                    ctx.run.dir.display(),
                    round - 1
                );
            }
            let rows = cold_start(ctx);
            buy(ctx, &mut oracle, 0, &rows, &mut labels)?;
        }
        // This round's labels (a redone round may find the next batch bought already).
        let rows = labels.iter().filter(|l| l.round <= round).count();
        ctx.say(&format!("round {round}: {rows} labels"));

        // 2–4. Policy work, evaluation of the shipped model, the next batch.
        let select = round < cfg.rounds && !labels.iter().any(|l| l.round == round + 1);
        // A resumed round sees only its own labels, even when the next batch was bought before
        // the kill: the same labels as an uninterrupted run.
        let upto: Vec<LabelRecord> = labels
            .iter()
            .filter(|l| l.round <= round)
            .cloned()
            .collect();
        let step = round_step(
            ctx,
            round,
            &upto,
            v0.as_ref(),
            &mut policy_state,
            StepPlan {
                final_round: round == cfg.rounds,
                evaluate: cfg.is_eval_round(round),
                select,
                may_stop: true,
            },
        )?;
        if let Some(ev) = step.evaluated {
            let scores = &ev.scores;
            ctx.say(&format!(
                "round {round}: test accuracy {:.4}, macro-F1 {:.4} ({} labels)",
                scores.accuracy, scores.macro_f1, rows
            ));
            if let Some(a) = ev.acquisition_accuracy {
                ctx.say(&format!(
                    "round {round}: (the successor's; the acquisition model's {a:.4}, {} pseudo-labels)",
                    ev.pseudo_labels.unwrap_or(0)
                ));
            }
            last_accuracy = Some(scores.accuracy);
            crate::util::append_jsonl(
                &ctx.run.rounds(),
                &[RoundRecord {
                    round,
                    labels: rows,
                    test_accuracy: scores.accuracy,
                    test_macro_f1: scores.macro_f1,
                    test_tail_recall: scores.tail_recall,
                    acquisition_accuracy: ev.acquisition_accuracy,
                    pseudo_labels: ev.pseudo_labels,
                    pseudo_label_accuracy: ev.pseudo_label_accuracy,
                }],
            )?;
        }
        if select && !step.stopped {
            let next: Vec<usize> = step.picks.iter().map(|p| p.row).collect();
            buy(ctx, &mut oracle, round + 1, &next, &mut labels)?;
        }
        let progress = step.progress;
        // 5. Done.
        ctx.run.append_progress(&progress)?;
        if step.stopped {
            break;
        }
    }
    let finished = ctx.run.read_progress()?.len();
    Ok(RunSummary {
        dir: ctx.run.dir.clone(),
        rounds_done: finished,
        labels: labels.len(),
        last_accuracy,
        resumed,
    })
}

/// Label `rows` for `round` and append them, fsynced, to the run's labelled set.
fn buy(
    ctx: &mut RoundContext,
    oracle: &mut dyn Oracle,
    round: usize,
    rows: &[usize],
    labels: &mut Vec<LabelRecord>,
) -> Result<()> {
    let have: HashSet<usize> = labels.iter().map(|l| l.row).collect();
    if let Some(r) = rows.iter().find(|r| have.contains(r)) {
        bail!("internal error: row {r} selected twice");
    }
    let ys = oracle.label(rows)?;
    let recs: Vec<LabelRecord> = rows
        .iter()
        .zip(&ys)
        .map(|(&row, &y)| LabelRecord {
            round,
            row,
            id: ctx.ds.ids[row].clone(),
            label: ctx.ds.label_map.name(y).to_string(),
        })
        .collect();
    ctx.run.append_labels(&recs)?;
    ctx.ledger
        .record(round, Stage::Labelling, 0.0, 0.0, 0, recs.len())?;
    labels.extend(recs);
    Ok(())
}
