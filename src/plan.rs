//! `proxal plan`: what each policy will cost before the first label is bought (docs/PLAN.md).
//!
//! Rates (seconds per embedded row, per fine-tuned label, per proxy-fitted label, per scored
//! pool row, per probed row) are read from the cost ledgers of earlier runs on this machine and
//! data; a [`Schedule`] (pool, labels, batches, alignment schedule) is then projected per policy
//! by the same accounting the reports use (docs/METRICS.md): the selection path plus the model
//! that ships. `proxal plan --check` validates the projection against finished runs.
use crate::cost::{CostRecord, Stage};
use anyhow::{bail, Result};
use serde::Serialize;

/// Which seconds a rate counts: wall-clock (what a run waits and a cloud bills) or the process's
/// CPU seconds (all threads), which a busy shared machine inflates much less than wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Wall,
    Cpu,
}

impl Clock {
    fn of(self, r: &CostRecord) -> f64 {
        match self {
            Clock::Wall => r.wall_seconds,
            Clock::Cpu => r.cpu_seconds,
        }
    }
}

/// Seconds per unit of work, from ledgers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Per row of the one-off pretrained (v0) embedding.
    pub embed_per_row: f64,
    /// Per row of a refresh (a fine-tuned backbone re-embedding every row).
    pub refresh_per_row: f64,
    /// Per labelled row fine-tuned (the whole fine-tune, at the runs' epochs, over its labels).
    pub finetune_per_label: f64,
    /// Per labelled row the proxy is fitted on.
    pub proxy_per_label: f64,
    /// Per unlabelled pool row scored and selected from.
    pub select_per_row: f64,
    /// Per row of a shipped linear probe (fit on the labels; the proxy's rate when no ledger
    /// shipped one).
    pub probe_per_row: f64,
    /// Per labelled row of an indicator (LogME on the labelled cache).
    pub indicator_per_label: f64,
}

/// What kind of work a ledger record measures (None: none the plan prices, or a failed step).
fn work_of(r: &CostRecord) -> Option<Work> {
    let note = r.note.as_deref().unwrap_or("");
    if note == "failed" {
        return None;
    }
    if r.embedded_rows.is_some_and(|n| n > 0) {
        // v0 is embedded once per dataset and its record copied into every run that uses it
        // (stage embed, or evaluation where the policy does not pay for it).
        return Some(match r.stage {
            Stage::Embed | Stage::Evaluation => Work::Embed,
            _ => Work::Refresh,
        });
    }
    match r.stage {
        Stage::FineTune => Some(Work::FineTune),
        Stage::Ship if note.starts_with("fine-tune") || r.trained_rows.is_some_and(|n| n > 0) => {
            Some(Work::FineTune)
        }
        // Everything else a ship record measures is the shipped linear probe (older ledgers
        // also scored the test rows in it).
        Stage::Ship => Some(Work::Probe),
        Stage::ProxyFit => Some(Work::Proxy),
        Stage::Scoring | Stage::Selection => Some(Work::Select),
        // An alignment check's candidate fine-tunes are indicator records that trained.
        Stage::Indicator if r.trained_rows.is_some_and(|n| n > 0) => Some(Work::FineTune),
        Stage::Indicator => Some(Work::Indicator),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Work {
    Embed,
    Refresh,
    FineTune,
    Proxy,
    Select,
    Probe,
    Indicator,
}

impl Rates {
    /// Rates over the records of `ledgers`: per kind of work, each ledger's Σ seconds / Σ rows,
    /// and the median over the ledgers that did that work (a shared machine's load slows whole
    /// runs: the median is not dragged by one slow run, as a pooled sum would be). A kind of
    /// work no ledger measured is an error naming it, except the indicator (0 when absent).
    pub fn from_ledgers<'a>(ledgers: impl IntoIterator<Item = &'a [CostRecord]>) -> Result<Rates> {
        Self::from_ledgers_by(ledgers, Clock::Wall)
    }

    /// As [`Rates::from_ledgers`], in `clock`'s seconds.
    pub fn from_ledgers_by<'a>(
        ledgers: impl IntoIterator<Item = &'a [CostRecord]>,
        clock: Clock,
    ) -> Result<Rates> {
        let mut per_run: std::collections::BTreeMap<Work, Vec<f64>> = Default::default();
        for ledger in ledgers {
            let mut sums: std::collections::BTreeMap<Work, (f64, f64)> = Default::default();
            for r in ledger {
                let Some(w) = work_of(r) else { continue };
                let rows = match w {
                    Work::Embed | Work::Refresh => r.embedded_rows.unwrap_or(r.rows),
                    _ => r.rows,
                } as f64;
                let e = sums.entry(w).or_default();
                e.0 += clock.of(r);
                e.1 += rows;
            }
            for (w, (s, n)) in sums {
                if n > 0.0 {
                    per_run.entry(w).or_default().push(s / n);
                }
            }
        }
        let mut rate = |w: Work, what: &str| -> Result<f64> {
            match per_run.get_mut(&w) {
                Some(v) if !v.is_empty() => {
                    v.sort_by(f64::total_cmp);
                    let m = v.len() / 2;
                    Ok(if v.len() % 2 == 1 {
                        v[m]
                    } else {
                        (v[m - 1] + v[m]) / 2.0
                    })
                }
                _ if w == Work::Indicator => Ok(0.0),
                _ => bail!("no ledger record measures {what}: give runs that did it"),
            }
        };
        Ok(Rates {
            embed_per_row: rate(Work::Embed, "the pretrained (v0) embedding")?,
            refresh_per_row: rate(Work::Refresh, "a refresh (a standard or asvp run)")?,
            finetune_per_label: rate(Work::FineTune, "fine-tuning (a standard or asvp run)")?,
            proxy_per_label: rate(Work::Proxy, "a proxy fit (an svpp or asvp run)")?,
            select_per_row: rate(Work::Select, "selection")?,
            // A shipped probe is a LogReg fit on the labels, like a proxy fit: runs that shipped
            // fine-tuned models price it at the proxy's rate.
            probe_per_row: match rate(Work::Probe, "a shipped linear probe") {
                Ok(r) => r,
                Err(_) => rate(Work::Proxy, "a shipped linear probe or a proxy fit")?,
            },
            indicator_per_label: rate(Work::Indicator, "an indicator")?,
        })
    }
}

/// Rates measured on this machine on a sample of the user's own `texts` (with their `labels`,
/// or two alternating synthetic classes when there are none: speed does not depend on them):
/// one embedding pass (v0 and refreshes alike), fine-tuning epochs on a quarter of up to 64 of
/// them and on all 64 (the slope, scaled to `train.epochs` on the share a run trains on), proxy
/// fits on half and all of them, margin scoring and LogME on their features.
pub fn measure(
    model_dir: &std::path::Path,
    texts: &[&str],
    labels: Option<&[u32]>,
    n_classes: usize,
    train: &crate::train::TrainConfig,
    embed_max_len: usize,
) -> Result<Rates> {
    use crate::backbone::{Backbone, EmbedOptions};
    use crate::proxy::{LogReg, LogRegConfig, Proxy};
    use std::time::Instant;
    let n = texts.len();
    if n < 8 {
        bail!("measuring rates needs at least 8 texts, got {n}");
    }
    let synthetic: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
    let (ys, classes) = match labels {
        Some(l) => (l.to_vec(), n_classes.max(2)),
        None => (synthetic, 2),
    };
    let backbone = Backbone::load(model_dir, &crate::device::current()?, false)?;
    let opts = EmbedOptions {
        max_len: embed_max_len,
        ..Default::default()
    };
    let t = Instant::now();
    let x = backbone.embed(texts, &opts)?;
    let embed = t.elapsed().as_secs_f64() / n as f64;
    let x = ndarray::Array2::from_shape_vec((n, backbone.dim()), x)?;
    // Per-row costs are slopes between a small and a full sample, so fixed costs (loading the
    // backbone inside a fine-tune, the solver's start) do not count as per-row work.
    let slope = |t_small: f64, t_big: f64, small: usize, big: usize| {
        ((t_big - t_small) / (big - small) as f64).max(t_big / big as f64 * 0.1)
    };
    let (k1, k2) = ((n.min(64) / 4).max(4), n.min(64));
    let ft_opts = crate::train::FineTuneOptions {
        hyper: crate::train::TrainConfig {
            epochs: 1,
            val_fraction: 0.0,
            ..train.clone()
        },
        ..Default::default()
    };
    let ft_time = |k: usize| -> Result<f64> {
        let t = Instant::now();
        crate::train::fine_tune(model_dir, &texts[..k], &ys[..k], classes, None, &ft_opts)?;
        Ok(t.elapsed().as_secs_f64())
    };
    // Untimed first: the first fine-tune of a process also pays for reading the weights cold
    // and starting the thread pool, which would flatten the slope.
    ft_time(4)?;
    let (t1, t2) = (ft_time(k1)?, ft_time(k2)?);
    // One epoch without a validation share here; a run's fine-tune holds `val_fraction` out.
    let finetune =
        slope(t1, t2, k1, k2) * train.epochs as f64 * (1.0 - train.val_fraction.min(0.9));
    let half = n / 2;
    let fit = |m: usize| -> Result<(f64, LogReg)> {
        let t = Instant::now();
        let lr = LogReg::fit(
            &LogRegConfig::default(),
            x.slice(ndarray::s![..m, ..]),
            &ys[..m],
            classes,
            None,
        )?;
        Ok((t.elapsed().as_secs_f64(), lr))
    };
    let ((p1, _), (p2, lr)) = (fit(half)?, fit(n)?);
    let proxy = slope(p1, p2, half, n);
    let t = Instant::now();
    let p = lr.predict_proba(x.view());
    let _margins: Vec<f32> = p
        .rows()
        .into_iter()
        .map(|r| crate::strategy::Measure::Margin.score(r))
        .collect();
    let select = t.elapsed().as_secs_f64() / n as f64;
    let t = Instant::now();
    crate::al::logme(x.view(), &ys, classes)?;
    let indicator = t.elapsed().as_secs_f64() / n as f64;
    Ok(Rates {
        embed_per_row: embed,
        refresh_per_row: embed,
        finetune_per_label: finetune,
        proxy_per_label: proxy,
        select_per_row: select,
        probe_per_row: proxy,
        indicator_per_label: indicator,
    })
}

/// What a run will do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    /// Rows embedded by a full pass (v0, a refresh): the pool plus any held-out rows.
    pub embed_rows: usize,
    /// Pool rows selection scores (the unlabelled ones each round).
    pub pool: usize,
    /// Held-out rows, embedded with the pool (scoring them is evaluation, not compute).
    pub test: usize,
    pub initial: usize,
    pub batch: usize,
    pub rounds: usize,
    /// asvp: align every this many rounds (0: never).
    pub align_every: usize,
    /// Every policy ships a fine-tuned model (a run's `eval_model = "auto"`, LP-FT or FT) instead
    /// of a linear probe on its features: standard, and asvp in a round it aligns, ship their own
    /// fine-tune; the others fine-tune one on all labels at the last round.
    pub ship_fine_tuned: bool,
}

/// A policy's projected compute, in the reports' accounting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    pub policy: String,
    /// Selection path plus the shipped model at the last round, in seconds.
    pub compute_seconds: f64,
    pub rows_embedded: usize,
    pub labels_fine_tuned: usize,
    /// Seconds an annotator waits between handing in a batch and getting the next one, per
    /// round that selects.
    pub wait_seconds: Vec<f64>,
}

impl Projection {
    /// The mean of [`Projection::wait_seconds`] (0 without a selecting round).
    pub fn mean_wait(&self) -> f64 {
        self.wait_seconds.iter().sum::<f64>() / self.wait_seconds.len().max(1) as f64
    }
}

/// Project `policy` ("random", "svpp", "asvp", "standard") over `s` at `rates`.
pub fn project(policy: &str, s: &Schedule, rates: &Rates) -> Result<Projection> {
    let labels = |r: usize| s.initial + r * s.batch;
    let (mut compute, mut embedded, mut tuned) = (0.0, 0usize, 0usize);
    let mut wait = Vec::new();
    let finetune = |n: usize| n as f64 * rates.finetune_per_label;
    let select = |r: usize| s.pool.saturating_sub(labels(r)) as f64 * rates.select_per_row;
    // The shipped probe is fitted on the labels (scoring the test rows is evaluation).
    let probe = |r: usize| labels(r) as f64 * rates.probe_per_row;
    // The pretrained features: every policy but standard selects with them or probes on them.
    if policy != "standard" {
        compute += s.embed_rows as f64 * rates.embed_per_row;
        embedded += s.embed_rows;
    }
    for r in 0..=s.rounds {
        let last = r == s.rounds;
        let mut round = 0.0;
        let align = match policy {
            "standard" => true,
            "asvp" => s.align_every > 0 && r > 0 && r.is_multiple_of(s.align_every),
            "svpp" | "random" => false,
            other => bail!("unknown policy '{other}' (random, svpp, asvp, standard)"),
        };
        if policy == "asvp" {
            round += labels(r) as f64 * rates.indicator_per_label;
        }
        if align {
            round += finetune(labels(r)) + s.embed_rows as f64 * rates.refresh_per_row;
            embedded += s.embed_rows;
            tuned += labels(r);
        }
        if !last {
            if matches!(policy, "svpp" | "asvp") {
                round += labels(r) as f64 * rates.proxy_per_label;
            }
            if policy != "random" {
                round += select(r);
            }
            wait.push(round);
        } else if !s.ship_fine_tuned {
            // Every policy ships a linear probe on its features, trained on the last round's
            // labels (standard's and an aligning asvp's on the features just refreshed).
            round += probe(r);
        } else if !align {
            // A fine-tune on every label is the shipped model (an aligning policy ships its own).
            round += finetune(labels(r));
            tuned += labels(r);
        }
        compute += round;
    }
    Ok(Projection {
        policy: policy.to_string(),
        compute_seconds: compute,
        rows_embedded: embedded,
        labels_fine_tuned: tuned,
        wait_seconds: wait,
    })
}

/// A finished run against its projection (`proxal plan --check`).
#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    pub run: String,
    pub dataset: String,
    pub policy: String,
    pub projected_seconds: f64,
    pub measured_seconds: f64,
    /// The same in CPU seconds (rates from the ledgers' CPU seconds).
    pub projected_cpu_seconds: f64,
    pub measured_cpu_seconds: f64,
}

/// Project each run in `runs` that [`project`] models (random, svpp and asvp on the fixed
/// schedule, standard; margin sampling) with `rates`, or else rates from the *other* runs on its
/// dataset, and
/// compare with the compute its ledger measured (the reports' compute at its last point). The
/// schedule comes from the run's config and its ledger's row counts (pool, test and embedded
/// rows: what a user knows before starting), never from its timings.
pub fn check(
    runs: &[crate::report::RunInput],
    given: Option<&[crate::report::RunInput]>,
) -> Result<Vec<CheckRow>> {
    let prices = crate::cost::Prices::default();
    let mut out = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let m = &run.meta;
        let cfg = crate::al::RunConfig::load(&run.dir.join("config.toml"))?;
        if !modelled(&cfg) {
            continue;
        }
        let sources: Vec<&[CostRecord]> = match given {
            Some(g) => g.iter().map(|r| r.ledger.as_slice()).collect(),
            None => runs
                .iter()
                .enumerate()
                .filter(|(j, r)| *j != i && r.meta.dataset == m.dataset)
                .map(|(_, r)| r.ledger.as_slice())
                .collect(),
        };
        let schedule = schedule_of(&cfg, &run.ledger);
        let at = |clock| -> Result<f64> {
            let rates = Rates::from_ledgers_by(sources.iter().copied(), clock)?;
            Ok(project(&m.policy, &schedule, &rates)?.compute_seconds)
        };
        let last = crate::report::metrics::curve(&run.rounds, &run.ledger, &prices)?
            .last()
            .map(|p| (p.spend.compute_seconds, p.spend.cpu_seconds))
            .unwrap_or((0.0, 0.0));
        out.push(CheckRow {
            run: m.name.clone(),
            dataset: m.dataset.clone(),
            policy: m.policy.clone(),
            projected_seconds: at(Clock::Wall)?,
            measured_seconds: last.0,
            projected_cpu_seconds: at(Clock::Cpu)?,
            measured_cpu_seconds: last.1,
        });
    }
    Ok(out)
}

/// Does [`project`] model what this run did? Random; svpp, asvp and standard with margin
/// sampling; asvp on the fixed `align_every` schedule only (no checks, LogME drops or label
/// counts); a linear probe or the policy's fine-tuned model (`auto`) shipped; no stopping
/// criterion.
pub fn modelled(cfg: &crate::al::RunConfig) -> bool {
    use crate::al::{EvalModel, MethodChoice, PolicyKind, Trigger};
    let a = &cfg.asvp;
    let strategy_ok = cfg.policy == PolicyKind::Random || cfg.strategy == "margin";
    let asvp_ok = cfg.policy != PolicyKind::Asvp
        || (a.trigger == Trigger::Schedule
            && a.method == MethodChoice::Threshold
            && a.logme_drop == 0.0
            && a.align_at_labels.is_empty());
    strategy_ok
        && asvp_ok
        && matches!(cfg.eval_model, EvalModel::LinearProbe | EvalModel::Auto)
        && cfg.stopping.stop_on.is_empty()
}

/// A run's schedule: its config's rounds and the row counts its ledger records.
fn schedule_of(cfg: &crate::al::RunConfig, ledger: &[CostRecord]) -> Schedule {
    let embed_rows = ledger
        .iter()
        .filter_map(|r| r.embedded_rows)
        .max()
        .unwrap_or(0);
    // Round 0's selection scores the pool less the initial labels.
    let pool = ledger
        .iter()
        .find(|r| r.round == 0 && r.stage == Stage::Selection)
        .map_or(0, |r| r.rows + cfg.initial);
    let test = embed_rows.saturating_sub(pool);
    Schedule {
        embed_rows,
        pool,
        test,
        initial: cfg.initial,
        batch: cfg.batch,
        rounds: cfg.rounds,
        align_every: cfg.asvp.align_every,
        ship_fine_tuned: cfg.eval_model == crate::al::EvalModel::Auto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(stage: Stage, wall: f64, rows: usize, note: &str) -> CostRecord {
        CostRecord {
            run: "r".into(),
            round: 0,
            stage,
            wall_seconds: wall,
            cpu_seconds: wall,
            device: "cpu:2-core".into(),
            rows,
            labels_bought: 0,
            embedded_rows: None,
            trained_rows: None,
            note: (!note.is_empty()).then(|| note.to_string()),
        }
    }

    fn rates() -> Rates {
        Rates {
            embed_per_row: 0.01,
            refresh_per_row: 0.01,
            finetune_per_label: 0.1,
            proxy_per_label: 0.001,
            select_per_row: 0.0001,
            probe_per_row: 0.0002,
            indicator_per_label: 0.002,
        }
    }

    fn schedule() -> Schedule {
        Schedule {
            embed_rows: 4000,
            pool: 3000,
            test: 1000,
            initial: 200,
            batch: 200,
            rounds: 4,
            align_every: 2,
            ship_fine_tuned: false,
        }
    }

    #[test]
    fn rates_are_pooled_seconds_per_row_by_kind_of_work() {
        let mut embed = rec(Stage::Embed, 40.0, 4000, "");
        embed.embedded_rows = Some(4000);
        let mut refresh = rec(
            Stage::Ship,
            20.0,
            4000,
            "refresh for the shipped linear probe",
        );
        refresh.embedded_rows = Some(4000);
        let failed = rec(Stage::FineTune, 500.0, 200, "failed");
        let ledger = vec![
            embed,
            refresh,
            rec(Stage::FineTune, 30.0, 200, ""),
            rec(Stage::Ship, 90.0, 600, "fine-tune of the shipped model"),
            rec(Stage::Ship, 0.3, 1500, "linear probe of the shipped model"),
            rec(Stage::ProxyFit, 0.2, 200, ""),
            rec(Stage::Selection, 0.28, 2800, ""),
            rec(Stage::Evaluation, 99.0, 4000, ""),
            failed,
        ];
        let r = Rates::from_ledgers([ledger.as_slice()]).unwrap();
        assert!((r.embed_per_row - 40.0 / 4000.0).abs() < 1e-12);
        assert!((r.refresh_per_row - 20.0 / 4000.0).abs() < 1e-12);
        assert!(
            (r.finetune_per_label - 120.0 / 800.0).abs() < 1e-12,
            "not the failed one"
        );
        assert!((r.probe_per_row - 0.0002).abs() < 1e-12);
        assert!((r.proxy_per_label - 0.001).abs() < 1e-12);
        assert!((r.select_per_row - 0.0001).abs() < 1e-12);
        assert_eq!(r.indicator_per_label, 0.0);
        // Two ledgers: the median of their rates, not a pooled sum a slow run would drag.
        let mut slow = ledger.clone();
        for r in &mut slow {
            r.wall_seconds *= 3.0;
        }
        let mut fast = ledger.clone();
        for r in &mut fast {
            r.wall_seconds *= 0.5;
        }
        let three = Rates::from_ledgers([fast.as_slice(), ledger.as_slice(), slow.as_slice()]);
        assert_eq!(three.unwrap(), r);
        // A ledger without fine-tuning cannot price standard.
        let err = Rates::from_ledgers([&ledger[5..]]).unwrap_err().to_string();
        assert!(err.contains("embedding"), "{err}");
    }

    #[test]
    fn projections_match_hand_computed_schedules() {
        let (s, r) = (schedule(), rates());
        // svpp: v0 (40 s); rounds 0-3: proxy on 200..800 labels (2 s) and selection over
        // 2800..2200 unlabelled rows (1 s); the probe fitted on 1000 labels (0.2 s).
        let svpp = project("svpp", &s, &r).unwrap();
        assert!(
            (svpp.compute_seconds - (40.0 + 2.0 + 1.0 + 0.2)).abs() < 1e-9,
            "{svpp:?}"
        );
        assert_eq!(svpp.wait_seconds.len(), 4);
        assert!((svpp.wait_seconds[0] - (0.2 + 0.28)).abs() < 1e-12);
        // asvp aligns in rounds 2 and 4: + fine-tunes on 600 and 1000 labels (160 s), two
        // refreshes (80 s), LogME on 200..1000 labels (6 s).
        let asvp = project("asvp", &s, &r).unwrap();
        let want = svpp.compute_seconds + 160.0 + 80.0 + 6.0;
        assert!((asvp.compute_seconds - want).abs() < 1e-9, "{asvp:?}");
        assert_eq!((asvp.rows_embedded, asvp.labels_fine_tuned), (12_000, 1600));
        // standard: no v0; a fine-tune and a refresh every round (300 s + 200 s), selection
        // (1 s), the probe (0.2 s).
        let std = project("standard", &s, &r).unwrap();
        assert!((std.compute_seconds - 501.2).abs() < 1e-9, "{std:?}");
        assert!((std.wait_seconds[0] - (20.0 + 40.0 + 0.28)).abs() < 1e-9);
        // random: v0 and the probe.
        let random = project("random", &s, &r).unwrap();
        assert!((random.compute_seconds - 40.2).abs() < 1e-9);
        assert!(project("bogus", &s, &r).is_err());
        // Shipping a fine-tuned model: random and svpp fine-tune on the 1,000 labels instead of
        // the probe (+100 s − 0.2 s); asvp and standard align in the last round and ship their
        // own fine-tune (only the probe goes).
        let ft = Schedule {
            ship_fine_tuned: true,
            ..s.clone()
        };
        let shipped = |p: &str| project(p, &ft, &r).unwrap();
        assert!((shipped("random").compute_seconds - 140.0).abs() < 1e-9);
        assert!((shipped("svpp").compute_seconds - (svpp.compute_seconds + 99.8)).abs() < 1e-9);
        assert_eq!(shipped("svpp").labels_fine_tuned, 1000);
        assert!((shipped("asvp").compute_seconds - (asvp.compute_seconds - 0.2)).abs() < 1e-9);
        assert!((shipped("standard").compute_seconds - 501.0).abs() < 1e-9);
        // An asvp that does not align in its last round (every 3 rounds: round 3 only) pays a
        // fine-tune on all 1,000 labels for the model it ships.
        let odd = Schedule {
            align_every: 3,
            ..ft.clone()
        };
        let a3 = project("asvp", &odd, &r).unwrap();
        assert_eq!(a3.labels_fine_tuned, 800 + 1000);
    }
}
