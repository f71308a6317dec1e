//! Classification metrics on held-out rows.
use serde::{Deserialize, Serialize};

/// Accuracy and macro-F1 of predictions against gold labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    pub macro_f1: f64,
}

impl Scores {
    pub fn of(pred: &[u32], gold: &[u32], n_classes: usize) -> Scores {
        Scores {
            accuracy: accuracy(pred, gold),
            macro_f1: macro_f1(pred, gold, n_classes),
        }
    }
}

/// Fraction of rows predicted right (0 for no rows).
pub fn accuracy(pred: &[u32], gold: &[u32]) -> f64 {
    assert_eq!(pred.len(), gold.len());
    if gold.is_empty() {
        return 0.0;
    }
    pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / gold.len() as f64
}

/// The share of `true` in per-row correctness (0 for no rows).
pub fn share_correct(correct: &[bool]) -> f64 {
    correct.iter().filter(|&&c| c).count() as f64 / correct.len().max(1) as f64
}

/// Macro-averaged F1 over the classes present in `gold` or `pred` (scikit-learn's convention
/// for `labels=None`): a class never predicted and never true does not count.
pub fn macro_f1(pred: &[u32], gold: &[u32], n_classes: usize) -> f64 {
    assert_eq!(pred.len(), gold.len());
    let mut tp = vec![0usize; n_classes];
    let mut fp = vec![0usize; n_classes];
    let mut fn_ = vec![0usize; n_classes];
    for (&p, &g) in pred.iter().zip(gold) {
        if p == g {
            tp[g as usize] += 1;
        } else {
            fp[p as usize] += 1;
            fn_[g as usize] += 1;
        }
    }
    let mut sum = 0.0;
    let mut count = 0usize;
    for c in 0..n_classes {
        if tp[c] + fp[c] + fn_[c] == 0 {
            continue;
        }
        count += 1;
        let denom = 2 * tp[c] + fp[c] + fn_[c];
        sum += 2.0 * tp[c] as f64 / denom as f64;
    }
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_hand_computed_values() {
        let gold = [0, 0, 1, 1, 2, 2];
        let pred = [0, 1, 1, 1, 2, 0];
        assert!((accuracy(&pred, &gold) - 4.0 / 6.0).abs() < 1e-12);
        // class 0: tp 1, fp 1, fn 1 → 0.5; class 1: tp 2, fp 1, fn 0 → 0.8; class 2: tp 1, fn 1 → 2/3.
        let want = (0.5 + 0.8 + 2.0 / 3.0) / 3.0;
        assert!((macro_f1(&pred, &gold, 4) - want).abs() < 1e-12);
    }
}
