//! Full fine-tuning of backbone + linear head with candle autograd.
use crate::backbone::{pooling, Backbone, Pooling};
use crate::proxy::{LogReg, LogRegConfig, Proxy};
use crate::train::optim::{AdamWConfig, Optimiser, ParamGroup};
use crate::util;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use ndarray::{Array1, Array2, ArrayView2};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// A linear classification head on pooled, normalised sentence vectors: logits = x Wᵀ + b.
#[derive(Debug, Clone)]
pub struct Head {
    /// C × H.
    pub w: Array2<f32>,
    /// C.
    pub b: Array1<f32>,
}

impl Head {
    /// The head equivalent to a fitted logistic regression (which stores d × C raw-space weights).
    pub fn from_logreg(lr: &LogReg) -> Head {
        Head {
            w: lr.w.t().to_owned(),
            b: lr.b.clone(),
        }
    }
    pub fn n_classes(&self) -> usize {
        self.b.len()
    }
    pub fn logits(&self, x: ArrayView2<f32>) -> Array2<f32> {
        x.dot(&self.w.t()) + &self.b
    }
    /// Save as safetensors (`head.weight`, `head.bias`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let dev = Device::Cpu;
        let (c, h) = self.w.dim();
        let w = Tensor::from_vec(self.w.iter().cloned().collect::<Vec<f32>>(), (c, h), &dev)?;
        let b = Tensor::from_vec(self.b.to_vec(), c, &dev)?;
        let bytes = safetensors::serialize([("head.weight", &w), ("head.bias", &b)], None)
            .context("cannot serialise the head")?;
        util::atomic_write(path, &bytes)
    }
    pub fn load(path: &Path) -> Result<Head> {
        let t = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("{}: not a readable head checkpoint", path.display()))?;
        let w = t
            .get("head.weight")
            .with_context(|| format!("{}: no head.weight", path.display()))?;
        let b = t
            .get("head.bias")
            .with_context(|| format!("{}: no head.bias", path.display()))?;
        let (c, h) = w.dims2()?;
        Ok(Head {
            w: Array2::from_shape_vec((c, h), w.flatten_all()?.to_vec1::<f32>()?)?,
            b: Array1::from_vec(b.to_vec1::<f32>()?),
        })
    }
}

impl Proxy for Head {
    fn kind(&self) -> &'static str {
        "head"
    }
    fn dim(&self) -> usize {
        self.w.ncols()
    }
    fn n_classes(&self) -> usize {
        self.b.len()
    }
    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = self.logits(x);
        crate::numerics::linalg::softmax_rows(&mut z);
        z
    }
}

/// Fine-tuning hyper-parameters: the `[train]` table of a run config (used by standard, asvp
/// and fine-tuned evaluation models).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr_backbone: f64,
    /// Head rate of plain fine-tuning (a random head on unit-norm features needs large weights
    /// for confident logits; see experiments/results/tuning-ft-head-lr.md).
    pub lr_head: f64,
    /// Head rate of LP-FT, whose head starts from the fitted probe.
    pub lr_head_lpft: f64,
    pub weight_decay: f64,
    pub warmup_ratio: f64,
    pub max_len: usize,
    /// Fraction of the labelled set held out for early stopping (never the test set).
    pub val_fraction: f64,
    /// Epochs without validation improvement before stopping.
    pub patience: usize,
    /// Dropout while training, at the backbone config's probabilities (0.1 for MiniLM), with
    /// masks seeded by the run's seed and the step (`backbone::ops::dropout`). Off by default:
    /// on banking77's dev split it cost 1.0 ± 0.4 points at 1,000 labels over three seeds
    /// (`make tune-dropout`, experiments/results/tuning-dropout.md).
    pub dropout: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            batch_size: 16,
            lr_backbone: 5e-5,
            lr_head: 1e-1,
            lr_head_lpft: 2e-3,
            weight_decay: 0.01,
            warmup_ratio: 0.1,
            max_len: 64,
            val_fraction: 0.1,
            patience: 1,
            dropout: false,
        }
    }
}

/// Everything [`fine_tune`] needs besides the data: the hyper-parameters and how the head's
/// input vector is made (the same way the feature store's vectors are).
#[derive(Debug, Clone)]
pub struct FineTuneOptions {
    pub hyper: TrainConfig,
    pub pooling: Pooling,
    pub normalize: bool,
    pub seed: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Indices (into the texts) held out for validation instead of a seeded `val_fraction`
    /// share: alignment checks pass one fixed split so every candidate, and the linear probe
    /// they are compared with, is judged on the same rows that none of them trained on. The
    /// rows then only score the finished model (every epoch runs; no early stopping on them).
    pub validation: Option<Vec<usize>>,
}

impl Default for FineTuneOptions {
    fn default() -> Self {
        FineTuneOptions {
            hyper: TrainConfig::default(),
            pooling: Pooling::Mean,
            normalize: true,
            seed: 0,
            progress: false,
            validation: None,
        }
    }
}

/// The result of fine-tuning: the trained backbone (weights in its `VarMap`) and head.
pub struct FineTuned {
    pub backbone: Backbone,
    pub head: Head,
    pub steps: usize,
    /// Rows put forward and backward through the backbone by the steps run (Σ batch sizes): the
    /// row-epochs actually fine-tuned (early stopping may run fewer than the configured epochs).
    pub trained_rows: usize,
    pub epochs: usize,
    /// Accuracy on the held-out part of the labelled set at the kept epoch (None: no split).
    pub val_accuracy: Option<f64>,
    /// Whether each validation row (in the order of the split) was predicted right at the kept
    /// epoch: paired comparisons with other models on the same rows need it.
    pub val_correct: Vec<bool>,
    pub train_seconds: f64,
    pub steps_per_second: f64,
}

impl FineTuned {
    /// Write the checkpoint: a model directory (`config.json`, `tokenizer.json`,
    /// `model.safetensors`) the backbone loader reads, plus `head.safetensors`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.backbone.save(dir)?;
        self.head.save(&dir.join("head.safetensors"))
    }
}

/// Pooled (and optionally normalised) sentence vectors for a batch, with gradients; with
/// dropout seeded by `dropout` when given (training steps, when the config asks for it).
fn features(
    bb: &Backbone,
    texts: &[&str],
    opts: &FineTuneOptions,
    dropout: Option<u64>,
    sink: Option<&std::sync::Arc<crate::backbone::ops::GradSink>>,
) -> Result<Tensor> {
    let (ids, mask) = bb.tokenize(texts, opts.hyper.max_len)?;
    let hidden = bb.model.forward_train(&ids, &mask, dropout, sink)?;
    let pooled = pooling::pool(&hidden, &mask, opts.pooling)?;
    Ok(if opts.normalize {
        pooling::l2_normalize(&pooled)?
    } else {
        pooled
    })
}

/// Batches for one epoch: shuffle, then sort each window of [`BUCKET_BATCHES`] batches by token
/// length before cutting it into batches, and shuffle the batch order. Rows of similar length share
/// a batch, so dynamic padding wastes little (banking77: ~37 padded tokens per row with plain
/// shuffling), while every row is still seen once per epoch in a seeded random order.
pub fn length_bucketed_batches(
    idx: &mut [usize],
    lens: &[usize],
    batch_size: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let bs = batch_size.max(1);
    idx.shuffle(rng);
    let mut batches: Vec<Vec<usize>> = Vec::with_capacity(idx.len().div_ceil(bs));
    for window in idx.chunks_mut(bs * BUCKET_BATCHES) {
        // Stable sort: ties keep the shuffled order.
        window.sort_by_key(|&i| lens[i]);
        batches.extend(window.chunks(bs).map(<[usize]>::to_vec));
    }
    batches.shuffle(rng);
    batches
}

/// Batches per length-sorting window in [`length_bucketed_batches`].
const BUCKET_BATCHES: usize = 32;

fn lr_at(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        peak * (step + 1) as f64 / warmup as f64
    } else {
        let rest = (total - warmup).max(1) as f64;
        peak * (1.0 - (step - warmup) as f64 / rest).max(0.0)
    }
}

/// Fine-tune `backbone_dir`'s model with a linear head on `(texts, labels)`.
/// `probe`: the frozen backbone's cached features of the same rows (one row per text): the head
/// is first fitted on them by logistic regression — on the training part of the split only, so
/// the validation rows stay unseen — and fine-tuning starts from it (LP-FT). `None`: a small
/// random head (plain fine-tuning).
pub fn fine_tune(
    backbone_dir: &Path,
    texts: &[&str],
    labels: &[u32],
    n_classes: usize,
    probe: Option<ArrayView2<f32>>,
    opts: &FineTuneOptions,
) -> Result<FineTuned> {
    // The steps recycle their large buffers (numerics::scratch); freed when this returns.
    let _scratch = crate::numerics::scratch::ReleaseOnDrop;
    if texts.len() != labels.len() {
        bail!(
            "fine-tune: {} texts but {} labels",
            texts.len(),
            labels.len()
        );
    }
    if texts.is_empty() {
        bail!("fine-tune: no labelled rows");
    }
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= n_classes) {
        bail!("fine-tune: label {bad} out of range for {n_classes} classes");
    }
    let device = crate::device::current()?;
    let lr_head = if probe.is_some() {
        opts.hyper.lr_head_lpft
    } else {
        opts.hyper.lr_head
    };
    let bb = Backbone::load(backbone_dir, &device, true)?;
    let h = bb.dim();
    let mut rng = util::rng(opts.seed);

    // Validation split carved from the labelled rows.
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.shuffle(&mut rng);
    let (val_idx, mut train_idx) = match &opts.validation {
        Some(val) => {
            if let Some(&bad) = val.iter().find(|&&i| i >= texts.len()) {
                bail!("fine-tune: validation row {bad} out of range");
            }
            let held: std::collections::HashSet<usize> = val.iter().copied().collect();
            order.retain(|i| !held.contains(i));
            (val.clone(), order)
        }
        None => {
            let n_val = if texts.len() >= 20 {
                ((texts.len() as f64) * opts.hyper.val_fraction).round() as usize
            } else {
                0
            };
            let train = order.split_off(n_val);
            (order, train)
        }
    };
    if train_idx.is_empty() {
        bail!("fine-tune: every labelled row is held out for validation");
    }

    let (w0, b0) = match probe {
        Some(x) => {
            if x.dim() != (texts.len(), h) {
                bail!(
                    "fine-tune: probe features are {:?}, expected ({}, {h})",
                    x.dim(),
                    texts.len()
                );
            }
            let xt = x.select(ndarray::Axis(0), &train_idx);
            let yt: Vec<u32> = train_idx.iter().map(|&i| labels[i]).collect();
            let hd = Head::from_logreg(&LogReg::fit(
                &LogRegConfig::default(),
                xt.view(),
                &yt,
                n_classes,
                None,
            )?);
            (hd.w, hd.b)
        }
        None => {
            let w = Array2::from_shape_fn((n_classes, h), |_| {
                use rand::Rng;
                rng.random_range(-0.02f32..0.02)
            });
            (w, Array1::zeros(n_classes))
        }
    };
    let w = Var::from_vec(
        w0.iter().cloned().collect::<Vec<f32>>(),
        (n_classes, h),
        &device,
    )?;
    let b = Var::from_vec(b0.to_vec(), n_classes, &device)?;
    let bb_vars = bb
        .varmap
        .as_ref()
        .context("backbone not trainable")?
        .all_vars();
    // One AdamW (fused on the CPU), two groups: the backbone (small rate, weight decay) and the
    // head.
    let mut opt = Optimiser::new(
        vec![
            ParamGroup {
                vars: bb_vars.clone(),
                lr: opts.hyper.lr_backbone,
                weight_decay: opts.hyper.weight_decay,
            },
            ParamGroup {
                vars: vec![w.clone(), b.clone()],
                lr: lr_head,
                weight_decay: 0.0,
            },
        ],
        AdamWConfig::default(),
    )?;

    let steps_per_epoch = train_idx.len().div_ceil(opts.hyper.batch_size.max(1));
    let total = steps_per_epoch * opts.hyper.epochs.max(1);
    let warmup = ((total as f64) * opts.hyper.warmup_ratio).round() as usize;
    let pb = if opts.progress {
        indicatif::ProgressBar::new(total as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "  fine-tune {bar:30} {pos}/{len} steps {per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };

    let val_acc = |w: &Var, b: &Var| -> Result<Vec<bool>> {
        let mut right = Vec::with_capacity(val_idx.len());
        for chunk in val_idx.chunks(64) {
            let t: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let f = features(&bb, &t, opts, None, None)?;
            let logits = f
                .matmul(&w.as_tensor().t()?)?
                .broadcast_add(b.as_tensor())?;
            let pred = logits.argmax(1)?.to_vec1::<u32>()?;
            right.extend(chunk.iter().zip(pred).map(|(&i, p)| labels[i] == p));
        }
        Ok(right)
    };
    let snapshot = |vars: &[Var]| -> Result<Vec<Tensor>> {
        Ok(vars
            .iter()
            .map(|v| v.as_tensor().copy())
            .collect::<candle_core::Result<_>>()?)
    };
    let all_vars: Vec<Var> = bb_vars
        .iter()
        .cloned()
        .chain([w.clone(), b.clone()])
        .collect();

    // Parameter gradients the fused ops write directly (backbone::ops::GradSink).
    let sink = std::sync::Arc::new(crate::backbone::ops::GradSink::default());
    let start = Instant::now();
    let mut step = 0usize;
    let mut trained_rows = 0usize;
    let mut best: Option<(f64, Vec<Tensor>, usize, Vec<bool>)> = None;
    let mut since_best = 0usize;
    let mut epochs_run = 0usize;
    let lens: Vec<usize> = bb
        .encode(texts, opts.hyper.max_len)?
        .iter()
        .map(|e| e.get_ids().len())
        .collect();
    for epoch in 0..opts.hyper.epochs.max(1) {
        for batch in length_bucketed_batches(&mut train_idx, &lens, opts.hyper.batch_size, &mut rng)
        {
            let batch = &batch[..];
            let t: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
            let y: Vec<u32> = batch.iter().map(|&i| labels[i]).collect();
            // A seed per step of this fine-tune, from the run's seed (masks never repeat).
            let seed = opts
                .hyper
                .dropout
                .then(|| (opts.seed ^ 0x5EED_D80F_0000_0000).wrapping_add((step as u64) << 20));
            let f = features(&bb, &t, opts, seed, Some(&sink))?;
            let logits = f
                .matmul(&w.as_tensor().t()?)?
                .broadcast_add(b.as_tensor())?;
            let target = Tensor::from_vec(y, batch.len(), &device)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &target)?;
            let lv = loss.to_scalar::<f32>()?;
            if !lv.is_finite() {
                bail!("fine-tune: loss became {lv} at step {step}; lower the learning rates");
            }
            let mut grads = loss.backward()?;
            opt.set_learning_rate(0, lr_at(step, total, warmup, opts.hyper.lr_backbone));
            opt.set_learning_rate(1, lr_at(step, total, warmup, lr_head));
            opt.step_with(&mut grads, &sink)?;
            step += 1;
            trained_rows += batch.len();
            pb.set_message(format!("epoch {} loss {lv:.3}", epoch + 1));
            pb.inc(1);
        }
        epochs_run = epoch + 1;
        // With validation rows given, they only score the finished model: choosing the epoch on
        // the rows that judge it would flatter it against whatever it is compared with.
        if !val_idx.is_empty() && opts.validation.is_none() {
            let correct = val_acc(&w, &b)?;
            let acc = super::share_correct(&correct);
            if best.as_ref().is_none_or(|(a, ..)| acc > *a) {
                best = Some((acc, snapshot(&all_vars)?, epochs_run, correct));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best > opts.hyper.patience {
                    break;
                }
            }
        }
    }
    pb.finish_and_clear();
    let train_seconds = start.elapsed().as_secs_f64();
    let mut val_accuracy = None;
    let mut val_correct = Vec::new();
    let mut kept_epochs = epochs_run;
    if opts.validation.is_some() && !val_idx.is_empty() {
        let correct = val_acc(&w, &b)?;
        let acc = super::share_correct(&correct);
        best = Some((acc, Vec::new(), epochs_run, correct));
    }
    if let Some((acc, weights, ep, correct)) = best {
        for (v, t) in all_vars.iter().zip(weights) {
            v.set(&t)?;
        }
        val_accuracy = Some(acc);
        val_correct = correct;
        kept_epochs = ep;
    }
    let (c, hh) = w.as_tensor().dims2()?;
    let head = Head {
        w: Array2::from_shape_vec((c, hh), w.as_tensor().flatten_all()?.to_vec1::<f32>()?)?,
        b: Array1::from_vec(b.as_tensor().to_dtype(DType::F32)?.to_vec1::<f32>()?),
    };
    Ok(FineTuned {
        backbone: bb,
        head,
        steps: step,
        trained_rows,
        epochs: kept_epochs,
        val_accuracy,
        val_correct,
        train_seconds,
        steps_per_second: step as f64 / train_seconds.max(1e-9),
    })
}
