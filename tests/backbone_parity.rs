//! The real all-MiniLM-L6-v2 against sentence-transformers' vectors for 21 real texts
//! (tests/fixtures/parity-minilm.json, made by scripts/make-parity-fixture.py), and
//! paraphrase-MiniLM-L3-v2 converted from its ONNX export against onnxruntime on that export
//! (tests/fixtures/parity-minilm-l3.json, scripts/make-l3-parity-fixture.py), and
//! all-mpnet-base-v2 against sentence-transformers (tests/fixtures/parity-mpnet.json, the same
//! script as MiniLM's with `mpnet`; reference path only): every coordinate
//! within 1e-5 of the reference and cosine ≥ 0.9999 per text, on the fast inference path and on
//! the differentiable reference path.
//! Skips (with a message) only when a model asset is missing; `make test` fetches them first and
//! fails the test if one is missing.
mod common;

use candle_core::Device;
use proxal::backbone::{Backbone, EmbedOptions};

/// Largest allowed |ours − sentence-transformers| per coordinate of a unit-norm vector.
const MAX_ABS_DIFF: f32 = 1e-5;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

/// A parity fixture and the model it was made with: (model, fixture, texts, reference vectors).
/// The model's weights must be the fixture's (`weights_sha256`) when the fixture names them.
fn fixture(
    dir: &std::path::Path,
    json: &str,
) -> (Backbone, serde_json::Value, Vec<String>, Vec<Vec<f32>>) {
    let fixture: serde_json::Value = serde_json::from_str(json).unwrap();
    let texts: Vec<String> = serde_json::from_value(fixture["texts"].clone()).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(fixture["vectors"].clone()).unwrap();
    let bb = Backbone::load(dir, &Device::Cpu, false).unwrap();
    if let Some(sha) = fixture["weights_sha256"].as_str() {
        assert_eq!(
            bb.id.weights_sha256,
            sha,
            "{} is not the model the fixture was made with",
            dir.display()
        );
    }
    (bb, fixture, texts, want)
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = common::minilm("minilm_matches_sentence_transformers") else {
        return;
    };
    let (bb, _, texts, want) = fixture(&dir, include_str!("fixtures/parity-minilm.json"));
    let opts = EmbedOptions {
        batch: 8,
        max_len: 128,
        ..Default::default()
    };
    compare(&bb, &texts, &want, opts);
}

/// The fast path recycles its layers' buffers from batch to batch (`numerics::scratch`), so a
/// batch starts from buffers an earlier, larger batch left full of its values. Each text embedded
/// among others, in batches that reuse those buffers, must give exactly the vector it gets alone
/// in a fresh call: any element a layer read before writing would show here.
#[test]
fn minilm_rows_do_not_depend_on_recycled_buffers() {
    let Some(dir) = common::minilm("minilm_rows_do_not_depend_on_recycled_buffers") else {
        return;
    };
    let (bb, _, texts, _) = fixture(&dir, include_str!("fixtures/parity-minilm.json"));
    // Longest first within each call: later batches are shorter than the buffers they reuse.
    let long: Vec<String> = texts.iter().map(|t| format!("{t} {t} {t} {t}")).collect();
    let all: Vec<&str> = long.iter().chain(&texts).map(String::as_str).collect();
    let opts = EmbedOptions {
        batch: 4,
        max_len: 128,
        ..Default::default()
    };
    let together = bb.embedder(opts.clone()).unwrap().embed(&all).unwrap();
    let dim = together.len() / all.len();
    // Bit for bit on the packed kernel, whose rows do not depend on the other rows of a product;
    // candle's matmul (the fallback elsewhere) makes no such promise.
    let tol = if proxal::numerics::gemm::avx512() {
        0.0
    } else {
        1e-6
    };
    for (i, t) in all.iter().enumerate() {
        let alone = bb.embedder(opts.clone()).unwrap().embed(&[t]).unwrap();
        let worst = together[i * dim..(i + 1) * dim]
            .iter()
            .zip(&alone)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= tol,
            "text {i} differs by {worst} when embedded with others"
        );
    }
}

/// Embed `texts` on the fast and the reference path and hold each vector to `want`.
fn compare(bb: &Backbone, texts: &[String], want: &[Vec<f32>], opts: EmbedOptions) {
    compare_max(bb, texts, want, opts, MAX_ABS_DIFF)
}

/// As [`compare`] with another bound per coordinate.
fn compare_max(
    bb: &Backbone,
    texts: &[String],
    want: &[Vec<f32>],
    opts: EmbedOptions,
    max_abs_diff: f32,
) {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let fast = bb.embedder(opts.clone()).unwrap().embed(&refs).unwrap();
    let slow = bb
        .embedder(opts)
        .unwrap()
        .without_fast_path()
        .embed(&refs)
        .unwrap();
    let dim = bb.dim();
    assert_eq!(dim, want[0].len());
    for (name, got) in [("fast", &fast), ("reference", &slow)] {
        let mut min = f64::MAX;
        let mut max_abs = 0f32;
        for (i, w) in want.iter().enumerate() {
            let g = &got[i * dim..(i + 1) * dim];
            let c = cosine(g, w);
            assert!(
                c >= 0.9999,
                "{name} path, text {i} ({:?}): cosine {c}",
                texts[i]
            );
            min = min.min(c);
            for (j, (a, b)) in g.iter().zip(w).enumerate() {
                let d = (a - b).abs();
                assert!(
                    d <= max_abs_diff,
                    "{name} path, text {i} ({:?}), coordinate {j}: {a} vs {b} (|Δ| {d:.2e} > {max_abs_diff:.0e})",
                    texts[i]
                );
                max_abs = max_abs.max(d);
            }
        }
        eprintln!(
            "{name} path: min cosine {min:.9}, max |Δ| {max_abs:.2e} over {} texts",
            want.len()
        );
    }
}

#[test]
fn minilm_l3_from_onnx_matches_onnxruntime() {
    let Some(dir) = common::minilm_l3("minilm_l3_from_onnx_matches_onnxruntime") else {
        return;
    };
    let (bb, fixture, texts, want) = fixture(&dir, include_str!("fixtures/parity-minilm-l3.json"));
    let ids: Vec<Vec<u32>> = serde_json::from_value(fixture["ids"].clone()).unwrap();
    assert_eq!((bb.id.num_layers, bb.dim()), (3, 384));
    // The ids onnxruntime was fed are the ones proxal's tokenizer gives.
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got: Vec<Vec<u32>> = bb
        .encode(&refs, 128)
        .unwrap()
        .iter()
        .map(|e| e.get_ids().to_vec())
        .collect();
    assert_eq!(got, ids);
    // The export's own pooling: mean over tokens, not normalised.
    let opts = EmbedOptions {
        batch: 8,
        max_len: 128,
        normalize: false,
        ..Default::default()
    };
    compare(&bb, &texts, &want, opts);
}

#[test]
fn mpnet_matches_sentence_transformers() {
    let Some(dir) = common::mpnet("mpnet_matches_sentence_transformers") else {
        return;
    };
    let (bb, fixture, texts, want) = fixture(&dir, include_str!("fixtures/parity-mpnet.json"));
    assert_eq!((bb.id.num_layers, bb.dim()), (12, 768));
    // The relative-position buckets equal the model's own for every distance below 128.
    let rb = &fixture["relative_buckets"];
    let dist: Vec<i64> = serde_json::from_value(rb["query_minus_key"].clone()).unwrap();
    let want_b: Vec<u32> = serde_json::from_value(rb["bucket"].clone()).unwrap();
    let table = proxal::backbone::bert::relative_buckets(128, 32);
    for (n, w) in dist.iter().zip(&want_b) {
        // query − key = n: the pair (query n, key 0) or (query 0, key −n).
        let (q, k) = if *n >= 0 { (*n, 0) } else { (0, -*n) };
        assert_eq!(table[(q * 128 + k) as usize], *w, "distance {n}");
    }
    let opts = EmbedOptions {
        batch: 8,
        max_len: 128,
        ..Default::default()
    };
    compare_max(&bb, &texts, &want, opts, MPNET_MAX_ABS_DIFF);
}

/// MPNet's bound per coordinate of a unit-norm 768-dim vector: 12 layers of 768 wide (the issue
/// asks ≤ 1e-4; measured: see the test's output).
const MPNET_MAX_ABS_DIFF: f32 = 1e-4;
