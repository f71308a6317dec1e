//! Where labels come from. The AL loop asks an [`Oracle`] for the labels of the rows it picked;
//! in simulation the oracle reveals the dataset's hidden gold labels, and a human-annotation
//! oracle (export a batch, import the answers) plugs in behind the same trait.
use crate::data::Dataset;
use anyhow::{bail, Result};

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
