//! The canonical table and its on-disk form.
use crate::home::Home;
use crate::util;
use anyhow::{bail, Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which part of the data a row belongs to. The pool is what active learning selects from
/// (its labels, if any, are hidden behind the oracle); dev and test are held out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Pool,
    Dev,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Pool => "pool",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
    /// Parse a split name; common synonyms (train, validation, …) are accepted.
    pub fn parse(s: &str) -> Option<Split> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pool" | "train" | "training" | "unlabeled" | "unlabelled" => Some(Split::Pool),
            "dev" | "val" | "valid" | "validation" | "development" => Some(Split::Dev),
            "test" | "testing" | "eval" => Some(Split::Test),
            _ => None,
        }
    }
}

/// Label names in a fixed order; a label's index is its class id everywhere in proxal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMap {
    pub names: Vec<String>,
}

impl LabelMap {
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    pub fn id(&self, name: &str) -> Option<u32> {
        self.names.iter().position(|n| n == name).map(|i| i as u32)
    }
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// Metadata stored beside the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub name: String,
    pub source: String,
    pub rows: usize,
    pub pool: usize,
    pub dev: usize,
    pub test: usize,
    pub labelled: usize,
    pub n_labels: usize,
    /// sha256 over (id, text) of every row in order: a feature version records it and refuses
    /// to be read against a different table.
    pub fingerprint: String,
}

/// A dataset in canonical form, loaded in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub ids: Vec<String>,
    pub texts: Vec<String>,
    pub labels: Vec<Option<u32>>,
    pub splits: Vec<Split>,
    pub label_map: LabelMap,
    pub fingerprint: String,
}

pub(crate) const TABLE_FILE: &str = "table.parquet";
pub(crate) const LABELS_FILE: &str = "labels.json";
pub(crate) const META_FILE: &str = "meta.json";

impl Dataset {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn n_classes(&self) -> usize {
        self.label_map.len()
    }
    /// Row indices of one split, in table order.
    pub fn rows_of(&self, split: Split) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.splits[i] == split)
            .collect()
    }
    /// Row indices of one split that carry a label, in table order.
    pub fn labelled_rows_of(&self, split: Split) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.splits[i] == split && self.labels[i].is_some())
            .collect()
    }
    pub fn count(&self, split: Split) -> usize {
        self.splits.iter().filter(|&&s| s == split).count()
    }

    /// sha256 over every (id, text) in order.
    pub fn compute_fingerprint(ids: &[String], texts: &[String]) -> String {
        let mut buf = Vec::new();
        for (id, t) in ids.iter().zip(texts) {
            buf.extend_from_slice(&(id.len() as u64).to_le_bytes());
            buf.extend_from_slice(id.as_bytes());
            buf.extend_from_slice(&(t.len() as u64).to_le_bytes());
            buf.extend_from_slice(t.as_bytes());
        }
        util::sha256_hex(&buf)
    }

    pub fn meta(&self, source: &str) -> Meta {
        Meta {
            name: self.name.clone(),
            source: source.to_string(),
            rows: self.len(),
            pool: self.count(Split::Pool),
            dev: self.count(Split::Dev),
            test: self.count(Split::Test),
            labelled: self.labels.iter().filter(|l| l.is_some()).count(),
            n_labels: self.n_classes(),
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// Directory of a stored dataset.
    pub fn dir(home: &Home, name: &str) -> PathBuf {
        home.dataset_dir(name)
    }

    /// Write the table, label map and metadata under `dir` (each file atomically).
    pub fn save(&self, dir: &Path, source: &str) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let labels: Vec<Option<&str>> = self
            .labels
            .iter()
            .map(|l| l.map(|i| self.label_map.name(i)))
            .collect();
        let splits: Vec<&str> = self.splits.iter().map(|s| s.as_str()).collect();
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("id".into(), &self.ids),
            Column::new("text".into(), &self.texts),
            Column::new("label".into(), labels),
            Column::new("split".into(), splits),
        ])?;
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes)
            .finish(&mut df)
            .map_err(|e| anyhow::anyhow!("cannot encode the table as Parquet: {e}"))?;
        util::atomic_write(&dir.join(TABLE_FILE), &bytes)?;
        util::atomic_write(
            &dir.join(LABELS_FILE),
            serde_json::to_string_pretty(&self.label_map)?.as_bytes(),
        )?;
        util::atomic_write(
            &dir.join(META_FILE),
            serde_json::to_string_pretty(&self.meta(source))?.as_bytes(),
        )?;
        Ok(())
    }

    /// Load `datasets/<name>/` from the home directory.
    pub fn load(home: &Home, name: &str) -> Result<Dataset> {
        let dir = Self::dir(home, name);
        if !dir.join(TABLE_FILE).exists() {
            bail!(
                "dataset '{name}' not found ({} missing): import it first with `proxal data import` or `proxal data import-builtin`",
                dir.join(TABLE_FILE).display()
            );
        }
        Self::load_dir(&dir, name)
    }

    pub fn load_dir(dir: &Path, name: &str) -> Result<Dataset> {
        let table = dir.join(TABLE_FILE);
        let f = std::fs::File::open(&table)
            .with_context(|| format!("cannot open {}", table.display()))?;
        let df = ParquetReader::new(f).finish().map_err(|e| {
            anyhow::anyhow!("{}: not a readable Parquet table: {e}", table.display())
        })?;
        let col_strings = |c: &str| -> Result<Vec<Option<String>>> {
            let s = df
                .column(c)
                .map_err(|_| anyhow::anyhow!("{}: column '{c}' missing", table.display()))?;
            let ca = s
                .str()
                .map_err(|_| anyhow::anyhow!("{}: column '{c}' is not text", table.display()))?;
            Ok(ca.iter().map(|v| v.map(str::to_string)).collect())
        };
        let ids: Vec<String> = col_strings("id")?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let texts: Vec<String> = col_strings("text")?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let labels_raw = col_strings("label")?;
        let splits_raw = col_strings("split")?;
        let lpath = dir.join(LABELS_FILE);
        let label_map: LabelMap = serde_json::from_slice(
            &std::fs::read(&lpath).with_context(|| format!("cannot read {}", lpath.display()))?,
        )
        .with_context(|| format!("{}: not a label map", lpath.display()))?;
        let mut labels = Vec::with_capacity(ids.len());
        for (i, l) in labels_raw.iter().enumerate() {
            labels.push(match l {
                None => None,
                Some(n) => Some(label_map.id(n).with_context(|| {
                    format!(
                        "{}: row {i}: label '{n}' is not in {}",
                        table.display(),
                        lpath.display()
                    )
                })?),
            });
        }
        let splits = splits_raw
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_deref()
                    .and_then(Split::parse)
                    .with_context(|| format!("{}: row {i}: bad split {s:?}", table.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        let fingerprint = Self::compute_fingerprint(&ids, &texts);
        Ok(Dataset {
            name: name.to_string(),
            ids,
            texts,
            labels,
            splits,
            label_map,
            fingerprint,
        })
    }
}
