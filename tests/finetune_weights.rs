//! `train::fine_tune`, the training entry point runs and projects use, on a tiny random BERT:
//! full fine-tuning and LP-FT each move every encoder tensor (embeddings, every LayerNorm,
//! Q/K/V, attention output, FFN intermediate and output, in every layer), the checkpoint holds
//! exactly the trained tensors, and the pretrained model directory is left as it was.
//!
//! Weight decay is off here, so a tensor moves only if it receives a gradient and its optimiser
//! step is applied. There is no frozen-backbone mode in `fine_tune` to check: a linear probe
//! (`Method::LinearProbe`, and the probe phase of LP-FT) is a logistic regression on cached
//! features that never loads the backbone.
mod common;
use candle_core::Device;
use proxal::backbone::{tiny, Backbone, BertConfig, EmbedOptions};
use proxal::train::{fine_tune, FineTuneOptions, TrainConfig};
use std::collections::BTreeMap;
use std::path::Path;

const WORDS: &[&str] = &[
    "card", "declined", "blocked", "pin", "code", "forgot", "top", "up", "money", "add", "my",
    "the", "is", "a", "was", "how",
];

/// 16 texts (fewer than 20: no validation split, so no early-stopping restore), 2 classes.
fn data() -> (Vec<String>, Vec<u32>) {
    let class_words = [["card", "declined", "blocked"], ["pin", "code", "forgot"]];
    let fillers = ["my", "the", "is", "a", "was", "how", "top", "up"];
    (0..16usize)
        .map(|i| {
            let c = i % 2;
            let w = class_words[c];
            (
                format!(
                    "{} {} {} {} {}",
                    fillers[i % 8],
                    w[i % 3],
                    fillers[(i / 2) % 8],
                    w[(i / 3 + 1) % 3],
                    fillers[(i * 3) % 8]
                ),
                c as u32,
            )
        })
        .unzip()
}

/// Every tensor of a BERT (or MPNet) encoder with `layers` layers, by its checkpoint name.
fn encoder_tensor_names(layers: usize, mpnet: bool) -> Vec<String> {
    let mut names: Vec<String> = [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
    ]
    .map(String::from)
    .to_vec();
    names.push(
        if mpnet {
            "encoder.relative_attention_bias.weight"
        } else {
            "embeddings.token_type_embeddings.weight"
        }
        .into(),
    );
    let parts = if mpnet {
        [
            "attention.attn.q",
            "attention.attn.k",
            "attention.attn.v",
            "attention.attn.o",
            "attention.LayerNorm",
        ]
    } else {
        [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
        ]
    };
    for i in 0..layers {
        for part in parts
            .iter()
            .chain(&["intermediate.dense", "output.dense", "output.LayerNorm"])
        {
            for p in ["weight", "bias"] {
                names.push(format!("encoder.layer.{i}.{part}.{p}"));
            }
        }
    }
    names.sort();
    names
}

fn tensors(bb: &Backbone) -> BTreeMap<String, Vec<f32>> {
    bb.model
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

fn checkpoint_tensors(dir: &Path) -> BTreeMap<String, Vec<f32>> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

use common::max_abs_diff;

#[test]
fn fine_tune_and_lp_ft_move_every_encoder_tensor() {
    // BERT, and MPNet (other names, its relative-position bias a trained weight too).
    for cfg in [BertConfig::tiny(0), BertConfig::tiny_mpnet(0)] {
        move_every_tensor(cfg);
    }
}

fn move_every_tensor(mut cfg: BertConfig) {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    cfg.max_position_embeddings = 32;
    let cfg = tiny::write_model_dir(&model, WORDS, &cfg, 5).unwrap();
    assert!(cfg.num_hidden_layers >= 2);
    let pretrained_sha = proxal::util::sha256_file(&model.join("model.safetensors")).unwrap();
    let bb = Backbone::load(&model, &Device::Cpu, false).unwrap();
    let before = tensors(&bb);
    let names = encoder_tensor_names(cfg.num_hidden_layers, cfg.is_mpnet());
    assert_eq!(
        before.keys().cloned().collect::<Vec<_>>(),
        names,
        "the backbone's tensors are not the BERT encoder's"
    );

    let (texts, labels) = data();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let opts = FineTuneOptions {
        hyper: TrainConfig {
            epochs: 1,
            batch_size: 4,
            weight_decay: 0.0,
            warmup_ratio: 0.0,
            max_len: 16,
            ..Default::default()
        },
        ..Default::default()
    };
    // LP-FT's probe: the frozen backbone's features of the same rows, made the way the feature
    // store makes them (mean pooling, L2-normalised).
    let x = bb
        .embed(
            &texts,
            &EmbedOptions {
                max_len: 16,
                ..Default::default()
            },
        )
        .unwrap();
    let probe = ndarray::Array2::from_shape_vec((texts.len(), bb.dim()), x).unwrap();

    for (mode, probe) in [("fine-tune", None), ("lp-ft", Some(probe.view()))] {
        let ft = fine_tune(&model, &texts, &labels, 2, probe, &opts)
            .unwrap_or_else(|e| panic!("{mode}: {e:#}"));
        assert_eq!(ft.steps, 4, "{mode}: 16 rows in batches of 4, 1 epoch");
        let after = tensors(&ft.backbone);
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>()
        );
        let unchanged: Vec<&String> = names
            .iter()
            .filter(|n| max_abs_diff(&before[*n], &after[*n]) == 0.0)
            .collect();
        assert!(
            unchanged.is_empty(),
            "{mode}: {} of {} encoder tensors did not move: {unchanged:?}",
            unchanged.len(),
            names.len()
        );
        // The checkpoint is the trained model, tensor for tensor.
        let ckpt = tmp.path().join(format!("ckpt-{mode}"));
        ft.save(&ckpt).unwrap();
        assert!(
            checkpoint_tensors(&ckpt) == after,
            "{mode}: the checkpoint's tensors are not the trained ones"
        );
        assert_eq!(ft.head.w.dim(), (2, bb.dim()));
    }
    assert_eq!(
        proxal::util::sha256_file(&model.join("model.safetensors")).unwrap(),
        pretrained_sha,
        "fine-tuning changed the pretrained model's file"
    );
}
