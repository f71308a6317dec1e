//! Tiny random BERT model directories for tests (this crate's and its users'): a word-level
//! tokenizer over a given vocabulary, a small config and seeded random weights, written in the
//! same layout as a real checkpoint so every loader path is exercised.
use super::{Bert, BertConfig, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::util;
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::Rng;
use std::collections::HashMap;
use std::path::Path;

/// Special tokens first: `[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3, then `words` (lowercased,
/// de-duplicated, in order).
pub fn vocab(words: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for w in words {
        let w = w.to_lowercase();
        if !v.contains(&w) {
            v.push(w);
        }
    }
    v
}

/// tokenizer.json for a word-level tokenizer (lowercase, whitespace/punctuation split,
/// `[CLS] … [SEP]`), with fixed padding and truncation like the real MiniLM file has, which
/// the loader must override.
pub fn tokenizer_json(vocab: &[String]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), serde_json::json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = vocab[..4]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 16, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": added,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": map, "unk_token": "[UNK]"}
    })
    .to_string()
}

/// Seeded random weights for `config` (normal(0, 0.02); layer-norm gains near 1).
pub fn random_weights(config: &BertConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let template = Bert::new(VarBuilder::zeros(DType::F32, &Device::Cpu), config)?;
    let mut rng = util::rng(seed);
    let mut out = HashMap::new();
    for (name, t) in template.named_tensors() {
        let n = t.elem_count();
        let is_ln = name.contains("LayerNorm");
        let data: Vec<f32> = (0..n)
            .map(|_| {
                // Sum of uniforms: cheap, near-normal, deterministic across platforms.
                let z: f32 = (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.732;
                if is_ln && name.ends_with("weight") {
                    1.0 + 0.1 * z
                } else {
                    0.02 * z * if is_ln { 1.0 } else { 2.5 }
                }
            })
            .collect();
        out.insert(name, Tensor::from_vec(data, t.shape(), &Device::Cpu)?);
    }
    Ok(out)
}

/// Write a complete tiny model directory: config.json, tokenizer.json, model.safetensors.
/// `config.vocab_size` is set to the vocabulary's size.
pub fn write_model_dir(
    dir: &Path,
    words: &[&str],
    config: &BertConfig,
    seed: u64,
) -> Result<BertConfig> {
    let v = vocab(words);
    let mut cfg = config.clone();
    cfg.vocab_size = v.len();
    util::atomic_write(
        &dir.join(CONFIG_FILE),
        serde_json::to_string_pretty(&cfg)?.as_bytes(),
    )?;
    util::atomic_write(&dir.join(TOKENIZER_FILE), tokenizer_json(&v).as_bytes())?;
    let w = random_weights(&cfg, seed)?;
    candle_core::safetensors::save(&w, dir.join(WEIGHTS_FILE))?;
    Ok(cfg)
}

/// Tests: a trainable BERT (hidden 64, 4 heads; every weight a variable of the returned
/// `VarMap`) of the given vocabulary, depth, feed-forward width and positions, holding
/// [`random_weights`] of `seed`.
#[cfg(test)]
pub(crate) fn trainable(
    (vocab, layers, ffn, positions): (usize, usize, usize, usize),
    seed: u64,
) -> Result<(candle_nn::VarMap, Bert)> {
    let config: BertConfig = serde_json::from_str(&format!(
        r#"{{"vocab_size": {vocab}, "hidden_size": 64, "num_hidden_layers": {layers},
            "num_attention_heads": 4, "intermediate_size": {ffn},
            "max_position_embeddings": {positions}}}"#
    ))?;
    let vm = candle_nn::VarMap::new();
    let bert = Bert::new(
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        &config,
    )?;
    let weights = random_weights(&config, seed)?;
    for (name, var) in vm.data().lock().expect("varmap lock").iter() {
        var.set(&weights[name])?;
    }
    Ok((vm, bert))
}

/// Tests: a batch of `b` rows of `s` random token ids (4..vocab) and its mask, row i padded after
/// `s − shrink · i` tokens (ragged).
#[cfg(test)]
pub(crate) fn ragged_batch(
    rng: &mut rand_chacha::ChaCha8Rng,
    (b, s, vocab, shrink): (usize, usize, u32, usize),
) -> candle_core::Result<(Tensor, Tensor)> {
    let ids: Vec<u32> = (0..b * s).map(|_| rng.random_range(4..vocab)).collect();
    let mask: Vec<u32> = (0..b * s)
        .map(|i| ((i % s) < s - shrink * (i / s)) as u32)
        .collect();
    Ok((
        Tensor::from_vec(ids, (b, s), &Device::Cpu)?,
        Tensor::from_vec(mask, (b, s), &Device::Cpu)?,
    ))
}
