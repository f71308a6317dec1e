//! The numbers of a report, recomputed from raw ledgers and round records (docs/METRICS.md).
//!
//! Pure functions over loaded runs: no files, no plotting.
use super::{RoundRecord, RunInput};
use crate::cost::{CostRecord, Prices, Stage};
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a run has spent up to a point: compute (wall, CPU and machine-independent work), the
/// evaluation kept apart from it, and the cost in money.
#[derive(Debug, Clone, Serialize)]
pub struct Spend {
    /// Compute wall seconds (path so far + this point's ship), by device.
    pub compute_seconds_by_device: BTreeMap<String, f64>,
    /// H_m(a): compute wall seconds, summed over devices.
    pub compute_seconds: f64,
    /// Process CPU seconds of the same records (user + system, all threads).
    pub cpu_seconds: f64,
    /// Of `compute_seconds`: training the model shipped at this point.
    pub ship_seconds: f64,
    /// Machine-independent work of the same records: rows put through the backbone to embed them.
    pub rows_embedded: f64,
    /// Machine-independent work: row-epochs fine-tuned, counted from the optimiser steps run.
    pub row_epochs: f64,
    /// False when a fine-tune in scope predates the step count (its row-epochs are missing).
    pub row_epochs_complete: bool,
    /// Wall seconds of evaluation up to this point (scoring, logged indicators, and the ship
    /// training of earlier points); shown apart, never in cost.
    pub eval_seconds: f64,
    /// Labels × price per label.
    pub label_cost: f64,
    /// Σ over devices of price per hour × compute hours.
    pub compute_cost: f64,
    /// C_m(a) = label_cost + compute_cost.
    pub total_cost: f64,
}

impl Spend {
    /// Linear interpolation between two points' spend (`t` = 0 gives `self`, 1 gives `to`).
    fn lerp(&self, to: &Spend, t: f64) -> Spend {
        let lerp = |a: f64, b: f64| a + t * (b - a);
        let mut dev = BTreeMap::new();
        for d in self
            .compute_seconds_by_device
            .keys()
            .chain(to.compute_seconds_by_device.keys())
        {
            let a = self
                .compute_seconds_by_device
                .get(d)
                .copied()
                .unwrap_or(0.0);
            let b = to.compute_seconds_by_device.get(d).copied().unwrap_or(0.0);
            dev.insert(d.clone(), lerp(a, b));
        }
        Spend {
            compute_seconds_by_device: dev,
            compute_seconds: lerp(self.compute_seconds, to.compute_seconds),
            cpu_seconds: lerp(self.cpu_seconds, to.cpu_seconds),
            ship_seconds: lerp(self.ship_seconds, to.ship_seconds),
            rows_embedded: lerp(self.rows_embedded, to.rows_embedded),
            row_epochs: lerp(self.row_epochs, to.row_epochs),
            row_epochs_complete: self.row_epochs_complete && to.row_epochs_complete,
            eval_seconds: lerp(self.eval_seconds, to.eval_seconds),
            label_cost: lerp(self.label_cost, to.label_cost),
            compute_cost: lerp(self.compute_cost, to.compute_cost),
            total_cost: lerp(self.total_cost, to.total_cost),
        }
    }
}

/// One evaluation point of a run with everything metered up to it.
///
/// Compute at a point (docs/METRICS.md) is every selection-path stage up to the point plus
/// training the model that ships at this point ([`Stage::Ship`] records of its own round, once):
/// the ship records of earlier points only drew the learning curve and count as evaluation here.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub round: usize,
    pub labels: f64,
    pub accuracy: f64,
    pub macro_f1: f64,
    #[serde(flatten)]
    pub spend: Spend,
}

/// Compute metered by a set of ledger records.
#[derive(Debug, Clone, Default)]
struct Work {
    by_device: BTreeMap<String, f64>,
    cpu: f64,
    embedded: f64,
    trained: f64,
    untracked: usize,
}

impl Work {
    fn add(&mut self, r: &CostRecord) {
        *self.by_device.entry(r.device.clone()).or_insert(0.0) += r.wall_seconds;
        self.cpu += r.cpu_seconds;
        self.embedded += r.embedded_rows.unwrap_or(0) as f64;
        self.trained += r.trained_rows.unwrap_or(0) as f64;
        self.untracked += r.training_untracked() as usize;
    }
    fn merge(&mut self, o: &Work) {
        for (d, s) in &o.by_device {
            *self.by_device.entry(d.clone()).or_insert(0.0) += s;
        }
        self.cpu += o.cpu;
        self.embedded += o.embedded;
        self.trained += o.trained;
        self.untracked += o.untracked;
    }
    fn wall(&self) -> f64 {
        self.by_device.values().sum()
    }
}

/// A run's learning curve with metered compute and cost at each evaluation point.
///
/// A ledger record of round r counts towards the evaluation point of round r when it was appended
/// before that round's last evaluation or ship record (or the round has none), and towards the
/// next evaluation point otherwise (work done after evaluating, e.g. selecting the next batch).
/// Records after the last evaluation point count only in whole-run totals. Ship records count at
/// their own point only (see [`Point`]).
pub fn curve(rounds: &[RoundRecord], ledger: &[CostRecord], prices: &Prices) -> Result<Vec<Point>> {
    let mut last_eval: BTreeMap<usize, usize> = BTreeMap::new();
    for (j, r) in ledger.iter().enumerate() {
        if !r.stage.is_path() {
            last_eval.insert(r.round, j);
        }
    }
    let n = rounds.len();
    let mut step_path: Vec<Work> = vec![Work::default(); n];
    let mut ship: Vec<Work> = vec![Work::default(); n];
    let mut step_eval = vec![0.0; n];
    for (j, r) in ledger.iter().enumerate() {
        let after = last_eval.get(&r.round).is_some_and(|&e| j > e);
        let p = rounds
            .iter()
            .position(|pt| r.round < pt.round || (r.round == pt.round && !after));
        let Some(p) = p else { continue };
        match r.stage {
            Stage::Ship => ship[p].add(r),
            Stage::Evaluation => step_eval[p] += r.wall_seconds,
            _ => step_path[p].add(r),
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut path = Work::default();
    let mut eval = 0.0;
    for (i, rr) in rounds.iter().enumerate() {
        path.merge(&step_path[i]);
        eval += step_eval[i];
        let mut at = path.clone();
        at.merge(&ship[i]);
        out.push(point_at(rr, &at, ship[i].wall(), eval, prices)?);
        // From the next point on, this point's ship training only drew the curve.
        eval += ship[i].wall();
    }
    Ok(out)
}

fn point_at(
    rr: &RoundRecord,
    w: &Work,
    ship_seconds: f64,
    eval: f64,
    prices: &Prices,
) -> Result<Point> {
    let mut compute_cost = 0.0;
    for (d, s) in &w.by_device {
        compute_cost += prices.compute_cost(d, *s)?;
    }
    let labels = rr.labels as f64;
    let label_cost = prices.price_per_label * labels;
    Ok(Point {
        round: rr.round,
        labels,
        accuracy: rr.test_accuracy,
        macro_f1: rr.test_macro_f1,
        spend: Spend {
            compute_seconds_by_device: w.by_device.clone(),
            compute_seconds: w.wall(),
            cpu_seconds: w.cpu,
            ship_seconds,
            rows_embedded: w.embedded,
            row_epochs: w.trained,
            row_epochs_complete: w.untracked == 0,
            eval_seconds: eval,
            label_cost,
            compute_cost,
            total_cost: label_cost + compute_cost,
        },
    })
}

/// Where a run first reaches the target accuracy, interpolated linearly between the two
/// evaluation points around the crossing (labels, compute seconds and cost alike).
#[derive(Debug, Clone, Serialize)]
pub struct Reach {
    /// N_m(a): labels needed.
    pub labels: f64,
    /// H_m(a) and C_m(a) at the crossing, with the rest of the spend.
    #[serde(flatten)]
    pub spend: Spend,
    /// Round of the first evaluation point at or above the target.
    pub round: usize,
}

/// The first crossing of `target` on a curve (points in round order), or None if never reached.
pub fn reach(points: &[Point], target: f64) -> Option<Reach> {
    let i = points.iter().position(|p| p.accuracy >= target)?;
    let hi = &points[i];
    if i == 0 {
        return Some(reach_from(hi, hi, 1.0));
    }
    let lo = &points[i - 1];
    let t = if hi.accuracy > lo.accuracy {
        ((target - lo.accuracy) / (hi.accuracy - lo.accuracy)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(reach_from(lo, hi, t))
}

fn reach_from(lo: &Point, hi: &Point, t: f64) -> Reach {
    Reach {
        labels: lo.labels + t * (hi.labels - lo.labels),
        spend: lo.spend.lerp(&hi.spend, t),
        round: hi.round,
    }
}

/// Mean, sample standard deviation (None for a single value) and count.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: Option<f64>,
    pub n: usize,
}

impl Stat {
    pub fn of(xs: &[f64]) -> Option<Stat> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let std = (n > 1)
            .then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        Some(Stat { mean, std, n })
    }
}

/// A comparison that may not exist. Serialised as `{"value": …, "status": …}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Versus {
    pub value: Option<f64>,
    /// `"ok"`, `"not reached"` (this method never reached the target), `"<baseline> not
    /// reached"`, or `"no <baseline> run"`.
    pub status: String,
}

impl Versus {
    fn ok(v: f64) -> Self {
        Self {
            value: Some(v),
            status: "ok".into(),
        }
    }
    fn missing(status: impl Into<String>) -> Self {
        Self {
            value: None,
            status: status.into(),
        }
    }
}

/// Per-run summary.
#[derive(Debug, Clone, Serialize)]
pub struct RunMetrics {
    pub name: String,
    pub dir: String,
    pub group: String,
    pub policy: String,
    pub strategy: Option<String>,
    pub seed: Option<i64>,
    pub points: Vec<Point>,
    pub final_labels: f64,
    pub final_accuracy: f64,
    pub final_macro_f1: f64,
    /// Whole-run wall seconds by stage (every record in the ledger, evaluation included).
    pub seconds_by_stage: BTreeMap<Stage, f64>,
    /// Whole-run compute: every selection-path record plus the ship records of the last
    /// evaluation point (the model the run ships); wall and CPU seconds, and work.
    pub total_compute_seconds: f64,
    pub total_cpu_seconds: f64,
    pub total_rows_embedded: f64,
    pub total_row_epochs: f64,
    pub row_epochs_complete: bool,
    /// Of the whole-run compute: training the shipped model.
    pub total_ship_seconds: f64,
    /// Evaluation, and the ship training of earlier evaluation points.
    pub total_eval_seconds: f64,
    pub labels_bought: usize,
    pub devices: Vec<String>,
    /// None: never reached the target.
    pub reach: Option<Reach>,
    /// The run's alignment checks: (round, labels, check) (docs/ALIGNMENT.md).
    pub checks: Vec<(usize, usize, crate::al::AlignCheck)>,
}

/// Metrics of a group of runs that differ only in seed (one row of the report).
#[derive(Debug, Clone, Serialize)]
pub struct GroupMetrics {
    pub label: String,
    pub policy: String,
    pub strategy: Option<String>,
    pub runs: Vec<String>,
    /// How many runs reached the target.
    pub reached: usize,
    /// N_m(a), H_m(a), evaluation seconds and C_m(a) over the runs: present only when every run of
    /// the group reached the target.
    pub labels: Option<Stat>,
    pub compute_seconds: Option<Stat>,
    /// CPU seconds and work of H_m(a) (row-epochs only when every run's count is complete).
    pub cpu_seconds: Option<Stat>,
    pub rows_embedded: Option<Stat>,
    pub row_epochs: Option<Stat>,
    pub eval_seconds: Option<Stat>,
    pub total_cost: Option<Stat>,
    pub label_cost: Option<Stat>,
    pub compute_cost: Option<Stat>,
    /// Labelling efficiency N_random(a) / N_m(a), from group means.
    pub le: Versus,
    /// Sample saving ratio 1 − N_m(a) / N_random(a), from group means.
    pub ssr: Versus,
    /// (C_std(a) − C_m(a)) / price_label, from group means.
    pub saving_labels: Versus,
    /// 1 − C_m(a) / C_std(a), from group means.
    pub saving_ratio: Versus,
    pub final_labels: Stat,
    pub final_accuracy: Stat,
    pub final_macro_f1: Stat,
    pub total_compute_seconds: Stat,
    pub total_cpu_seconds: Stat,
    pub total_rows_embedded: Stat,
    /// None when a run's fine-tunes predate the step count.
    pub total_row_epochs: Option<Stat>,
    pub total_ship_seconds: Stat,
    pub total_eval_seconds: Stat,
    /// Mean whole-run seconds per stage.
    pub seconds_by_stage: BTreeMap<Stage, f64>,
    pub devices: Vec<String>,
    /// Mean curve by evaluation-point index over the runs (truncated to the shortest run).
    pub curve: Vec<GroupPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupPoint {
    pub labels: f64,
    pub accuracy: Stat,
    pub total_cost: Stat,
    /// Compute wall seconds up to this evaluation point (path + this point's ship).
    pub compute_seconds: Stat,
    pub cpu_seconds: Stat,
    pub rows_embedded: Stat,
    /// None when a run's fine-tunes predate the step count.
    pub row_epochs: Option<Stat>,
    /// Compute added since the previous evaluation point (the whole start for the first one):
    /// the difference of the cumulative figures, so a point's ship training replaces the last.
    pub round_compute_seconds: Stat,
}

/// How the target accuracy was chosen.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub accuracy: f64,
    /// e.g. "99% of the best final accuracy (asvp, 0.8812)" or "set with --target-accuracy".
    pub how: String,
}

/// The whole computation: runs, groups, target, baselines.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub dataset: String,
    pub target: Target,
    pub prices: Prices,
    pub runs: Vec<RunMetrics>,
    pub groups: Vec<GroupMetrics>,
    /// Label of the group used as the random baseline, if any.
    pub random_group: Option<String>,
    /// Label of the group used as the standard-AL baseline, if any.
    pub standard_group: Option<String>,
    /// Things the reader must know (missing baselines, ambiguous baselines, …).
    pub notes: Vec<String>,
}

/// Options of the computation.
#[derive(Debug, Clone)]
pub struct MetricOptions {
    /// Absolute target accuracy in (0, 1]; None: `target_fraction` × best final accuracy.
    pub target_accuracy: Option<f64>,
    pub target_fraction: f64,
}

impl Default for MetricOptions {
    fn default() -> Self {
        Self {
            target_accuracy: None,
            target_fraction: 0.99,
        }
    }
}

/// Compute every metric of the report from loaded runs.
pub fn compute(runs: &[RunInput], prices: &Prices, opts: &MetricOptions) -> Result<Metrics> {
    if runs.is_empty() {
        bail!("no runs to report on");
    }
    let dataset = runs[0].meta.dataset.clone();
    // Curves first (the target depends on final accuracies).
    let mut curves = Vec::with_capacity(runs.len());
    for r in runs {
        let pts = curve(&r.rounds, &r.ledger, prices)
            .map_err(|e| anyhow::anyhow!("run {}: {e:#}", r.meta.name))?;
        curves.push(pts);
    }
    // Groups: runs whose configs differ only in name and seed, in first-appearance order.
    let mut keys: Vec<String> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        match keys.iter().position(|k| *k == r.meta.group_key) {
            Some(g) => members[g].push(i),
            None => {
                keys.push(r.meta.group_key.clone());
                members.push(vec![i]);
            }
        }
    }
    let labels = group_labels(runs, &members);

    let final_acc = |i: usize| curves[i].last().map(|p| p.accuracy).unwrap_or(0.0);
    let target = match opts.target_accuracy {
        Some(a) => Target {
            accuracy: a,
            how: "set with --target-accuracy".into(),
        },
        None => {
            let (g, best) = members
                .iter()
                .enumerate()
                .map(|(g, m)| {
                    (
                        g,
                        m.iter().map(|&i| final_acc(i)).sum::<f64>() / m.len() as f64,
                    )
                })
                .fold(
                    (0, f64::NEG_INFINITY),
                    |acc, x| if x.1 > acc.1 { x } else { acc },
                );
            let per_seed = if members[g].len() > 1 {
                " (mean over seeds)"
            } else {
                ""
            };
            Target {
                accuracy: opts.target_fraction * best,
                how: format!(
                    "{}% of the best final accuracy among the compared runs: {} at {:.4}{per_seed}",
                    fmt_pct_num(opts.target_fraction * 100.0),
                    labels[g],
                    best
                ),
            }
        }
    };

    let mut run_metrics = Vec::with_capacity(runs.len());
    for (i, r) in runs.iter().enumerate() {
        let g = members.iter().position(|m| m.contains(&i)).unwrap_or(0);
        run_metrics.push(run_summary(r, &curves[i], &labels[g], target.accuracy));
    }

    let mut notes = Vec::new();
    let pick = |policy: &str, notes: &mut Vec<String>| -> Option<usize> {
        let cands: Vec<usize> = (0..members.len())
            .filter(|&g| runs[members[g][0]].meta.policy == policy)
            .collect();
        let best = cands
            .iter()
            .copied()
            .max_by_key(|&g| (members[g].len(), std::cmp::Reverse(g)))?;
        if cands.len() > 1 {
            notes.push(format!(
                "{} groups of {policy} runs: {} is the {policy} baseline",
                cands.len(),
                labels[best]
            ));
        }
        Some(best)
    };
    let random_g = pick("random", &mut notes);
    let standard_g = pick("standard", &mut notes);
    if random_g.is_none() {
        notes.push("no random run among the inputs: labelling efficiency (LE) and sample saving ratio (SSR) are not computed".into());
    }
    if standard_g.is_none() {
        notes.push("no standard-AL run among the inputs: the equivalent-cost saving over standard AL is not computed".into());
    }

    let mut groups = Vec::with_capacity(members.len());
    for (g, m) in members.iter().enumerate() {
        groups.push(group_summary(
            &labels[g],
            m.iter().map(|&i| &run_metrics[i]).collect(),
        ));
    }
    // Comparisons from group means.
    let mean_labels = |g: usize| groups[g].labels.map(|s| s.mean);
    let mean_cost = |g: usize| groups[g].total_cost.map(|s| s.mean);
    let mut cmp = Vec::with_capacity(groups.len());
    for g in 0..groups.len() {
        let (le, ssr) = match (random_g, mean_labels(g)) {
            (None, _) => (
                Versus::missing("no random run"),
                Versus::missing("no random run"),
            ),
            (Some(_), None) => (
                Versus::missing("not reached"),
                Versus::missing("not reached"),
            ),
            (Some(rg), Some(n)) => match mean_labels(rg) {
                None => (
                    Versus::missing("random not reached"),
                    Versus::missing("random not reached"),
                ),
                Some(nr) => (Versus::ok(nr / n), Versus::ok(1.0 - n / nr)),
            },
        };
        let (sl, sr) = match (standard_g, mean_cost(g)) {
            (None, _) => (
                Versus::missing("no standard run"),
                Versus::missing("no standard run"),
            ),
            (Some(_), None) => (
                Versus::missing("not reached"),
                Versus::missing("not reached"),
            ),
            (Some(sg), Some(c)) => match mean_cost(sg) {
                None => (
                    Versus::missing("standard not reached"),
                    Versus::missing("standard not reached"),
                ),
                Some(cs) => (
                    Versus::ok((cs - c) / prices.price_per_label),
                    Versus::ok(1.0 - c / cs),
                ),
            },
        };
        cmp.push((le, ssr, sl, sr));
    }
    for (g, (le, ssr, sl, sr)) in cmp.into_iter().enumerate() {
        groups[g].le = le;
        groups[g].ssr = ssr;
        groups[g].saving_labels = sl;
        groups[g].saving_ratio = sr;
    }
    Ok(Metrics {
        dataset,
        target,
        prices: prices.clone(),
        runs: run_metrics,
        random_group: random_g.map(|g| labels[g].clone()),
        standard_group: standard_g.map(|g| labels[g].clone()),
        groups,
        notes,
    })
}

/// Readable group labels: `policy` or `policy/strategy`, made unique with the first run's name.
fn group_labels(runs: &[RunInput], members: &[Vec<usize>]) -> Vec<String> {
    let base: Vec<String> = members
        .iter()
        .map(|m| {
            let meta = &runs[m[0]].meta;
            let p = match &meta.variant {
                Some(v) => format!("{}-{v}", meta.policy),
                None => meta.policy.clone(),
            };
            match &meta.strategy {
                Some(s) if p != "random" => format!("{p}/{s}"),
                _ => p,
            }
        })
        .collect();
    base.iter()
        .enumerate()
        .map(|(g, b)| {
            if base.iter().filter(|x| *x == b).count() > 1 {
                format!("{b} ({})", runs[members[g][0]].meta.name)
            } else {
                b.clone()
            }
        })
        .collect()
}

fn run_summary(r: &RunInput, points: &[Point], group: &str, target: f64) -> RunMetrics {
    let mut by_stage: BTreeMap<Stage, f64> = BTreeMap::new();
    let mut bought = 0;
    let mut devices: Vec<String> = Vec::new();
    // The model the run ships is trained at its last evaluation point (or, with no point, in the
    // last round that trained one).
    let ship_round = points.last().map(|p| p.round).or_else(|| {
        r.ledger
            .iter()
            .filter(|x| x.stage == Stage::Ship)
            .map(|x| x.round)
            .max()
    });
    let mut total = Work::default();
    let mut ship = 0.0;
    let mut eval = 0.0;
    for record in &r.ledger {
        *by_stage.entry(record.stage).or_insert(0.0) += record.wall_seconds;
        bought += record.labels_bought;
        let counts = record.stage.is_path()
            || (record.stage == Stage::Ship && Some(record.round) == ship_round);
        if counts {
            total.add(record);
            if record.stage == Stage::Ship {
                ship += record.wall_seconds;
            }
            if record.wall_seconds > 0.0 && !devices.contains(&record.device) {
                devices.push(record.device.clone());
            }
        } else {
            eval += record.wall_seconds;
        }
    }
    let last = points.last();
    RunMetrics {
        name: r.meta.name.clone(),
        dir: r.dir.display().to_string(),
        group: group.to_string(),
        policy: r.meta.policy.clone(),
        strategy: r.meta.strategy.clone(),
        seed: r.meta.seed,
        points: points.to_vec(),
        final_labels: last.map(|p| p.labels).unwrap_or(0.0),
        final_accuracy: last.map(|p| p.accuracy).unwrap_or(0.0),
        final_macro_f1: last.map(|p| p.macro_f1).unwrap_or(0.0),
        total_compute_seconds: total.wall(),
        total_cpu_seconds: total.cpu,
        total_rows_embedded: total.embedded,
        total_row_epochs: total.trained,
        row_epochs_complete: total.untracked == 0,
        total_ship_seconds: ship,
        total_eval_seconds: eval,
        seconds_by_stage: by_stage,
        labels_bought: bought,
        devices,
        reach: reach(points, target),
        checks: r.checks.clone(),
    }
}

fn group_summary(label: &str, runs: Vec<&RunMetrics>) -> GroupMetrics {
    let n = runs.len();
    let reaches: Vec<&Reach> = runs.iter().filter_map(|r| r.reach.as_ref()).collect();
    let all = reaches.len() == n;
    let stat = |f: &dyn Fn(&Reach) -> f64| {
        if all {
            Stat::of(&reaches.iter().map(|r| f(r)).collect::<Vec<_>>())
        } else {
            None
        }
    };
    let of = |f: &dyn Fn(&RunMetrics) -> f64| {
        Stat::of(&runs.iter().map(|r| f(r)).collect::<Vec<_>>()).expect("non-empty group")
    };
    let mut by_stage: BTreeMap<Stage, f64> = BTreeMap::new();
    for r in &runs {
        for (s, v) in &r.seconds_by_stage {
            *by_stage.entry(*s).or_insert(0.0) += v / n as f64;
        }
    }
    let mut devices: Vec<String> = Vec::new();
    for r in &runs {
        for d in &r.devices {
            if !devices.contains(d) {
                devices.push(d.clone());
            }
        }
    }
    let len = runs.iter().map(|r| r.points.len()).min().unwrap_or(0);
    let curve = (0..len)
        .map(|k| {
            let col = |f: &dyn Fn(&Point) -> f64| {
                runs.iter().map(|r| f(&r.points[k])).collect::<Vec<_>>()
            };
            GroupPoint {
                labels: Stat::of(&col(&|p| p.labels)).map(|s| s.mean).unwrap_or(0.0),
                accuracy: Stat::of(&col(&|p| p.accuracy)).expect("non-empty"),
                total_cost: Stat::of(&col(&|p| p.spend.total_cost)).expect("non-empty"),
                compute_seconds: Stat::of(&col(&|p| p.spend.compute_seconds)).expect("non-empty"),
                cpu_seconds: Stat::of(&col(&|p| p.spend.cpu_seconds)).expect("non-empty"),
                rows_embedded: Stat::of(&col(&|p| p.spend.rows_embedded)).expect("non-empty"),
                row_epochs: runs
                    .iter()
                    .all(|r| r.points[k].spend.row_epochs_complete)
                    .then(|| Stat::of(&col(&|p| p.spend.row_epochs)).expect("non-empty")),
                round_compute_seconds: Stat::of(
                    &runs
                        .iter()
                        .map(|r| {
                            let prev = if k > 0 {
                                r.points[k - 1].spend.compute_seconds
                            } else {
                                0.0
                            };
                            r.points[k].spend.compute_seconds - prev
                        })
                        .collect::<Vec<_>>(),
                )
                .expect("non-empty"),
            }
        })
        .collect();
    let placeholder = Versus::missing("");
    GroupMetrics {
        label: label.to_string(),
        policy: runs[0].policy.clone(),
        strategy: runs[0].strategy.clone(),
        runs: runs.iter().map(|r| r.name.clone()).collect(),
        reached: reaches.len(),
        labels: stat(&|r| r.labels),
        compute_seconds: stat(&|r| r.spend.compute_seconds),
        cpu_seconds: stat(&|r| r.spend.cpu_seconds),
        rows_embedded: stat(&|r| r.spend.rows_embedded),
        row_epochs: if reaches.iter().all(|r| r.spend.row_epochs_complete) {
            stat(&|r| r.spend.row_epochs)
        } else {
            None
        },
        eval_seconds: stat(&|r| r.spend.eval_seconds),
        total_cost: stat(&|r| r.spend.total_cost),
        label_cost: stat(&|r| r.spend.label_cost),
        compute_cost: stat(&|r| r.spend.compute_cost),
        le: placeholder.clone(),
        ssr: placeholder.clone(),
        saving_labels: placeholder.clone(),
        saving_ratio: placeholder,
        final_labels: of(&|r| r.final_labels),
        final_accuracy: of(&|r| r.final_accuracy),
        final_macro_f1: of(&|r| r.final_macro_f1),
        total_compute_seconds: of(&|r| r.total_compute_seconds),
        total_cpu_seconds: of(&|r| r.total_cpu_seconds),
        total_rows_embedded: of(&|r| r.total_rows_embedded),
        total_row_epochs: runs
            .iter()
            .all(|r| r.row_epochs_complete)
            .then(|| of(&|r| r.total_row_epochs)),
        total_ship_seconds: of(&|r| r.total_ship_seconds),
        total_eval_seconds: of(&|r| r.total_eval_seconds),
        seconds_by_stage: by_stage,
        devices,
        curve,
    }
}

/// `99` → "99", `97.5` → "97.5".
pub(crate) fn fmt_pct_num(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
