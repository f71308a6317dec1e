//! `proxal next`: the round step on the labels so far, and the next batch exported.
use super::*;

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
    /// The stopping signals of that work, described by the project's `[stopping]` table.
    pub stopping: Option<String>,
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
    let mut ctx = RoundContext::new(
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
    ctx.ledger.truncate_after_round(round as i64 - 2)?;

    let (picks, selected_by, work, predictions) = if labels.is_empty() {
        let rows = cold_start(&ctx);
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
        // The work of round `round - 1`: its labels are all in. They arrive through the oracle
        // (people's stored answers), batch by batch in pick order, as `proxal run` buys them from
        // its simulated oracle: the same labels in the same order give the same next batch.
        let r = round - 1;
        let labels = answered_in_batch_order(&ds, &batches, &labels)?;
        let v0 = ensure_v0(&mut ctx, r == 0)?;
        fault_point("next-after-embed");
        let prev: Vec<ProgressRecord> = batches.iter().filter_map(|b| b.work.clone()).collect();
        let mut policy_state = PolicyState::restore(&ctx, &prev)?;
        let classes: HashSet<&str> = labels.iter().map(|l| l.label.as_str()).collect();
        let random_policy = cfg.policy.selects_with() == SelectWith::Nothing;
        if classes.len() < 2 || random_policy {
            let why = if random_policy {
                "random sample (policy random)".to_string()
            } else {
                format!(
                    "random sample ({} class labelled so far: a model needs two)",
                    classes.len()
                )
            };
            let progress = ProgressRecord::start(r, labels.len());
            let picks = select_batch(
                &mut ctx,
                r,
                &labels,
                &crate::al::run::SelectionModel::Random,
                Some(&v0),
                None,
            )?;
            (picks, why, Some(progress), None)
        } else {
            let plan = StepPlan {
                final_round: false,
                evaluate: !ctx.test.is_empty() && r.is_multiple_of(cfg.eval_every),
                select: true,
                may_stop: false,
            };
            let step = round_step(&mut ctx, r, &labels, Some(&v0), &mut policy_state, plan)?;
            let (progress, picks) = (step.progress, step.picks);
            let sel = step
                .selector
                .context("a selecting round step has a selector")?;
            let feats = policy_state.current.as_ref().map(|c| &c.1).unwrap_or(&v0);
            let preds = sel.model().map(|m| {
                let rows: Vec<usize> = picks.iter().map(|p| p.row).collect();
                let proba = m.predict_proba(feats.gather(&rows).view());
                crate::numerics::argmax_rows(proba.view())
            });
            let by = format!(
                "{} on {} features ({} labels, policy {})",
                cfg.strategy,
                progress.features.as_deref().unwrap_or("v0"),
                labels.len(),
                cfg.policy.as_str()
            );
            (picks, by, Some(progress), preds)
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
        stopping: work
            .as_ref()
            .and_then(|w| w.stop.as_ref())
            .map(|s| crate::al::stopping::describe(&p.cfg.stopping, s)),
        work,
    })
}

/// The labelled set as the round step sees it: each committed batch's answered rows, in pick
/// order, labelled through the [`Annotations`] oracle.
pub(super) fn answered_in_batch_order(
    ds: &Dataset,
    batches: &[Batch],
    stored: &[LabelRecord],
) -> Result<Vec<LabelRecord>> {
    let mut answers = Vec::with_capacity(stored.len());
    for l in stored {
        let y = ds
            .label_map
            .id(&l.label)
            .with_context(|| format!("stored label '{}' is not in the label set", l.label))?;
        answers.push((l.row, y));
    }
    let mut oracle = Annotations::new(answers);
    let mut out = Vec::with_capacity(stored.len());
    for b in batches {
        let rows: Vec<usize> = b
            .rows
            .iter()
            .map(|r| r.row)
            .filter(|&r| oracle.answered(r))
            .collect();
        let ys = oracle.label(&rows)?;
        out.extend(rows.iter().zip(ys).map(|(&row, y)| LabelRecord {
            round: b.round,
            row,
            id: ds.ids[row].clone(),
            label: ds.label_map.name(y).to_string(),
        }));
    }
    if out.len() != stored.len() {
        bail!(
            "{} stored labels belong to no batch: the project's labels and batches disagree",
            stored.len() - out.len()
        );
    }
    Ok(out)
}
