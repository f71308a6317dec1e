//! The backbone: a BERT-family encoder loaded from a local Hugging Face-style directory
//! (`config.json`, `tokenizer.json`, `model.safetensors`), its tokeniser with dynamic padding,
//! pooling, and the embedding loop that turns texts into sentence vectors.
//!
//! ```no_run
//! # use proxal::backbone::{Backbone, EmbedOptions};
//! # fn main() -> anyhow::Result<()> {
//! let bb = Backbone::load("assets/minilm".as_ref(), &candle_core::Device::Cpu, false)?;
//! let rows = bb.embed(&["hello world", "card not working"], &EmbedOptions::default())?;
//! assert_eq!(rows.len(), 2 * bb.dim());
//! # Ok(()) }
//! ```
//!
//! For training, `Backbone::load(dir, device, true)` puts every weight in a `VarMap`
//! (`backbone.varmap`), [`Bert::forward_t`] is differentiable end to end, and
//! [`Backbone::save`] writes a directory the same loader reads back.
pub mod bert;
pub mod config;
pub mod embed;
pub mod fast;
pub mod ops;
pub mod pooling;
pub mod stack;
pub mod tiny;

pub use bert::Bert;
pub use config::{BertConfig, HiddenAct};
pub use embed::{EmbedOptions, Embedder};
pub use pooling::Pooling;

use crate::util;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The three files of a model directory, checked to exist.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    pub weights: PathBuf,
}

impl ModelFiles {
    pub fn in_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!(
                "model directory {} does not exist (run `proxal assets fetch`, or `make assets` in the repository, for the default MiniLM; proxal looks for assets in $PROXAL_ASSETS, then <home>/assets, then $XDG_CACHE_HOME/proxal/assets or ~/.cache/proxal/assets)",
                dir.display()
            );
        }
        let file = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                bail!("model directory {} is missing {name}", dir.display())
            }
        };
        Ok(ModelFiles {
            dir: dir.to_path_buf(),
            config: file(CONFIG_FILE)?,
            tokenizer: file(TOKENIZER_FILE)?,
            weights: file(WEIGHTS_FILE)?,
        })
    }
}

/// What identifies a backbone in a feature-store manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneId {
    /// The model directory's name (e.g. `minilm`).
    pub name: String,
    /// The directory it was loaded from, as given.
    pub dir: String,
    pub weights_sha256: String,
    pub tokenizer_sha256: String,
    pub hidden_size: usize,
    pub num_layers: usize,
}

/// A loaded backbone: encoder, tokeniser and (when trainable) the `VarMap` holding its weights.
pub struct Backbone {
    pub model: Bert,
    /// The tokeniser as loaded, with its fixed padding removed (truncation is set per use).
    pub tokenizer: Tokenizer,
    /// `Some` when loaded trainable: every encoder weight is a `Var` in this map.
    pub varmap: Option<VarMap>,
    pub id: BackboneId,
    device: Device,
}

/// Load a tokenizer.json and drop its fixed padding; truncation is set per use.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let mut tok = Tokenizer::from_file(path)
        .map_err(|e| anyhow!("{}: not a tokenizer: {e}", path.display()))?;
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(tok)
}

/// A tokeniser truncating at `max_len` tokens (special tokens included), no padding.
pub fn tokenizer_with_max_len(tok: &Tokenizer, max_len: usize) -> Result<Tokenizer> {
    if max_len < 2 {
        bail!("max_len must be at least 2 (room for [CLS] and [SEP]), got {max_len}");
    }
    let mut t = tok.clone();
    t.with_padding(None);
    t.with_truncation(Some(TruncationParams {
        max_length: max_len,
        ..Default::default()
    }))
    .map_err(|e| anyhow!("cannot set truncation: {e}"))?;
    Ok(t)
}

impl Backbone {
    /// Load a model directory. `trainable` puts the weights in a `VarMap` (for fine-tuning);
    /// otherwise they are read from the memory-mapped safetensors file, frozen.
    pub fn load(dir: &Path, device: &Device, trainable: bool) -> Result<Self> {
        let files = ModelFiles::in_dir(dir)?;
        let config = BertConfig::from_file(&files.config)?;
        let tokenizer = load_tokenizer(&files.tokenizer)?;
        // SAFETY: the weights file is not modified while mapped (proxal never writes in place).
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, device) }
                .with_context(|| {
                format!(
                    "{}: not a readable safetensors file",
                    files.weights.display()
                )
            })?;
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else if vb.contains_tensor("mpnet.embeddings.word_embeddings.weight") {
            vb.pp("mpnet")
        } else {
            vb
        };
        let frozen = Bert::new(vb, &config).with_context(|| {
            format!(
                "{}: weights do not match {}",
                files.weights.display(),
                files.config.display()
            )
        })?;
        let (model, varmap) = if trainable {
            let (m, vm) = Self::to_trainable(&frozen)?;
            (m, Some(vm))
        } else {
            (frozen, None)
        };
        let id = BackboneId {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into()),
            dir: dir.display().to_string(),
            weights_sha256: util::sha256_file(&files.weights)?,
            tokenizer_sha256: util::sha256_file(&files.tokenizer)?,
            hidden_size: config.hidden_size,
            num_layers: config.num_hidden_layers,
        };
        Ok(Backbone {
            model,
            tokenizer,
            varmap,
            id,
            device: device.clone(),
        })
    }

    /// Copy a model's weights into `Var`s of a fresh `VarMap` and rebuild it over that map.
    pub fn to_trainable(model: &Bert) -> Result<(Bert, VarMap)> {
        let varmap = VarMap::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| anyhow!("VarMap lock poisoned"))?;
            for (name, t) in model.named_tensors() {
                data.insert(name, Var::from_tensor(&t)?);
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, model.device());
        let m = Bert::new(vb, &model.config)?;
        Ok((m, varmap))
    }

    /// Assemble a backbone from parts (tests build tiny random models this way).
    pub fn from_parts(
        model: Bert,
        tokenizer: Tokenizer,
        varmap: Option<VarMap>,
        id: BackboneId,
    ) -> Self {
        let device = model.device().clone();
        let mut tokenizer = tokenizer;
        tokenizer.with_padding(None);
        Backbone {
            model,
            tokenizer,
            varmap,
            id,
            device,
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Sentence-vector dimension.
    pub fn dim(&self) -> usize {
        self.model.hidden_size()
    }

    /// Write `config.json`, `tokenizer.json` and `model.safetensors` (current weights) to `dir`,
    /// a directory [`Backbone::load`] reads back. Each file is written atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let cfg = serde_json::to_vec_pretty(&self.model.config)?;
        util::atomic_write(&dir.join(CONFIG_FILE), &cfg)?;
        let tok = self
            .tokenizer
            .to_string(true)
            .map_err(|e| anyhow!("cannot serialise the tokenizer: {e}"))?;
        util::atomic_write(&dir.join(TOKENIZER_FILE), tok.as_bytes())?;
        let map: std::collections::HashMap<String, Tensor> =
            self.model.named_tensors().into_iter().collect();
        let bytes = safetensors::serialize(
            map.iter().map(|(k, v)| (k.clone(), v)).collect::<Vec<_>>(),
            None,
        )
        .map_err(|e| anyhow!("cannot serialise the weights: {e}"))?;
        util::atomic_write(&dir.join(WEIGHTS_FILE), &bytes)
    }

    /// Tokenise `texts` (truncated at `max_len`, no padding).
    pub fn encode(&self, texts: &[&str], max_len: usize) -> Result<Vec<Encoding>> {
        let tok =
            tokenizer_with_max_len(&self.tokenizer, max_len.min(self.model.config.max_tokens()))?;
        encode_with(&tok, texts)
    }

    /// Tokenise `texts` into `(input_ids, attention_mask)` `[batch, longest]` u32 tensors,
    /// padded to the longest row: the input [`Bert::forward_t`] takes (for training).
    pub fn tokenize(&self, texts: &[&str], max_len: usize) -> Result<(Tensor, Tensor)> {
        let enc = self.encode(texts, max_len)?;
        let refs: Vec<&Encoding> = enc.iter().collect();
        batch_tensors(&refs, self.model.config.pad_token_id, &self.device)
    }

    /// An embedder with fixed options (builds the fast inference weights once).
    pub fn embedder(&self, opts: EmbedOptions) -> Result<Embedder<'_>> {
        Embedder::new(self, opts)
    }

    /// Embed `texts`: `texts.len() × dim` floats, row-major, rows in the order given.
    pub fn embed(&self, texts: &[&str], opts: &EmbedOptions) -> Result<Vec<f32>> {
        self.embedder(opts.clone())?.embed(texts)
    }
}

/// Tokenise with an already configured tokenizer (parallel over texts).
pub fn encode_with(tok: &Tokenizer, texts: &[&str]) -> Result<Vec<Encoding>> {
    tok.encode_batch_fast(texts.to_vec(), true)
        .map_err(|e| anyhow!("tokenisation failed: {e}"))
}

/// Pad encodings to the longest into `(input_ids, attention_mask)` u32 tensors `[batch, longest]`.
pub fn batch_tensors(enc: &[&Encoding], pad_id: u32, device: &Device) -> Result<(Tensor, Tensor)> {
    let b = enc.len();
    let s = enc
        .iter()
        .map(|e| e.get_ids().len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut ids = vec![pad_id; b * s];
    let mut mask = vec![0u32; b * s];
    for (r, e) in enc.iter().enumerate() {
        let n = e.get_ids().len();
        ids[r * s..r * s + n].copy_from_slice(e.get_ids());
        mask[r * s..r * s + n].iter_mut().for_each(|m| *m = 1);
    }
    Ok((
        Tensor::from_vec(ids, (b, s), device)?,
        Tensor::from_vec(mask, (b, s), device)?,
    ))
}
