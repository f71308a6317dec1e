//! Margin (breaking-ties) sampling: the rows whose two most likely classes are closest (score p(1) − p(2), lower first).
//! Scores are computed block by block from the memory map in parallel; selection is an O(n)
//! partial sort, ties broken towards the lower row.
use super::{select_by_measure, Measure, Pick, Round, Strategy};
use anyhow::Result;

#[derive(Debug, Clone, Copy, Default)]
pub struct Margin;

impl Strategy for Margin {
    fn name(&self) -> &'static str {
        "margin"
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        select_by_measure(round, k, Measure::Margin, "margin")
    }
}
