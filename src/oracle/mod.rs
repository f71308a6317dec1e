//! Where labels come from. The AL loop asks an [`Oracle`] for the labels of the rows it picked;
//! in simulation the oracle reveals the dataset's hidden gold labels, and a human-annotation
//! oracle (export a batch, import the answers) plugs in behind the same trait.
use crate::data::Dataset;
use anyhow::{bail, Result};
use std::collections::HashMap;

/// Answers label queries for pool rows (row indices into the dataset table).
pub trait Oracle {
    /// Labels (class ids) for `rows`, in order. May fail, e.g. when a row has no answer.
    fn label(&mut self, rows: &[usize]) -> Result<Vec<u32>>;
    /// Short name for logs and ledgers.
    fn name(&self) -> &str;
}

/// Reveals gold labels stored in the dataset: the standard AL simulation.
pub struct Simulated<'a> {
    dataset: &'a Dataset,
}

impl<'a> Simulated<'a> {
    pub fn new(dataset: &'a Dataset) -> Result<Self> {
        if dataset.label_map.is_empty() {
            bail!(
                "dataset '{}' has no labels: a simulated oracle needs gold labels (import with --label-col)",
                dataset.name
            );
        }
        Ok(Self { dataset })
    }
}

impl Oracle for Simulated<'_> {
    fn label(&mut self, rows: &[usize]) -> Result<Vec<u32>> {
        rows.iter()
            .map(|&r| match self.dataset.labels.get(r) {
                Some(Some(l)) => Ok(*l),
                Some(None) => bail!("row {r} (id '{}') has no gold label", self.dataset.ids[r]),
                None => bail!("row {r} is out of range ({} rows)", self.dataset.len()),
            })
            .collect()
    }
    fn name(&self) -> &str {
        "simulated"
    }
}

/// People's answers, as `proxal label` stored them: the annotation project's oracle. It answers
/// for the rows people labelled and refuses the others (a batch returned to the pool with
/// `--skip-rest` keeps its unanswered rows unlabelled).
pub struct Annotations {
    by_row: HashMap<usize, u32>,
}

impl Annotations {
    /// From (row, class id) answers.
    pub fn new(answers: impl IntoIterator<Item = (usize, u32)>) -> Self {
        Self {
            by_row: answers.into_iter().collect(),
        }
    }
    /// Whether people answered for `row`.
    pub fn answered(&self, row: usize) -> bool {
        self.by_row.contains_key(&row)
    }
}

impl Oracle for Annotations {
    fn label(&mut self, rows: &[usize]) -> Result<Vec<u32>> {
        rows.iter()
            .map(|r| match self.by_row.get(r) {
                Some(&y) => Ok(y),
                None => bail!("row {r} has no answer yet: label it with `proxal label`"),
            })
            .collect()
    }
    fn name(&self) -> &str {
        "annotators"
    }
}
