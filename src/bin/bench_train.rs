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
use proxal::util::{load_average, utc_now};
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
    n_classes: usize,
    /// Minor page faults in the timed steps' forward, backward and update (all steps).
    faults: [u64; 3],
    /// Every batch as fed to the model (warm-up first): token ids, attention mask, labels, for
    /// PyTorch to run the same steps (scripts/bench-train-torch.py).
    fed: Vec<serde_json::Value>,
    /// With PROXAL_STACK_PHASES=1: the encoder stack's wall time by phase over the timed steps
    /// (`backbone::stack::phases`), (phase, seconds, calls).
    phases: Vec<(&'static str, f64, u64)>,
}

/// Time `batches[1..]` (batch 0 is the warm-up step) of real training steps: forward, backward,
/// the fused AdamW update and, when `compare`, `candle_nn::AdamW` on copies of the weights.
#[allow(clippy::too_many_arguments)]
fn run_case(
    bb: &Backbone,
    name: &str,
    texts: &[&str],
    labels: &[u32],
    n_classes: usize,
    batches: &[Vec<usize>],
    max_len: usize,
    compare: bool,
) -> Result<Case> {
    let steps = batches.len().saturating_sub(1);
    if steps == 0 {
        anyhow::bail!("{name}: need a warm-up batch and at least one timed batch");
    }
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
    // Minor page faults (first touches of fresh memory) in the timed steps' forward, backward
    // and update.
    let mut faults = [0u64; 3];
    let mut fed = Vec::new();
    let mut last_grads: Option<GradStore> = None;
    // As fine_tune: the fused ops write parameter gradients here (backbone::ops::GradSink).
    let sink = std::sync::Arc::new(ops::GradSink::default());
    // As fine_tune: the steps' recycled buffers are freed when the case ends (the composed-op
    // comparison afterwards allocates as it would alone).
    let _scratch = proxal::numerics::scratch::ReleaseOnDrop;
    for (s, batch) in batches.iter().enumerate() {
        let bt: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
        let ys: Vec<u32> = batch.iter().map(|&i| labels[i]).collect();
        let y = Tensor::from_vec(ys.clone(), batch.len(), &dev)?;
        // Tokenised outside the timing, as PyTorch gets the ids ready-made.
        let (ids, mask) = bb.tokenize(&bt, max_len)?;
        let f0 = minor_faults();
        let t0 = Instant::now();
        let hidden = bb.model.forward_train(&ids, &mask, None, Some(&sink))?;
        let f = pooling::l2_normalize(&pooling::pool(&hidden, &mask, Pooling::Mean)?)?;
        let logits = f
            .matmul(&w.as_tensor().t()?)?
            .broadcast_add(b.as_tensor())?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        let f1 = minor_faults();
        let grads = loss.backward()?;
        let tb = Instant::now();
        let fb = minor_faults();
        if compare && s + 1 == batches.len() {
            // The last step's gradients, candle's and the sink's, for candle_nn::AdamW below
            // (untimed; a copy, so the step below reads the sink's gradients alone).
            let mut all = GradStore::default();
            for v in &vars {
                if let Some(g) = grads.get(v.as_tensor()) {
                    all.insert(v.as_tensor(), g.clone());
                }
            }
            sink.copy_into(&mut all)?;
            last_grads = Some(all);
        }
        let f2 = minor_faults();
        let t2 = Instant::now();
        // As fine_tune: the sink's gradients read where they are.
        opt.step_with(&grads, Some(&*sink))?;
        let t3 = Instant::now();
        let f3 = minor_faults();
        fed.push(serde_json::json!({
            "ids": ids.to_vec2::<u32>()?,
            "mask": mask.to_vec2::<u32>()?,
            "labels": ys,
        }));
        if s == 0 {
            // The warm-up step's phases are not counted.
            proxal::backbone::stack::phases::take();
        }
        if s > 0 {
            // step 0 is warm-up
            fwd += (t1 - t0).as_secs_f64();
            bwd += (tb - t1).as_secs_f64();
            upd += (t3 - t2).as_secs_f64();
            toks += ids.dims2()?.1;
            for (acc, (a, b)) in faults.iter_mut().zip([(f0, f1), (f1, fb), (f2, f3)]) {
                *acc += b.saturating_sub(a);
            }
        }
    }
    // PROXAL_STACK_PHASES=1: where the timed steps' encoder stack spent its time.
    let phases = proxal::backbone::stack::phases::take();
    // candle_nn::AdamW after the timed steps (interleaved, its copies of every weight and state
    // would crowd the caches of the steps being timed): as many updates, the last gradients.
    if let (true, Some(grads)) = (compare, last_grads) {
        let mut shadow_grads = GradStore::default();
        for (v, sv) in vars.iter().zip(&shadow) {
            if let Some(g) = grads.get(v.as_tensor()) {
                shadow_grads.insert(sv.as_tensor(), g.clone());
            }
        }
        drop(grads);
        old.step(&shadow_grads)?; // warm-up
        let t4 = Instant::now();
        for _ in 0..steps {
            old.step(&shadow_grads)?;
        }
        upd_old = t4.elapsed().as_secs_f64();
    }
    Ok(Case {
        name: name.into(),
        tokens_per_row: toks as f64 / steps as f64,
        steps,
        forward: fwd,
        backward: bwd,
        update: upd,
        update_candle: upd_old,
        n_classes,
        faults,
        fed,
        phases,
    })
}

/// The cases' encoder-stack phases as markdown (BENCH_PHASES_OUT): ms per timed step, with
/// each case's whole forward and backward beside them.
fn phases_md(cases: &[Case], conditions: &str) -> String {
    let mut md = String::from(
        "# Where a fine-tuning step's time goes (encoder stack, by phase)\n\n\
         Made by `make bench-train-phases` (`bench_train` with PROXAL_STACK_PHASES=1): the \
         wall time of each phase of `backbone::stack`'s forward and backward, summed over the \
         timed steps and divided by their number (ms per step), batch 16, MiniLM-L6. Rows marked \
         (linear) are parts of the linear phases, all layers' together: packing an operand, the \
         packed-kernel product, the bias gradient, the stacked query/key/value gradient handed \
         to the sink. What the stack does not cover (embeddings, pooling, loss, candle's autograd \
         outside the stack) is the difference between a case's forward or backward and the sum \
         of its other rows. These timings are a profile, not a record of speed: \
         `bench-train.md` is.\n\n",
    );
    md += conditions;
    md += "\n\n";
    for c in cases.iter().filter(|c| !c.phases.is_empty()) {
        let per = |secs: f64| 1e3 * secs / c.steps.max(1) as f64;
        md += &format!(
            "## {} ({:.1} tokens/row, {} timed steps)\n\nforward {:.1} ms, backward {:.1} ms per step. ",
            c.name,
            c.tokens_per_row,
            c.steps,
            per(c.forward),
            per(c.backward)
        );
        let gemm: f64 = c
            .phases
            .iter()
            .filter(|p| p.0.ends_with(" gemm"))
            .map(|p| p.1)
            .sum();
        md += &format!(
            "The linear layers' packed-kernel products: {:.1} ms, {:.0}% of the step's forward and \
             backward (attention's products are in its rows).\n\n",
            per(gemm),
            100.0 * gemm / (c.forward + c.backward).max(1e-12)
        );
        md += "| phase | ms per step | calls |\n|---|---|---|\n";
        // The phases first, then the parts of the linear ones (recorded with two leading spaces).
        for part in [false, true] {
            for (phase, secs, calls) in &c.phases {
                if phase.starts_with("  ") == part {
                    let name = if part {
                        format!("&nbsp;&nbsp;(linear) {}", phase.trim_start())
                    } else {
                        phase.to_string()
                    };
                    md += &format!("| {name} | {:.1} | {calls} |\n", per(*secs));
                }
            }
        }
        md += "\n";
    }
    md
}

/// This process's minor page faults so far (field 10 of /proc/self/stat; 0 where there is none).
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The command name (field 2) may hold spaces: count from its closing parenthesis.
            let rest = &s[s.rfind(')')? + 2..];
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
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

/// banking77's texts for the length-bucketed case and one epoch of `fine_tune`'s batches of them.
struct Bucketed {
    texts: Vec<String>,
    labels: Vec<u32>,
    n_classes: usize,
    batches: Vec<Vec<usize>>,
    /// The same texts in shuffled batches without length bucketing (the baseline for the
    /// bucketing gain).
    plain: Vec<Vec<usize>>,
}

/// When and where the numbers were made: UTC date, load averages, threads.
struct Conditions {
    date: String,
    load_start: String,
    threads: usize,
    rayon_threads: usize,
}

fn env_or_unset(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| "unset".into())
}

impl Conditions {
    fn now() -> Self {
        Conditions {
            date: utc_now(),
            load_start: load_average(),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            rayon_threads: rayon::current_num_threads(),
        }
    }
    /// One markdown line: date, threads, load averages at the start and now.
    fn line(&self) -> String {
        format!(
            "Run on {} (UTC), {}; {} cores, {} rayon threads (CANDLE_NUM_THREADS={}, RAYON_NUM_THREADS={}); \
             load average (1, 5, 15 min) at the start {}, at the end {}.",
            self.date,
            proxal::util::cpu_description(),
            self.threads,
            self.rayon_threads,
            env_or_unset("CANDLE_NUM_THREADS"),
            env_or_unset("RAYON_NUM_THREADS"),
            self.load_start,
            load_average()
        )
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "date": self.date,
            "cpu": proxal::util::cpu_description(),
            "threads": self.threads,
            "rayon_threads": self.rayon_threads,
            "candle_num_threads": env_or_unset("CANDLE_NUM_THREADS"),
            "rayon_num_threads": env_or_unset("RAYON_NUM_THREADS"),
            "load_average_start": self.load_start,
            "load_average_end": load_average(),
        })
    }
}

fn main() -> Result<()> {
    let home = Home::from_env();
    let cond = Conditions::now();
    // Results go to the repository's experiments/results (the make target runs in the repository
    // root), not under PROXAL_HOME, which only says where the datasets are.
    let out = std::path::PathBuf::from(
        std::env::var("BENCH_OUT").unwrap_or_else(|_| "experiments/results".into()),
    );
    std::fs::create_dir_all(&out)?;
    let steps: usize = std::env::var("BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    // Length-bucketed steps vary in length, so more of them are timed.
    let bucketed_steps: usize = std::env::var("BENCH_BUCKETED_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3 * steps);
    let compare = std::env::var("BENCH_CANDLE_ADAMW").as_deref() != Ok("0");
    let bb = Backbone::load(&home.default_model_dir(), &Device::Cpu, true)?;
    let load = |name: &str| {
        Dataset::load(&home, name).with_context(|| {
            format!(
                "import {name} first (proxal data import-builtin {name}; make bench-train does)"
            )
        })
    };
    // Padding: what one epoch of fine-tuning on 1,000 random pool texts feeds the model, with
    // plain shuffled batches and with fine_tune's length-bucketed batches (counted, not timed:
    // a step's time grows with the padded tokens, see the rows above).
    let mut pad_md = String::from("# Padding in fine-tuning batches\n\nMade by `make bench-train` (alone: `BENCH_TRAIN_PADDING_ONLY=1 cargo run --bin bench_train`). Padding in one epoch of fine-tuning on 1,000 random pool texts (batch 16, max_len 64, seed 0): \
           tokens per row fed to the model with plain shuffled batches and with `fine_tune`'s \
           length-bucketed batches (counted, not timed):\n\n\
           | texts | real tokens/row | plain shuffle | length-bucketed | padded tokens saved |\n|---|---|---|---|---|\n");
    let mut pad_json = Vec::new();
    // banking77's 1,000 texts and their length-bucketed epoch, timed below as fine_tune runs it.
    let mut bucketed_case: Option<Bucketed> = None;
    for name in ["banking77", "clinc150"] {
        let ds = load(name)?;
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
        if name == "banking77" {
            let labels: Vec<u32> = rows.iter().map(|&r| ds.labels[r].unwrap()).collect();
            let owned: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
            bucketed_case = Some(Bucketed {
                texts: owned,
                labels,
                n_classes: ds.n_classes(),
                batches: bucketed,
                plain,
            });
        }
    }
    pad_md += &format!("\n{}\n", cond.line());
    std::fs::write(out.join("bench-train-padding.md"), &pad_md)?;
    std::fs::write(
        out.join("bench-train-padding.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "conditions": cond.json(),
            "cases": pad_json,
        }))?,
    )?;
    print!("{pad_md}");
    if std::env::var("BENCH_TRAIN_PADDING_ONLY").as_deref() == Ok("1") {
        return Ok(());
    }

    // Consecutive windows of 16 texts, max_len 128: the step's cost at the texts' own lengths.
    let windows = |n_texts: usize, steps: usize| -> Vec<Vec<usize>> {
        (0..steps + 1)
            .map(|s| {
                let lo = (s * 16) % (n_texts - 16);
                (lo..lo + 16).collect()
            })
            .collect()
    };
    // BENCH_CASES (comma-separated: banking77, clinc150, bucketed, plain, long) runs a subset, for
    // profiling; the committed results come from all five.
    let only = std::env::var("BENCH_CASES").ok();
    let wanted = |case: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|c| c == case))
    };
    let mut cases = Vec::new();
    for name in ["banking77", "clinc150"].into_iter().filter(|n| wanted(n)) {
        let ds = load(name)?;
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
            &windows(texts.len(), steps),
            128,
            compare,
        )?);
        eprintln!("{name}: done");
    }
    // 1,000 random banking77 pool texts, max_len 64: length-bucketed as fine_tune trains, and in
    // random batches of 16 each padded to its longest, what a step costs without the bucketing
    // (PyTorch runs both; the merge reports bucketed proxal against unbucketed PyTorch as the
    // whole gain).
    if let Some(Bucketed {
        texts,
        labels,
        n_classes,
        batches,
        plain,
    }) = &bucketed_case
    {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for (case, name, batches) in [
            (
                "bucketed",
                "banking77, length-bucketed (as fine_tune)",
                batches,
            ),
            ("plain", "banking77, random batches (no bucketing)", plain),
        ] {
            if !wanted(case) {
                continue;
            }
            let take = (bucketed_steps + 1).min(batches.len());
            cases.push(run_case(
                &bb,
                name,
                &refs,
                labels,
                *n_classes,
                &batches[..take],
                64,
                false,
            )?);
            eprintln!("{name}: done");
        }
    }
    // 128-token rows: a long text, truncated at 128.
    let long =
        "the quick brown fox jumps over the lazy dog while my card payment was declined again "
            .repeat(12);
    let texts: Vec<&str> = (0..64).map(|_| long.as_str()).collect();
    let labels: Vec<u32> = (0..64).map(|i| i % 4).collect();
    if wanted("long") {
        cases.push(run_case(
            &bb,
            "128-token",
            &texts,
            &labels,
            4,
            &windows(texts.len(), steps.min(5)),
            128,
            compare,
        )?);
    }

    let threads = cond.threads;
    let mut md = format!(
        "# Fine-tuning speed (MiniLM-L6, batch 16, AdamW on every weight, CPU, {threads} threads)\n\n\
         Made by `make bench-train` (`cargo run --bin bench_train`), one warm-up step then {steps} timed steps \
         per case ({bucketed_steps} for the two on 1,000 random texts, whose batches vary in length).\n\n\
         - banking77, clinc150: consecutive windows of 16 of the first 2,000 pool texts, max_len 128, padded to the longest in the batch.\n\
         - banking77, length-bucketed (as fine_tune): one epoch's batches of 1,000 random pool texts \
         (seed 0) as `fine_tune` makes them (`length_bucketed_batches`, max_len 64), the first ones in its \
         shuffled order; the candle_nn::AdamW comparison is not run for it.\n\
         - banking77, random batches (no bucketing): the same 1,000 texts in shuffled batches of 16, each \
         padded to its longest (max_len 64): the step without bucketing.\n\
         - 128-token: one long text repeated, truncated at 128 tokens.\n\n\
         Update: the fused AdamW training uses (`proxal::train::FusedAdamW`); `candle_nn::AdamW` is timed \
         after each case's timed steps, as many updates on copies of the weights with the last step's gradients \
         (not counted in steps/s).\n\n\
         CONDITIONS\n\n\
         Page faults: the process's minor page faults (first touches of freshly mapped memory, from \
         /proc/self/stat) per timed step, in the forward / backward / update.\n\n\
         | texts | tokens/row (padded) | steps/s | forward s | backward s | update s | candle_nn::AdamW update s | update speed-up | page faults per step (fwd / bwd / upd) |\n|---|---|---|---|---|---|---|---|---|\n"
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
        let pf = c.faults.map(|f| f as f64 / c.steps as f64);
        md += &format!(
            "| {} | {:.1} | {:.2} | {:.3} | {:.3} | {:.3} | {old} | {:.0} / {:.0} / {:.0} |\n",
            c.name,
            c.tokens_per_row,
            1.0 / per,
            c.forward / c.steps as f64,
            c.backward / c.steps as f64,
            c.update / c.steps as f64,
            pf[0],
            pf[1],
            pf[2],
        );
        json.push(serde_json::json!({
            "texts": c.name, "batch": 16, "tokens_per_row": c.tokens_per_row, "steps": c.steps,
            "steps_per_second": 1.0 / per,
            "forward_seconds_per_step": c.forward / c.steps as f64,
            "backward_seconds_per_step": c.backward / c.steps as f64,
            "update_seconds_per_step": c.update / c.steps as f64,
            "candle_adamw_update_seconds_per_step": c.update_candle / c.steps as f64,
            "page_faults_per_step": {"forward": pf[0], "backward": pf[1], "update": pf[2]},
            "update_speedup": if c.update_candle > 0.0 { Some(c.update_candle / c.update.max(1e-12)) } else { None },
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
    // The batches, for PyTorch to run the same steps (scripts/bench-train.sh).
    if let Ok(path) = std::env::var("BENCH_BATCHES") {
        let cases: Vec<_> = cases
            .iter()
            .map(|c| serde_json::json!({"texts": c.name, "n_classes": c.n_classes, "batches": c.fed}))
            .collect();
        std::fs::write(path, serde_json::to_string(&cases)?)?;
    }
    if let Ok(path) = std::env::var("BENCH_PHASES_OUT") {
        std::fs::write(path, phases_md(&cases, &cond.line()))?;
    }
    let md = md.replace("CONDITIONS", &cond.line());
    print!("{md}");
    std::fs::write(out.join("bench-train.md"), md)?;
    std::fs::write(
        out.join("bench-train.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "conditions": cond.json(),
            "threads": threads,
            "candle_num_threads": env_or_unset("CANDLE_NUM_THREADS"),
            "cases": json,
            "fused_ops": ops_json,
        }))?,
    )?;
    Ok(())
}
