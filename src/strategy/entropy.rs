//! Entropy sampling: the rows whose predicted distribution has the highest entropy (score −Σ p ln p in nats, higher first).
//! Scores are computed block by block from the memory map in parallel; selection is an O(n)
//! partial sort, ties broken towards the lower row.
use super::{select_by_measure, Measure, Pick, Round, Strategy};
use anyhow::Result;

#[derive(Debug, Clone, Copy, Default)]
pub struct Entropy;

impl Strategy for Entropy {
    fn name(&self) -> &'static str {
        "entropy"
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        select_by_measure(round, k, Measure::Entropy, "entropy")
    }
}
