//! The BERT module: equal to candle-transformers' stock BERT, differentiable in every weight,
//! fast inference path equal to the reference path, loader errors, save/load round trip.
mod common;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Optimizer, VarBuilder};
use proxal::backbone::{self, tiny, Backbone, BertConfig, EmbedOptions, Pooling};
use std::path::Path;

const WORDS: &[&str] = &[
    "the", "card", "was", "declined", "i", "need", "a", "new", "pin", "how", "do", "top", "up",
    "my", "account", "transfer", "failed", "why", "is", "there", "fee", "on", "exchange", "rate",
    "cash",
];

const TEXTS: &[&str] = &[
    "the card was declined",
    "i need a new pin",
    "how do i top up my account",
    "why is there a fee on my transfer",
    "exchange rate",
    "cash",
    "my transfer failed why",
    "how do i do a top up on the card i need",
    "",
    "zebra unknown words here",
];

fn tiny_dir() -> (tempfile::TempDir, BertConfig) {
    tiny_dir_of(&BertConfig::tiny(0))
}

fn tiny_dir_of(config: &BertConfig) -> (tempfile::TempDir, BertConfig) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny::write_model_dir(dir.path(), WORDS, config, 7).unwrap();
    (dir, cfg)
}

/// A tiny BERT and a tiny MPNet (MPNet's names, positions and relative-position bias).
fn tiny_dirs() -> Vec<(tempfile::TempDir, BertConfig)> {
    vec![tiny_dir(), tiny_dir_of(&BertConfig::tiny_mpnet(0))]
}

use common::max_abs_diff;

#[test]
fn matches_candle_transformers_bert() {
    let (dir, cfg) = tiny_dir();
    let bb = Backbone::load(dir.path(), &Device::Cpu, false).unwrap();
    let (ids, mask) = bb.tokenize(TEXTS, 64).unwrap();
    let ours = bb.model.forward(&ids, &mask).unwrap();

    let stock_cfg: candle_transformers::models::bert::Config =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(stock_cfg.hidden_size, cfg.hidden_size);
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[dir.path().join("model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )
        .unwrap()
    };
    let stock = candle_transformers::models::bert::BertModel::load(vb, &stock_cfg).unwrap();
    let theirs = stock
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();

    // Compare the rows the mask keeps (padding rows are don't-care in both).
    let m = mask
        .to_dtype(DType::F32)
        .unwrap()
        .unsqueeze(D::Minus1)
        .unwrap();
    let a = ours
        .broadcast_mul(&m)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = theirs
        .broadcast_mul(&m)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let d = max_abs_diff(&a, &b);
    assert!(d < 1e-5, "max |ours − candle-transformers| = {d}");
}

#[test]
fn fast_path_matches_reference_path() {
    // BERT and MPNet (positions after the padding id, the relative-position bias on every
    // score); short rows take the attention loops, rows of 48 tokens or more the packed kernel.
    let long: Vec<String> = (0..4)
        .map(|k| {
            (0..55 + 2 * k)
                .map(|i| WORDS[(i * 7 + k) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut texts: Vec<&str> = TEXTS.to_vec();
    texts.extend(long.iter().map(String::as_str));
    for (dir, cfg) in tiny_dirs() {
        let bb = Backbone::load(dir.path(), &Device::Cpu, false).unwrap();
        for (max_len, pooling, normalize) in [
            (8, Pooling::Mean, true),
            (8, Pooling::Cls, false),
            (60, Pooling::Mean, true),
            (60, Pooling::Cls, false),
        ] {
            let opts = EmbedOptions {
                batch: 3,
                max_len,
                pooling,
                normalize,
            };
            let e = bb.embedder(opts.clone()).unwrap();
            assert!(e.uses_fast_path(), "{:?}: no fast path", cfg.model_type);
            let fast = e.embed(&texts).unwrap();
            let slow = bb
                .embedder(opts)
                .unwrap()
                .without_fast_path()
                .embed(&texts)
                .unwrap();
            let d = max_abs_diff(&fast, &slow);
            assert!(
                d < 2e-5,
                "{:?} max_len={max_len} {pooling:?} normalize={normalize}: max diff {d}",
                cfg.model_type
            );
        }
    }
}

#[test]
fn embed_order_and_batching_do_not_change_rows() {
    let (dir, _) = tiny_dir();
    let bb = Backbone::load(dir.path(), &Device::Cpu, false).unwrap();
    let all = bb
        .embed(
            TEXTS,
            &EmbedOptions {
                batch: 4,
                ..Default::default()
            },
        )
        .unwrap();
    let dim = bb.dim();
    assert_eq!(all.len(), TEXTS.len() * dim);
    for (i, t) in TEXTS.iter().enumerate() {
        let one = bb.embed(&[t], &EmbedOptions::default()).unwrap();
        let d = max_abs_diff(&one, &all[i * dim..(i + 1) * dim]);
        assert!(d < 1e-5, "row {i}: {d}");
        let norm: f32 = one.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    // Same input, same bits.
    let again = bb
        .embed(
            TEXTS,
            &EmbedOptions {
                batch: 4,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(all, again);
}

#[test]
fn dynamic_padding_and_truncation_override_the_tokenizer_file() {
    let (dir, _) = tiny_dir();
    let bb = Backbone::load(dir.path(), &Device::Cpu, false).unwrap();
    // The file pads to 16 and truncates at 16; we pad to the longest and truncate at max_len.
    let (ids, _) = bb.tokenize(&["the card", "cash"], 128).unwrap();
    assert_eq!(ids.dims(), &[2, 4]);
    let long = "the card ".repeat(30);
    let (ids, mask) = bb.tokenize(&[long.as_str()], 40).unwrap();
    assert_eq!(ids.dims(), &[1, 40]);
    assert_eq!(mask.sum_all().unwrap().to_scalar::<u32>().unwrap(), 40);
    let row = ids.to_vec2::<u32>().unwrap().remove(0);
    assert_eq!(
        (row[0], row[39]),
        (2, 3),
        "[CLS] … [SEP] kept under truncation"
    );
}

#[test]
fn every_encoder_weight_gets_a_gradient_and_moves() {
    for (dir, cfg) in tiny_dirs() {
        every_weight_moves(dir.path(), &cfg);
    }
}

fn every_weight_moves(dir: &Path, cfg: &BertConfig) {
    let bb = Backbone::load(dir, &Device::Cpu, true).unwrap();
    let varmap = bb.varmap.as_ref().expect("trainable load has a VarMap");
    let named = bb.model.named_tensors();
    assert_eq!(varmap.all_vars().len(), named.len());
    // MPNet's relative-position bias is one of the trained weights.
    assert_eq!(
        named
            .iter()
            .any(|(n, _)| n == "encoder.relative_attention_bias.weight"),
        cfg.is_mpnet()
    );
    let before: Vec<Vec<f32>> = named
        .iter()
        .map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect();

    // A head on the pooled output, trained together with the encoder.
    let texts = &TEXTS[..8];
    let (ids, mask) = bb.tokenize(texts, 32).unwrap();
    let head = Tensor::randn(0f32, 1.0, (bb.dim(), 3), &Device::Cpu).unwrap();
    let hidden = bb.model.forward_t(&ids, &mask, None).unwrap();
    let pooled = backbone::pooling::pool(&hidden, &mask, Pooling::Mean).unwrap();
    let logits = pooled.matmul(&head).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 0, 1, 2, 0, 1], &Device::Cpu).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let grads = loss.backward().unwrap();
    for (name, t) in &named {
        let g = grads
            .get(t)
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let gmax = g
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(gmax > 0.0, "{name}: zero gradient");
    }
    let mut opt = candle_nn::AdamW::new_lr(varmap.all_vars(), 1e-3).unwrap();
    opt.step(&grads).unwrap();
    for ((name, t), b) in named.iter().zip(&before) {
        let after = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            max_abs_diff(&after, b) > 0.0,
            "{name}: unchanged after one AdamW step"
        );
    }
    // Dropout (seeded) also runs and differs from the pass without it.
    let a = bb
        .model
        .forward_t(&ids, &mask, Some(7))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = bb
        .model
        .forward_t(&ids, &mask, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(max_abs_diff(&a, &b) > 0.0);
    // Seeded: the same seed gives the same pass, another seed another one.
    let pass = |seed: u64| {
        bb.model
            .forward_t(&ids, &mask, Some(seed))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(pass(7), a);
    assert!(max_abs_diff(&pass(8), &a) > 0.0);
}

#[test]
fn save_and_load_round_trip() {
    for (dir, _) in tiny_dirs() {
        round_trip(dir.path());
    }
}

fn round_trip(dir: &Path) {
    let bb = Backbone::load(dir, &Device::Cpu, true).unwrap();
    // Move one weight so the checkpoint differs from the original.
    let vars = bb.varmap.as_ref().unwrap().all_vars();
    let v = &vars[0];
    v.set(&(v.as_tensor() + 0.5).unwrap()).unwrap();
    let out = tempfile::tempdir().unwrap();
    bb.save(out.path()).unwrap();
    let re = Backbone::load(out.path(), &Device::Cpu, false).unwrap();
    let a = bb.embed(TEXTS, &EmbedOptions::default()).unwrap();
    let b = re.embed(TEXTS, &EmbedOptions::default()).unwrap();
    assert_eq!(a, b);
    // The checkpoint keeps the architecture's own names.
    let names = |d: &Path| {
        let mut n: Vec<String> =
            candle_core::safetensors::load(d.join("model.safetensors"), &Device::Cpu)
                .unwrap()
                .into_keys()
                .collect();
        n.sort();
        n
    };
    assert_eq!(names(out.path()), names(dir));
    assert_ne!(
        re.id.weights_sha256,
        Backbone::load(dir, &Device::Cpu, false)
            .unwrap()
            .id
            .weights_sha256
    );
}

#[test]
fn loader_errors_are_one_line_and_name_the_problem() {
    let err = |p: &Path| {
        format!(
            "{:#}",
            Backbone::load(p, &Device::Cpu, false)
                .err()
                .expect("must fail")
        )
    };
    let missing = tempfile::tempdir().unwrap();
    let e = err(&missing.path().join("nope"));
    assert!(e.contains("does not exist"), "{e}");

    let (dir, _) = tiny_dir();
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let e = err(dir.path());
    assert!(
        e.contains("missing tokenizer.json") && !e.contains('\n'),
        "{e}"
    );

    let (dir, _) = tiny_dir();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    cfg["model_type"] = "roberta".into();
    cfg["architectures"] = serde_json::json!(["RobertaForMaskedLM"]);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let e = err(dir.path());
    assert!(
        e.contains("not a BERT or MPNet model")
            && e.contains("config.json")
            && e.contains("roberta"),
        "{e}"
    );
    // An MPNet config over BERT weights: the names do not match; the message names both files
    // and the first missing tensor (candle appends its backtrace when RUST_BACKTRACE is set).
    cfg["model_type"] = "mpnet".into();
    cfg["architectures"] = serde_json::json!(["MPNetForMaskedLM"]);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let e = err(dir.path());
    let first = e.lines().next().unwrap();
    assert!(
        first.contains("model.safetensors: weights do not match")
            && first.contains("config.json")
            && first.contains("cannot find tensor"),
        "{e}"
    );

    let (dir, _) = tiny_dir();
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    let e = err(dir.path());
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn packed_matmul_matches_candle_for_every_row_tail() {
    use proxal::numerics::gemm::PackedWeight;
    for (k, n) in [(64usize, 96usize), (48, 40)] {
        let w = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu).unwrap();
        let pw = PackedWeight::new(&w).unwrap();
        assert_eq!(pw.dims(), (k, n));
        for m in [1usize, 5, 11, 12, 13, 97, 200] {
            let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
            let want = a
                .matmul(&w)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let got = pw
                .matmul(&a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), m)
                .unwrap();
            let d = max_abs_diff(&want, &got);
            assert!(d < 1e-4, "k={k} n={n} m={m}: {d}");
        }
    }
}
