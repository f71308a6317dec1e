//! proxal's side of `make bench-gpu` (scripts/bench-gpu.sh; PyTorch's side is
//! scripts/bench-gpu-torch.py): the backbone on a device with random weights of a real model's
//! shape (speed does not depend on the weights' values), timed after a warm-up and a device
//! synchronisation:
//!
//! - embedding: rows/s at 16 and 128 tokens, batch 512, mean pooling, f32;
//! - fine-tuning: steps/s at batch 16 × 128 tokens, cross-entropy on a linear head, AdamW on
//!   every weight (`train::optim::Optimiser`: `candle_nn::AdamW` off the CPU).
//!
//! `bench_gpu [--device cuda:0] [--shape minilm|bert-base] [--reps N] [--steps N]
//! [--embed-batch 512]` prints one JSON object. `--device cpu --reps 1 --steps 1 --embed-batch 16`
//! is the smoke test that runs anywhere (tests/gpu.rs).
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use proxal::backbone::{pooling, Bert, BertConfig, Pooling};
use proxal::train::optim::{AdamWConfig, Optimiser, ParamGroup};
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn config(shape: &str) -> Result<BertConfig> {
    let (hidden, layers, heads, ffn) = match shape {
        "minilm" => (384, 6, 12, 1536),
        "bert-base" => (768, 12, 12, 3072),
        s => anyhow::bail!("--shape {s}: minilm or bert-base"),
    };
    Ok(serde_json::from_str(&format!(
        r#"{{"vocab_size": 30522, "hidden_size": {hidden}, "num_hidden_layers": {layers},
            "num_attention_heads": {heads}, "intermediate_size": {ffn},
            "max_position_embeddings": 512, "hidden_act": "gelu"}}"#
    ))?)
}

/// Token ids (random, away from the special tokens) and an all-ones mask, `[rows, len]`.
fn batch(rows: usize, len: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let ids: Vec<u32> = (0..rows * len)
        .map(|i| 1000 + (i as u32).wrapping_mul(2_654_435_761) % 29_000)
        .collect();
    Ok((
        Tensor::from_vec(ids, (rows, len), dev)?,
        Tensor::ones((rows, len), DType::U32, dev)?,
    ))
}

/// Calls of `f` per second over `n` calls, after one warm-up call; the device synchronised before
/// the clock starts and before it stops (GPU work is asynchronous).
fn per_second(dev: &Device, n: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    dev.synchronize()?;
    let t = Instant::now();
    for _ in 0..n {
        f()?;
    }
    dev.synchronize()?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

fn embed_rows_per_second(
    bert: &Bert,
    (rows, len): (usize, usize),
    reps: usize,
    dev: &Device,
) -> Result<f64> {
    let (ids, mask) = batch(rows, len, dev)?;
    let passes = per_second(dev, reps, || {
        let h = bert.forward(&ids, &mask)?;
        pooling::pool(&h, &mask, Pooling::Mean)?;
        Ok(())
    })?;
    Ok(passes * rows as f64)
}

fn finetune_steps_per_second(bert: &Bert, vm: &VarMap, steps: usize, dev: &Device) -> Result<f64> {
    let (ids, mask) = batch(16, 128, dev)?;
    let h = bert.hidden_size();
    let head = candle_core::Var::from_tensor(&Tensor::randn(0f32, 0.02, (4, h), dev)?)?;
    let y = Tensor::from_vec((0..16u32).map(|i| i % 4).collect(), 16, dev)?;
    let mut opt = Optimiser::new(
        vec![
            ParamGroup {
                vars: vm.all_vars(),
                lr: 5e-5,
                weight_decay: 0.01,
            },
            ParamGroup {
                vars: vec![head.clone()],
                lr: 2e-3,
                weight_decay: 0.0,
            },
        ],
        AdamWConfig::default(),
    )?;
    per_second(dev, steps, || {
        let hidden = bert.forward_t(&ids, &mask, None)?;
        let f = pooling::pool(&hidden, &mask, Pooling::Mean)?;
        let logits = f.matmul(&head.as_tensor().t()?)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        let grads = loss.backward()?;
        opt.step(&grads)?;
        Ok(())
    })
}

fn main() -> Result<()> {
    let spec = arg("--device").unwrap_or_else(|| "cuda:0".into());
    let shape = arg("--shape").unwrap_or_else(|| "minilm".into());
    let count = |name: &str, default: usize| -> Result<usize> {
        arg(name)
            .map_or(Ok(default), |v| v.parse())
            .with_context(|| format!("{name}: not a count"))
    };
    let (reps, steps, rows) = (
        count("--reps", 20)?,
        count("--steps", 20)?,
        count("--embed-batch", 512)?,
    );
    let dev = proxal::device::parse(&spec)?;
    let cfg = config(&shape)?;
    let vm = VarMap::new();
    let bert = Bert::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), &cfg)?;
    let e16 = embed_rows_per_second(&bert, (rows, 16), reps, &dev)?;
    let e128 = embed_rows_per_second(&bert, (rows, 128), reps, &dev)?;
    let ft = finetune_steps_per_second(&bert, &vm, steps, &dev)?;
    let out = serde_json::json!({
        "device": spec,
        "shape": shape,
        "dtype": "f32",
        "embed_batch": rows,
        "embed_rows_per_second": {"16": e16, "128": e128},
        "finetune_batch": [16, 128],
        "finetune_steps_per_second": ft,
        "reps": reps,
        "steps": steps,
    });
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
