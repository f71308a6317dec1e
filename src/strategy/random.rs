//! Random sampling: `k` candidates uniformly without replacement (the baseline every other
//! strategy is measured against, and a cold-start option).
use super::{Pick, Round, Strategy};
use anyhow::Result;

#[derive(Debug, Clone, Copy, Default)]
pub struct Random;

impl Strategy for Random {
    fn name(&self) -> &'static str {
        "random"
    }
    fn needs_proxy(&self) -> bool {
        false
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        let n = round.unlabelled.len();
        let k = k.min(n);
        let mut rng = crate::util::rng(round.seed);
        Ok(rand::seq::index::sample(&mut rng, n, k)
            .into_iter()
            .map(|i| Pick {
                row: round.unlabelled[i],
                score: 0.0,
            })
            .collect())
    }
}
