//! `make bench-train`: fine-tuning speed of MiniLM on CPU — steps/s at batch 16 on real texts
//! (banking77, clinc150: short, dynamically padded) and on 128-token texts, with the time of a
//! step split into forward, backward and optimiser update. Writes
//! experiments/results/bench-train.{md,json}.
use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use proxal::backbone::{ops, pooling, Backbone, Pooling};
use proxal::data::{Dataset, Split};
use proxal::home::Home;
use proxal::train::{length_bucketed_batches, AdamWConfig, FusedAdamW, ParamGroup};
use rand::seq::SliceRandom;
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
    let compare = std::env::var("BENCH_CANDLE_ADAMW").as_deref() != Ok("0");
    let shadow: Vec<Var> = vars
        .iter()
        .filter(|_| compare)
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

/// Seconds for forward + backward of Σ f(x) ⊙ r, best of `reps`.
fn time_fb(
    reps: usize,
    vars: &[Var],
    f: &dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) -> Result<f64> {
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t0 = Instant::now();
        let y = f(&ts)?;
        let g = y.sum_all()?.backward()?;
        drop(g);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// The layer norms, softmaxes and GELUs of one MiniLM training step (13, 6, 6) at batch `b`
/// and `s` tokens: (composed candle ops, fused ops) seconds for forward + backward.
fn ops_case(b: usize, s: usize, reps: usize) -> Result<(f64, f64)> {
    let dev = Device::Cpu;
    let (h, heads, inter) = (384, 12, 1536);
    let v = |shape: &[usize], shift: f64| -> Result<Var> {
        Ok(Var::from_tensor(
            &(Tensor::randn(0f32, 1.0, shape, &dev)? + shift)?,
        )?)
    };
    let ln = [v(&[b, s, h], 0.5)?, v(&[h], 1.0)?, v(&[h], 0.0)?];
    let sm = [v(&[b, heads, s, s], 0.0)?];
    let ge = [v(&[b, s, inter], 0.0)?];
    let mut fused = 0.0;
    let mut composed = 0.0;
    for _ in 0..2 {
        composed += 13.0
            * time_fb(reps, &ln, &|t| {
                ops::layer_norm_composed(&t[0], &t[1], &t[2], 1e-12)
            })?;
        fused += 13.0 * time_fb(reps, &ln, &|t| ops::layer_norm(&t[0], &t[1], &t[2], 1e-12))?;
        composed += 6.0 * time_fb(reps, &sm, &|t| ops::softmax_last_composed(&t[0]))?;
        fused += 6.0 * time_fb(reps, &sm, &|t| ops::softmax_last(&t[0]))?;
        composed += 6.0 * time_fb(reps, &ge, &|t| t[0].gelu_erf())?;
        fused += 6.0 * time_fb(reps, &ge, &|t| ops::gelu_erf(&t[0]))?;
    }
    Ok((composed / 2.0, fused / 2.0))
}

fn main() -> Result<()> {
    let home = Home::from_env();
    let steps: usize = std::env::var("BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let bb = Backbone::load(&home.default_model_dir(), &Device::Cpu, true)?;
    // Padding: what one epoch of fine-tuning on 1,000 random pool texts feeds the model, with
    // plain shuffled batches and with fine_tune's length-bucketed batches (counted, not timed:
    // a step's time grows with the padded tokens, see the rows above).
    let mut pad_md = String::from("# Padding in fine-tuning batches\n\nMade by `make bench-train` (alone: `BENCH_TRAIN_PADDING_ONLY=1 cargo run --bin bench_train`). Padding in one epoch of fine-tuning on 1,000 random pool texts (batch 16, max_len 64, seed 0): \
           tokens per row fed to the model with plain shuffled batches and with `fine_tune`'s \
           length-bucketed batches (counted, not timed):\n\n\
           | texts | real tokens/row | plain shuffle | length-bucketed | padded tokens saved |\n|---|---|---|---|---|\n");
    let mut pad_json = Vec::new();
    for name in ["banking77", "clinc150"] {
        let ds = Dataset::load(&home, name)?;
        let mut rows = ds.rows_of(Split::Pool);
        let mut rng = proxal::util::rng(0);
        rows.shuffle(&mut rng);
        rows.truncate(1000);
        let texts: Vec<&str> = rows.iter().map(|&r| ds.texts[r].as_str()).collect();
        let lens: Vec<usize> = bb
            .encode(&texts, 64)?
            .iter()
            .map(|e| e.get_ids().len())
            .collect();
        let fed = |batches: &[Vec<usize>]| -> f64 {
            let t: usize = batches
                .iter()
                .map(|b| b.len() * b.iter().map(|&i| lens[i]).max().unwrap_or(0))
                .sum();
            t as f64 / lens.len() as f64
        };
        let mut idx: Vec<usize> = (0..lens.len()).collect();
        idx.shuffle(&mut rng);
        let plain: Vec<Vec<usize>> = idx.chunks(16).map(<[usize]>::to_vec).collect();
        let bucketed = length_bucketed_batches(&mut idx, &lens, 16, &mut rng);
        let real = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
        let (p, b) = (fed(&plain), fed(&bucketed));
        pad_md += &format!(
            "| {name} | {real:.1} | {p:.1} | {b:.1} | {:.0}% |\n",
            100.0 * (p - b) / p
        );
        pad_json.push(serde_json::json!({
            "texts": name, "rows": lens.len(), "real_tokens_per_row": real,
            "plain_tokens_per_row": p, "bucketed_tokens_per_row": b,
        }));
    }

    let out = home.root().join("experiments/results");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("bench-train-padding.md"), &pad_md)?;
    std::fs::write(
        out.join("bench-train-padding.json"),
        serde_json::to_string_pretty(&pad_json)?,
    )?;
    print!("{pad_md}");
    if std::env::var("BENCH_TRAIN_PADDING_ONLY").as_deref() == Ok("1") {
        return Ok(());
    }

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
        let old = if c.update_candle > 0.0 {
            format!(
                "{:.3} | {:.1}×",
                c.update_candle / c.steps as f64,
                c.update_candle / c.update.max(1e-12)
            )
        } else {
            "not run | –".to_string()
        };
        md += &format!(
            "| {} | {:.1} | {:.2} | {:.3} | {:.3} | {:.3} | {old} |\n",
            c.name,
            c.tokens_per_row,
            1.0 / per,
            c.forward / c.steps as f64,
            c.backward / c.steps as f64,
            c.update / c.steps as f64,
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
    // Op-level A/B in one process: robust to the load on a shared machine, unlike whole steps.
    md += "\nLayer norm + softmax + GELU of one training step (13 + 6 + 6 calls), forward + backward, \
           as composed candle ops (before) and as proxal's fused ops (`backbone::ops`), best of 5:\n\n\
           | batch × tokens | composed s | fused s | speed-up |\n|---|---|---|---|\n";
    let mut ops_json = Vec::new();
    for s in [37, 128] {
        let (composed, fused) = ops_case(16, s, 5)?;
        md += &format!(
            "| 16 × {s} | {composed:.3} | {fused:.3} | {:.1}× |\n",
            composed / fused.max(1e-12)
        );
        ops_json.push(serde_json::json!({
            "batch": 16, "tokens": s, "composed_seconds": composed, "fused_seconds": fused,
        }));
    }
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "unset".into());
    md += &format!(
        "\nEnvironment: CANDLE_NUM_THREADS={}, RAYON_NUM_THREADS={}; load average at the end: {}.\n",
        env("CANDLE_NUM_THREADS"),
        env("RAYON_NUM_THREADS"),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    );
    print!("{md}");
    let out = home.root().join("experiments/results");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("bench-train.md"), md)?;
    std::fs::write(
        out.join("bench-train.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "threads": threads,
            "candle_num_threads": env("CANDLE_NUM_THREADS"),
            "cases": json,
            "fused_ops": ops_json,
        }))?,
    )?;
    Ok(())
}
