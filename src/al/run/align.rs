//! The backbone work of a round: the one-off v0 embedding, LogME, when to align, fine-tuning
//! (metered with the rows its steps trained on) and refreshing the cache.
use super::*;

/// Open v0 of the dataset, embedding it first if it does not exist. The one-off embedding
/// (recorded per chunk in the version's `cost.jsonl`, whoever made it) is charged to this run in
/// round 0: as compute (`embed`) when the policy selects with v0 or the model it ships is trained
/// on v0 (random's probe or LP-FT), as evaluation when nothing the policy pays for uses it
/// (standard, which selects with and ships its own fine-tuned model).
pub(crate) fn ensure_v0(ctx: &mut RoundContext, charge: bool) -> Result<FeatureVersion> {
    let store = Store::new(ctx.home, &ctx.ds.name);
    if !store.manifest(0).map(|m| m.complete).unwrap_or(false) {
        ctx.say("embedding the dataset once with the pretrained backbone (v0)");
        let bb = Backbone::load(&ctx.model_dir, &Device::Cpu, false)?;
        let job = EmbedJob {
            version: 0,
            options: ctx.embed.clone(),
            chunk_rows: crate::features::store::chunk_rows(),
            checkpoint: None,
            progress: ctx.opts.progress,
        };
        embed_dataset(&bb, ctx.ds, &store, &job)?;
    }
    if charge {
        let stage = ctx.cfg.policy.v0_stage(ctx.cfg.eval_model);
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

/// Train a model on the labelled rows with `method` (fine-tune or LP-FT), metered as `stage`.
pub(crate) fn train_model(
    ctx: &mut RoundContext,
    round: usize,
    method: Method,
    rows: &[usize],
    ys: &[u32],
    v0: Option<&FeatureVersion>,
    stage: Stage,
) -> Result<FineTuned> {
    let n = ctx.ds.n_classes();
    let texts: Vec<&str> = rows.iter().map(|&r| ctx.ds.texts[r].as_str()).collect();
    let opts = ctx.ft_options(ctx.round_seed(round, 101));
    let model_dir = ctx.model_dir.clone();
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
    ft.save(&ctx.run.checkpoint(round))?;
    Ok(ft)
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
