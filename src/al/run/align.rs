//! The backbone work of a round: the one-off v0 embedding, LogME, when to align, fine-tuning
//! (metered with the rows its steps trained on) and refreshing the cache.
use super::*;

/// Open v0 of the dataset, embedding it first if it does not exist. The one-off embedding
/// (recorded per chunk in the version's `cost.jsonl`, whoever made it) is charged to this run in
/// round 0: as compute (`embed`) when the policy selects with v0 or the model it ships is trained
/// on v0 (random's probe or LP-FT), as evaluation when nothing the policy pays for uses it
/// (standard, which selects with and ships its own fine-tuned model).
pub(crate) fn ensure_v0(ctx: &mut RoundContext, charge: bool) -> Result<FeatureVersion> {
    let stage = charge.then(|| ctx.cfg.policy.v0_stage(ctx.cfg.eval_model));
    let (model_dir, embed) = (ctx.model_dir.clone(), ctx.embed.clone());
    ensure_pretrained(ctx, &model_dir, &embed, stage)
}

/// The pretrained features of the backbone in `model_dir` (its store's v0, embedded first if
/// missing), charged to the run as `stage` when given (the whole v0 embedding's cost, once). A v0
/// whose manifest names other weights (a model directory of the same name) is an error, never
/// reused.
pub(crate) fn ensure_pretrained(
    ctx: &mut RoundContext,
    model_dir: &Path,
    options: &EmbedOptions,
    stage: Option<Stage>,
) -> Result<FeatureVersion> {
    let store = Store::for_model(ctx.home, &ctx.ds.name, model_dir);
    match store.manifest(0) {
        Ok(m) if m.complete => {
            let weights = crate::backbone::ModelFiles::in_dir(model_dir)?.weights;
            let sha = crate::util::sha256_file(&weights)?;
            // (A v0 written without weight provenance, by hand or by a test, is trusted.)
            if !m.source.weights_sha256.is_empty() && m.source.weights_sha256 != sha {
                bail!(
                    "{}: v0 was embedded by other weights ({}, sha256 {}…) than {} (sha256 {}…); move that store away or give the model directory another name",
                    store.version_dir(0).display(),
                    m.source.backbone_dir,
                    &m.source.weights_sha256[..12.min(m.source.weights_sha256.len())],
                    weights.display(),
                    &sha[..12]
                );
            }
        }
        _ => {
            ctx.say(&format!(
                "embedding the dataset once with the pretrained backbone {} (v0)",
                model_dir.display()
            ));
            let bb = Backbone::load(model_dir, &crate::device::current()?, false)?;
            let job = EmbedJob {
                version: 0,
                options: options.clone(),
                chunk_rows: crate::features::store::chunk_rows(),
                checkpoint: None,
                progress: ctx.opts.progress,
                shard: None,
                // A v0 that `proxal embed --dtype` left half-written is finished in its dtype.
                dtype: store
                    .manifest_if_any(0)?
                    .map_or(crate::features::Dtype::F32, |m| m.dtype),
            };
            embed_dataset(&bb, ctx.ds, &store, &job)?;
        }
    }
    if let Some(stage) = stage {
        let path = store.version_dir(0).join(COST_FILE);
        let (recs, wall, cpu, rows) = version_cost(&path)?;
        let device = recs
            .first()
            .map(|r| r.device.clone())
            .unwrap_or_else(|| ctx.ledger.device().to_string());
        ctx.ledger.append(&CostRecord {
            run: ctx.cfg.name.clone(),
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
    store.open_for(0, ctx.ds, Verify::Sizes)
}

/// LogME of the labelled rows on `feats`, metered as `stage`: `indicator` where the policy acts
/// on it (asvp), `evaluation` where it is only logged for analysis (svpp) and so is no part of
/// the policy's cost.
pub(crate) fn measure_logme(
    ctx: &mut RoundContext,
    round: usize,
    feats: &FeatureVersion,
    rows: &[usize],
    ys: &[u32],
    stage: Stage,
) -> Result<f64> {
    let n = ctx.ds.n_classes();
    ctx.ledger.meter(round, stage, rows.len(), || {
        let x = feats.gather(rows);
        crate::al::logme(x.view(), ys, n)
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

/// Where a fine-tune starts: a backbone, and that backbone's features of the pool (LP-FT's
/// probe trains on them).
#[derive(Clone, Copy)]
pub(crate) struct Start<'a> {
    /// A fine-tuned checkpoint directory (None: the run's pretrained backbone).
    pub(crate) backbone: Option<&'a Path>,
    pub(crate) features: Option<&'a FeatureVersion>,
}

impl<'a> Start<'a> {
    /// The pretrained backbone, with its v0 features.
    pub(crate) fn pretrained(v0: Option<&'a FeatureVersion>) -> Self {
        Start {
            backbone: None,
            features: v0,
        }
    }
}

/// Train a model on the labelled rows with `method` (fine-tune or LP-FT) from `start`, metered
/// as `stage`, and save it as the round's checkpoint.
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_model(
    ctx: &mut RoundContext,
    round: usize,
    method: Method,
    rows: &[usize],
    ys: &[u32],
    start: Start,
    stage: Stage,
) -> Result<FineTuned> {
    let ft = train_unsaved(ctx, round, method, (rows, ys), start, stage)?;
    ft.save(&ctx.run.checkpoint(round))?;
    Ok(ft)
}

/// [`train_model`] without saving a checkpoint (a model that only ships: a successor's).
pub(crate) fn train_unsaved(
    ctx: &mut RoundContext,
    round: usize,
    method: Method,
    (rows, ys): (&[usize], &[u32]),
    start: Start,
    stage: Stage,
) -> Result<FineTuned> {
    let job = TrainJob {
        method,
        rows,
        ys,
        start,
        stage,
        validation: None,
    };
    fit_model(ctx, round, job)
}

/// One fine-tune of a round: what it trains on, from where, how, and how it is metered.
struct TrainJob<'a> {
    method: Method,
    rows: &'a [usize],
    ys: &'a [u32],
    start: Start<'a>,
    stage: Stage,
    /// Indices into `rows` to validate on (None: the fine-tune's own seeded split).
    validation: Option<Vec<usize>>,
}

/// [`train_model`] without the checkpoint.
fn fit_model(ctx: &mut RoundContext, round: usize, job: TrainJob) -> Result<FineTuned> {
    let TrainJob {
        method,
        rows,
        ys,
        start,
        stage,
        validation,
    } = job;
    let n = ctx.ds.n_classes();
    let texts: Vec<&str> = rows.iter().map(|&r| ctx.ds.texts[r].as_str()).collect();
    let mut opts = ctx.ft_options(ctx.round_seed(round, 101));
    opts.validation = validation;
    let model_dir = start
        .backbone
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ctx.model_dir.clone());
    // LP-FT probes on the features of the backbone it fine-tunes (v0 for the pretrained one).
    let probe = match method {
        Method::LpFt => Some(
            start
                .features
                .context("LP-FT needs the features of the backbone it starts from")?
                .gather(rows),
        ),
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
            meter
                .trained_rows(ft.trained_rows)
                .finish(&mut ctx.ledger)?;
            ft
        }
        Err(e) => {
            meter.note("failed").finish(&mut ctx.ledger)?;
            return Err(e);
        }
    };
    ctx.say(&format!(
        "round {round}: {} on {} labels: {} steps, {:.2} steps/s, val acc {}",
        method.as_str(),
        rows.len(),
        ft.steps,
        ft.steps_per_second,
        ft.val_accuracy
            .map(|a| format!("{a:.3}"))
            .unwrap_or_else(|| "n/a".into())
    ));
    Ok(ft)
}

/// Is labelled row `row` one of the validation rows of alignment checks? A fixed share of the
/// rows, chosen by a hash of the row and the run's seed: a row validates every check or none, so
/// no model a check compares has trained on it, in any round.
pub(crate) fn is_check_validation_row(row: usize, seed: u64, fraction: f64) -> bool {
    // splitmix64's finaliser: consecutive rows land far apart.
    let mut z = (row as u64) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64) / ((1u64 << 53) as f64) < fraction
}

/// Which labelled rows validate alignment checks, for `labels` in the order bought: the fixed
/// hash-chosen share ([`is_check_validation_row`]), or with `val_source = "random"` that share of
/// the initial (random) set plus the random validation picks that open every later batch
/// ([`validation_picks`]). Either way a row keeps its role in every round.
pub(crate) fn validation_mask(cfg: &RunConfig, labels: &[LabelRecord]) -> Vec<bool> {
    let mut batch: HashMap<usize, usize> = HashMap::new();
    for l in labels {
        *batch.entry(l.round).or_default() += 1;
    }
    let mut seen: HashMap<usize, usize> = HashMap::new();
    labels
        .iter()
        .map(|l| {
            let at = seen.entry(l.round).or_default();
            let position = *at;
            *at += 1;
            if l.round > 0 && cfg.asvp.val_source == ValSource::Random {
                position < cfg.validation_picks(batch[&l.round])
            } else {
                is_check_validation_row(l.row, cfg.seed, cfg.asvp.val_fraction)
            }
        })
        .collect()
}

/// Split the choice of a batch of `k` from `unlabelled`: the random validation picks of
/// `val_source = "random"` (seeded by the round; none otherwise), the rows left to the strategy,
/// and how many it picks.
pub(crate) fn validation_picks(
    ctx: &RoundContext,
    round: usize,
    unlabelled: &[usize],
    k: usize,
) -> (Vec<strategy::Pick>, Vec<usize>, usize) {
    let v = ctx.cfg.validation_picks(k).min(k);
    if v == 0 {
        return (vec![], unlabelled.to_vec(), k);
    }
    let mut drawn = unlabelled.to_vec();
    drawn.shuffle(&mut crate::util::rng(ctx.round_seed(round, 71)));
    drawn.truncate(v);
    let chosen: HashSet<usize> = drawn.iter().copied().collect();
    let rest = unlabelled
        .iter()
        .copied()
        .filter(|r| !chosen.contains(r))
        .collect();
    let picks = drawn
        .into_iter()
        .map(|row| strategy::Pick { row, score: 0.0 })
        .collect();
    (picks, rest, k - v)
}

/// The gain of a model over the probe on the same validation rows (paired): the mean per-row
/// difference in correctness and its standard error.
pub(crate) fn paired_gain(probe: &[bool], model: &[bool]) -> (f64, f64) {
    assert_eq!(probe.len(), model.len(), "paired rows");
    let n = probe.len();
    if n == 0 {
        return (0.0, f64::INFINITY);
    }
    let d: Vec<f64> = probe
        .iter()
        .zip(model)
        .map(|(&p, &m)| m as u8 as f64 - p as u8 as f64)
        .collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, f64::INFINITY);
    }
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, (var / n as f64).sqrt())
}

/// Does a validated gain pay for aligning? The check's fine-tune is already paid for, so only
/// the refresh is at stake: align when the estimated gain is at least `min_gain` (and above 0).
/// Raise `min_gain` where a refresh is dear (a large pool). In a run's final round the check
/// decides the model that ships, not the features of later selections, and is judged with
/// `min_gain` 0: any gain is worth the retraining.
pub(crate) fn gain_pays(gain: f64, min_gain: f64) -> bool {
    gain >= min_gain && gain > 0.0
}

/// Is the gain surely above `min_gain` (by one standard error)? Then the cache is far from the
/// task and `auto` checks again in the next round.
pub(crate) fn gain_sure(gain: f64, se: f64, min_gain: f64) -> bool {
    gain - se >= min_gain && gain > 0.0
}

/// What the finished rounds' alignment checks leave for the next ones (docs/ALIGNMENT.md).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CheckHistory {
    /// Labels at the last check, and whether its gain was surely above `min_gain`.
    pub(crate) last_check: Option<(usize, bool)>,
    /// Has the run aligned yet (after a check or on the schedule)?
    pub(crate) aligned_once: bool,
    /// Auto trigger: a check after an alignment was sure that aligning again does not pay (its
    /// gain plus one standard error below `min_gain`): no more checks.
    pub(crate) settled: bool,
    /// The method chosen by validation: the winner of the check that compared LP-FT and full
    /// fine-tuning (method = "validate"), or of the last check that paid.
    pub(crate) chosen: Option<Method>,
}

impl CheckHistory {
    /// Replay the progress records in round order.
    pub(crate) fn replay<'p>(
        progress: impl IntoIterator<Item = &'p ProgressRecord>,
        a: &AsvpConfig,
    ) -> CheckHistory {
        let mut h = CheckHistory::default();
        for p in progress {
            if let Some(c) = &p.check {
                h.record(a, p.labels, c);
            }
            h.aligned_once |= p.aligned.is_some();
        }
        h
    }

    /// Take in a check made with `labels` labelled rows.
    pub(crate) fn record(&mut self, a: &AsvpConfig, labels: usize, c: &AlignCheck) {
        let min_gain = c.min_gain.unwrap_or(a.min_gain);
        self.last_check = Some((labels, gain_sure(c.gain, c.gain_se, min_gain)));
        if a.method == MethodChoice::Validate && (c.candidates.len() > 1 || c.pays) {
            self.chosen = Method::from_name(&c.best).ok();
        }
        if c.pays {
            self.aligned_once = true;
        } else if a.trigger == Trigger::Auto && self.aligned_once && c.gain + c.gain_se < min_gain {
            // Only after an alignment: before one, a cache that fits the first labels may not
            // fit five times as many.
            self.settled = true;
        }
    }

    /// Is a check due with `labels` labelled rows? Returns the reason. The first check runs in
    /// round 0, before the first proxy selection; after that, whenever the labels have grown by
    /// `growth` since the last check, and under `auto` also in the next round after a check whose
    /// gain was surely above `min_gain` (a cache far from the task: keep aligning while that
    /// holds); never once `auto` has settled, except in a run's `final_round`: there a check
    /// decides the model that ships, always (settling stops the checks that feed selection).
    pub(crate) fn due(&self, a: &AsvpConfig, labels: usize, final_round: bool) -> Option<String> {
        if final_round && self.last_check.is_some_and(|(l, _)| labels > l) {
            return Some("the final round: a check decides the model that ships".into());
        }
        if self.settled {
            return None;
        }
        match self.last_check {
            None => Some("first alignment check".into()),
            Some((l, true)) if a.trigger == Trigger::Auto && labels > l => Some(format!(
                "the last check, at {l} labels, gained surely more than {:.2}: does aligning again pay?",
                a.min_gain
            )),
            Some((l, _)) if labels as f64 >= a.growth * l as f64 => Some(format!(
                "labels grew {:.1}× since the last check ({l} → {labels})",
                labels as f64 / l as f64
            )),
            Some(_) => None,
        }
    }

    /// The methods a check with `labels` labelled rows trains: the threshold's, or under
    /// `method = "validate"` both LP-FT and full fine-tuning at the first check and the one that
    /// won from then on (a check that compares two methods costs two fine-tunes, and in the
    /// suite's regime a fine-tune is most of a check's cost: docs/ALIGNMENT.md).
    pub(crate) fn candidates(&self, a: &AsvpConfig, labels: usize) -> Vec<Method> {
        match (a.method, self.chosen) {
            (MethodChoice::Threshold, _) => vec![a.threshold_method(labels)],
            (MethodChoice::Validate, Some(m)) => vec![m],
            (MethodChoice::Validate, None) => vec![Method::LpFt, Method::FineTune],
        }
    }
}

/// One line on a check: what was compared on how many rows, and the decision.
pub(crate) fn describe_check(c: &AlignCheck) -> String {
    format!(
        "probe {:.3} vs {}{} {:.3} on {} held-out labels ({:+.3} ± {:.3}): {}",
        c.probe_accuracy,
        c.best,
        c.from
            .as_ref()
            .map(|f| format!(" (from {f})"))
            .unwrap_or_default(),
        c.probe_accuracy + c.gain,
        c.val_rows,
        c.gain,
        c.gain_se,
        if c.pays { "align" } else { "keep the cache" }
    )
}

/// An alignment check (docs/ALIGNMENT.md): the linear probe on `feats` (the cache the policy
/// selects with) and a fine-tune with each of `methods` from `start`, all trained on the labelled
/// rows outside the validation rows (`validation`, one flag per row: [`validation_mask`]) and
/// judged on the rows inside them. Every part is metered as `stage`:
/// `indicator` (it is trained to decide), or `ship` in the final round (it decides the model that
/// ships). Returns the check and its best fine-tuned model (an
/// alignment that pays refreshes with it instead of training again), or None when the labelled
/// rows cannot be split (no validation row, or fewer than two training rows).
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_alignment(
    ctx: &mut RoundContext,
    round: usize,
    rows: &[usize],
    ys: &[u32],
    validation: &[bool],
    feats: &FeatureVersion,
    (start, from): (Start, Option<String>),
    methods: &[Method],
    stage: Stage,
) -> Result<Option<(AlignCheck, FineTuned)>> {
    let min_gain = ctx.cfg.asvp.min_gain;
    let (val, train): (Vec<usize>, Vec<usize>) = (0..rows.len()).partition(|&i| validation[i]);
    if val.is_empty() || train.len() < 2 || methods.is_empty() {
        return Ok(None);
    }
    let n = ctx.ds.n_classes();
    let pick =
        |idx: &[usize]| -> (Vec<usize>, Vec<u32>) { idx.iter().map(|&i| (rows[i], ys[i])).unzip() };
    let (train_rows, train_ys) = pick(&train);
    let (val_rows, val_ys) = pick(&val);
    let probe = ctx
        .ledger
        .meter(round, stage, train_rows.len(), || -> Result<Vec<bool>> {
            let x = feats.gather(&train_rows);
            let lr = LogReg::fit(&LogRegConfig::default(), x.view(), &train_ys, n, None)?;
            let xv = feats.gather(&val_rows);
            let pred = predicted(&lr.predict_proba(xv.view()));
            Ok(pred.iter().zip(&val_ys).map(|(p, y)| p == y).collect())
        })?;
    let probe_accuracy = crate::train::share_correct(&probe);
    let mut best: Option<(Method, f64, FineTuned)> = None;
    let mut candidates = Vec::new();
    for &m in methods {
        let job = TrainJob {
            method: m,
            rows,
            ys,
            start,
            stage,
            validation: Some(val.clone()),
        };
        let ft = fit_model(ctx, round, job)?;
        let acc = crate::train::share_correct(&ft.val_correct);
        candidates.push((m.as_str().to_string(), acc));
        if best.as_ref().is_none_or(|(_, b, _)| acc > *b) {
            best = Some((m, acc, ft));
        }
    }
    let (method, _, model) = best.expect("at least one candidate");
    let (gain, gain_se) = paired_gain(&probe, &model.val_correct);
    let check = AlignCheck {
        train_rows: train.len(),
        val_rows: val.len(),
        probe_accuracy,
        candidates,
        best: method.as_str().to_string(),
        gain,
        gain_se,
        pays: gain_pays(gain, if stage == Stage::Ship { 0.0 } else { min_gain }),
        from,
        min_gain: Some(min_gain),
    };
    ctx.say(&format!(
        "round {round}: alignment check: {}",
        describe_check(&check)
    ));
    Ok(Some((check, model)))
}

/// The share of the strategy's `picks` (the batch chosen on the cache an alignment just
/// refreshed, without its random validation picks) that the proxy on the cache before it
/// (`before`: "v0" or "run:vN") picks too, fitted and selecting with the same labels and seeds:
/// how much the alignment changed what the run buys. Metered as
/// `evaluation`: it is logged for analysis and no decision uses it (docs/ALIGNMENT.md).
pub(crate) fn pick_overlap(
    ctx: &mut RoundContext,
    round: usize,
    labels: &[LabelRecord],
    v0: Option<&FeatureVersion>,
    before: &str,
    picks: &[strategy::Pick],
) -> Result<f64> {
    let reopened;
    let feats = match refreshed_version(before)? {
        Some(v) => {
            let store = Store::at(ctx.run.features(), &ctx.ds.name);
            reopened = store.open_for(v, ctx.ds, Verify::Sizes)?;
            &reopened
        }
        None => v0.context("no v0 features")?,
    };
    let (rows, ys) = labelled_xy(ctx, labels);
    let unlabelled = unlabelled_rows(ctx, labels);
    let n = ctx.ds.n_classes();
    let pc = ProxyConfig::from_name(&ctx.cfg.proxy)?;
    // The seeds select_batch and selector_for use, so only the features differ; random
    // validation picks do not depend on them and are left out of the comparison.
    let seeds = selection_seeds(ctx, round);
    let (random, rest, k) = validation_picks(ctx, round, &unlabelled, picks.len());
    if k == 0 {
        return Ok(1.0);
    }
    // A fresh strategy: the run's own may keep state between rounds.
    let mut strat = strategy::from_name_with(&ctx.cfg.strategy, &ctx.cfg.subpool)?;
    let old = ctx.ledger.meter(round, Stage::Evaluation, rest.len(), || {
        let proxy = pc.fit(feats.gather(&rows).view(), &ys, n, seeds.fit)?;
        let r = strategy::Round::new(feats, &rest, &rows, Some(proxy.as_ref()), seeds.pick)?
            .with_labelled_classes(&rows, &ys, n)?;
        strat.select(&r, k)
    })?;
    let new: HashSet<usize> = picks[random.len()..].iter().map(|p| p.row).collect();
    Ok(old.iter().filter(|p| new.contains(&p.row)).count() as f64 / k as f64)
}

/// Re-embed every row with a fine-tuned backbone into the run's next feature version.
pub(crate) fn refresh(
    ctx: &mut RoundContext,
    round: usize,
    ft: &FineTuned,
    stage: Stage,
) -> Result<(String, FeatureVersion)> {
    let store = Store::at(ctx.run.features(), &ctx.ds.name);
    let v = round as u32 + 1;
    // A version left half-written by a killed run is resumed by embed_version.
    let (ds, embed, progress) = (&ctx.ds, ctx.embed.clone(), ctx.opts.progress);
    let ckpt = ctx.run.checkpoint(round).display().to_string();
    let job = EmbedJob {
        version: v,
        options: embed,
        chunk_rows: crate::features::store::chunk_rows(),
        checkpoint: Some(ckpt),
        progress,
        shard: None,
        dtype: ctx.dtype,
    };
    // Chunks a killed run made durable are reused, not redone: their seconds (kept per chunk in
    // the version's cost file) are part of this refresh's cost, or nobody would pay for them.
    let (earlier, w, c, _) = version_cost(&store.version_dir(v).join(COST_FILE))?;
    let mut meter = crate::cost::Meter::start(round, stage)
        .rows(ds.len())
        .embedded_rows(ds.len());
    if !earlier.is_empty() {
        meter = meter.plus_earlier(w, c).note(format!(
            "resumed: includes {w:.2} s of {} chunks embedded before the resume",
            earlier.len()
        ));
    }
    let out = embed_dataset(&ft.backbone, ds, &store, &job);
    if out.is_err() {
        meter.note("failed").finish(&mut ctx.ledger)?;
    } else {
        meter.finish(&mut ctx.ledger)?;
    }
    out?;
    Ok((
        format!("run:v{v}"),
        store.open_for(v, ctx.ds, Verify::Sizes)?,
    ))
}

/// A feature version's per-chunk cost records (none if the file does not exist yet) and their
/// sums: wall seconds, CPU seconds, rows.
fn version_cost(path: &std::path::Path) -> Result<(Vec<CostRecord>, f64, f64, usize)> {
    let recs = if path.exists() {
        Ledger::read(path)?
    } else {
        vec![]
    };
    let (wall, cpu, rows) = recs.iter().fold((0.0, 0.0, 0), |a, r| {
        (a.0 + r.wall_seconds, a.1 + r.cpu_seconds, a.2 + r.rows)
    });
    Ok((recs, wall, cpu, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rows_are_a_fixed_share_that_depends_on_the_seed() {
        let share = |seed| {
            (0..20_000)
                .filter(|&r| is_check_validation_row(r, seed, 0.25))
                .count() as f64
                / 20_000.0
        };
        assert!((share(0) - 0.25).abs() < 0.015, "{}", share(0));
        assert!((share(7) - 0.25).abs() < 0.015, "{}", share(7));
        // The same row answers the same way every time; another seed picks other rows.
        let a: Vec<bool> = (0..1000)
            .map(|r| is_check_validation_row(r, 0, 0.25))
            .collect();
        let b: Vec<bool> = (0..1000)
            .map(|r| is_check_validation_row(r, 0, 0.25))
            .collect();
        let c: Vec<bool> = (0..1000)
            .map(|r| is_check_validation_row(r, 1, 0.25))
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().zip(&c).filter(|(x, y)| x != y).count() > 200);
        // A larger share contains the smaller one (the same hash, a higher bar).
        assert!((0..5000)
            .all(|r| !is_check_validation_row(r, 3, 0.1) || is_check_validation_row(r, 3, 0.3)));
    }

    #[test]
    fn paired_gain_is_the_mean_difference_with_its_standard_error() {
        // 10 rows: the model fixes 4 of the probe's errors and breaks 1 of its right answers.
        let probe = [
            false, false, false, false, true, true, true, true, true, false,
        ];
        let model = [true, true, true, true, false, true, true, true, true, false];
        let (gain, se) = paired_gain(&probe, &model);
        assert!((gain - 0.3).abs() < 1e-12);
        // d = four +1, one −1, five 0: sample variance (4·0.49 + 1.69 + 5·0.09) / 9.
        let var: f64 = (4.0 * 0.49 + 1.69 + 5.0 * 0.09) / 9.0;
        assert!((se - (var / 10.0).sqrt()).abs() < 1e-12);
        assert!(gain_pays(gain, 0.02) && gain_sure(gain, se, 0.02));
        // Two rows, one fixed and none broken: gain 0.5 with s.e. 0.5, within noise.
        let (g, s) = paired_gain(&[false, true], &[true, true]);
        assert_eq!((g, s), (0.5, 0.5));
        assert!(gain_pays(g, 0.02) && !gain_sure(g, s, 0.02));
        // A model no better than the probe never pays, whatever the noise.
        let (g, s) = paired_gain(&[true, false, true], &[true, false, true]);
        assert_eq!((g, s), (0.0, 0.0));
        assert!(!gain_pays(g, 0.0) && !gain_sure(g, s, 0.0));
        // A gain below the minimum does not pay even when it is certain; with no minimum (the
        // final round's check), any gain above 0 pays.
        assert!(!gain_pays(0.01, 0.02) && !gain_sure(0.01, 0.0, 0.02));
        assert!(gain_pays(0.004, 0.0) && !gain_pays(-0.004, 0.0));
    }

    fn check(pays: bool, gain: f64, gain_se: f64, methods: &[&str]) -> AlignCheck {
        AlignCheck {
            train_rows: 150,
            val_rows: 50,
            probe_accuracy: 0.5,
            candidates: methods
                .iter()
                .map(|m| (m.to_string(), 0.5 + gain))
                .collect(),
            best: methods[0].to_string(),
            gain,
            gain_se,
            pays,
            from: None,
            min_gain: None,
        }
    }

    fn progress(labels: usize, check: Option<AlignCheck>, aligned: bool) -> ProgressRecord {
        let mut p = ProgressRecord::start(0, labels);
        p.aligned = aligned.then(|| "check".to_string());
        p.check = check;
        p
    }

    fn asvp(trigger: Trigger, method: MethodChoice) -> AsvpConfig {
        AsvpConfig {
            trigger,
            method,
            growth: 2.0,
            min_gain: 0.02,
            ..Default::default()
        }
    }

    #[test]
    fn auto_keeps_checking_while_aligning_pays_and_settles_when_it_surely_does_not() {
        let a = asvp(Trigger::Auto, MethodChoice::Validate);
        let both = ["fine-tune", "lp-ft"];
        let mut h = CheckHistory::default();
        // Round 0: the first check, comparing both methods.
        assert_eq!(
            h.due(&a, 200, false).as_deref(),
            Some("first alignment check")
        );
        assert_eq!(
            h.due(&a, 200, true).as_deref(),
            Some("first alignment check")
        );
        assert_eq!(h.candidates(&a, 200), [Method::LpFt, Method::FineTune]);
        h.record(&a, 200, &check(true, 0.10, 0.05, &both));
        // It paid, and surely (0.10 − 0.05 ≥ 0.02): check again next round, with the winner only
        // from now on.
        assert!(h.due(&a, 200, false).is_none());
        assert!(h
            .due(&a, 300, false)
            .unwrap()
            .contains("surely more than 0.02"));
        assert_eq!(h.candidates(&a, 300), [Method::FineTune]);
        assert_eq!(h.candidates(&a, 10_000), [Method::FineTune]);
        // A check that does not pay but might (gain + s.e. ≥ min_gain): wait for the labels to
        // double.
        h.record(&a, 300, &check(false, 0.0, 0.045, &["fine-tune"]));
        assert!(!h.settled);
        assert!(h.due(&a, 500, false).is_none());
        assert!(h.due(&a, 600, false).unwrap().contains("300 → 600"));
        // A check sure that aligning does not pay settles auto for good.
        h.record(&a, 600, &check(false, -0.04, 0.03, &both));
        assert!(h.settled);
        assert!(h.due(&a, 100_000, false).is_none());
        // Except in a run's final round: a check there decides what ships, settled or not (but
        // not twice on the same labels).
        assert!(h.due(&a, 1_000, true).unwrap().contains("final round"));
        assert!(h.due(&a, 600, true).is_none());
        assert_eq!(h.chosen, Some(Method::FineTune));
        // A gain that pays but might be noise (0.03 ± 0.04) sets the pace of the growth rule.
        let mut maybe = CheckHistory::default();
        maybe.record(&a, 200, &check(true, 0.03, 0.04, &both));
        assert!(maybe.aligned_once && !maybe.settled);
        assert!(maybe.due(&a, 300, false).is_none());
        assert!(maybe.due(&a, 300, true).unwrap().contains("final round"));
        assert!(maybe.due(&a, 400, false).unwrap().contains("200 → 400"));
        // A comparison that does not pay still chooses the method of later checks.
        let mut lost = CheckHistory::default();
        lost.record(&a, 200, &check(false, 0.0, 0.05, &["lp-ft", "fine-tune"]));
        assert_eq!(lost.candidates(&a, 400), [Method::LpFt]);
        assert!(!lost.aligned_once);
        // Before any alignment, a check sure that aligning does not pay only waits for growth:
        // a cache that fits 200 labels may not fit 1,000.
        let mut fits = CheckHistory::default();
        fits.record(&a, 200, &check(false, -0.02, 0.01, &both));
        assert!(!fits.settled);
        assert!(fits.due(&a, 400, false).unwrap().contains("200 → 400"));
        // Replaying the same checks from progress records gives the same state.
        let records = [
            progress(200, Some(check(true, 0.10, 0.05, &both)), true),
            progress(300, Some(check(false, 0.0, 0.045, &["fine-tune"])), false),
            progress(400, None, false),
            progress(600, Some(check(false, -0.04, 0.03, &both)), false),
        ];
        assert_eq!(CheckHistory::replay(&records, &a), h);
        // A check keeps the min_gain it was judged with: raised later (a project's config), the
        // replay still makes the decisions that were made. Without it, the setting decides.
        let kept = |min_gain| AlignCheck {
            min_gain,
            ..check(true, 0.10, 0.05, &both)
        };
        let raised = AsvpConfig {
            min_gain: 0.2,
            ..a.clone()
        };
        let then = CheckHistory::replay(&[progress(200, Some(kept(Some(0.02))), true)], &raised);
        assert_eq!(then.last_check, Some((200, true)));
        let now = CheckHistory::replay(&[progress(200, Some(kept(None)), true)], &raised);
        assert_eq!(now.last_check, Some((200, false)));
    }

    #[test]
    fn the_indicator_trigger_checks_at_each_doubling_and_never_settles() {
        let a = asvp(Trigger::Indicator, MethodChoice::Threshold);
        let mut h = CheckHistory::default();
        assert!(h.due(&a, 200, false).is_some());
        assert_eq!(h.candidates(&a, 200), [Method::LpFt]);
        h.record(&a, 200, &check(true, 0.2, 0.05, &["lp-ft"]));
        // A paying check does not bring the next one forward (that is auto's rule).
        assert!(h.due(&a, 300, false).is_none());
        assert!(h.due(&a, 400, false).is_some());
        h.record(&a, 400, &check(false, -0.2, 0.01, &["lp-ft"]));
        assert!(!h.settled);
        assert!(h.due(&a, 800, false).is_some());
        // Above the threshold the method is full fine-tuning.
        let a = AsvpConfig {
            ft_threshold: 800,
            ..a
        };
        assert_eq!(h.candidates(&a, 800), [Method::FineTune]);
        // A scheduled alignment (no check) counts as aligned, and is no check.
        let h = CheckHistory::replay(&[progress(600, None, true)], &a);
        assert!(h.aligned_once && h.last_check.is_none());
    }

    #[test]
    fn the_asvp_table_reads_triggers_and_methods_and_rejects_others() {
        let base = "name = \"x\"\ndataset = \"d\"\npolicy = \"asvp\"\ninitial = 1\nbatch = 1\nrounds = 1\n";
        let cfg: RunConfig = toml::from_str(&format!(
            "{base}[asvp]\ntrigger = \"auto\"\nmethod = \"validate\"\n"
        ))
        .unwrap();
        assert_eq!(cfg.asvp.trigger, Trigger::Auto);
        assert_eq!(cfg.asvp.method, MethodChoice::Validate);
        assert!(cfg.asvp.checks());
        let cfg: RunConfig = toml::from_str(base).unwrap();
        assert_eq!(cfg.asvp.trigger, Trigger::Schedule);
        assert!(!cfg.asvp.checks());
        let err = toml::from_str::<RunConfig>(&format!("{base}[asvp]\ntrigger = \"sometimes\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("schedule") && err.contains("auto"), "{err}");
        let mut cfg: RunConfig = toml::from_str(base).unwrap();
        cfg.asvp.growth = 1.0;
        assert!(cfg.validate().is_err());
    }
}
