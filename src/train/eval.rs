//! Classification metrics on held-out rows.
use serde::{Deserialize, Serialize};

/// Accuracy and macro-F1 of predictions against gold labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Mean recall over the tail classes of an imbalanced pool ([`tail_classes`]); None when
    /// the pool is not imbalanced.
    #[serde(default)]
    pub tail_recall: Option<f64>,
}

impl Scores {
    pub fn of(pred: &[u32], gold: &[u32], n_classes: usize) -> Scores {
        Scores {
            accuracy: accuracy(pred, gold),
            macro_f1: macro_f1(pred, gold, n_classes),
            tail_recall: None,
        }
    }

    /// The scores with the mean recall over `tail` classes (those with gold rows).
    pub fn with_tail(mut self, pred: &[u32], gold: &[u32], tail: Option<&[u32]>) -> Scores {
        self.tail_recall = tail.and_then(|t| mean_recall(pred, gold, t));
        self
    }
}

/// The tail classes of a pool with `counts` rows per class: the rarest third (at least one;
/// ties to the lower class id), when the pool is imbalanced (its largest class at least five
/// times its smallest non-empty one: a random sample of a balanced table stays well below);
/// None otherwise.
pub fn tail_classes(counts: &[usize]) -> Option<Vec<u32>> {
    let present: Vec<usize> = counts.iter().copied().filter(|&c| c > 0).collect();
    let (min, max) = (*present.iter().min()?, *present.iter().max()?);
    if max < 5 * min {
        return None;
    }
    let mut order: Vec<u32> = (0..counts.len() as u32).collect();
    order.sort_by_key(|&c| (counts[c as usize], c));
    order.truncate(counts.len().div_ceil(3).max(1));
    order.sort_unstable();
    Some(order)
}

/// Mean per-class recall over `classes`, counting only classes with gold rows (None if none).
pub fn mean_recall(pred: &[u32], gold: &[u32], classes: &[u32]) -> Option<f64> {
    let recalls: Vec<f64> = classes
        .iter()
        .filter_map(|&c| {
            let rows: Vec<bool> = gold
                .iter()
                .zip(pred)
                .filter(|(g, _)| **g == c)
                .map(|(_, p)| *p == c)
                .collect();
            (!rows.is_empty()).then(|| share_correct(&rows))
        })
        .collect();
    (!recalls.is_empty()).then(|| recalls.iter().sum::<f64>() / recalls.len() as f64)
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
    fn the_tail_is_the_rarest_third_of_an_imbalanced_pool() {
        // Six classes, 100 down to 5 rows: the two rarest (ties to the lower id).
        assert_eq!(tail_classes(&[100, 50, 5, 20, 5, 60]), Some(vec![2, 4]));
        assert_eq!(
            tail_classes(&[10, 12, 11, 30]),
            None,
            "not imbalanced enough"
        );
        assert_eq!(tail_classes(&[0, 0]), None);
        // Recall of class 0 is 1/2, of class 2 is 1; class 3 has no gold rows.
        let (gold, pred) = ([0, 0, 1, 2], [0, 1, 1, 2]);
        assert_eq!(mean_recall(&pred, &gold, &[0, 2, 3]), Some(0.75));
        assert_eq!(mean_recall(&pred, &gold, &[3]), None);
        let s = Scores::of(&pred, &gold, 4).with_tail(&pred, &gold, Some(&[0]));
        assert_eq!(s.tail_recall, Some(0.5));
    }

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
