//! `make bench-train`: fine-tuning speed of MiniLM on CPU — steps/s at batch 16 on real texts
//! (banking77, clinc150: short, dynamically padded) and on 128-token texts, with the time of a
//! step split into forward, backward and optimiser update. Writes
//! experiments/results/bench-train.{md,json}.
use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use proxal::backbone::{pooling, Backbone, Pooling};
use proxal::data::{Dataset, Split};
use proxal::home::Home;
use proxal::train::{AdamWConfig, FusedAdamW, ParamGroup};
use std::time::Instant;

struct Case {
    name: String,
    tokens_per_row: f64,
    steps: usize,
    forward: f64,
    backward: f64,
    /// The fused AdamW the training uses.
    update: f64,
    /// `candle_nn::AdamW` on copies of the same weights with the same gradients (for the ratio).
    update_candle: f64,
}

fn run_case(
    bb: &Backbone,
    name: &str,
    texts: &[&str],
    labels: &[u32],
    n_classes: usize,
    steps: usize,
    max_len: usize,
) -> Result<Case> {
    let dev = Device::Cpu;
    let h = bb.dim();
    let w = Var::from_tensor(&(Tensor::randn(0f32, 0.02, (n_classes, h), &dev)?))?;
    let b = Var::zeros(n_classes, candle_core::DType::F32, &dev)?;
    let bb_vars = bb.varmap.as_ref().context("trainable")?.all_vars();
    // As `fine_tune`: backbone with weight decay, head at a higher rate without.
    let mut opt = FusedAdamW::new(
        vec![
            ParamGroup {
                vars: bb_vars.clone(),
                lr: 5e-5,
                weight_decay: 0.01,
            },
            ParamGroup {
                vars: vec![w.clone(), b.clone()],
                lr: 2e-3,
                weight_decay: 0.0,
            },
        ],
        AdamWConfig::default(),
    )?;
    // candle_nn::AdamW over copies of every weight, fed the same gradients: the old update's
    // cost measured in the same run, without touching the weights being trained.
    let vars: Vec<Var> = bb_vars.into_iter().chain([w.clone(), b.clone()]).collect();
    let shadow: Vec<Var> = vars
        .iter()
        .map(|v| Var::from_tensor(&v.as_tensor().copy()?))
        .collect::<candle_core::Result<_>>()?;
    let mut old = AdamW::new(
        shadow.clone(),
        ParamsAdamW {
            lr: 5e-5,
            weight_decay: 0.01,
            ..Default::default()
        },
    )?;
    let (mut fwd, mut bwd, mut upd, mut upd_old, mut toks) = (0.0, 0.0, 0.0, 0.0, 0usize);
    for s in 0..steps + 1 {
        let lo = (s * 16) % (texts.len() - 16);
        let bt = &texts[lo..lo + 16];
        let y = Tensor::from_vec(labels[lo..lo + 16].to_vec(), 16, &dev)?;
        let t0 = Instant::now();
        let (ids, mask) = bb.tokenize(bt, max_len)?;
        let hidden = bb.model.forward_t(&ids, &mask, false)?;
        let f = pooling::l2_normalize(&pooling::pool(&hidden, &mask, Pooling::Mean)?)?;
        let logits = f
            .matmul(&w.as_tensor().t()?)?
            .broadcast_add(b.as_tensor())?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads)?;
        let t3 = Instant::now();
        let mut shadow_grads = GradStore::default();
        for (v, sv) in vars.iter().zip(&shadow) {
            if let Some(g) = grads.get(v.as_tensor()) {
                shadow_grads.insert(sv.as_tensor(), g.clone());
            }
        }
        drop(grads);
        let t4 = Instant::now();
        old.step(&shadow_grads)?;
        let t5 = Instant::now();
        if s > 0 {
            // step 0 is warm-up
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            upd += (t3 - t2).as_secs_f64();
            upd_old += (t5 - t4).as_secs_f64();
            toks += ids.dims2()?.1;
        }
    }
    Ok(Case {
        name: name.into(),
        tokens_per_row: toks as f64 / steps as f64,
        steps,
        forward: fwd,
        backward: bwd,
        update: upd,
        update_candle: upd_old,
    })
}

fn main() -> Result<()> {
    let home = Home::from_env();
    let steps: usize = std::env::var("BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let bb = Backbone::load(&home.default_model_dir(), &Device::Cpu, true)?;
    let mut cases = Vec::new();
    for name in ["banking77", "clinc150"] {
        let ds = Dataset::load(&home, name)
            .with_context(|| format!("import {name} first (proxal data import-builtin {name})"))?;
        let rows = ds.rows_of(Split::Pool);
        let texts: Vec<&str> = rows
            .iter()
            .take(2000)
            .map(|&r| ds.texts[r].as_str())
            .collect();
        let labels: Vec<u32> = rows
            .iter()
            .take(2000)
            .map(|&r| ds.labels[r].unwrap())
            .collect();
        cases.push(run_case(
            &bb,
            name,
            &texts,
            &labels,
            ds.n_classes(),
            steps,
            128,
        )?);
        eprintln!("{name}: done");
    }
    // 128-token rows: a long text, truncated at 128.
    let long =
        "the quick brown fox jumps over the lazy dog while my card payment was declined again "
            .repeat(12);
    let texts: Vec<&str> = (0..64).map(|_| long.as_str()).collect();
    let labels: Vec<u32> = (0..64).map(|i| i % 4).collect();
    cases.push(run_case(
        &bb,
        "128-token",
        &texts,
        &labels,
        4,
        steps.min(5),
        128,
    )?);

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut md = format!(
        "# Fine-tuning speed (MiniLM-L6, batch 16, AdamW on every weight, CPU, {threads} threads)\n\n\
         Made by `make bench-train` (`cargo run --bin bench_train`), {steps} timed steps after one warm-up step.\n\n\
         Update: the fused AdamW training uses (`proxal::train::FusedAdamW`); `candle_nn::AdamW` is timed \
         in the same steps on copies of the weights with the same gradients (not counted in steps/s).\n\n\
         | texts | tokens/row (padded) | steps/s | forward s | backward s | update s | candle_nn::AdamW update s | update speed-up |\n|---|---|---|---|---|---|---|---|\n"
    );
    let mut json = Vec::new();
    for c in &cases {
        let per = (c.forward + c.backward + c.update) / c.steps as f64;
        md += &format!(
            "| {} | {:.1} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1}× |\n",
            c.name,
            c.tokens_per_row,
            1.0 / per,
            c.forward / c.steps as f64,
            c.backward / c.steps as f64,
            c.update / c.steps as f64,
            c.update_candle / c.steps as f64,
            c.update_candle / c.update.max(1e-12)
        );
        json.push(serde_json::json!({
            "texts": c.name, "batch": 16, "tokens_per_row": c.tokens_per_row, "steps": c.steps,
            "steps_per_second": 1.0 / per,
            "forward_seconds_per_step": c.forward / c.steps as f64,
            "backward_seconds_per_step": c.backward / c.steps as f64,
            "update_seconds_per_step": c.update / c.steps as f64,
            "candle_adamw_update_seconds_per_step": c.update_candle / c.steps as f64,
        }));
    }
    print!("{md}");
    let out = home.root().join("experiments/results");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("bench-train.md"), md)?;
    std::fs::write(
        out.join("bench-train.json"),
        serde_json::to_string_pretty(&serde_json::json!({"threads": threads, "cases": json}))?,
    )?;
    Ok(())
}
