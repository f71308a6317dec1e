//! `proxal run`: one active-learning run, resumable.
use super::config::{EvalModel, PolicyKind, RunConfig, SelectWith};
use super::state::{LabelRecord, ProgressRecord, RunDir};
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
use candle_core::Device;
use rand::seq::SliceRandom;
use std::collections::HashSet;
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

/// The model selection uses in a round.
pub(crate) enum Selector {
    /// No model: random batches.
    Random,
    /// A proxy fitted on cached features of the labelled rows.
    Proxy(Box<dyn Proxy>),
    /// A fine-tuned model's head, applied to that model's own features.
    Head(Head),
}

pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a RunConfig,
    pub(crate) home: &'a Home,
    pub(crate) run: RunDir,
    pub(crate) ds: &'a Dataset,
    pub(crate) ledger: Ledger,
    pub(crate) model_dir: PathBuf,
    pub(crate) embed: EmbedOptions,
    pub(crate) pool: Vec<usize>,
    pub(crate) test: Vec<usize>,
    pub(crate) strategy: Box<dyn Strategy>,
    pub(crate) opts: RunOptions,
}

impl Ctx<'_> {
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
    let mut cx = Ctx::new(home, &cfg, &ds, run, opts)?;
    if cx.test.is_empty() {
        bail!("dataset '{}' has no test split to evaluate on", ds.name);
    }
    drive(&mut cx, resumed)
}

impl<'a> Ctx<'a> {
    /// The shared state of one run (or annotation project) over `ds`, writing into `run`.
    /// Evaluation uses the test rows that have gold labels.
    pub(crate) fn new(
        home: &'a Home,
        cfg: &'a RunConfig,
        ds: &'a Dataset,
        run: RunDir,
        opts: RunOptions,
    ) -> Result<Ctx<'a>> {
        let pool = ds.rows_of(Split::Pool);
        let test = ds.labelled_rows_of(Split::Test);
        let model_dir = cfg
            .model_dir
            .clone()
            .unwrap_or_else(|| home.default_model_dir());
        let ledger = Ledger::open(&run.ledger(), &cfg.name)?;
        let mut embed = EmbedOptions {
            batch: cfg.embed_batch,
            max_len: cfg.embed_max_len,
            ..Default::default()
        };
        // Refreshed versions must be comparable with v0: embed them the way v0 was embedded.
        if let Ok(m) = Store::new(home, &cfg.dataset).manifest(0) {
            embed.max_len = m.source.max_len;
            embed.normalize = m.source.normalize;
            embed.pooling = if m.source.pooling == "cls" {
                crate::backbone::Pooling::Cls
            } else {
                crate::backbone::Pooling::Mean
            };
        }
        let strategy = strategy::from_name(&cfg.strategy)?;
        Ok(Ctx {
            cfg,
            home,
            run,
            ds,
            ledger,
            model_dir,
            embed,
            pool,
            test,
            strategy,
            opts,
        })
    }
}

fn drive(cx: &mut Ctx, resumed: bool) -> Result<RunSummary> {
    let cfg = cx.cfg;
    let progress = cx.run.read_progress()?;
    let done_rounds = progress.len();
    if progress.iter().enumerate().any(|(i, p)| p.round != i) {
        bail!("{}: rounds out of order", cx.run.progress().display());
    }
    // Drop ledger records of a round that was interrupted: it is redone from its start.
    cx.ledger.truncate_after_round(done_rounds as i64 - 1)?;
    let mut labels = cx.run.read_labels()?;
    // Labels bought for the interrupted round (or the one after it) stay stored and are not bought
    // again, but the truncation just dropped their ledger records: record them again.
    let mut kept: std::collections::BTreeMap<usize, usize> = Default::default();
    for l in labels.iter().filter(|l| l.round >= done_rounds) {
        *kept.entry(l.round).or_default() += 1;
    }
    for (round, n) in kept {
        cx.ledger.record(round, Stage::Labelling, 0.0, 0.0, 0, n)?;
    }
    if resumed {
        cx.say(&format!(
            "resuming after round {} ({} labels stored)",
            done_rounds as i64 - 1,
            labels.len()
        ));
    }
    let ds = cx.ds;
    let mut oracle = Simulated::new(ds)?;

    // v0: the pretrained features every proxy policy starts from.
    let v0 = if cfg.policy.needs_v0(cfg.eval_model) {
        Some(ensure_v0(cx, done_rounds == 0)?)
    } else {
        None
    };
    let mut st = PolicyState::restore(cx, &progress)?;
    let mut last_accuracy = progress.iter().rev().find_map(|p| p.test_accuracy);

    for (rounds_this_call, round) in (done_rounds..=cfg.rounds).enumerate() {
        if cx
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
                    cx.run.dir.display(),
                    round - 1
                );
            }
            let rows = cold_start(cx);
            buy(cx, &mut oracle, 0, &rows, &mut labels)?;
        }
        let rows = labels.len();
        cx.say(&format!("round {round}: {rows} labels"));

        // 2–4. Policy work, evaluation of the shipped model, the next batch.
        let select = round < cfg.rounds && !labels.iter().any(|l| l.round == round + 1);
        let step = round_step(
            cx,
            round,
            &labels,
            v0.as_ref(),
            &mut st,
            StepPlan {
                final_round: round == cfg.rounds,
                evaluate: cfg.is_eval_round(round),
                select,
            },
        )?;
        if let Some(scores) = step.scores {
            cx.say(&format!(
                "round {round}: test accuracy {:.4}, macro-F1 {:.4} ({} labels)",
                scores.accuracy, scores.macro_f1, rows
            ));
            last_accuracy = Some(scores.accuracy);
            crate::util::append_jsonl(
                &cx.run.rounds(),
                &[RoundRecord {
                    round,
                    labels: rows,
                    test_accuracy: scores.accuracy,
                    test_macro_f1: scores.macro_f1,
                }],
            )?;
        }
        if select {
            let next: Vec<usize> = step.picks.iter().map(|p| p.row).collect();
            buy(cx, &mut oracle, round + 1, &next, &mut labels)?;
        }
        let rec = step.progress;
        // 5. Done.
        cx.run.append_progress(&rec)?;
    }
    let finished = cx.run.read_progress()?.len();
    Ok(RunSummary {
        dir: cx.run.dir.clone(),
        rounds_done: finished,
        labels: labels.len(),
        last_accuracy,
        resumed,
    })
}

/// Which parts of a round step run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepPlan {
    /// The run's last round: no selection follows, so training only makes the shipped model.
    pub(crate) final_round: bool,
    /// Train and score the shipped model on the test split (an evaluation point).
    pub(crate) evaluate: bool,
    /// Choose the next batch.
    pub(crate) select: bool,
}

/// What a round step did.
pub(crate) struct Step {
    /// The round's progress record (with its test accuracy when it was an evaluation point).
    pub(crate) progress: ProgressRecord,
    pub(crate) scores: Option<Scores>,
    /// What chose the next batch (its model, if any, predicts the picks' labels).
    pub(crate) selector: Option<Selector>,
    /// The next batch, in pick order (empty unless `plan.select`).
    pub(crate) picks: Vec<strategy::Pick>,
}

/// One round of active learning once its labels are in: the policy's work (LogME, alignment, the
/// standard model), the evaluation of the model it ships, and the choice of the next batch. Both
/// drivers call it: `proxal run` (labels from the simulated oracle) and `proxal next` (labels from
/// people); how labels are bought is theirs.
pub(crate) fn round_step(
    cx: &mut Ctx,
    round: usize,
    labels: &[LabelRecord],
    v0: Option<&FeatureVersion>,
    st: &mut PolicyState,
    plan: StepPlan,
) -> Result<Step> {
    let mut progress = policy_work(cx, round, labels, v0, st, plan.final_round)?;
    let scores = if plan.evaluate {
        let (rows, ys) = labelled_xy(cx, labels);
        let s = evaluate(
            cx,
            round,
            &rows,
            &ys,
            v0,
            st.current.as_ref(),
            st.standard_model.as_ref(),
            progress.aligned.is_some(),
        )?;
        progress.test_accuracy = Some(s.accuracy);
        Some(s)
    } else {
        None
    };
    let (selector, picks) = if plan.select {
        let sel = selector_for(
            cx,
            round,
            labels,
            v0,
            st.current.as_ref(),
            st.standard_model.as_ref(),
        )?;
        let picks = select_batch(cx, round, labels, &sel, v0, st.current.as_ref())?;
        (Some(sel), picks)
    } else {
        (None, Vec::new())
    };
    Ok(Step {
        progress,
        scores,
        selector,
        picks,
    })
}

/// What the policy carries from round to round.
pub(crate) struct PolicyState {
    /// The run-local refreshed feature version selection uses (None: v0).
    pub(crate) current: Option<(String, FeatureVersion)>,
    /// The last fine-tuned model (standard every round; asvp when it aligned).
    pub(crate) standard_model: Option<FineTuned>,
    pub(crate) last_logme: Option<f64>,
    pub(crate) best_logme: f64,
}

impl PolicyState {
    /// The state after the finished rounds `progress` (the refreshed version is reopened; a
    /// fine-tuned model is not kept across invocations).
    pub(crate) fn restore(cx: &Ctx, progress: &[ProgressRecord]) -> Result<Self> {
        let mut current = None;
        if let Some(p) = progress.iter().rev().find_map(|p| p.features.clone()) {
            if let Some(v) = p.strip_prefix("run:v") {
                let v: u32 = v
                    .parse()
                    .context("bad feature version in the progress records")?;
                let store = Store::at(cx.run.features(), &cx.ds.name);
                current = Some((p.clone(), store.open_for(v, cx.ds, Verify::Sizes)?));
            }
        }
        Ok(PolicyState {
            current,
            standard_model: None,
            last_logme: progress.last().and_then(|p| p.logme),
            best_logme: progress
                .iter()
                .filter_map(|p| p.logme)
                .fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// Step 2 of a round: what the policy does with the labels so far (LogME, alignment, the
/// standard model). Returns the round's progress record (without its test accuracy).
pub(crate) fn policy_work(
    cx: &mut Ctx,
    round: usize,
    labels: &[LabelRecord],
    v0: Option<&FeatureVersion>,
    st: &mut PolicyState,
    final_round: bool,
) -> Result<ProgressRecord> {
    let cfg = cx.cfg;
    // A refresh feeds the next selection. In the final round there is none: a fine-tune then only
    // trains the model that ships, and the refreshed cache only serves a linear probe on it (both
    // metered as `ship`), or nothing (the refresh is skipped).
    let (train_stage, refresh_stage) = match (final_round, cfg.eval_model) {
        (false, _) => (Stage::FineTune, Some(Stage::Refresh)),
        (true, EvalModel::LinearProbe) => (Stage::Ship, Some(Stage::Ship)),
        (true, _) => (Stage::Ship, None),
    };
    let (rows, ys) = labelled_xy(cx, labels);
    let mut rec = ProgressRecord {
        round,
        labels: rows.len(),
        features: None,
        logme: None,
        aligned: None,
        method: None,
        test_accuracy: None,
    };
    match cfg.policy {
        PolicyKind::Random => {}
        PolicyKind::Svpp => {
            rec.features = Some("v0".into());
            // Logged for comparison with asvp; svpp never acts on it, so it is not its cost.
            rec.logme = Some(measure_logme(
                cx,
                round,
                v0.context("no v0 features")?,
                &rows,
                &ys,
                Stage::Evaluation,
            )?);
        }
        PolicyKind::Asvp => {
            let feats = match st.current.as_ref() {
                Some(c) => &c.1,
                None => v0.context("no v0 features")?,
            };
            let lm = measure_logme(cx, round, feats, &rows, &ys, Stage::Indicator)?;
            rec.logme = Some(lm);
            let prev = labels.iter().filter(|l| l.round < round).count();
            let reason = alignment_due(
                cfg,
                round,
                prev,
                rows.len(),
                lm,
                st.last_logme,
                st.best_logme,
            );
            if let Some(reason) = reason {
                let method = if rows.len() < cfg.asvp.ft_threshold {
                    Method::LpFt
                } else {
                    Method::FineTune
                };
                cx.say(&format!(
                    "round {round}: aligning ({reason}) with {}",
                    method.as_str()
                ));
                let ft = train_model(cx, round, method, &rows, &ys, v0, train_stage)?;
                if let Some(stage) = refresh_stage {
                    st.current = Some(refresh(cx, round, &ft, stage)?);
                }
                rec.aligned = Some(reason);
                rec.method = Some(method.as_str().into());
                st.standard_model = Some(ft);
            }
            st.best_logme = st.best_logme.max(lm);
            st.last_logme = Some(lm);
            rec.features = Some(
                st.current
                    .as_ref()
                    .map(|c| c.0.clone())
                    .unwrap_or_else(|| "v0".into()),
            );
        }
        PolicyKind::Standard => {
            let ft = train_model(cx, round, Method::FineTune, &rows, &ys, v0, train_stage)?;
            if let Some(stage) = refresh_stage {
                st.current = Some(refresh(cx, round, &ft, stage)?);
            }
            rec.features = st.current.as_ref().map(|c| c.0.clone());
            rec.method = Some(Method::FineTune.as_str().into());
            st.standard_model = Some(ft);
        }
    }

    Ok(rec)
}

/// Label `rows` for `round` and append them, fsynced, to the run's labelled set.
fn buy(
    cx: &mut Ctx,
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
            id: cx.ds.ids[row].clone(),
            label: cx.ds.label_map.name(y).to_string(),
        })
        .collect();
    cx.run.append_labels(&recs)?;
    cx.ledger
        .record(round, Stage::Labelling, 0.0, 0.0, 0, recs.len())?;
    labels.extend(recs);
    Ok(())
}

/// Rows and class ids of the labelled set, in the order bought.
pub(crate) fn labelled_xy(cx: &Ctx, labels: &[LabelRecord]) -> (Vec<usize>, Vec<u32>) {
    let rows = labels.iter().map(|l| l.row).collect();
    let ys = labels
        .iter()
        .map(|l| {
            cx.ds
                .label_map
                .id(&l.label)
                .expect("label from this dataset")
        })
        .collect();
    (rows, ys)
}

/// The cold-start set: a seeded random sample of the pool.
pub(crate) fn cold_start(cx: &Ctx) -> Vec<usize> {
    let mut rng = crate::util::rng(cx.round_seed(0, 17));
    let mut pool = cx.pool.clone();
    pool.shuffle(&mut rng);
    pool.truncate(cx.cfg.initial);
    pool
}

/// Open v0 of the dataset, embedding it first if it does not exist. The one-off embedding
/// (recorded per chunk in the version's `cost.jsonl`, whoever made it) is charged to this run in
/// round 0: as compute (`embed`) when the policy selects with v0 or the model it ships is trained
/// on v0 (random's probe or LP-FT), as evaluation when nothing the policy pays for uses it
/// (standard, which selects with and ships its own fine-tuned model).
pub(crate) fn ensure_v0(cx: &mut Ctx, charge: bool) -> Result<FeatureVersion> {
    let store = Store::new(cx.home, &cx.ds.name);
    if !store.manifest(0).map(|m| m.complete).unwrap_or(false) {
        cx.say("embedding the dataset once with the pretrained backbone (v0)");
        let bb = Backbone::load(&cx.model_dir, &Device::Cpu, false)?;
        let job = EmbedJob {
            version: 0,
            options: cx.embed.clone(),
            chunk_rows: crate::features::store::chunk_rows(),
            checkpoint: None,
            progress: cx.opts.progress,
        };
        embed_dataset(&bb, cx.ds, &store, &job)?;
    }
    if charge {
        let stage = cx.cfg.policy.v0_stage(cx.cfg.eval_model);
        let path = store.version_dir(0).join(COST_FILE);
        let recs = if path.exists() {
            Ledger::read(&path)?
        } else {
            vec![]
        };
        let (wall, cpu, rows) = recs.iter().fold((0.0, 0.0, 0), |a, r| {
            (a.0 + r.wall_seconds, a.1 + r.cpu_seconds, a.2 + r.rows)
        });
        let device = recs
            .first()
            .map(|r| r.device.clone())
            .unwrap_or_else(|| cx.ledger.device().to_string());
        cx.ledger.append(&CostRecord {
            run: cx.cfg.name.clone(),
            round: 0,
            stage,
            wall_seconds: wall,
            cpu_seconds: cpu,
            device,
            rows,
            labels_bought: 0,
            embedded_rows: Some(rows),
            trained_rows: None,
            note: Some(if recs.is_empty() {
                "v0 has no cost record (embedded by an older proxal): charged 0".into()
            } else {
                format!(
                    "one-off embedding of v0 ({} chunk records in {})",
                    recs.len(),
                    path.display()
                )
            }),
        })?;
    }
    store.open_for(0, cx.ds, Verify::Sizes)
}

/// LogME of the labelled rows on `feats`, metered as `stage`: `indicator` where the policy acts
/// on it (asvp), `evaluation` where it is only logged for analysis (svpp) and so is no part of
/// the policy's cost.
pub(crate) fn measure_logme(
    cx: &mut Ctx,
    round: usize,
    feats: &FeatureVersion,
    rows: &[usize],
    ys: &[u32],
    stage: Stage,
) -> Result<f64> {
    let n = cx.ds.n_classes();
    cx.ledger.meter(round, stage, rows.len(), || {
        let x = feats.gather(rows);
        super::logme(x.view(), ys, n)
    })
}

/// Is an alignment due this round? Returns the reason.
pub(crate) fn alignment_due(
    cfg: &RunConfig,
    round: usize,
    prev_labels: usize,
    labels: usize,
    logme: f64,
    last: Option<f64>,
    best: f64,
) -> Option<String> {
    let a = &cfg.asvp;
    if round == 0 {
        return None;
    }
    if a.align_every > 0 && round.is_multiple_of(a.align_every) {
        return Some(format!("every {} rounds", a.align_every));
    }
    if let Some(m) = a
        .align_at_labels
        .iter()
        .find(|&&m| prev_labels < m && labels >= m)
    {
        return Some(format!("reached {m} labels"));
    }
    if a.logme_drop > 0.0 && last.is_some() && best.is_finite() && best - logme >= a.logme_drop {
        return Some(format!("LogME fell {:.3} below its best", best - logme));
    }
    None
}

/// Train a model on the labelled rows with `method` (fine-tune or LP-FT), metered as `stage`.
pub(crate) fn train_model(
    cx: &mut Ctx,
    round: usize,
    method: Method,
    rows: &[usize],
    ys: &[u32],
    v0: Option<&FeatureVersion>,
    stage: Stage,
) -> Result<FineTuned> {
    let n = cx.ds.n_classes();
    let texts: Vec<&str> = rows.iter().map(|&r| cx.ds.texts[r].as_str()).collect();
    let opts = cx.ft_options(cx.round_seed(round, 101));
    let model_dir = cx.model_dir.clone();
    // LP-FT probes on the pretrained (v0) features: the backbone it fine-tunes is the pretrained one.
    let probe = match method {
        Method::LpFt => Some(v0.context("LP-FT needs the v0 features")?.gather(rows)),
        _ => None,
    };
    let meter = crate::cost::Meter::start(round, stage).rows(rows.len());
    let ft = fine_tune(
        &model_dir,
        &texts,
        ys,
        n,
        probe.as_ref().map(|p| p.view()),
        &opts,
    );
    let ft = match ft {
        Ok(ft) => {
            meter.trained_rows(ft.trained_rows).finish(&mut cx.ledger)?;
            ft
        }
        Err(e) => {
            meter.note("failed").finish(&mut cx.ledger)?;
            return Err(e);
        }
    };
    cx.say(&format!(
        "round {round}: {} on {} labels: {} steps, {:.2} steps/s, val acc {}",
        method.as_str(),
        rows.len(),
        ft.steps,
        ft.steps_per_second,
        ft.val_accuracy
            .map(|a| format!("{a:.3}"))
            .unwrap_or_else(|| "n/a".into())
    ));
    ft.save(&cx.run.checkpoint(round))?;
    Ok(ft)
}

/// Re-embed every row with a fine-tuned backbone into the run's next feature version.
pub(crate) fn refresh(
    cx: &mut Ctx,
    round: usize,
    ft: &FineTuned,
    stage: Stage,
) -> Result<(String, FeatureVersion)> {
    let store = Store::at(cx.run.features(), &cx.ds.name);
    let v = round as u32 + 1;
    // A version left half-written by a killed run is resumed by embed_version.
    let (ds, embed, progress) = (&cx.ds, cx.embed.clone(), cx.opts.progress);
    let ckpt = cx.run.checkpoint(round).display().to_string();
    let job = EmbedJob {
        version: v,
        options: embed,
        chunk_rows: crate::features::store::chunk_rows(),
        checkpoint: Some(ckpt),
        progress,
    };
    // Chunks a killed run made durable are reused, not redone: their seconds (kept per chunk in
    // the version's cost file) are part of this refresh's cost, or nobody would pay for them.
    let cost_file = store.version_dir(v).join(COST_FILE);
    let earlier = if cost_file.exists() {
        Ledger::read(&cost_file)?
    } else {
        vec![]
    };
    let mut meter = crate::cost::Meter::start(round, stage)
        .rows(ds.len())
        .embedded_rows(ds.len());
    if !earlier.is_empty() {
        let (w, c) = earlier.iter().fold((0.0, 0.0), |a, r| {
            (a.0 + r.wall_seconds, a.1 + r.cpu_seconds)
        });
        meter = meter.plus_earlier(w, c).note(format!(
            "resumed: includes {w:.2} s of {} chunks embedded before the resume",
            earlier.len()
        ));
    }
    let out = embed_dataset(&ft.backbone, ds, &store, &job);
    if out.is_err() {
        meter.note("failed").finish(&mut cx.ledger)?;
    } else {
        meter.finish(&mut cx.ledger)?;
    }
    out?;
    Ok((
        format!("run:v{v}"),
        store.open_for(v, cx.ds, Verify::Sizes)?,
    ))
}

/// Build the selection model for the batch chosen at the end of `round`.
pub(crate) fn selector_for(
    cx: &mut Ctx,
    round: usize,
    labels: &[LabelRecord],
    v0: Option<&FeatureVersion>,
    current: Option<&(String, FeatureVersion)>,
    standard: Option<&FineTuned>,
) -> Result<Selector> {
    let (rows, ys) = labelled_xy(cx, labels);
    let n = cx.ds.n_classes();
    Ok(match cx.cfg.policy.selects_with() {
        SelectWith::Nothing => Selector::Random,
        SelectWith::FineTunedHead => Selector::Head(
            standard
                .context("standard policy without a model")?
                .head
                .clone(),
        ),
        SelectWith::Proxy => {
            let feats = current.map(|c| &c.1).or(v0).context("no features")?;
            let x = feats.gather(&rows);
            let pc = ProxyConfig::from_name(&cx.cfg.proxy)?;
            let seed = cx.round_seed(round, 29);
            let proxy = cx.ledger.meter(round, Stage::ProxyFit, rows.len(), || {
                pc.fit(x.view(), &ys, n, seed)
            })?;
            Selector::Proxy(proxy)
        }
    })
}

impl Selector {
    /// The model behind the selection, if any (for predictions shown beside a batch).
    pub(crate) fn model(&self) -> Option<&dyn Proxy> {
        match self {
            Selector::Random => None,
            Selector::Proxy(p) => Some(p.as_ref()),
            Selector::Head(h) => Some(h),
        }
    }
}

/// Choose the next batch of `cfg.batch` unlabelled pool rows.
pub(crate) fn select_batch(
    cx: &mut Ctx,
    round: usize,
    labels: &[LabelRecord],
    sel: &Selector,
    v0: Option<&FeatureVersion>,
    current: Option<&(String, FeatureVersion)>,
) -> Result<Vec<strategy::Pick>> {
    let labelled: HashSet<usize> = labels.iter().map(|l| l.row).collect();
    let unlabelled: Vec<usize> = cx
        .pool
        .iter()
        .copied()
        .filter(|r| !labelled.contains(r))
        .collect();
    let k = cx.cfg.batch.min(unlabelled.len());
    let seed = cx.round_seed(round, 53);
    let rows = match sel {
        Selector::Random => {
            let mut rng = crate::util::rng(seed);
            let mut u = unlabelled;
            u.shuffle(&mut rng);
            u.truncate(k);
            u.into_iter()
                .map(|row| strategy::Pick { row, score: 0.0 })
                .collect()
        }
        Selector::Proxy(p) => {
            let feats = current.map(|c| &c.1).or(v0).context("no features")?;
            let (rows, _) = labelled_xy(cx, labels);
            strategy_select(cx, round, feats, p.as_ref(), &rows, &unlabelled, k, seed)?
        }
        Selector::Head(h) => {
            let feats = current
                .map(|c| &c.1)
                .context("standard policy without refreshed features")?;
            let (rows, _) = labelled_xy(cx, labels);
            strategy_select(cx, round, feats, h, &rows, &unlabelled, k, seed)?
        }
    };
    Ok(rows)
}

/// Train and score the model the policy ships at this evaluation point. Training it is metered as
/// `ship` (compute at this point: DESIGN.md "Metrics"), unless the policy's own work this round
/// already trained it; scoring the test split is metered as `evaluation`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate(
    cx: &mut Ctx,
    round: usize,
    rows: &[usize],
    ys: &[u32],
    v0: Option<&FeatureVersion>,
    current: Option<&(String, FeatureVersion)>,
    policy_model: Option<&FineTuned>,
    aligned_now: bool,
) -> Result<Scores> {
    let n = cx.ds.n_classes();
    let gold: Vec<u32> = cx
        .test
        .iter()
        .map(|&r| cx.ds.labels[r].expect("test rows are labelled"))
        .collect();
    let method = match cx.cfg.eval_model {
        EvalModel::LinearProbe => Method::LinearProbe,
        EvalModel::FineTune => Method::FineTune,
        EvalModel::LpFt => Method::LpFt,
        EvalModel::Auto => {
            if rows.len() < cx.cfg.asvp.ft_threshold {
                Method::LpFt
            } else {
                Method::FineTune
            }
        }
    };
    if method == Method::LinearProbe {
        // A linear head on the features the policy selects with (v0 for random and svpp).
        let feats = current
            .map(|c| &c.1)
            .or(v0)
            .context("no features to probe")?;
        let x = feats.gather(rows);
        let lr = cx.ledger.meter(round, Stage::Ship, rows.len(), || {
            LogReg::fit(&LogRegConfig::default(), x.view(), ys, n, None)
        })?;
        let test_x = feats.gather(&cx.test);
        let pred = cx
            .ledger
            .meter_ok(round, Stage::Evaluation, cx.test.len(), || {
                predicted(&lr.predict_proba(test_x.view()))
            })?;
        return Ok(Scores::of(&pred, &gold, n));
    }
    // A fine-tuned model: reuse the policy's own model when it was trained on exactly these
    // labels this round (standard every round, asvp when it aligned now).
    let reuse = cx.cfg.policy.ships_own_model(aligned_now);
    let owned;
    let model = match (reuse, policy_model) {
        (true, Some(m)) => m,
        _ => {
            owned = train_model(cx, round, method, rows, ys, v0, Stage::Ship)?;
            &owned
        }
    };
    let test_texts: Vec<&str> = cx.test.iter().map(|&r| cx.ds.texts[r].as_str()).collect();
    let embed = cx.embed.clone();
    let pred = cx.ledger.meter(
        round,
        Stage::Evaluation,
        test_texts.len(),
        || -> Result<Vec<u32>> {
            let x = model.backbone.embed(&test_texts, &embed)?;
            let x = ndarray::Array2::from_shape_vec((test_texts.len(), model.backbone.dim()), x)?;
            Ok(predicted(&model.head.logits(x.view())))
        },
    )?;
    Ok(Scores::of(&pred, &gold, n))
}

/// The predicted class of each row of scores.
fn predicted(m: &ndarray::Array2<f32>) -> Vec<u32> {
    crate::numerics::argmax_rows(m.view())
        .into_iter()
        .map(|(c, _)| c)
        .collect()
}

/// Run the configured strategy over the unlabelled pool (metered as `selection`).
#[allow(clippy::too_many_arguments)]
fn strategy_select(
    cx: &mut Ctx,
    round: usize,
    feats: &FeatureVersion,
    proxy: &dyn Proxy,
    labelled: &[usize],
    unlabelled: &[usize],
    k: usize,
    seed: u64,
) -> Result<Vec<strategy::Pick>> {
    let r = strategy::Round::new(feats, unlabelled, labelled, Some(proxy), seed)?;
    let strat = &mut cx.strategy;
    let picks = cx
        .ledger
        .meter(round, Stage::Selection, unlabelled.len(), || {
            strat.select(&r, k)
        })?;
    if picks.len() != k {
        bail!(
            "strategy '{}' picked {} rows, expected {k}",
            cx.cfg.strategy,
            picks.len()
        );
    }
    Ok(picks)
}
