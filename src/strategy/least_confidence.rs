//! Least-confidence sampling: the rows whose most likely class has the lowest probability (score 1 − max p, higher first).
//! Scores are computed block by block from the memory map in parallel; selection is an O(n)
//! partial sort, ties broken towards the lower row.
use super::{select_by_measure, Measure, Pick, Round, Strategy};
use anyhow::Result;

#[derive(Debug, Clone, Copy, Default)]
pub struct LeastConfidence;

impl Strategy for LeastConfidence {
    fn name(&self) -> &'static str {
        "least-confidence"
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        select_by_measure(round, k, Measure::LeastConfidence, "least-confidence")
    }
}
