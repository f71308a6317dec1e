//! `proxal export-model` and `proxal predict`: the project's current model as a self-contained
//! directory, and applying it to a file.
//!
//! The exported model is the backbone the current features come from (the pretrained one, or
//! the latest alignment checkpoint) plus a logistic-regression head fitted on every stored label
//! with those features — the model selection itself uses.
use super::{Project, DATASET};
use crate::backbone::{Backbone, EmbedOptions, ModelFiles, Pooling};
use crate::data::read_table;
use crate::features::{RowBlocks, Store, Verify};
use crate::numerics::argmax_rows;
use crate::proxy::{LogReg, LogRegConfig, Proxy};
use crate::train::Head;
use crate::util;
use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// `proxal-model.json`: what a model directory needs besides its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: u32,
    pub labels: Vec<String>,
    pub pooling: String,
    pub normalize: bool,
    pub max_len: usize,
    /// Feature version the head was fitted on ("v0", "run:v3").
    pub features: String,
    pub trained_on_labels: usize,
    /// Where the backbone came from.
    pub backbone_from: String,
}

const CARD: &str = "proxal-model.json";
const HEAD: &str = "head.safetensors";

/// What `export-model` wrote.
#[derive(Debug)]
pub struct ExportReport {
    pub dir: PathBuf,
    pub card: ModelCard,
}

/// Write the current model to `out` (default `<project>/model`), replacing what was there.
pub fn export_model(dir: &Path, out: Option<&Path>) -> Result<ExportReport> {
    let p = Project::open(dir)?;
    let _lock = p.lock()?;
    let ds = p.dataset()?;
    let labels = p.labels()?;
    let classes: HashSet<&str> = labels.iter().map(|l| l.label.as_str()).collect();
    if classes.len() < 2 {
        bail!(
            "the project has labels for {} class(es): a model needs at least two",
            classes.len()
        );
    }
    let batches = p.batches()?;
    let features = super::current_features(&batches);
    let (store, v, backbone_dir) = match crate::al::run::refreshed_version(&features)? {
        // Version v was embedded by the checkpoint of round v - 1.
        Some(v) => (
            Store::at(p.run_dir().features(), DATASET),
            v,
            p.run_dir().checkpoint(v as usize - 1),
        ),
        None => (p.v0_store(), 0, p.model_dir()),
    };
    let fv = store
        .open_for(v, &ds, Verify::Sizes)
        .with_context(|| format!("features {features} are not there: run `proxal next` first"))?;
    let src = &fv.manifest().source;
    let rows: Vec<usize> = labels.iter().map(|l| l.row).collect();
    let ys: Vec<u32> = labels
        .iter()
        .map(|l| {
            ds.label_map
                .id(&l.label)
                .with_context(|| format!("stored label '{}' is not in the label set", l.label))
        })
        .collect::<Result<_>>()?;
    let lr = LogReg::fit(
        &LogRegConfig::default(),
        fv.gather(&rows).view(),
        &ys,
        ds.n_classes(),
        None,
    )?;
    let head = Head::from_logreg(&lr);
    let card = ModelCard {
        format: 1,
        labels: ds.label_map.names.clone(),
        pooling: src.pooling.clone(),
        normalize: src.normalize,
        max_len: src.max_len,
        features,
        trained_on_labels: labels.len(),
        backbone_from: backbone_dir.display().to_string(),
    };
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| p.dir.join("model"));
    // Build beside the target, then swap it in.
    let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let files = ModelFiles::in_dir(&backbone_dir)?;
    for (from, name) in [
        (&files.config, "config.json"),
        (&files.tokenizer, "tokenizer.json"),
        (&files.weights, "model.safetensors"),
    ] {
        let to = tmp.join(name);
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to)
                .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        }
    }
    head.save(&tmp.join(HEAD))?;
    util::atomic_write(
        &tmp.join(CARD),
        serde_json::to_string_pretty(&card)?.as_bytes(),
    )?;
    if out.exists() {
        std::fs::remove_dir_all(&out)
            .with_context(|| format!("cannot replace {}", out.display()))?;
    }
    std::fs::rename(&tmp, &out)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), out.display()))?;
    Ok(ExportReport { dir: out, card })
}

/// What `predict` wrote.
#[derive(Debug)]
pub struct PredictReport {
    pub rows: usize,
    pub out: PathBuf,
}

/// Label every row of `data` (CSV, TSV, JSONL or Parquet; text in `text_col`) with the model in
/// `model_dir`; write `out` (format by extension) with columns [id,] text, predicted, confidence.
pub fn predict(
    model_dir: &Path,
    data: &Path,
    text_col: &str,
    id_col: Option<&str>,
    out: &Path,
) -> Result<PredictReport> {
    let card_path = model_dir.join(CARD);
    let card: ModelCard =
        serde_json::from_slice(&std::fs::read(&card_path).with_context(|| {
            format!(
                "{} is not a proxal model ({} missing): make one with `proxal export-model`",
                model_dir.display(),
                CARD
            )
        })?)
        .with_context(|| format!("{}: not a model card", card_path.display()))?;
    let head = Head::load(&model_dir.join(HEAD))?;
    if head.n_classes() != card.labels.len() {
        bail!(
            "{}: the head has {} classes but the card lists {} labels",
            model_dir.display(),
            head.n_classes(),
            card.labels.len()
        );
    }
    let out_format = crate::data::Format::from_path(out)?;
    let df = read_table(data)?;
    let col = |name: &str| -> Result<Vec<String>> {
        let c = df.column(name).map_err(|_| {
            anyhow!(
                "{}: no column '{name}' (columns: {})",
                data.display(),
                df.get_column_names()
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let c = c.cast(&DataType::String)?;
        Ok(c.str()?
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect())
    };
    let texts = col(text_col)?;
    let ids = id_col.map(col).transpose()?;
    let bb = Backbone::load(model_dir, &crate::device::current()?, false)?;
    if bb.dim() != head.dim() {
        bail!(
            "{}: backbone gives {}-dim vectors but the head expects {}",
            model_dir.display(),
            bb.dim(),
            head.dim()
        );
    }
    let opts = EmbedOptions {
        max_len: card.max_len,
        normalize: card.normalize,
        pooling: if card.pooling == "cls" {
            Pooling::Cls
        } else {
            Pooling::Mean
        },
        ..Default::default()
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut pred = Vec::with_capacity(texts.len());
    let mut conf = Vec::with_capacity(texts.len());
    let embedder = bb.embedder(opts)?;
    for chunk in refs.chunks(256) {
        let x = embedder.embed(chunk)?;
        let x = ndarray::Array2::from_shape_vec((chunk.len(), bb.dim()), x)?;
        for (c, p) in argmax_rows(head.predict_proba(x.view()).view()) {
            pred.push(card.labels[c as usize].clone());
            conf.push(p);
        }
    }
    let mut cols = Vec::new();
    if let (Some(ids), Some(name)) = (ids, id_col) {
        cols.push(Column::new(name.into(), ids));
    }
    cols.push(Column::new(text_col.into(), &texts));
    cols.push(Column::new("predicted".into(), pred));
    cols.push(Column::new("confidence".into(), conf));
    let mut out_df = DataFrame::new_infer_height(cols)?;
    let mut buf = Vec::new();
    match out_format {
        crate::data::Format::Csv => CsvWriter::new(&mut buf).finish(&mut out_df)?,
        crate::data::Format::Tsv => CsvWriter::new(&mut buf)
            .with_separator(b'\t')
            .finish(&mut out_df)?,
        crate::data::Format::JsonLines => JsonWriter::new(&mut buf)
            .with_json_format(JsonFormat::JsonLines)
            .finish(&mut out_df)?,
        crate::data::Format::Parquet => {
            ParquetWriter::new(&mut buf).finish(&mut out_df)?;
        }
    }
    util::atomic_write(out, &buf)?;
    Ok(PredictReport {
        rows: texts.len(),
        out: out.to_path_buf(),
    })
}
