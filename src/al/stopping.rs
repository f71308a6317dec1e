//! When to stop buying labels (docs/STOPPING.md): the standard stopping criteria on the proxy's
//! predictions over a fixed stop set of pool rows. They cost two proxy fits per round, no
//! fine-tune.
//!
//! - **Stabilizing predictions** (Bloodgood & Vijay-Shanker 2009): Cohen's κ between the
//!   predictions of the model before and after the round's labels, on the stop set; met when the
//!   mean of the last `window` values is at least `kappa`. The window starts again after a cache
//!   refresh: κ measured on the old features says nothing about how stable the proxy is on the
//!   new ones.
//! - **Classification change** (Zhu et al. 2008): met when no stop-set prediction changed.
//! - **Overall uncertainty** (Zhu et al. 2008): met when the mean uncertainty (1 − the top class
//!   probability) over the unlabelled stop-set rows is at most `uncertainty`.
//! - **Label budget**: met at `max_labels` labels.
use serde::{Deserialize, Serialize};

/// A stopping criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criterion {
    StabilizingPredictions,
    ClassificationChange,
    OverallUncertainty,
    LabelBudget,
}

impl Criterion {
    pub const ALL: [Criterion; 4] = [
        Criterion::StabilizingPredictions,
        Criterion::ClassificationChange,
        Criterion::OverallUncertainty,
        Criterion::LabelBudget,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Criterion::StabilizingPredictions => "stabilizing-predictions",
            Criterion::ClassificationChange => "classification-change",
            Criterion::OverallUncertainty => "overall-uncertainty",
            Criterion::LabelBudget => "label-budget",
        }
    }
}

/// The `[stopping]` table of a run or project config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoppingConfig {
    /// Pool rows in the stop set (a seeded sample, fixed for the whole run).
    pub stop_set: usize,
    /// Stabilizing predictions: rounds in the window, and the mean κ that meets it.
    pub window: usize,
    pub kappa: f64,
    /// Overall uncertainty: the mean (1 − top probability) that meets it.
    pub uncertainty: f64,
    /// Label budget.
    pub max_labels: Option<usize>,
    /// A run (`proxal run`) stops after the first round where one of these is met; a project
    /// only says so (`proxal next`, `proxal status`).
    pub stop_on: Vec<Criterion>,
}

impl Default for StoppingConfig {
    fn default() -> Self {
        StoppingConfig {
            stop_set: 1000,
            window: 3,
            kappa: 0.99,
            uncertainty: 0.1,
            max_labels: None,
            stop_on: Vec::new(),
        }
    }
}

impl StoppingConfig {
    /// Has the label budget been reached with `labels` labelled rows?
    pub fn budget_met(&self, labels: usize) -> bool {
        self.max_labels.is_some_and(|m| labels >= m)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.stop_set == 0 || self.window == 0 {
            anyhow::bail!("stopping.stop_set and stopping.window must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.kappa) || !(0.0..=1.0).contains(&self.uncertainty) {
            anyhow::bail!("stopping.kappa and stopping.uncertainty must be in [0, 1]");
        }
        Ok(())
    }
}

/// What a round's stopping check saw (kept in its progress record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopSignals {
    /// The feature version both models predicted on.
    pub features: String,
    pub stop_rows: usize,
    /// Cohen's κ between the predictions before and after this round's labels (None in round 0).
    pub kappa: Option<f64>,
    /// Stop-set rows whose predicted class changed (None in round 0).
    pub changed: Option<usize>,
    /// Mean (1 − top probability) over the stop set's unlabelled rows (None: all labelled).
    pub uncertainty: Option<f64>,
    /// Mean κ over the window when it is complete (`window` values on the same features).
    pub window_kappa: Option<f64>,
    /// The criteria met in this round.
    pub met: Vec<Criterion>,
    /// The run stopped after this round (a criterion of `stop_on` was met).
    #[serde(default)]
    pub stopped: bool,
}

/// Cohen's κ between two labelings of the same rows: (p_o − p_e) / (1 − p_e), with p_o the share
/// of rows they agree on and p_e the agreement expected by chance from each one's class shares.
/// Two identical single-class labelings agree perfectly (κ = 1).
pub fn cohen_kappa(a: &[u32], b: &[u32], n_classes: usize) -> f64 {
    assert_eq!(a.len(), b.len(), "κ compares labelings of the same rows");
    let n = a.len() as f64;
    if a.is_empty() {
        return 1.0;
    }
    let (mut ca, mut cb) = (vec![0usize; n_classes], vec![0usize; n_classes]);
    let mut agree = 0usize;
    for (&x, &y) in a.iter().zip(b) {
        ca[x as usize] += 1;
        cb[y as usize] += 1;
        agree += (x == y) as usize;
    }
    let po = agree as f64 / n;
    let pe: f64 = ca
        .iter()
        .zip(&cb)
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum::<f64>()
        / (n * n);
    if pe >= 1.0 {
        return if po >= 1.0 { 1.0 } else { 0.0 };
    }
    (po - pe) / (1.0 - pe)
}

/// The mean κ over the window ending at this round, when the window is complete: `window`
/// values from consecutive rounds, all on `features` (a refresh starts it again). `earlier`:
/// the earlier rounds' signals, (round, signals), in round order.
pub fn window_kappa(
    cfg: &StoppingConfig,
    earlier: &[(usize, &StopSignals)],
    round: usize,
    features: &str,
    kappa: Option<f64>,
) -> Option<f64> {
    let mut values = vec![kappa?];
    let mut want = round;
    for (r, s) in earlier.iter().rev() {
        if values.len() == cfg.window {
            break;
        }
        if *r + 1 != want || s.features != features {
            return None;
        }
        values.push(s.kappa?);
        want = *r;
    }
    (values.len() == cfg.window).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The criteria met by a round's signals with `labels` labelled rows.
pub fn criteria_met(cfg: &StoppingConfig, s: &StopSignals, labels: usize) -> Vec<Criterion> {
    Criterion::ALL
        .into_iter()
        .filter(|c| match c {
            Criterion::StabilizingPredictions => s.window_kappa.is_some_and(|k| k >= cfg.kappa),
            Criterion::ClassificationChange => s.changed == Some(0),
            Criterion::OverallUncertainty => s.uncertainty.is_some_and(|u| u <= cfg.uncertainty),
            Criterion::LabelBudget => cfg.budget_met(labels),
        })
        .collect()
}

/// One line on a round's signals, for `proxal run`, `next` and `status`.
pub fn describe(cfg: &StoppingConfig, s: &StopSignals) -> String {
    let kappa = match (s.kappa, s.window_kappa) {
        (None, _) => "κ —".to_string(),
        (Some(k), Some(w)) => format!(
            "κ {k:.4} (mean of the last {}: {w:.4}, stops at {})",
            cfg.window, cfg.kappa
        ),
        (Some(k), None) => format!("κ {k:.4} (window of {} not full yet)", cfg.window),
    };
    let changed = s
        .changed
        .map(|c| format!("{c} of {} stop-set predictions changed", s.stop_rows))
        .unwrap_or_else(|| "no earlier predictions".into());
    let met = if s.met.is_empty() {
        "no criterion met".to_string()
    } else {
        let names: Vec<&str> = s.met.iter().map(|c| c.as_str()).collect();
        format!("criteria met: {}: consider stopping", names.join(", "))
    };
    let uncertainty = s
        .uncertainty
        .map(|u| format!("uncertainty {u:.3} (stops at {})", cfg.uncertainty))
        .unwrap_or_else(|| "every stop-set row is labelled".into());
    format!("{kappa}; {changed}; {uncertainty}; {met}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(features: &str, kappa: Option<f64>) -> StopSignals {
        StopSignals {
            features: features.into(),
            stop_rows: 100,
            kappa,
            changed: kappa.map(|k| if k == 1.0 { 0 } else { 5 }),
            uncertainty: Some(0.5),
            window_kappa: None,
            met: vec![],
            stopped: false,
        }
    }

    #[test]
    fn kappa_matches_the_hand_computed_value() {
        // p_o = 4/5; class shares (2,2,1)/5 and (1,3,1)/5 give p_e = 9/25.
        let k = cohen_kappa(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 2], 3);
        assert!((k - (0.8 - 0.36) / 0.64).abs() < 1e-12, "{k}");
        assert_eq!(cohen_kappa(&[1, 1, 1], &[1, 1, 1], 2), 1.0);
        assert_eq!(cohen_kappa(&[0, 1, 0, 1], &[0, 1, 0, 1], 2), 1.0);
        // Complete disagreement on a balanced two-class set: κ = −1.
        assert!((cohen_kappa(&[0, 1, 0, 1], &[1, 0, 1, 0], 2) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_window_needs_consecutive_rounds_on_the_same_features() {
        let cfg = StoppingConfig::default();
        let (a, b) = (signals("v0", Some(0.995)), signals("v0", Some(0.985)));
        let earlier = [(1, &a), (2, &b)];
        let w = window_kappa(&cfg, &earlier, 3, "v0", Some(1.0)).unwrap();
        assert!((w - (0.995 + 0.985 + 1.0) / 3.0).abs() < 1e-12);
        // Not full yet: two values.
        assert!(window_kappa(&cfg, &earlier[1..], 3, "v0", Some(1.0)).is_none());
        // A refresh in round 3 starts the window again.
        assert!(window_kappa(&cfg, &earlier, 3, "run:v3", Some(1.0)).is_none());
        // A gap (round 2 missing) breaks it.
        assert!(window_kappa(&cfg, &[(0, &a), (1, &b)], 3, "v0", Some(1.0)).is_none());
        // Round 0 has no κ: no window.
        assert!(window_kappa(&cfg, &earlier, 3, "v0", None).is_none());
        let first = signals("v0", None);
        assert!(window_kappa(&cfg, &[(0, &first), (1, &a)], 2, "v0", Some(1.0)).is_none());
    }

    #[test]
    fn each_criterion_is_met_on_its_own_signal() {
        let cfg = StoppingConfig {
            max_labels: Some(1000),
            ..Default::default()
        };
        let mut s = signals("v0", Some(0.97));
        assert!(criteria_met(&cfg, &s, 800).is_empty());
        s.window_kappa = Some(0.992);
        assert_eq!(
            criteria_met(&cfg, &s, 800),
            [Criterion::StabilizingPredictions]
        );
        s.window_kappa = Some(0.98);
        s.changed = Some(0);
        assert_eq!(
            criteria_met(&cfg, &s, 800),
            [Criterion::ClassificationChange]
        );
        s.changed = Some(1);
        s.uncertainty = Some(0.1);
        assert_eq!(criteria_met(&cfg, &s, 800), [Criterion::OverallUncertainty]);
        s.uncertainty = None;
        assert!(
            criteria_met(&cfg, &s, 800).is_empty(),
            "no unlabelled stop row"
        );
        s.uncertainty = Some(0.2);
        assert_eq!(criteria_met(&cfg, &s, 1000), [Criterion::LabelBudget]);
        assert!(describe(&cfg, &s).contains("no criterion met"));
        s.met = criteria_met(&cfg, &s, 1000);
        assert!(describe(&cfg, &s).contains("criteria met: label-budget: consider stopping"));
    }

    #[test]
    fn the_table_reads_and_rejects() {
        let cfg: StoppingConfig = toml::from_str(
            "stop_on = [\"stabilizing-predictions\", \"label-budget\"]\nmax_labels = 500\n",
        )
        .unwrap();
        assert_eq!(
            cfg.stop_on,
            [Criterion::StabilizingPredictions, Criterion::LabelBudget]
        );
        assert_eq!((cfg.window, cfg.stop_set), (3, 1000));
        assert!(toml::from_str::<StoppingConfig>("stop_on = [\"never\"]\n").is_err());
        let bad = StoppingConfig {
            window: 0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
