//! One round of active learning once its labels are in (`round_step`): the policy's work, the
//! evaluation of the model it ships, and the next batch; shared by `proxal run` and `proxal next`.
use super::*;

use crate::al::stopping::{Criterion, StopSignals};

/// The model selection uses in a round.
pub(crate) enum SelectionModel {
    /// No model: random batches.
    Random,
    /// A proxy fitted on cached features of the labelled rows.
    Proxy(Box<dyn Proxy>),
    /// A fine-tuned model's head, applied to that model's own features.
    Head(Head),
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
    /// Stop here when a criterion of `stopping.stop_on` is met (`proxal run`; a project only
    /// says so). Only a round that would select can stop: one whose next batch is already
    /// stored (a resumed round, killed after buying it) decided not to, and the final round ends
    /// the run anyway.
    pub(crate) may_stop: bool,
}

/// What a round step did.
pub(crate) struct Step {
    /// The round's progress record (with its test accuracy when it was an evaluation point).
    pub(crate) progress: ProgressRecord,
    /// What the evaluation point measured (None when the round was not one).
    pub(crate) evaluated: Option<Evaluated>,
    /// What chose the next batch (its model, if any, predicts the picks' labels).
    pub(crate) selector: Option<SelectionModel>,
    /// The next batch, in pick order (empty unless `plan.select`).
    pub(crate) picks: Vec<strategy::Pick>,
    /// A stopping criterion of `stop_on` was met: this was the run's last round.
    pub(crate) stopped: bool,
}

/// One round of active learning once its labels are in: the policy's work (LogME, alignment, the
/// standard model), the evaluation of the model it ships, and the choice of the next batch. Both
/// drivers call it: `proxal run` (labels from the simulated oracle) and `proxal next` (labels from
/// people); how labels are bought is theirs.
pub(crate) fn round_step(
    ctx: &mut RoundContext,
    round: usize,
    labels: &[LabelRecord],
    v0: Option<&FeatureVersion>,
    policy_state: &mut PolicyState,
    plan: StepPlan,
) -> Result<Step> {
    let may_stop = plan.may_stop && plan.select;
    let mut signals = stop_signals(ctx, round, labels, v0, policy_state, may_stop)?;
    let sc = &ctx.cfg.stopping;
    // The label budget needs no proxy: it holds even in a round without signals.
    let budget = sc.stop_on.contains(&Criterion::LabelBudget) && sc.budget_met(labels.len());
    let stopped = may_stop
        && (budget
            || signals
                .as_ref()
                .is_some_and(|s| s.met.iter().any(|c| sc.stop_on.contains(c))));
    let plan = if stopped {
        ctx.say(&format!(
            "round {round}: a stopping criterion of stop_on is met: the last round"
        ));
        StepPlan {
            final_round: true,
            evaluate: true,
            select: false,
            may_stop: true,
        }
    } else {
        plan
    };
    if let Some(s) = signals.as_mut() {
        s.stopped = stopped;
        ctx.say(&format!(
            "round {round}: stopping: {}",
            crate::al::stopping::describe(&ctx.cfg.stopping, s)
        ));
        policy_state.stops.push((round, s.clone()));
    }
    let cache_before = policy_state.features_name();
    let mut progress = policy_work(ctx, round, labels, v0, policy_state, plan.final_round)?;
    progress.stop = signals;
    let evaluated = if plan.evaluate {
        let (rows, ys) = labelled_xy(ctx, labels);
        let s = evaluate(
            ctx,
            round,
            &rows,
            &ys,
            v0,
            policy_state.current.as_ref(),
            policy_state.standard_model.as_ref(),
            progress.aligned.is_some(),
            policy_state.checks.chosen,
        )?;
        progress.test_accuracy = Some(s.scores.accuracy);
        Some(s)
    } else {
        None
    };
    let (selector, picks) = if plan.select {
        let sel = selector_for(
            ctx,
            round,
            labels,
            v0,
            policy_state.current.as_ref(),
            policy_state.standard_model.as_ref(),
        )?;
        let picks = select_batch(ctx, round, labels, &sel, v0, policy_state.current.as_ref())?;
        if ctx.cfg.policy == PolicyKind::Asvp && progress.aligned.is_some() && !picks.is_empty() {
            let overlap = pick_overlap(ctx, round, labels, v0, &cache_before, &picks)?;
            ctx.say(&format!(
                "round {round}: the cache before this alignment would have picked {:.0}% of the batch",
                100.0 * overlap
            ));
            progress.pick_overlap = Some(overlap);
        }
        (Some(sel), picks)
    } else {
        (None, Vec::new())
    };
    Ok(Step {
        progress,
        evaluated,
        selector,
        picks,
        stopped,
    })
}

/// The stopping criteria's signals at the start of `round` (docs/STOPPING.md): the configured
/// proxy fitted on the labels before this round's batch and on all of them, both on the features
/// the policy selects with now, compared on the run's fixed stop set. Metered as `evaluation`, or
/// as `indicator` when the round may stop on a criterion (then it is part of the policy). None
/// without features to fit on or with fewer than two classes labelled.
pub(crate) fn stop_signals(
    ctx: &mut RoundContext,
    round: usize,
    labels: &[LabelRecord],
    v0: Option<&FeatureVersion>,
    policy_state: &PolicyState,
    may_stop: bool,
) -> Result<Option<StopSignals>> {
    use crate::al::stopping::{cohen_kappa, criteria_met, window_kappa};
    let Ok(feats) = policy_state.features(v0) else {
        return Ok(None);
    };
    let cfg = ctx.cfg;
    let sc = &cfg.stopping;
    let n = ctx.ds.n_classes();
    let (rows, ys) = labelled_xy(ctx, labels);
    let classes = |ys: &[u32]| ys.iter().collect::<HashSet<_>>().len();
    if classes(&ys) < 2 {
        return Ok(None);
    }
    let before: Vec<usize> = (0..labels.len())
        .filter(|&i| labels[i].round < round)
        .collect();
    let (rows0, ys0): (Vec<usize>, Vec<u32>) = before.iter().map(|&i| (rows[i], ys[i])).unzip();
    // A fixed, seeded sample of the pool (rows stay in it once labelled, as in Bloodgood &
    // Vijay-Shanker's stop set).
    let mut stop = ctx.pool.clone();
    stop.shuffle(&mut crate::util::rng(ctx.round_seed(0, 61)));
    stop.truncate(sc.stop_set);
    stop.sort_unstable();
    let labelled: HashSet<usize> = rows.iter().copied().collect();
    let stage = if may_stop && !sc.stop_on.is_empty() {
        Stage::Indicator
    } else {
        Stage::Evaluation
    };
    let pc = ProxyConfig::from_name(&cfg.proxy)?;
    let seed = ctx.round_seed(round, 67);
    let (now, uncertainty, earlier) = ctx.ledger.meter(round, stage, stop.len(), || {
        let xs = feats.gather(&stop);
        let predict = |r: &[usize], y: &[u32]| -> Result<ndarray::Array2<f32>> {
            let proxy = pc.fit(feats.gather(r).view(), y, n, seed)?;
            Ok(proxy.predict_proba(xs.view()))
        };
        let proba = predict(&rows, &ys)?;
        let now: Vec<u32> = predicted(&proba);
        let unl: Vec<f64> = (0..stop.len())
            .filter(|&i| !labelled.contains(&stop[i]))
            .map(|i| strategy::Measure::LeastConfidence.score(proba.row(i)) as f64)
            .collect();
        let uncertainty = (!unl.is_empty()).then(|| unl.iter().sum::<f64>() / unl.len() as f64);
        let earlier = if round > 0 && classes(&ys0) >= 2 {
            Some(predicted(&predict(&rows0, &ys0)?))
        } else {
            None
        };
        Ok::<_, anyhow::Error>((now, uncertainty, earlier))
    })?;
    let features = policy_state.features_name();
    let kappa = earlier.as_ref().map(|e| cohen_kappa(e, &now, n));
    let changed = earlier
        .as_ref()
        .map(|e| e.iter().zip(&now).filter(|(a, b)| a != b).count());
    let history: Vec<(usize, &StopSignals)> = policy_state
        .stops
        .iter()
        .filter(|(r, _)| *r < round)
        .map(|(r, s)| (*r, s))
        .collect();
    let mut s = StopSignals {
        window_kappa: window_kappa(sc, &history, round, &features, kappa),
        features,
        stop_rows: stop.len(),
        kappa,
        changed,
        uncertainty,
        met: vec![],
        stopped: false,
    };
    s.met = criteria_met(sc, &s, rows.len());
    Ok(Some(s))
}

/// What the policy carries from round to round.
pub(crate) struct PolicyState {
    /// The run-local refreshed feature version selection uses (None: v0).
    pub(crate) current: Option<(String, FeatureVersion)>,
    /// The last fine-tuned model (standard every round; asvp when it aligned).
    pub(crate) standard_model: Option<FineTuned>,
    pub(crate) last_logme: Option<f64>,
    pub(crate) best_logme: f64,
    /// What the alignment checks so far found.
    pub(crate) checks: CheckHistory,
    /// The stopping signals of the finished rounds: (round, signals).
    pub(crate) stops: Vec<(usize, StopSignals)>,
}

impl PolicyState {
    /// The features the policy selects with: its last refreshed version, else v0.
    pub(crate) fn features<'a>(
        &'a self,
        v0: Option<&'a FeatureVersion>,
    ) -> Result<&'a FeatureVersion> {
        self.current
            .as_ref()
            .map(|c| &c.1)
            .or(v0)
            .context("no v0 features")
    }

    /// The name of the features the policy selects with, as progress records keep it ("v0",
    /// "run:v3").
    pub(crate) fn features_name(&self) -> String {
        self.current
            .as_ref()
            .map(|c| c.0.clone())
            .unwrap_or_else(|| "v0".into())
    }

    /// The state after the finished rounds `progress` (the refreshed version is reopened; a
    /// fine-tuned model is not kept across invocations).
    pub(crate) fn restore(ctx: &RoundContext, progress: &[ProgressRecord]) -> Result<Self> {
        let mut current = None;
        if let Some(p) = progress.iter().rev().find_map(|p| p.features.clone()) {
            if let Some(v) = refreshed_version(&p)? {
                let store = Store::at(ctx.run.features(), &ctx.ds.name);
                current = Some((p.clone(), store.open_for(v, ctx.ds, Verify::Sizes)?));
            }
        }
        let checks = CheckHistory::replay(progress, &ctx.cfg.asvp);
        Ok(PolicyState {
            current,
            standard_model: None,
            checks,
            stops: progress
                .iter()
                .filter_map(|p| p.stop.clone().map(|s| (p.round, s)))
                .collect(),
            last_logme: progress.last().and_then(|p| p.logme),
            best_logme: progress
                .iter()
                .filter_map(|p| p.logme)
                .fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// The run-local version a progress record's `features` names ("run:v3" → 3; None for "v0").
pub(crate) fn refreshed_version(features: &str) -> Result<Option<u32>> {
    features
        .strip_prefix("run:v")
        .map(|v| {
            v.parse()
                .with_context(|| format!("bad feature version '{features}' in the records"))
        })
        .transpose()
}

/// Step 2 of a round: what the policy does with the labels so far (LogME, alignment, the
/// standard model). Returns the round's progress record (without its test accuracy).
pub(crate) fn policy_work(
    ctx: &mut RoundContext,
    round: usize,
    labels: &[LabelRecord],
    v0: Option<&FeatureVersion>,
    policy_state: &mut PolicyState,
    final_round: bool,
) -> Result<ProgressRecord> {
    let cfg = ctx.cfg;
    // A refresh feeds the next selection. In the final round there is none: a fine-tune then only
    // trains the model that ships, and the refreshed cache only serves a linear probe on it (both
    // metered as `ship`), or nothing (the refresh is skipped).
    let (train_stage, refresh_stage) = match (final_round, cfg.eval_model) {
        (false, _) => (Stage::FineTune, Some(Stage::Refresh)),
        (true, EvalModel::LinearProbe) => (Stage::Ship, Some(Stage::Ship)),
        (true, _) => (Stage::Ship, None),
    };
    let (rows, ys) = labelled_xy(ctx, labels);
    let mut progress = ProgressRecord::start(round, rows.len());
    match cfg.policy {
        PolicyKind::Random => {}
        PolicyKind::Svpp => {
            progress.features = Some("v0".into());
            // Logged for comparison with asvp; svpp never acts on it, so it is not its cost.
            progress.logme = Some(measure_logme(
                ctx,
                round,
                v0.context("no v0 features")?,
                &rows,
                &ys,
                Stage::Evaluation,
            )?);
        }
        PolicyKind::Asvp => {
            let checks = cfg.asvp.trigger != Trigger::Schedule;
            let feats = policy_state.features(v0)?;
            // LogME is the schedule's drop indicator; under a checked trigger it is only logged.
            let logme_stage = if checks {
                Stage::Evaluation
            } else {
                Stage::Indicator
            };
            let lm = measure_logme(ctx, round, feats, &rows, &ys, logme_stage)?;
            progress.logme = Some(lm);
            let prev = labels.iter().filter(|l| l.round < round).count();
            let reason = if !checks {
                alignment_due(
                    cfg,
                    round,
                    prev,
                    rows.len(),
                    lm,
                    policy_state.last_logme,
                    policy_state.best_logme,
                )
            } else {
                policy_state.checks.due(&cfg.asvp, rows.len(), final_round)
            };
            if let Some(reason) = reason {
                // In the final round a check decides the model that ships (booked as `ship`);
                // the schedule's final alignment keeps the method chosen earlier.
                if checks || (cfg.asvp.checks() && !final_round) {
                    let validation = validation_mask(cfg, labels);
                    checked_alignment(
                        ctx,
                        round,
                        (&rows, &ys, &validation),
                        v0,
                        policy_state,
                        (final_round, refresh_stage),
                        reason,
                        &mut progress,
                    )?;
                } else {
                    let method = policy_state
                        .checks
                        .chosen
                        .unwrap_or_else(|| cfg.asvp.threshold_method(rows.len()));
                    ctx.say(&format!(
                        "round {round}: aligning ({reason}) with {}",
                        method.as_str()
                    ));
                    let ft = train_model(
                        ctx,
                        round,
                        method,
                        &rows,
                        &ys,
                        Start::pretrained(v0),
                        train_stage,
                    )?;
                    if let Some(stage) = refresh_stage {
                        policy_state.current = Some(refresh(ctx, round, &ft, stage)?);
                    }
                    progress.aligned = Some(reason);
                    progress.method = Some(method.as_str().into());
                    policy_state.standard_model = Some(ft);
                    policy_state.checks.aligned_once = true;
                }
            }
            policy_state.best_logme = policy_state.best_logme.max(lm);
            policy_state.last_logme = Some(lm);
            progress.features = Some(policy_state.features_name());
        }
        PolicyKind::Standard => {
            let ft = train_model(
                ctx,
                round,
                Method::FineTune,
                &rows,
                &ys,
                Start::pretrained(v0),
                train_stage,
            )?;
            if let Some(stage) = refresh_stage {
                policy_state.current = Some(refresh(ctx, round, &ft, stage)?);
            }
            progress.features = policy_state.current.as_ref().map(|c| c.0.clone());
            progress.method = Some(Method::FineTune.as_str().into());
            policy_state.standard_model = Some(ft);
        }
    }

    Ok(progress)
}

/// An alignment decided by a check (docs/ALIGNMENT.md): run the check on the cache the policy
/// selects with; when a fine-tuned candidate beats the probe by enough, save it as the round's
/// checkpoint and refresh the cache with it (its training, booked as `indicator`, is not redone).
/// In the final round the check decides what ships (all of it booked as `ship`): no later check
/// needs the validation rows kept out, so a winning method is trained again on every label.
#[allow(clippy::too_many_arguments)]
fn checked_alignment(
    ctx: &mut RoundContext,
    round: usize,
    (rows, ys, validation): (&[usize], &[u32], &[bool]),
    v0: Option<&FeatureVersion>,
    policy_state: &mut PolicyState,
    (final_round, refresh_stage): (bool, Option<Stage>),
    reason: String,
    progress: &mut ProgressRecord,
) -> Result<()> {
    let cfg = ctx.cfg;
    let stage = if final_round {
        Stage::Ship
    } else {
        Stage::Indicator
    };
    let methods = policy_state.checks.candidates(&cfg.asvp, rows.len());
    let feats = policy_state.features(v0)?;
    // check_from = "cache": the candidates continue the model that made the cache (refreshed
    // version v was embedded by round v − 1's checkpoint), with LP-FT probing on the cache.
    let checkpoint = match (cfg.asvp.check_from, &policy_state.current) {
        (CheckFrom::Cache, Some((name, _))) => refreshed_version(name)?
            .filter(|&v| v > 0)
            .map(|v| (name.clone(), ctx.run.checkpoint(v as usize - 1))),
        _ => None,
    };
    let (start, from) = match &checkpoint {
        Some((name, dir)) => (
            Start {
                backbone: Some(dir.as_path()),
                features: Some(feats),
            },
            Some(name.clone()),
        ),
        None => (Start::pretrained(v0), None),
    };
    let Some((check, ft)) = check_alignment(
        ctx,
        round,
        rows,
        ys,
        validation,
        feats,
        (start, from),
        &methods,
        stage,
    )?
    else {
        ctx.say(&format!(
            "round {round}: too few labels to hold some out: no alignment check"
        ));
        return Ok(());
    };
    if check.pays {
        let mut aligned = format!(
            "{reason}: {} validated {:+.3} over the probe",
            check.best, check.gain
        );
        let ft = if final_round {
            let method = Method::from_name(&check.best)?;
            ctx.say(&format!(
                "round {round}: training {} again on all {} labels to ship",
                check.best,
                rows.len()
            ));
            aligned.push_str(&format!("; trained again on all {} labels", rows.len()));
            train_model(ctx, round, method, rows, ys, start, Stage::Ship)?
        } else {
            ft.save(&ctx.run.checkpoint(round))?;
            ft
        };
        if let Some(stage) = refresh_stage {
            policy_state.current = Some(refresh(ctx, round, &ft, stage)?);
        }
        progress.aligned = Some(aligned);
        progress.method = Some(check.best.clone());
        policy_state.standard_model = Some(ft);
    }
    policy_state.checks.record(&cfg.asvp, rows.len(), &check);
    progress.check = Some(check);
    Ok(())
}

/// Rows and class ids of the labelled set, in the order bought.
pub(crate) fn labelled_xy(ctx: &RoundContext, labels: &[LabelRecord]) -> (Vec<usize>, Vec<u32>) {
    let rows = labels.iter().map(|l| l.row).collect();
    let ys = labels
        .iter()
        .map(|l| {
            ctx.ds
                .label_map
                .id(&l.label)
                .expect("label from this dataset")
        })
        .collect();
    (rows, ys)
}

/// The cold-start set: a seeded random sample of the pool.
pub(crate) fn cold_start(ctx: &RoundContext) -> Vec<usize> {
    let mut rng = crate::util::rng(ctx.round_seed(0, 17));
    let mut pool = ctx.pool.clone();
    pool.shuffle(&mut rng);
    pool.truncate(ctx.cfg.initial);
    pool
}

/// Build the selection model for the batch chosen at the end of `round`.
pub(crate) fn selector_for(
    ctx: &mut RoundContext,
    round: usize,
    labels: &[LabelRecord],
    v0: Option<&FeatureVersion>,
    current: Option<&(String, FeatureVersion)>,
    standard: Option<&FineTuned>,
) -> Result<SelectionModel> {
    let (rows, ys) = labelled_xy(ctx, labels);
    let n = ctx.ds.n_classes();
    Ok(match ctx.cfg.policy.selects_with() {
        SelectWith::Nothing => SelectionModel::Random,
        SelectWith::FineTunedHead => SelectionModel::Head(
            standard
                .context("standard policy without a model")?
                .head
                .clone(),
        ),
        SelectWith::Proxy => {
            let feats = current.map(|c| &c.1).or(v0).context("no features")?;
            let x = feats.gather(&rows);
            let pc = ProxyConfig::from_name(&ctx.cfg.proxy)?;
            let seed = selection_seeds(ctx, round).fit;
            let proxy = ctx.ledger.meter(round, Stage::ProxyFit, rows.len(), || {
                pc.fit(x.view(), &ys, n, seed)
            })?;
            SelectionModel::Proxy(proxy)
        }
    })
}

impl SelectionModel {
    /// The model behind the selection, if any (for predictions shown beside a batch).
    pub(crate) fn model(&self) -> Option<&dyn Proxy> {
        match self {
            SelectionModel::Random => None,
            SelectionModel::Proxy(p) => Some(p.as_ref()),
            SelectionModel::Head(h) => Some(h),
        }
    }
}

/// The seeds of a round's selection: the proxy's fit and the batch's picks. One place, so that
/// [`pick_overlap`] replays a round's selection exactly on other features.
pub(crate) struct SelectionSeeds {
    pub(crate) fit: u64,
    pub(crate) pick: u64,
}

pub(crate) fn selection_seeds(ctx: &RoundContext, round: usize) -> SelectionSeeds {
    SelectionSeeds {
        fit: ctx.round_seed(round, 29),
        pick: ctx.round_seed(round, 53),
    }
}

/// The pool rows not labelled yet, in pool order.
pub(crate) fn unlabelled_rows(ctx: &RoundContext, labels: &[LabelRecord]) -> Vec<usize> {
    pool_except(ctx, labels.iter().map(|l| l.row))
}

/// The pool rows other than `rows`, in pool order.
fn pool_except(ctx: &RoundContext, rows: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let labelled: HashSet<usize> = rows.into_iter().collect();
    ctx.pool
        .iter()
        .copied()
        .filter(|r| !labelled.contains(r))
        .collect()
}

/// Choose the next batch of `cfg.batch` unlabelled pool rows.
pub(crate) fn select_batch(
    ctx: &mut RoundContext,
    round: usize,
    labels: &[LabelRecord],
    sel: &SelectionModel,
    v0: Option<&FeatureVersion>,
    current: Option<&(String, FeatureVersion)>,
) -> Result<Vec<strategy::Pick>> {
    let unlabelled = unlabelled_rows(ctx, labels);
    let k = ctx.cfg.batch.min(unlabelled.len());
    let seed = selection_seeds(ctx, round).pick;
    let rows = match sel {
        SelectionModel::Random => {
            let mut rng = crate::util::rng(seed);
            let mut u = unlabelled;
            u.shuffle(&mut rng);
            u.truncate(k);
            u.into_iter()
                .map(|row| strategy::Pick { row, score: 0.0 })
                .collect()
        }
        SelectionModel::Proxy(p) => {
            let feats = current.map(|c| &c.1).or(v0).context("no features")?;
            let (rows, ys) = labelled_xy(ctx, labels);
            // asvp with val_source = "random": the batch opens with its random validation picks.
            let (mut picks, rest, k) = validation_picks(ctx, round, &unlabelled, k);
            picks.extend(strategy_select(
                ctx,
                round,
                feats,
                p.as_ref(),
                (&rows, &ys),
                &rest,
                k,
                seed,
            )?);
            picks
        }
        SelectionModel::Head(h) => {
            let feats = current
                .map(|c| &c.1)
                .context("standard policy without refreshed features")?;
            let (rows, ys) = labelled_xy(ctx, labels);
            strategy_select(ctx, round, feats, h, (&rows, &ys), &unlabelled, k, seed)?
        }
    };
    Ok(rows)
}

/// What an evaluation point measured.
pub(crate) struct Evaluated {
    /// The shipped model's test scores (the successor's, when the run has one).
    pub(crate) scores: Scores,
    /// With a successor: the acquisition model's test accuracy (its probe on the same labels).
    pub(crate) acquisition_accuracy: Option<f64>,
    /// With pseudo-labels: how many rows, and the share whose pseudo-label is the gold one.
    pub(crate) pseudo_labels: Option<usize>,
    pub(crate) pseudo_label_accuracy: Option<f64>,
}

impl From<Scores> for Evaluated {
    fn from(scores: Scores) -> Self {
        Evaluated {
            scores,
            acquisition_accuracy: None,
            pseudo_labels: None,
            pseudo_label_accuracy: None,
        }
    }
}

/// Train and score the model the policy ships at this evaluation point. Training it is metered as
/// `ship` (compute at this point: docs/METRICS.md), unless the policy's own work this round
/// already trained it; scoring the test split is metered as `evaluation`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate(
    ctx: &mut RoundContext,
    round: usize,
    rows: &[usize],
    ys: &[u32],
    v0: Option<&FeatureVersion>,
    current: Option<&(String, FeatureVersion)>,
    policy_model: Option<&FineTuned>,
    aligned_now: bool,
    chosen: Option<Method>,
) -> Result<Evaluated> {
    let n = ctx.ds.n_classes();
    let gold: Vec<u32> = ctx
        .test
        .iter()
        .map(|&r| ctx.ds.labels[r].expect("test rows are labelled"))
        .collect();
    // The tail classes of an imbalanced pool (by its known labels: all of them in a simulated
    // run), whose recall the record keeps.
    let mut counts = vec![0usize; n];
    for y in ctx.pool.iter().filter_map(|&r| ctx.ds.labels[r]) {
        counts[y as usize] += 1;
    }
    let tail = crate::train::eval::tail_classes(&counts);
    let method = match ctx.cfg.eval_model {
        EvalModel::LinearProbe => Method::LinearProbe,
        EvalModel::FineTune => Method::FineTune,
        EvalModel::LpFt => Method::LpFt,
        EvalModel::Auto => chosen.unwrap_or_else(|| ctx.cfg.asvp.threshold_method(rows.len())),
    };
    if method == Method::LinearProbe {
        // A linear head on the features the policy selects with (v0 for random and svpp).
        let feats = current
            .map(|c| &c.1)
            .or(v0)
            .context("no features to probe")?;
        if ctx.cfg.successor.is_some() {
            return evaluate_successor(ctx, round, (rows, ys), feats, &gold, tail.as_deref());
        }
        let (_, pred) = probe_on_test(ctx, round, feats, (rows, ys), None, Stage::Ship)?;
        return Ok(Scores::of(&pred, &gold, n)
            .with_tail(&pred, &gold, tail.as_deref())
            .into());
    }
    // A fine-tuned model: reuse the policy's own model when it was trained on this round's
    // labels (standard every round; asvp when it aligned now, on all labels or, after an
    // alignment check, on all but the check's validation share: docs/ALIGNMENT.md).
    let reuse = ctx.cfg.policy.ships_own_model(aligned_now);
    let owned;
    let model = match (reuse, policy_model) {
        (true, Some(m)) => m,
        _ => {
            owned = train_model(
                ctx,
                round,
                method,
                rows,
                ys,
                Start::pretrained(v0),
                Stage::Ship,
            )?;
            &owned
        }
    };
    let embed = ctx.embed.clone();
    let pred = predict_test(ctx, round, model, &embed)?;
    Ok(Scores::of(&pred, &gold, n)
        .with_tail(&pred, &gold, tail.as_deref())
        .into())
}

/// A fine-tuned model's predictions on the test split (its backbone embeds the test texts with
/// `embed`, its head classifies them), metered as `evaluation`.
fn predict_test(
    ctx: &mut RoundContext,
    round: usize,
    model: &FineTuned,
    embed: &EmbedOptions,
) -> Result<Vec<u32>> {
    let test_texts: Vec<&str> = ctx.test.iter().map(|&r| ctx.ds.texts[r].as_str()).collect();
    ctx.ledger.meter(
        round,
        Stage::Evaluation,
        test_texts.len(),
        || -> Result<Vec<u32>> {
            let x = model.backbone.embed(&test_texts, embed)?;
            let x = ndarray::Array2::from_shape_vec((test_texts.len(), model.backbone.dim()), x)?;
            Ok(predicted(&model.head.logits(x.view())))
        },
    )
}

/// A linear probe on `rows` of `feats` (the shipped probe's fit), each row's loss weighted by
/// `weights` when given, metered as `stage`; and its predictions on the test split, metered as
/// `evaluation`.
fn probe_on_test(
    ctx: &mut RoundContext,
    round: usize,
    feats: &FeatureVersion,
    (rows, ys): (&[usize], &[u32]),
    weights: Option<&[f32]>,
    stage: Stage,
) -> Result<(LogReg, Vec<u32>)> {
    let n = ctx.ds.n_classes();
    let x = feats.gather(rows);
    let cfg = LogRegConfig::default();
    let model = ctx
        .ledger
        .meter(round, stage, rows.len(), || match weights {
            Some(w) => LogReg::fit_weighted(&cfg, x.view(), ys, w, n),
            None => LogReg::fit(&cfg, x.view(), ys, n, None),
        })?;
    let test_x = feats.gather(&ctx.test);
    let pred = ctx
        .ledger
        .meter_ok(round, Stage::Evaluation, ctx.test.len(), || {
            predicted(&model.predict_proba(test_x.view()))
        })?;
    Ok((model, pred))
}

/// The evaluation of a run with a successor (PLASM, `[successor]`): the acquisition model's probe
/// on the features the policy selects with, then the successor's probe on its own pretrained
/// features, trained on the labels and, with `pseudo_threshold`, on the unlabelled pool rows the
/// acquisition probe labels at that confidence (each weighing `pseudo_weight`, at most
/// `pseudo_per_class` per class, the most confident first). What ships is the successor, so its
/// training is `ship`; so is the acquisition probe and its pass over the pool when they make
/// pseudo-labels, and `evaluation` otherwise (it only measures the acquisition model).
fn evaluate_successor(
    ctx: &mut RoundContext,
    round: usize,
    labelled: (&[usize], &[u32]),
    feats: &FeatureVersion,
    gold: &[u32],
    tail: Option<&[u32]>,
) -> Result<Evaluated> {
    // (Out of the context while the context is metered; back whatever happens.)
    let succ = ctx
        .successor
        .take()
        .context("successor features not opened")?;
    let r = evaluate_with_successor(ctx, round, labelled, feats, &succ, gold, tail);
    ctx.successor = Some(succ);
    r
}

#[allow(clippy::too_many_arguments)]
fn evaluate_with_successor(
    ctx: &mut RoundContext,
    round: usize,
    (rows, ys): (&[usize], &[u32]),
    feats: &FeatureVersion,
    succ: &FeatureVersion,
    gold: &[u32],
    tail: Option<&[u32]>,
) -> Result<Evaluated> {
    let sc = ctx
        .cfg
        .successor
        .clone()
        .context("no successor configured")?;
    let n = ctx.ds.n_classes();
    let probe_stage = if sc.pseudo_threshold.is_some() {
        Stage::Ship
    } else {
        Stage::Evaluation
    };
    let (acq, acq_pred) = probe_on_test(ctx, round, feats, (rows, ys), None, probe_stage)?;
    let acquisition_accuracy = crate::train::eval::accuracy(&acq_pred, gold);
    let (mut train_rows, mut train_ys) = (rows.to_vec(), ys.to_vec());
    let mut weights = vec![1.0f32; rows.len()];
    let mut pseudo = None;
    if let Some(threshold) = sc.pseudo_threshold {
        let unlabelled = pool_except(ctx, rows.iter().copied());
        let picked = ctx
            .ledger
            .meter_ok(round, Stage::Ship, unlabelled.len(), || {
                pseudo_label(&acq, feats, &unlabelled, threshold, sc.pseudo_per_class, n)
            })?;
        let right = picked
            .iter()
            .filter(|&&(r, c)| ctx.ds.labels[r] == Some(c))
            .count();
        pseudo = Some((picked.len(), right as f64 / picked.len().max(1) as f64));
        for (r, c) in picked {
            train_rows.push(r);
            train_ys.push(c);
            weights.push(sc.pseudo_weight as f32);
        }
    }
    let pred = if sc.method == Method::LinearProbe {
        let weights = (train_rows.len() > rows.len()).then_some(weights.as_slice());
        let labelled = (train_rows.as_slice(), train_ys.as_slice());
        probe_on_test(ctx, round, succ, labelled, weights, Stage::Ship)?.1
    } else {
        // The successor's backbone fine-tuned on the bought labels (from its pretrained weights;
        // LP-FT probes on its pretrained features), shipped without a checkpoint of its own.
        // (Config validation keeps pseudo-labels to probes.)
        let start = Start {
            backbone: Some(sc.model_dir.as_path()),
            features: Some(succ),
        };
        let model = train_unsaved(ctx, round, sc.method, (rows, ys), start, Stage::Ship)?;
        predict_test(ctx, round, &model, &sc.embed_options(ctx.cfg))?
    };
    Ok(Evaluated {
        scores: Scores::of(&pred, gold, n).with_tail(&pred, gold, tail),
        acquisition_accuracy: Some(acquisition_accuracy),
        pseudo_labels: pseudo.map(|p| p.0),
        pseudo_label_accuracy: pseudo.map(|p| p.1),
    })
}

/// Pseudo-labels: the `rows` whose top probability under `model` is at least `threshold`, as
/// (row, predicted class), at most `per_class` per class (0: no cap), the most confident first
/// (ties by row); in row order. `rows` ascending; streamed (`proxy::map_proba`), so the pool's
/// features are never gathered at once.
pub(crate) fn pseudo_label(
    model: &dyn Proxy,
    feats: &FeatureVersion,
    rows: &[usize],
    threshold: f64,
    per_class: usize,
    n_classes: usize,
) -> Vec<(usize, u32)> {
    let confident = crate::proxy::map_proba(model, feats, rows, |rs, _, p| {
        rs.iter()
            .zip(crate::numerics::argmax_rows(p))
            .filter(|(_, (_, top))| *top as f64 >= threshold)
            .map(|(&row, (c, top))| (c, top, row))
            .collect::<Vec<_>>()
    });
    let mut by_class: Vec<Vec<(f32, usize)>> = vec![Vec::new(); n_classes];
    for (c, top, row) in confident.into_iter().flatten() {
        by_class[c as usize].push((top, row));
    }
    let mut out = Vec::new();
    for (c, mut v) in by_class.into_iter().enumerate() {
        v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if per_class > 0 {
            v.truncate(per_class);
        }
        out.extend(v.into_iter().map(|(_, r)| (r, c as u32)));
    }
    out.sort_unstable();
    out
}

/// The predicted class of each row of scores.
pub(crate) fn predicted(m: &ndarray::Array2<f32>) -> Vec<u32> {
    crate::numerics::argmax_rows(m.view())
        .into_iter()
        .map(|(c, _)| c)
        .collect()
}

/// Run the configured strategy over the unlabelled pool (metered as `selection`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn strategy_select(
    ctx: &mut RoundContext,
    round: usize,
    feats: &FeatureVersion,
    proxy: &dyn Proxy,
    (labelled, ys): (&[usize], &[u32]),
    unlabelled: &[usize],
    k: usize,
    seed: u64,
) -> Result<Vec<strategy::Pick>> {
    let r = strategy::Round::new(feats, unlabelled, labelled, Some(proxy), seed)?
        .with_labelled_classes(labelled, ys, ctx.ds.n_classes())?;
    let strat = &mut ctx.strategy;
    let picks = ctx
        .ledger
        .meter(round, Stage::Selection, unlabelled.len(), || {
            strat.select(&r, k)
        })?;
    if picks.len() != k {
        bail!(
            "strategy '{}' picked {} rows, expected {k}",
            ctx.cfg.strategy,
            picks.len()
        );
    }
    Ok(picks)
}
