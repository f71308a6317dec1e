//! Uncertainty sampling on the proxy's probabilities: least confidence (score 1 − max p, higher
//! first), margin / breaking ties (score p(1) − p(2), lower first) and entropy (score −Σ p ln p in
//! nats, higher first). Scores are computed block by block from the memory map in parallel;
//! selection is an O(n) partial sort, ties broken towards the lower row.
use super::{select_by_measure, Measure, Pick, Round, Strategy};
use anyhow::Result;

/// Pick the rows the proxy is least sure about, by one [`Measure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uncertainty(pub Measure);

impl Strategy for Uncertainty {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        select_by_measure(round, k, self.0, self.0.name())
    }
}
