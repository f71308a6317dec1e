//! BERT encoder written for proxal on candle, differentiable end to end.
//!
//! `candle_nn::LayerNorm` (and `candle_nn::ops::softmax_last_dim`) run fused ops that have no
//! backward pass: a model built on them silently trains only its head. Every op on
//! [`Bert::forward_t`]'s path has a gradient: plain candle ops, and for layer norm, softmax and
//! GELU the fused custom ops of [`super::ops`], whose hand-written backward passes are tested
//! against the composed ops. A fused inference-only path lives in [`super::fast`] and is
//! checked against this one in the tests.
//!
//! Variable names follow Hugging Face's `BertModel` without the `bert.` prefix
//! (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, …), so a
//! checkpoint saved by [`Bert::save`] loads again with the same loader.
//!
//! MPNet (all-mpnet-base-v2) is the same post-LN encoder with three differences, all handled
//! here: its names (`attention.attn.q`, `attention.LayerNorm`, …), no token-type embeddings and
//! position ids that start after the padding id, and a bias on every attention score from the
//! bucketed relative position of key and query (`encoder.relative_attention_bias`, shared by
//! the layers; T5-style buckets, [`relative_buckets`]).
use super::config::{BertConfig, HiddenAct};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

/// Layer normalisation as a composition of differentiable ops.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(size, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        super::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// One transformer block, post-LN as in BERT.
#[derive(Debug, Clone)]
pub struct Layer {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub attn_out: Linear,
    pub attn_ln: LayerNorm,
    pub intermediate: Linear,
    pub output: Linear,
    pub out_ln: LayerNorm,
}

fn linear(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Linear> {
    candle_nn::linear(in_dim, out_dim, vb)
}

impl Layer {
    fn new(vb: VarBuilder, cfg: &BertConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let n = LayerNames::of(cfg);
        // A VarBuilder prefix may hold dots: `pp("attention.self.query")` is three levels.
        Ok(Layer {
            query: linear(vb.pp(n.query), h, h)?,
            key: linear(vb.pp(n.key), h, h)?,
            value: linear(vb.pp(n.value), h, h)?,
            attn_out: linear(vb.pp(n.attn_out), h, h)?,
            attn_ln: LayerNorm::new(vb.pp(n.attn_ln), h, eps)?,
            intermediate: linear(vb.pp("intermediate.dense"), h, cfg.intermediate_size)?,
            output: linear(vb.pp("output.dense"), cfg.intermediate_size, h)?,
            out_ln: LayerNorm::new(vb.pp("output.LayerNorm"), h, eps)?,
        })
    }
}

/// The names, inside `encoder.layer.<i>`, of a layer's attention weights.
struct LayerNames {
    query: &'static str,
    key: &'static str,
    value: &'static str,
    attn_out: &'static str,
    attn_ln: &'static str,
}

impl LayerNames {
    fn of(cfg: &BertConfig) -> Self {
        if cfg.is_mpnet() {
            LayerNames {
                query: "attention.attn.q",
                key: "attention.attn.k",
                value: "attention.attn.v",
                attn_out: "attention.attn.o",
                attn_ln: "attention.LayerNorm",
            }
        } else {
            LayerNames {
                query: "attention.self.query",
                key: "attention.self.key",
                value: "attention.self.value",
                attn_out: "attention.output.dense",
                attn_ln: "attention.output.LayerNorm",
            }
        }
    }
}

/// The BERT encoder: embeddings + `num_hidden_layers` blocks (no pooler head).
#[derive(Debug, Clone)]
pub struct Bert {
    pub config: BertConfig,
    pub word_embeddings: Tensor,
    pub position_embeddings: Tensor,
    /// BERT's token-type table; for MPNet, which has none, one row of zeros (not a weight).
    pub token_type_embeddings: Tensor,
    pub emb_ln: LayerNorm,
    pub layers: Vec<Layer>,
    /// MPNet's `[buckets, heads]` relative-position bias table; `None` for BERT.
    pub relative_attention_bias: Option<Tensor>,
    device: Device,
}

/// T5-style bidirectional buckets of relative positions (key − query), as MPNet computes them
/// (Hugging Face `MPNetEncoder.relative_position_bucket`, max distance 128): `[s, s]` bucket
/// ids, row = query. Half the buckets are for keys after the query; within each half, distances
/// below a quarter of the buckets are exact and longer ones share logarithmic buckets (f32
/// arithmetic, as the reference computes it).
pub fn relative_buckets(s: usize, num_buckets: usize) -> Vec<u32> {
    let half = (num_buckets / 2) as i64;
    let max_exact = half / 2;
    let log_range = (128f64 / max_exact as f64).ln() as f32;
    let mut out = Vec::with_capacity(s * s);
    for q in 0..s as i64 {
        for k in 0..s as i64 {
            let n = q - k; // −(key − query)
            let mut bucket = if n < 0 { half } else { 0 };
            let n = n.abs();
            bucket += if n < max_exact {
                n
            } else {
                let large = max_exact
                    + ((n as f32 / max_exact as f32).ln() / log_range * (half - max_exact) as f32)
                        as i64;
                large.min(half - 1)
            };
            out.push(bucket as u32);
        }
    }
    out
}

/// `hidden_act` applied to a tensor with differentiable ops.
pub fn activation(act: HiddenAct, x: &Tensor) -> Result<Tensor> {
    match act {
        HiddenAct::Gelu => super::ops::gelu_erf(x),
        HiddenAct::GeluNew => x.gelu(),
        HiddenAct::Relu => x.relu(),
    }
}

impl Bert {
    /// Build the encoder from a `VarBuilder` rooted at the model (names without `bert.`).
    /// With a `VarBuilder` over a `VarMap`, missing variables are created with BERT-style
    /// random initialisation (tests build tiny random models this way).
    pub fn new(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        let h = config.hidden_size;
        let emb = vb.pp("embeddings");
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let word_embeddings =
            emb.get_with_hints((config.vocab_size, h), "word_embeddings.weight", init)?;
        let position_embeddings = emb.get_with_hints(
            (config.max_position_embeddings, h),
            "position_embeddings.weight",
            init,
        )?;
        let token_type_embeddings = if config.is_mpnet() {
            Tensor::zeros((1, h), DType::F32, vb.device())?
        } else {
            emb.get_with_hints(
                (config.type_vocab_size, h),
                "token_type_embeddings.weight",
                init,
            )?
        };
        let relative_attention_bias = if config.is_mpnet() {
            Some(vb.pp("encoder").get_with_hints(
                (config.relative_buckets(), config.num_attention_heads),
                "relative_attention_bias.weight",
                init,
            )?)
        } else {
            None
        };
        let emb_ln = LayerNorm::new(emb.pp("LayerNorm"), h, config.layer_norm_eps)?;
        let enc = vb.pp("encoder").pp("layer");
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(enc.pp(i.to_string()), config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert {
            config: config.clone(),
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            emb_ln,
            layers,
            relative_attention_bias,
            device: vb.device().clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Every weight of the encoder with its canonical name, in a fixed order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![
            (
                "embeddings.word_embeddings.weight".to_string(),
                self.word_embeddings.clone(),
            ),
            (
                "embeddings.position_embeddings.weight".to_string(),
                self.position_embeddings.clone(),
            ),
        ];
        if !self.config.is_mpnet() {
            out.push((
                "embeddings.token_type_embeddings.weight".to_string(),
                self.token_type_embeddings.clone(),
            ));
        }
        out.push((
            "embeddings.LayerNorm.weight".to_string(),
            self.emb_ln.weight.clone(),
        ));
        out.push((
            "embeddings.LayerNorm.bias".to_string(),
            self.emb_ln.bias.clone(),
        ));
        if let Some(t) = &self.relative_attention_bias {
            out.push((
                "encoder.relative_attention_bias.weight".to_string(),
                t.clone(),
            ));
        }
        let names = LayerNames::of(&self.config);
        let lin = |out: &mut Vec<(String, Tensor)>, name: String, l: &Linear| {
            out.push((format!("{name}.weight"), l.weight().clone()));
            if let Some(b) = l.bias() {
                out.push((format!("{name}.bias"), b.clone()));
            }
        };
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("encoder.layer.{i}");
            lin(&mut out, format!("{p}.{}", names.query), &l.query);
            lin(&mut out, format!("{p}.{}", names.key), &l.key);
            lin(&mut out, format!("{p}.{}", names.value), &l.value);
            lin(&mut out, format!("{p}.{}", names.attn_out), &l.attn_out);
            out.push((
                format!("{p}.{}.weight", names.attn_ln),
                l.attn_ln.weight.clone(),
            ));
            out.push((
                format!("{p}.{}.bias", names.attn_ln),
                l.attn_ln.bias.clone(),
            ));
            lin(&mut out, format!("{p}.intermediate.dense"), &l.intermediate);
            lin(&mut out, format!("{p}.output.dense"), &l.output);
            out.push((
                format!("{p}.output.LayerNorm.weight"),
                l.out_ln.weight.clone(),
            ));
            out.push((format!("{p}.output.LayerNorm.bias"), l.out_ln.bias.clone()));
        }
        out
    }

    /// Write every weight to a safetensors file (names as [`Bert::named_tensors`]).
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let tensors = self.named_tensors();
        let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        candle_core::safetensors::save(&map, path)
    }

    /// Hidden states `[batch, seq, hidden]` for `input_ids` `[batch, seq]` (u32) and
    /// `attention_mask` `[batch, seq]` (1 for tokens, 0 for padding; any dtype). No dropout.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.forward_t(input_ids, attention_mask, None)
    }

    /// As [`Bert::forward`], with dropout (the config's probabilities) when `dropout` gives a
    /// seed: each dropout site of the pass draws its mask from that seed and its own index
    /// ([`super::ops::dropout`]), so a seed gives the same pass on any machine.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        dropout: Option<u64>,
    ) -> Result<Tensor> {
        self.forward_train(input_ids, attention_mask, dropout, None)
    }

    /// As [`Bert::forward_t`] for a training step: with a `sink`, the gradients of the word
    /// embeddings and of the attention-output and feed-forward layers go there (drain it into
    /// the step's `GradStore` after `backward`; see [`super::ops::GradSink`]).
    pub fn forward_train(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        dropout: Option<u64>,
        sink: Option<&std::sync::Arc<super::ops::GradSink>>,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let (b, s) = input_ids.dims2()?;
        if s > cfg.max_tokens() {
            candle_core::bail!(
                "sequence length {s} exceeds the {} positions of max_position_embeddings {}",
                cfg.max_tokens(),
                cfg.max_position_embeddings
            );
        }
        let h = cfg.hidden_size;
        let n = cfg.num_attention_heads;
        let d = cfg.head_dim();
        let (p_hidden, p_attn) = match dropout {
            Some(_) => (
                cfg.hidden_dropout_prob as f32,
                cfg.attention_probs_dropout_prob as f32,
            ),
            None => (0.0, 0.0),
        };
        let site = std::cell::Cell::new(0u64);
        let drop = |x: Tensor, p: f32| -> Result<Tensor> {
            match dropout {
                Some(seed) if p > 0.0 => {
                    // One mask per site: the pass's seed mixed with the site's number.
                    let k = site.get();
                    site.set(k + 1);
                    super::ops::dropout(&x, p, seed ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03))
                }
                _ => Ok(x),
            }
        };

        let words = super::ops::embedding_in(input_ids, &self.word_embeddings, sink)?;
        // Rows are padded at the end, so a token's position is its index (after MPNet's
        // offset); padding rows get other positions than the reference gives them, but they
        // are masked out of every attention and of the pooling.
        let pos = self
            .position_embeddings
            .narrow(0, cfg.first_position(), s)?;
        let x = words.broadcast_add(&pos)?;
        let x = if cfg.is_mpnet() {
            x
        } else {
            x.broadcast_add(&self.token_type_embeddings.narrow(0, 0, 1)?)?
        };
        let mut x = drop(self.emb_ln.forward(&x)?, p_hidden)?;

        // Additive mask [b, s]: 0 for tokens, the most negative f32 for padding (as HF).
        let mask = attention_mask.to_dtype(DType::F32)?;
        let mask_bias = ((1.0 - mask)? * f32::MIN as f64)?;
        let scale = 1.0 / (d as f64).sqrt();
        // MPNet: the relative-position bias [1, heads, s, s], pre-divided by the scale that
        // attention_softmax applies to the scores it is added to.
        let position_bias = match &self.relative_attention_bias {
            None => None,
            Some(table) => {
                let ids =
                    Tensor::from_vec(relative_buckets(s, table.dim(0)?), s * s, table.device())?;
                let bias = table
                    .embedding(&ids)?
                    .reshape((s, s, n))?
                    .permute((2, 0, 1))?
                    .unsqueeze(0)?;
                Some((bias / scale)?)
            }
        };
        // A training step without dropout: the layers as one op (backbone::stack).
        if let Some(sink) = sink.filter(|_| {
            p_hidden == 0.0
                && p_attn == 0.0
                && position_bias.is_none()
                && cfg.hidden_act == HiddenAct::Gelu
        }) {
            if let Some(y) = super::stack::encoder_layers(
                &x,
                &mask_bias,
                &self.layers,
                n,
                cfg.layer_norm_eps,
                sink,
            )? {
                return Ok(y);
            }
        }
        for l in &self.layers {
            let ctx = if p_attn == 0.0 && position_bias.is_none() {
                // Queries, keys and values in one product, attention in one op (backbone::ops).
                let cat = |f: fn(&Linear) -> Option<&Tensor>| -> Result<Option<Tensor>> {
                    let parts: Option<Vec<&Tensor>> =
                        [&l.query, &l.key, &l.value].into_iter().map(f).collect();
                    parts.map(|p| Tensor::cat(&p, 0)).transpose()
                };
                let w = cat(|l| Some(l.weight()))?.expect("three weights");
                let qkv = match cat(Linear::bias)? {
                    Some(bias) => super::ops::linear_wb(&x, &w, &bias)?,
                    None => x.broadcast_matmul(&w.t()?)?,
                };
                super::ops::attention(&qkv, &mask_bias, n)?
            } else {
                // Dropout on the attention probabilities, or MPNet's position bias on the
                // scores, needs them as tensors.
                let heads = |lin: &Linear| -> Result<Tensor> {
                    super::ops::linear(&x, lin)?
                        .reshape((b, s, n, d))?
                        .transpose(1, 2)?
                        .contiguous()
                };
                let (q, k, v) = (heads(&l.query)?, heads(&l.key)?, heads(&l.value)?);
                let scores = q.matmul(&k.t()?)?;
                let scores = match &position_bias {
                    Some(bias) => scores.broadcast_add(bias)?,
                    None => scores,
                };
                let probs = drop(
                    super::ops::attention_softmax(&scores, &mask_bias, scale)?,
                    p_attn,
                )?;
                probs
                    .matmul(&v)?
                    .transpose(1, 2)?
                    .contiguous()?
                    .reshape((b, s, h))?
            };
            let a = drop(super::ops::linear_in(&ctx, &l.attn_out, sink)?, p_hidden)?;
            x = l.attn_ln.forward(&(a + &x)?)?;
            let i = super::ops::linear_in(&x, &l.intermediate, sink)?;
            let i = activation(cfg.hidden_act, &i)?;
            let o = drop(super::ops::linear_in(&i, &l.output, sink)?, p_hidden)?;
            x = l.out_ln.forward(&(o + &x)?)?;
        }
        Ok(x)
    }
}
