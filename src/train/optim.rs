//! A fused AdamW for CPU fine-tuning.
//!
//! `candle_nn::AdamW` updates each variable with about a dozen whole-tensor candle ops (each one
//! a pass over memory and a fresh allocation): on MiniLM's 22.7M weights that is over a second a
//! step. [`FusedAdamW`] does the same maths in one pass per variable over plain `f32` slices,
//! split into chunks over the rayon pool, and writes the new weights straight into the `Var`'s
//! storage (through a candle in-place op, so no tensor is allocated and nothing is copied back).
//! The first and second moments live in the optimiser as `Vec<f32>`. A training step's weight
//! gradients are read where the fused ops wrote them, in the step's
//! [`GradSink`] ([`FusedAdamW::step_with`]): nothing gradient-sized is allocated, moved or
//! zeroed between the backward and the update; candle's `GradStore` holds the rest (the head's).
//!
//! The update is torch.optim.AdamW's (decoupled weight decay, bias-corrected moments), for a
//! parameter θ with gradient g at its t-th update:
//!
//! ```text
//! m ← β₁ m + (1 − β₁) g        v ← β₂ v + (1 − β₂) g²
//! θ ← θ (1 − lr λ) − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
//! ```
//!
//! Variables come in groups, each with its own learning rate and weight decay (backbone lr ≪ head
//! lr, no decay on the head), and [`FusedAdamW::set_learning_rate`] changes one group's rate
//! (warmup / decay schedules). As in torch, t counts the updates a variable actually received: a
//! variable with no gradient in a step is left alone, moments included.
use crate::backbone::ops::GradSink;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Result, Storage, Tensor, Var};
use rayon::prelude::*;
use std::cell::RefCell;

/// Elements per rayon task: large enough that scheduling costs nothing, small enough that the
/// big embedding matrix spreads over every thread.
const CHUNK: usize = 1 << 15;

/// AdamW's hyper-parameters shared by every group (torch's defaults).
#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// A set of variables trained with one learning rate and weight decay.
#[derive(Debug, Clone)]
pub struct ParamGroup {
    pub vars: Vec<Var>,
    pub lr: f64,
    pub weight_decay: f64,
}

struct State {
    var: Var,
    m: Vec<f32>,
    v: Vec<f32>,
    /// Updates this variable has received.
    t: u32,
}

struct Group {
    states: Vec<State>,
    lr: f64,
    weight_decay: f64,
}

/// AdamW over groups of `f32` CPU variables, one fused pass per variable per step.
pub struct FusedAdamW {
    groups: Vec<Group>,
    config: AdamWConfig,
}

/// The per-step constants of one variable's update, as `f32`.
#[derive(Debug, Clone, Copy)]
struct Coeffs {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    scale_m: f32,
    scale_v: f32,
    decay: f32,
    lr: f32,
    eps: f32,
}

impl Coeffs {
    fn new(c: &AdamWConfig, lr: f64, weight_decay: f64, t: u32) -> Self {
        let t = t as i32;
        Coeffs {
            beta1: c.beta1 as f32,
            one_minus_beta1: (1.0 - c.beta1) as f32,
            beta2: c.beta2 as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
            scale_m: (1.0 / (1.0 - c.beta1.powi(t))) as f32,
            scale_v: (1.0 / (1.0 - c.beta2.powi(t))) as f32,
            decay: (1.0 - lr * weight_decay) as f32,
            lr: lr as f32,
            eps: c.eps as f32,
        }
    }
}

/// The update over one chunk: every slice has the same length.
#[inline]
fn update_chunk(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &Coeffs) {
    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let mi = *m * k.beta1 + g * k.one_minus_beta1;
        let vi = *v * k.beta2 + (g * g) * k.one_minus_beta2;
        *m = mi;
        *v = vi;
        let m_hat = mi * k.scale_m;
        let v_hat = vi * k.scale_v;
        *w = *w * k.decay - (m_hat / (v_hat.sqrt() + k.eps)) * k.lr;
    }
}

/// The update of a whole variable, parallel over chunks.
fn update(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &Coeffs) {
    if w.len() <= CHUNK {
        update_chunk(w, g, m, v, k);
        return;
    }
    w.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((w, g), m), v)| update_chunk(w, g, m, v, k));
}

/// The in-place candle op: the variable's storage is the destination, `grad` the gradient.
struct StepOp<'a> {
    moments: RefCell<(&'a mut [f32], &'a mut [f32])>,
    grad: &'a [f32],
    k: Coeffs,
}

impl InplaceOp1 for StepOp<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout) -> Result<()> {
        let Some((w0, w1)) = l1.contiguous_offsets() else {
            candle_core::bail!("fused-adamw: the variable must be contiguous");
        };
        let w = match s1 {
            CpuStorage::F32(w) => &mut w[w0..w1],
            _ => candle_core::bail!("fused-adamw: only f32 variables"),
        };
        let g = self.grad;
        let mut guard = self.moments.borrow_mut();
        let (m, v) = &mut *guard;
        if w.len() != g.len() || w.len() != m.len() || w.len() != v.len() {
            candle_core::bail!(
                "fused-adamw: sizes differ (weights {}, gradient {}, moments {})",
                w.len(),
                g.len(),
                m.len()
            );
        }
        update(w, g, m, v, &self.k);
        Ok(())
    }
}

/// One update of `var` (moments `m`, `v`) from its gradient `grad`, in place.
fn apply(var: &Tensor, m: &mut [f32], v: &mut [f32], grad: &[f32], k: Coeffs) -> Result<()> {
    let moments = RefCell::new((m, v));
    var.inplace_op1(&StepOp { moments, grad, k })
}

/// The `f32` values of a contiguous CPU tensor, to `f`.
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = if t.dtype() == DType::F32 {
        t.contiguous()?
    } else {
        t.to_dtype(DType::F32)?
    };
    let (storage, layout) = t.storage_and_layout();
    let (Storage::Cpu(s), Some((a, b))) = (&*storage, layout.contiguous_offsets()) else {
        candle_core::bail!("fused-adamw: a gradient is not a contiguous CPU tensor");
    };
    f(&s.as_slice::<f32>()?[a..b])
}

impl FusedAdamW {
    /// An optimiser over `groups`; every variable must be an `f32` tensor on the CPU.
    pub fn new(groups: Vec<ParamGroup>, config: AdamWConfig) -> Result<Self> {
        let groups = groups
            .into_iter()
            .map(|g| {
                let states = g
                    .vars
                    .into_iter()
                    .map(|var| {
                        if var.dtype() != DType::F32 || !var.device().is_cpu() {
                            candle_core::bail!(
                                "fused AdamW trains f32 CPU variables, got {:?} on {:?}",
                                var.dtype(),
                                var.device().location()
                            );
                        }
                        let n = var.elem_count();
                        Ok(State {
                            var,
                            m: vec![0.0; n],
                            v: vec![0.0; n],
                            t: 0,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Group {
                    states,
                    lr: g.lr,
                    weight_decay: g.weight_decay,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FusedAdamW { groups, config })
    }

    pub fn n_groups(&self) -> usize {
        self.groups.len()
    }

    /// Group `group`'s learning rate. Panics if there is no such group.
    pub fn learning_rate(&self, group: usize) -> f64 {
        self.groups[group].lr
    }

    /// Set group `group`'s learning rate (for warmup and decay). Panics if there is no such group.
    pub fn set_learning_rate(&mut self, group: usize, lr: f64) {
        self.groups[group].lr = lr;
    }

    /// One AdamW update of every variable that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_with(grads, None)
    }

    /// One AdamW update of every variable that has a gradient in `grads` or in `sink` (the
    /// gradients the fused ops wrote, read where the sink keeps them; a variable with both gets
    /// their sum). Ends the sink's step.
    pub fn step_with(&mut self, grads: &GradStore, sink: Option<&GradSink>) -> Result<()> {
        let config = self.config;
        let mut held = sink.map(GradSink::consume);
        for group in &mut self.groups {
            for state in &mut group.states {
                let var = state.var.as_tensor();
                let mut from_store = grads.get(var);
                if let (Some(held), Some(g)) = (held.as_mut(), from_store) {
                    if with_values(g, |g| Ok(held.add(var, g)))? {
                        // Summed into the sink's gradient.
                        from_store.take();
                    }
                }
                let k = Coeffs::new(&config, group.lr, group.weight_decay, state.t + 1);
                let (m, v) = (&mut state.m[..], &mut state.v[..]);
                match (held.as_ref().and_then(|h| h.get(var)), from_store) {
                    (Some(g), _) => apply(var, m, v, g, k)?,
                    (None, Some(g)) => with_values(g, |g| apply(var, m, v, g, k))?,
                    (None, None) => continue,
                }
                state.t += 1;
            }
        }
        Ok(())
    }
}

/// AdamW over parameter groups on whatever device the variables live: [`FusedAdamW`] on the
/// CPU, `candle_nn::AdamW` (one per group, the same update) elsewhere, where the fused pass over
/// host memory cannot run.
pub enum Optimiser {
    Fused(FusedAdamW),
    Candle(Vec<candle_nn::AdamW>),
}

impl Optimiser {
    pub fn new(groups: Vec<ParamGroup>, config: AdamWConfig) -> Result<Self> {
        let on_cpu = groups
            .iter()
            .flat_map(|g| &g.vars)
            .all(|v| v.device().is_cpu() && v.dtype() == DType::F32);
        if on_cpu {
            return Ok(Optimiser::Fused(FusedAdamW::new(groups, config)?));
        }
        let each = groups
            .into_iter()
            .map(|g| {
                let params = candle_nn::ParamsAdamW {
                    lr: g.lr,
                    beta1: config.beta1,
                    beta2: config.beta2,
                    eps: config.eps,
                    weight_decay: g.weight_decay,
                };
                <candle_nn::AdamW as candle_nn::Optimizer>::new(g.vars, params)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Optimiser::Candle(each))
    }

    /// Set group `group`'s learning rate. Panics if there is no such group.
    pub fn set_learning_rate(&mut self, group: usize, lr: f64) {
        match self {
            Optimiser::Fused(o) => o.set_learning_rate(group, lr),
            Optimiser::Candle(each) => {
                candle_nn::Optimizer::set_learning_rate(&mut each[group], lr)
            }
        }
    }

    /// One AdamW update of every variable that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            Optimiser::Fused(o) => o.step(grads),
            Optimiser::Candle(each) => each
                .iter_mut()
                .try_for_each(|o| candle_nn::Optimizer::step(o, grads)),
        }
    }

    /// One update from `grads` and the gradients in `sink` (see [`FusedAdamW::step_with`]; off
    /// the CPU they are moved into `grads` first).
    pub fn step_with(&mut self, grads: &mut GradStore, sink: &GradSink) -> Result<()> {
        match self {
            Optimiser::Fused(o) => o.step_with(grads, Some(sink)),
            Optimiser::Candle(_) => {
                sink.drain_into(grads)?;
                self.step(grads)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    /// A small loss touching every variable non-linearly, with a transposed use of `w` (so its
    /// gradient comes back non-contiguous at least once through candle's matmul backward).
    fn loss(w: &Var, b: &Var, x: &Tensor) -> Result<Tensor> {
        let y = x
            .matmul(&w.as_tensor().t()?)?
            .broadcast_add(b.as_tensor())?;
        (y.tanh()? - 0.3)?.sqr()?.sum_all()
    }

    fn vars(dev: &Device) -> Result<(Var, Var)> {
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (7, 5), dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 7, dev)?)?;
        Ok((w, b))
    }

    fn max_abs_diff(a: &Var, b: &Var) -> Result<f32> {
        (a.as_tensor() - b.as_tensor())?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()
    }

    #[test]
    fn matches_candle_adamw_over_several_steps_with_two_groups() -> Result<()> {
        let dev = Device::Cpu;
        let (w1, b1) = vars(&dev)?;
        let w2 = Var::from_tensor(&w1.as_tensor().copy()?)?;
        let b2 = Var::from_tensor(&b1.as_tensor().copy()?)?;
        let x = Tensor::randn(0f32, 1.0, (11, 5), &dev)?;
        let (lr_w, lr_b, wd) = (1e-2, 5e-2, 0.1);
        let mut ref_w = AdamW::new(
            vec![w1.clone()],
            ParamsAdamW {
                lr: lr_w,
                weight_decay: wd,
                ..Default::default()
            },
        )?;
        let mut ref_b = AdamW::new(
            vec![b1.clone()],
            ParamsAdamW {
                lr: lr_b,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        let mut fused = FusedAdamW::new(
            vec![
                ParamGroup {
                    vars: vec![w2.clone()],
                    lr: lr_w,
                    weight_decay: wd,
                },
                ParamGroup {
                    vars: vec![b2.clone()],
                    lr: lr_b,
                    weight_decay: 0.0,
                },
            ],
            AdamWConfig::default(),
        )?;
        for step in 0..6 {
            // A schedule: both groups' rates change every step.
            let f = 1.0 / (step + 1) as f64;
            ref_w.set_learning_rate(lr_w * f);
            ref_b.set_learning_rate(lr_b * f);
            fused.set_learning_rate(0, lr_w * f);
            fused.set_learning_rate(1, lr_b * f);
            assert_eq!(fused.learning_rate(1), lr_b * f);
            let g1 = loss(&w1, &b1, &x)?.backward()?;
            ref_w.step(&g1)?;
            ref_b.step(&g1)?;
            let g2 = loss(&w2, &b2, &x)?.backward()?;
            fused.step(&g2)?;
            let (dw, db) = (max_abs_diff(&w1, &w2)?, max_abs_diff(&b1, &b2)?);
            assert!(dw < 1e-6 && db < 1e-6, "step {step}: |Δw| {dw}, |Δb| {db}");
        }
        // The weights did move.
        let moved = (w2.as_tensor() - vars(&dev)?.0.as_tensor())?;
        assert!(moved.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        Ok(())
    }

    #[test]
    fn matches_hand_computed_update_on_a_large_parallel_var() -> Result<()> {
        // Large enough to be split over several rayon chunks.
        let dev = Device::Cpu;
        let n = 3 * CHUNK + 17;
        let w0: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 50.0).collect();
        let w = Var::from_vec(w0.clone(), n, &dev)?;
        let (lr, wd) = (1e-3, 0.01);
        let mut opt = FusedAdamW::new(
            vec![ParamGroup {
                vars: vec![w.clone()],
                lr,
                weight_decay: wd,
            }],
            AdamWConfig::default(),
        )?;
        let c = AdamWConfig::default();
        let (mut m, mut v, mut theta) = (vec![0f64; n], vec![0f64; n], w0.clone());
        let mut expect: Vec<f64> = vec![0.0; n];
        for t in 1..=3 {
            // loss = Σ θ³/3 + θ  ⇒  g = θ² + 1
            let cube = (w.as_tensor().sqr()? * w.as_tensor())?;
            let loss = ((cube / 3.0)? + w.as_tensor())?.sum_all()?;
            let grads = loss.backward()?;
            opt.step(&grads)?;
            let state = m.iter_mut().zip(v.iter_mut()).zip(expect.iter_mut());
            for (&th, ((m, v), e)) in theta.iter().zip(state) {
                let th = th as f64;
                let g = th * th + 1.0;
                *m = c.beta1 * *m + (1.0 - c.beta1) * g;
                *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
                let mh = *m / (1.0 - c.beta1.powi(t));
                let vh = *v / (1.0 - c.beta2.powi(t));
                *e = th * (1.0 - lr * wd) - lr * mh / (vh.sqrt() + c.eps);
            }
            theta = w.as_tensor().to_vec1::<f32>()?;
            for (i, (&got, &e)) in theta.iter().zip(&expect).enumerate() {
                assert!(
                    (got as f64 - e).abs() < 1e-6,
                    "step {t}, element {i}: {got} vs {e}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn a_variable_without_gradient_is_left_alone() -> Result<()> {
        let dev = Device::Cpu;
        let (w, b) = vars(&dev)?;
        let before = b.as_tensor().to_vec1::<f32>()?;
        let mut opt = FusedAdamW::new(
            vec![ParamGroup {
                vars: vec![w.clone(), b.clone()],
                lr: 0.1,
                weight_decay: 0.1,
            }],
            AdamWConfig::default(),
        )?;
        let x = Tensor::randn(0f32, 1.0, (3, 5), &dev)?;
        let grads = x.matmul(&w.as_tensor().t()?)?.sum_all()?.backward()?;
        opt.step(&grads)?;
        assert_eq!(b.as_tensor().to_vec1::<f32>()?, before);
        Ok(())
    }

    /// A training step's way (the sink's gradients read where they are, `step_with`) and the
    /// general way (moved into candle's GradStore, `step`) give the same weights, bit for bit,
    /// over steps whose embedding rows differ (a row the step before wrote must read as zero).
    #[test]
    fn stepping_from_a_sink_matches_stepping_from_its_drained_gradients() -> Result<()> {
        use crate::backbone::ops::{embedding_in, linear_in};
        let dev = Device::Cpu;
        let make = || -> Result<[Var; 4]> {
            let mut rng = crate::util::rng(3);
            let mut v = |shape: &[usize]| -> Result<Var> {
                use rand::Rng;
                let n = shape.iter().product();
                let data: Vec<f32> = (0..n).map(|_| rng.random_range(-0.5..0.5)).collect();
                Var::from_tensor(&Tensor::from_vec(data, shape, &dev)?)
            };
            Ok([v(&[13, 6])?, v(&[4, 6])?, v(&[4])?, v(&[2, 4])?])
        };
        let (a, b) = (make()?, make()?);
        let opt = |v: &[Var; 4]| {
            FusedAdamW::new(
                vec![
                    ParamGroup {
                        vars: v[..3].to_vec(),
                        lr: 0.05,
                        weight_decay: 0.01,
                    },
                    ParamGroup {
                        vars: vec![v[3].clone()],
                        lr: 0.1,
                        weight_decay: 0.0,
                    },
                ],
                AdamWConfig::default(),
            )
        };
        let (mut oa, mut ob) = (opt(&a)?, opt(&b)?);
        let loss = |v: &[Var; 4], ids: &[u32], sink: &std::sync::Arc<GradSink>| -> Result<Tensor> {
            let lin =
                candle_nn::Linear::new(v[1].as_tensor().clone(), Some(v[2].as_tensor().clone()));
            let ids = Tensor::from_slice(ids, ids.len(), &dev)?;
            let x = linear_in(
                &embedding_in(&ids, v[0].as_tensor(), Some(sink))?,
                &lin,
                Some(sink),
            )?;
            // The head's gradient comes from candle's GradStore.
            (x.tanh()?.matmul(&v[3].as_tensor().t()?)? - 0.2)?
                .sqr()?
                .sum_all()
        };
        let (sa, sb) = (
            std::sync::Arc::new(GradSink::default()),
            std::sync::Arc::new(GradSink::default()),
        );
        for ids in [&[0u32, 5, 5, 12][..], &[3, 7], &[12, 1, 1, 9, 0]] {
            let ga = loss(&a, ids, &sa)?.backward()?;
            oa.step_with(&ga, Some(&sa))?;
            let mut gb = loss(&b, ids, &sb)?.backward()?;
            sb.drain_into(&mut gb)?;
            ob.step(&gb)?;
        }
        for (va, vb) in a.iter().zip(&b) {
            let (x, y) = (va.as_tensor().flatten_all()?, vb.as_tensor().flatten_all()?);
            assert_eq!(x.to_vec1::<f32>()?, y.to_vec1::<f32>()?);
        }
        Ok(())
    }
}
