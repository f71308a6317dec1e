//! UPS, unlabelled pool subsampling: score only the part of the pool that last round's
//! uncertainty says is worth scoring.
//!
//! Rows are ranked by their last known uncertainty (1 − margin; rows never scored rank first),
//! r = rank / N, and each row is kept with probability exp(−max(0, r − γ) / T): the top γ of the
//! pool always, then a quickly vanishing tail (γ = 0.1, T = 0.01 keep ≈ 11%). The inner strategy
//! runs on the kept rows only, and their uncertainties are refreshed for the next round. Every
//! `full_every` rounds (and on the first) the whole pool is scored.
use super::{score_candidates, Measure, Pick, Round, Strategy};
use anyhow::Result;
use rand::Rng;

pub struct Ups {
    inner: Box<dyn Strategy>,
    pub gamma: f64,
    pub temperature: f64,
    /// Score the whole pool every this many rounds (≥ 1).
    pub full_every: usize,
    round: usize,
    /// Last known uncertainty per feature row (NaN: never scored).
    uncertainty: Vec<f32>,
    /// Rows scored in the last round (for reporting).
    pub last_kept: usize,
}

impl Ups {
    pub fn new(inner: Box<dyn Strategy>) -> Ups {
        Ups {
            inner,
            gamma: 0.1,
            temperature: 0.01,
            full_every: 5,
            round: 0,
            uncertainty: Vec::new(),
            last_kept: 0,
        }
    }

    /// Which candidates (indices into `candidates`) to keep given the stored uncertainties.
    pub fn subsample(&self, candidates: &[usize], seed: u64) -> Vec<usize> {
        let n = candidates.len();
        if n == 0 {
            return Vec::new();
        }
        let key = |i: usize| {
            let u = self
                .uncertainty
                .get(candidates[i])
                .copied()
                .unwrap_or(f32::NAN);
            if u.is_nan() {
                f32::INFINITY
            } else {
                u
            }
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
        let mut rng = crate::util::rng(seed);
        let mut keep: Vec<usize> = Vec::new();
        for (rank, &i) in order.iter().enumerate() {
            let r = rank as f64 / n as f64;
            let p = (-(r - self.gamma).max(0.0) / self.temperature).exp();
            if p >= 1.0 || rng.random::<f64>() < p {
                keep.push(i);
            }
        }
        keep.sort_unstable();
        keep
    }
}

impl Strategy for Ups {
    fn name(&self) -> &'static str {
        "ups"
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        let proxy = round.need_proxy("ups")?;
        let n_rows = round.features.n_rows();
        if self.uncertainty.len() != n_rows {
            self.uncertainty = vec![f32::NAN; n_rows];
            self.round = 0;
        }
        let full = self.round.is_multiple_of(self.full_every.max(1));
        let kept: Vec<usize> = if full {
            round.unlabelled.clone()
        } else {
            self.subsample(&round.unlabelled, round.seed ^ 0x5550_5300)
                .into_iter()
                .map(|i| round.unlabelled[i])
                .collect()
        };
        // Never keep fewer rows than the batch needs.
        let kept = if kept.len() < k {
            round.unlabelled.clone()
        } else {
            kept
        };
        let sub = round.with_candidates(kept);
        let margins = score_candidates(&sub, proxy, Measure::Margin);
        for (&row, &m) in sub.unlabelled.iter().zip(&margins) {
            self.uncertainty[row] = 1.0 - m;
        }
        self.last_kept = sub.unlabelled.len();
        self.round += 1;
        self.inner.select(&sub, k)
    }
}
