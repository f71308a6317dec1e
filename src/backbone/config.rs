//! `config.json` of a BERT-family checkpoint (Hugging Face layout): BERT itself, and MPNet
//! (`model_type: "mpnet"`), which differs in its names, its position ids (counted after the
//! padding id) and a relative-position bias in every attention (see `bert.rs`).
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Activation of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// Exact GELU (erf), what BERT and MiniLM use.
    Gelu,
    /// The tanh approximation of GELU.
    #[serde(alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluNew,
    Relu,
}

fn default_eps() -> f64 {
    1e-12
}
fn default_type_vocab() -> usize {
    2
}
fn default_act() -> HiddenAct {
    HiddenAct::Gelu
}
fn default_dropout() -> f64 {
    0.1
}
fn default_position() -> String {
    "absolute".into()
}

/// The subset of a Hugging Face `BertConfig` the model needs. Unknown keys are kept out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: HiddenAct,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_position")]
    pub position_embedding_type: String,
    /// Every other key of the file, kept so a saved checkpoint's config stays complete.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl BertConfig {
    /// A small configuration for tests: random weights of this shape run in milliseconds.
    pub fn tiny(vocab_size: usize) -> Self {
        BertConfig {
            model_type: Some("bert".into()),
            architectures: Some(vec!["BertModel".into()]),
            vocab_size,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            hidden_act: HiddenAct::Gelu,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            position_embedding_type: "absolute".into(),
            extra: [("initializer_range".to_string(), serde_json::json!(0.02))]
                .into_iter()
                .collect(),
        }
    }

    /// [`BertConfig::tiny`] as an MPNet: MPNet's names, position offset (padding id 1) and
    /// relative-position bias.
    pub fn tiny_mpnet(vocab_size: usize) -> Self {
        let mut c = Self::tiny(vocab_size);
        c.model_type = Some("mpnet".into());
        c.architectures = Some(vec!["MPNetModel".into()]);
        c.pad_token_id = 1;
        c.layer_norm_eps = 1e-5;
        c.extra.insert(
            "relative_attention_num_buckets".into(),
            serde_json::json!(32),
        );
        c
    }

    /// Read and validate `config.json`: it must describe a BERT model with absolute positions.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_json(&bytes).with_context(|| format!("{}", path.display()))
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let raw: serde_json::Value = serde_json::from_slice(bytes).context("not valid JSON")?;
        let model_type = raw
            .get("model_type")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let archs: Vec<String> = raw
            .get("architectures")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let known = match &model_type {
            Some(t) => t == "bert" || t == "mpnet",
            None => archs
                .iter()
                .any(|a| a.starts_with("Bert") || a.starts_with("MPNet")),
        };
        if !known {
            bail!(
                "not a BERT or MPNet model (model_type {:?}, architectures {:?}): proxal's backbone loads those only",
                model_type.as_deref().unwrap_or("missing"),
                archs
            );
        }
        let cfg: BertConfig = serde_json::from_value(raw).context("not a BERT config")?;
        if cfg.position_embedding_type != "absolute" {
            bail!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                cfg.position_embedding_type
            );
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                cfg.hidden_size,
                cfg.num_attention_heads
            );
        }
        Ok(cfg)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// An MPNet checkpoint (`model_type: "mpnet"`, or an `MPNet…` architecture).
    pub fn is_mpnet(&self) -> bool {
        match &self.model_type {
            Some(t) => t == "mpnet",
            None => self
                .architectures
                .iter()
                .flatten()
                .any(|a| a.starts_with("MPNet")),
        }
    }

    /// MPNet's relative-position buckets (`relative_attention_num_buckets`, default 32).
    pub fn relative_buckets(&self) -> usize {
        self.extra
            .get("relative_attention_num_buckets")
            .and_then(|v| v.as_u64())
            .map_or(32, |n| n as usize)
    }

    /// The first position id of a sequence: 0 for BERT; for MPNet, one past the padding id
    /// (positions are counted after it, as fairseq and Hugging Face's MPNet do).
    pub fn first_position(&self) -> usize {
        if self.is_mpnet() {
            self.pad_token_id as usize + 1
        } else {
            0
        }
    }

    /// The longest sequence (special tokens included) the position table holds.
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.first_position())
    }
}
