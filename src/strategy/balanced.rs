//! Class balancing over any strategy (`balanced:<inner>`): uncertainty sampling starves rare
//! classes, because the proxy is rarely unsure between two classes it hardly ever predicts.
//!
//! The inner strategy ranks a shortlist of `shortlist × k` candidates (its own pick order); each
//! candidate's class is the proxy's prediction. The batch's `k` slots go, one at a time, to the
//! class with the fewest labelled rows plus slots so far among the classes that still have
//! shortlisted candidates (ties to the lower class id): the batch fills the labelled set's
//! smallest classes first. Each class then takes its best-ranked candidates, and the picks keep
//! the inner strategy's order and scores. Classes are only as good as the proxy's predictions: a
//! class the proxy never predicts gets no slot. The inner strategy selects `shortlist × k` rows:
//! cheap for uncertainty sampling, about `shortlist` times its cost for BADGE and core-set
//! (whose diversity then spans the shortlist, not the batch).
use super::{Pick, Round, Strategy};
use crate::proxy::map_proba;
use anyhow::Result;

pub struct Balanced {
    inner: Box<dyn Strategy>,
    /// The inner strategy ranks this many candidates per batch slot.
    pub shortlist: usize,
}

impl Balanced {
    pub fn new(inner: Box<dyn Strategy>) -> Balanced {
        Balanced {
            inner,
            shortlist: 10,
        }
    }
}

/// Slots per class for a batch of `k`: water-filling from `labelled` (rows per class so far),
/// each class capped by `available` (its shortlisted candidates).
pub fn quotas(labelled: &[usize], available: &[usize], k: usize) -> Vec<usize> {
    let mut q = vec![0usize; labelled.len()];
    for _ in 0..k {
        let next = (0..labelled.len())
            .filter(|&c| q[c] < available[c])
            .min_by_key(|&c| (labelled[c] + q[c], c));
        match next {
            Some(c) => q[c] += 1,
            None => break,
        }
    }
    q
}

impl Strategy for Balanced {
    fn name(&self) -> &'static str {
        "balanced"
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        let proxy = round.need_proxy("balanced")?;
        let m = (k * self.shortlist.max(1)).min(round.unlabelled.len());
        let ranked = self.inner.select(round, m)?;
        let mut rows: Vec<usize> = ranked.iter().map(|p| p.row).collect();
        rows.sort_unstable();
        // The proxy's class of each shortlisted row, in row order.
        let class_of_sorted: Vec<u32> = map_proba(proxy, round.features, &rows, |_, _, p| {
            crate::numerics::argmax_rows(p)
        })
        .into_iter()
        .flatten()
        .map(|(c, _)| c)
        .collect();
        let class = |row: usize| {
            class_of_sorted[rows.binary_search(&row).expect("a shortlisted row")] as usize
        };
        let n = proxy.n_classes();
        let mut available = vec![0usize; n];
        for p in &ranked {
            available[class(p.row)] += 1;
        }
        let mut labelled = round.class_counts.clone().unwrap_or_default();
        labelled.resize(n, 0);
        let mut q = quotas(&labelled, &available, k);
        let mut picks: Vec<Pick> = Vec::with_capacity(k);
        for p in &ranked {
            let c = class(p.row);
            if q[c] > 0 {
                q[c] -= 1;
                picks.push(*p);
            }
        }
        Ok(picks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fill_the_smallest_classes_first_within_what_is_available() {
        // Labelled 10, 2, 0; plenty of candidates: 6 slots raise class 2 to 2, then classes 1
        // and 2 alternate (ties to the lower id) until both reach 4.
        assert_eq!(quotas(&[10, 2, 0], &[9, 9, 9], 6), [0, 2, 4]);
        // Class 2 has a single candidate: the rest goes to the next smallest.
        assert_eq!(quotas(&[10, 2, 0], &[9, 9, 1], 6), [0, 5, 1]);
        // Fewer candidates than slots: every candidate is used.
        assert_eq!(quotas(&[0, 0], &[1, 2], 5), [1, 2]);
        // Balanced counts: round-robin from class 0.
        assert_eq!(quotas(&[3, 3, 3], &[5, 5, 5], 4), [2, 1, 1]);
    }
}
