//! `proxal status`: where a project stands, and what `next` would do.
use super::*;

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
    /// Without held-out rows: the proxy's accuracy by 5-fold cross-validation on the labelled
    /// rows (accuracy, standard error, rows), on the features selection uses now.
    pub estimated: Option<(f64, f64, usize)>,
    pub features: String,
    /// The last alignment check (asvp with a checked trigger or method): its round and a line.
    pub alignment: Option<(usize, String)>,
    /// The last round's stopping signals (docs/STOPPING.md): its round and a line.
    pub stopping: Option<(usize, String)>,
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
    let held_out = ds.labelled_rows_of(Split::Test).len();
    let estimated = if held_out == 0 {
        cross_validated(&p, &ds, &labels, &features)?
    } else {
        None
    };
    let alignment = works.iter().rev().find_map(|w| {
        w.check
            .as_ref()
            .map(|c| (w.round, crate::al::run::describe_check(c)))
    });
    let stopping = works.iter().rev().find_map(|w| {
        w.stop
            .as_ref()
            .map(|s| (w.round, crate::al::stopping::describe(&p.cfg.stopping, s)))
    });
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
    // test scoring and earlier ship training only measured quality (docs/METRICS.md).
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
                || !p
                    .v0_store()
                    .manifest(0)
                    .map(|m| m.complete)
                    .unwrap_or(false)
            {
                what.push("embed the pool once (v0)".to_string());
            }
            // With one class labelled, `next` picks at random and does no policy work.
            let classes = counts.values().filter(|&&c| c > 0).count();
            let one_class = classes < 2 && p.cfg.policy != PolicyKind::Random;
            let a = &p.cfg.asvp;
            let asvp = p.cfg.policy == PolicyKind::Asvp && !one_class;
            if asvp && a.trigger != Trigger::Schedule {
                let h = crate::al::run::CheckHistory::replay(works.iter().copied(), a);
                if let Some(why) = h.due(a, labels.len(), false) {
                    what.push(format!(
                        "check whether aligning pays ({why}): fine-tune and compare with the probe on held-out labels, refreshing the cache if it does"
                    ));
                }
            } else if asvp && a.align_every > 0 && r > 0 && r.is_multiple_of(a.align_every) {
                what.push(
                    "fine-tune on the labels and refresh the cache (scheduled alignment)".into(),
                );
            }
            if p.cfg.policy == PolicyKind::Standard && !one_class {
                what.push("fine-tune on the labels and re-embed the pool".into());
            }
            what.push(format!(
                "select batch {} of {} rows with {}",
                batches.len(),
                p.cfg.batch,
                if p.cfg.policy == PolicyKind::Random {
                    "random sampling".to_string()
                } else if one_class {
                    format!("random sampling ({classes} class labelled so far: a model needs two)")
                } else {
                    p.cfg.strategy.clone()
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
        estimated,
        features,
        alignment,
        stopping,
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
        if let Some((r, line)) = &self.alignment {
            writeln!(f, "alignment check (round {r}): {line}")?;
        }
        if let Some((r, line)) = &self.stopping {
            writeln!(f, "stopping (round {r}): {line}")?;
        }
        match (self.quality, self.held_out) {
            (_, 0) => match self.estimated {
                Some((a, se, n)) => writeln!(f, "quality: about {a:.3} ± {se:.3} by 5-fold cross-validation of the proxy on the {n} labelled rows (rows active learning chose, harder than most: likely an understatement; hold rows out with `init --test-fraction` for a held-out figure)")?,
                None => writeln!(f, "quality: no held-out labelled rows (hold some out with `init --test-fraction F`, or import test rows with --label-col and --split-col)")?,
            },
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

/// The proxy's 5-fold cross-validated accuracy on the labelled rows, on the feature version
/// selection uses now; None until there are features and at least 10 labels of 2 classes.
fn cross_validated(
    p: &Project,
    ds: &Dataset,
    labels: &[LabelRecord],
    features: &str,
) -> Result<Option<(f64, f64, usize)>> {
    let ys: Vec<u32> = labels
        .iter()
        .filter_map(|l| ds.label_map.id(&l.label))
        .collect();
    let classes: HashSet<u32> = ys.iter().copied().collect();
    if ys.len() < 10 || ys.len() != labels.len() || classes.len() < 2 {
        return Ok(None);
    }
    let (store, v) = match crate::al::run::refreshed_version(features)? {
        Some(v) => (
            crate::features::Store::at(p.run_dir().features(), DATASET),
            v,
        ),
        None => (p.v0_store(), 0),
    };
    if !store.manifest(v).map(|m| m.complete).unwrap_or(false) {
        return Ok(None);
    }
    let feats = store.open_for(v, ds, crate::features::Verify::Sizes)?;
    let rows: Vec<usize> = labels.iter().map(|l| l.row).collect();
    let x = feats.gather(&rows);
    let cfg = crate::proxy::ProxyConfig::from_name(&p.cfg.proxy)?;
    let n = ds.n_classes();
    let (acc, se) = crate::proxy::cross_validated_accuracy(&cfg, x.view(), &ys, n, 5, p.cfg.seed)?;
    Ok(Some((acc, se, ys.len())))
}
