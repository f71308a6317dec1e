//! The encoder's layers as one candle op for a training step on the CPU.
//!
//! Built from [`super::ops`]' fused ops, a BERT layer is still a dozen nodes of candle's graph,
//! and candle's backward starts the gradient of every node's input from a zero tensor and adds
//! to it (an allocation, a memset and an add over each activation), adds residuals with its own
//! thread pool, and concatenates the query, key and value weights into a fresh tensor every
//! step. A `perf` profile of a step on MiniLM at batch 16 × 37 tokens found much of the step in
//! that bookkeeping and in the idle core around it. Here the whole stack of layers is one node:
//! the forward runs each layer on plain slices (the kernels of [`super::ops`]: packed-GEMM
//! linear layers, fused attention, layer norm and GELU) and keeps the activations the backward
//! needs (with the attention probabilities and GELU's slope, so that the backward computes
//! neither again); the backward runs the layers in reverse on those slices, writes every weight's
//! gradient into the step's [`GradSink`] once (its `linear_grads` and `layer_norm_grads`), and
//! hands candle the gradient of the stack's input alone. Its large buffers come from
//! [`crate::numerics::scratch`] and go back there once the backward is done with them, so the
//! next step writes into pages already mapped.
//!
//! The maths per layer (x its input, post-LN as BERT):
//!
//! ```text
//! qkv = x Wqkvᵀ + bqkv      c = attention(qkv)      r1 = c Woᵀ + bo + x     x1 = LN₁(r1)
//! i = x1 Wiᵀ + bi           r2 = gelu(i) Wfᵀ + bf + x1                      y = LN₂(r2)
//! ```
//!
//! and backward, from dy: dr2 = LN₂'(dy); dWf, dbf, dg from the linear; di = gelu'(i) ⊙ dg;
//! dWi, dbi and dx1 = dr2 + di Wi; dr1 = LN₁'(dx1); dWo, dbo, dc; dqkv = attention'(dc);
//! dWqkv, dbqkv and dx = dr1 + dqkv Wqkv. Every product and row op is the one the per-op path
//! runs, so the two give the same numbers (tested, with the composed candle ops as reference).
//!
//! Used by [`super::Bert::forward_train`] when a step has a sink, no dropout, no MPNet position
//! bias, GELU (erf) and biases everywhere, on an f32 CPU tensor with AVX-512; otherwise the
//! per-op path runs.
use super::bert::Layer;
use super::ops::{self, GradSink};
use crate::numerics::scratch;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Storage, StorageRef, Tensor};
use std::sync::{Arc, Mutex};

/// The weights of one layer, in the order the op reads them.
struct Weights {
    /// query, key, value: weight `[h, h]` and bias `[h]` each.
    qkv: [(Tensor, Tensor); 3],
    attn_out: (Tensor, Tensor),
    attn_ln: (Tensor, Tensor),
    intermediate: (Tensor, Tensor),
    output: (Tensor, Tensor),
    out_ln: (Tensor, Tensor),
}

/// What the backward needs of one layer's forward.
struct Saved {
    /// The layer's input `[m, h]`.
    x: Vec<f32>,
    /// Queries, keys and values `[m, 3h]`, and the weight and bias they came from.
    qkv: Vec<f32>,
    w_qkv: Vec<f32>,
    /// The attention's context `[m, h]`.
    ctx: Vec<f32>,
    /// Inputs of the two layer norms `[m, h]` and the first one's output.
    r1: Vec<f32>,
    x1: Vec<f32>,
    r2: Vec<f32>,
    /// The attention probabilities `[b · heads, s, s]`.
    probs: Vec<f32>,
    /// The feed-forward's GELU output and GELU's slope at its input `[m, ffn]`.
    g: Vec<f32>,
    slope: Vec<f32>,
}

struct Stack {
    layers: Vec<Weights>,
    heads: usize,
    eps: f32,
    sink: Arc<GradSink>,
    saved: Mutex<Vec<Saved>>,
}

/// A read view of a contiguous f32 CPU tensor.
struct View<'a> {
    guard: StorageRef<'a>,
    range: (usize, usize),
}

impl View<'_> {
    fn of(t: &Tensor) -> Result<View<'_>> {
        let (guard, layout) = t.storage_and_layout();
        let Some(range) = layout.contiguous_offsets() else {
            candle_core::bail!("proxal-encoder-stack: a tensor it reads is not contiguous");
        };
        Ok(View { guard, range })
    }

    fn get(&self) -> Result<&[f32]> {
        match &*self.guard {
            Storage::Cpu(s) => Ok(&s.as_slice::<f32>()?[self.range.0..self.range.1]),
            _ => candle_core::bail!("proxal-encoder-stack: a tensor it reads is not on the CPU"),
        }
    }
}

/// Views of a (weight, bias) pair.
fn views(p: &(Tensor, Tensor)) -> Result<(View<'_>, View<'_>)> {
    Ok((View::of(&p.0)?, View::of(&p.1)?))
}

/// A (weight, bias) pair as the references [`GradSink`]'s helpers take.
fn pair(p: &(Tensor, Tensor)) -> (&Tensor, &Tensor) {
    (&p.0, &p.1)
}

/// `a += b`, elementwise.
fn add_into(a: &mut [f32], b: &[f32]) {
    use rayon::prelude::*;
    a.par_chunks_mut(1 << 14)
        .zip(b.par_chunks(1 << 14))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

/// Wall time by phase of the stack's forward and backward, summed over calls, for profiling
/// the training step (`PROXAL_STACK_PHASES=1`; `bench_train` prints them per case). Off, a
/// phase costs one load of a flag.
pub mod phases {
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    static TOTALS: Mutex<Vec<(&'static str, Duration, u64)>> = Mutex::new(Vec::new());

    /// Whether phases are timed (`PROXAL_STACK_PHASES=1`, read once).
    pub fn enabled() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| std::env::var("PROXAL_STACK_PHASES").as_deref() == Ok("1"))
    }

    /// `f()`, its wall time added to `name`'s total when phases are timed.
    pub fn time<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
        if !enabled() {
            return f();
        }
        let t = Instant::now();
        let r = f();
        let dt = t.elapsed();
        let mut all = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
        match all.iter_mut().find(|(n, _, _)| *n == name) {
            Some(e) => {
                e.1 += dt;
                e.2 += 1;
            }
            None => all.push((name, dt, 1)),
        }
        r
    }

    /// The totals so far, (phase, seconds, calls) in first-seen order, and a fresh start.
    pub fn take() -> Vec<(&'static str, f64, u64)> {
        let mut all = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *all)
            .into_iter()
            .map(|(n, d, c)| (n, d.as_secs_f64(), c))
            .collect()
    }
}

/// The encoder layers over `x` `[b, s, h]` (the embeddings after their layer norm) with the
/// additive attention mask `mask` `[b, s]`, as one op whose backward writes every layer
/// weight's gradient into `sink`. `None` where the stack does not apply (see the module doc):
/// the caller runs the per-op path.
pub fn encoder_layers(
    x: &Tensor,
    mask: &Tensor,
    layers: &[Layer],
    heads: usize,
    eps: f64,
    sink: &Arc<GradSink>,
) -> Result<Option<Tensor>> {
    // candle calls an op's backward only when its input tracks a gradient: with a frozen
    // embedding table the layers' gradients would silently go missing, so the per-op path runs.
    if !(x.device().is_cpu()
        && x.dtype() == candle_core::DType::F32
        && x.track_op()
        && crate::numerics::gemm::avx512()
        && ops::fused_enabled())
    {
        return Ok(None);
    }
    let pair = |l: &candle_nn::Linear| l.bias().map(|b| (l.weight().clone(), b.clone()));
    let mut weights = Vec::with_capacity(layers.len());
    for l in layers {
        let (Some(q), Some(k), Some(v), Some(o), Some(i), Some(f)) = (
            pair(&l.query),
            pair(&l.key),
            pair(&l.value),
            pair(&l.attn_out),
            pair(&l.intermediate),
            pair(&l.output),
        ) else {
            return Ok(None);
        };
        weights.push(Weights {
            qkv: [q, k, v],
            attn_out: o,
            attn_ln: (l.attn_ln.weight.clone(), l.attn_ln.bias.clone()),
            intermediate: i,
            output: f,
            out_ln: (l.out_ln.weight.clone(), l.out_ln.bias.clone()),
        });
    }
    let op = Stack {
        layers: weights,
        heads,
        eps: eps as f32,
        sink: sink.clone(),
        saved: Mutex::new(Vec::new()),
    };
    x.contiguous()?.apply_op2(&mask.contiguous()?, op).map(Some)
}

impl Stack {
    /// (b, s, h) of the op's input, checked against the mask and the weights.
    fn dims(&self, x: &Layout, mask: &Layout) -> Result<(usize, usize, usize)> {
        match (x.dims(), mask.dims()) {
            (&[b, s, h], &[mb, ms]) if mb == b && ms == s && h % self.heads.max(1) == 0 => {
                Ok((b, s, h))
            }
            (x, m) => candle_core::bail!("proxal-encoder-stack: x {x:?} with mask {m:?}"),
        }
    }
}

impl CustomOp2 for Stack {
    fn name(&self) -> &'static str {
        "proxal-encoder-stack"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, s, h) = self.dims(l1, l2)?;
        #[cfg(test)]
        ops::STACK_RUNS.with(|r| r.set(r.get() + 1));
        let (Some((x0, x1)), Some((m0, m1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("proxal-encoder-stack: inputs are not contiguous");
        };
        let mask = &s2.as_slice::<f32>()?[m0..m1];
        let mut x = scratch::take(x1 - x0);
        x.copy_from_slice(&s1.as_slice::<f32>()?[x0..x1]);
        let (m, d) = (b * s, h / self.heads);
        let mut saved = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            // Queries, keys and values in one product: their weights and biases stacked.
            let (mut w_qkv, mut b_qkv) = (scratch::take(3 * h * h), Vec::with_capacity(3 * h));
            for (p, dst) in l.qkv.iter().zip(w_qkv.chunks_exact_mut(h * h)) {
                let (w, bias) = views(p)?;
                dst.copy_from_slice(w.get()?);
                b_qkv.extend_from_slice(bias.get()?);
            }
            let qkv = phases::time("fwd linear qkv", || {
                ops::linear_rows(&x, m, &w_qkv, &b_qkv, h, 3 * h)
            })?;
            // Written in full by the attention.
            let mut probs = scratch::take(b * self.heads * s * s);
            let ctx = phases::time("fwd attention", || {
                ops::attention_rows(&qkv, mask, (b, s, h, d), self.heads, Some(&mut probs))
            });
            let (wo, bo) = views(&l.attn_out)?;
            let mut r1 = phases::time("fwd linear o", || {
                ops::linear_rows(&ctx, m, wo.get()?, bo.get()?, h, h)
            })?;
            let (w1, b1) = views(&l.attn_ln)?;
            let x1 = phases::time("fwd add+ln", || -> Result<_> {
                add_into(&mut r1, &x);
                Ok(ops::layer_norm_rows(&r1, w1.get()?, b1.get()?, self.eps))
            })?;
            let (wi, bi) = views(&l.intermediate)?;
            let ffn = bi.get()?.len();
            let i = phases::time("fwd linear i", || {
                ops::linear_rows(&x1, m, wi.get()?, bi.get()?, h, ffn)
            })?;
            let (g, slope) = phases::time("fwd gelu", || ops::gelu_slope_rows(&i));
            scratch::give(i);
            let (wf, bf) = views(&l.output)?;
            let mut r2 = phases::time("fwd linear f", || {
                ops::linear_rows(&g, m, wf.get()?, bf.get()?, ffn, h)
            })?;
            let (w2, b2) = views(&l.out_ln)?;
            let y = phases::time("fwd add+ln", || -> Result<_> {
                add_into(&mut r2, &x1);
                Ok(ops::layer_norm_rows(&r2, w2.get()?, b2.get()?, self.eps))
            })?;
            saved.push(Saved {
                x: std::mem::replace(&mut x, y),
                qkv,
                w_qkv,
                ctx,
                r1,
                x1,
                r2,
                probs,
                g,
                slope,
            });
        }
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = saved;
        Ok((CpuStorage::F32(x), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let saved = std::mem::take(&mut *self.saved.lock().unwrap_or_else(|e| e.into_inner()));
        if saved.len() != self.layers.len() {
            candle_core::bail!("proxal-encoder-stack: backward without its forward's activations");
        }
        let (b, s, h) = x.dims3()?;
        let (m, d) = (b * s, h / self.heads);
        let mask = mask.contiguous()?;
        let mask_view = View::of(&mask)?;
        let mask = mask_view.get()?;
        let grad = grad.contiguous()?;
        let mut dy = {
            let g = View::of(&grad)?;
            let mut dy = scratch::take(g.get()?.len());
            dy.copy_from_slice(g.get()?);
            dy
        };
        for (l, sv) in self.layers.iter().zip(saved).rev() {
            let ffn = sv.g.len() / m.max(1);
            let sink = &self.sink;
            // Output layer norm, then the feed-forward's second linear.
            let (w2, _) = views(&l.out_ln)?;
            let dr2 = phases::time("bwd ln", || -> Result<_> {
                Ok(sink.layer_norm_grads(&sv.r2, w2.get()?, &dy, self.eps, pair(&l.out_ln)))
            })?;
            let (wf, _) = views(&l.output)?;
            let dg = phases::time("bwd linear f", || {
                sink.linear_grads(&sv.g, wf.get()?, &dr2, (m, ffn, h), &[pair(&l.output)])
            })?;
            // GELU and the first linear; the residual's gradient joins the linear's.
            let di = phases::time("bwd gelu", || ops::mul_rows(&sv.slope, &dg));
            scratch::give(dg);
            let (wi, _) = views(&l.intermediate)?;
            let params = [pair(&l.intermediate)];
            let mut dx1 = phases::time("bwd linear i", || {
                sink.linear_grads(&sv.x1, wi.get()?, &di, (m, h, ffn), &params)
            })?;
            phases::time("bwd add", || add_into(&mut dx1, &dr2));
            // Attention's layer norm and output linear.
            let (w1, _) = views(&l.attn_ln)?;
            let dr1 = phases::time("bwd ln", || -> Result<_> {
                Ok(sink.layer_norm_grads(&sv.r1, w1.get()?, &dx1, self.eps, pair(&l.attn_ln)))
            })?;
            let (wo, _) = views(&l.attn_out)?;
            let params = [pair(&l.attn_out)];
            let dctx = phases::time("bwd linear o", || {
                sink.linear_grads(&sv.ctx, wo.get()?, &dr1, (m, h, h), &params)
            })?;
            // Attention, then the stacked query/key/value linear; the residual joins.
            let kept = Some(&sv.probs[..]);
            let dqkv = phases::time("bwd attention", || {
                ops::attention_grads(&sv.qkv, mask, &dctx, (b, s, h, d), self.heads, kept)
            });
            let params = l.qkv.each_ref().map(pair);
            let mut dx = phases::time("bwd linear qkv", || {
                sink.linear_grads(&sv.x, &sv.w_qkv, &dqkv, (m, h, 3 * h), &params)
            })?;
            phases::time("bwd add", || add_into(&mut dx, &dr1));
            // This layer's activations and gradients, back for the next step's forward.
            let kept = [
                sv.x, sv.qkv, sv.w_qkv, sv.ctx, sv.r1, sv.x1, sv.r2, sv.probs, sv.g,
            ];
            let grads = [sv.slope, dy, dr2, di, dx1, dr1, dctx, dqkv];
            kept.into_iter().chain(grads).for_each(scratch::give);
            dy = dx;
        }
        let dx = Tensor::from_vec(dy, x.shape(), x.device())?;
        Ok((Some(dx), None))
    }
}

#[cfg(test)]
mod tests {
    use super::ops::{GradSink, REFERENCE, STACK_RUNS};
    use crate::numerics::gemm::skipped_without_avx512;
    use crate::numerics::scratch;
    use candle_core::{Device, Result, Tensor};
    use std::collections::HashMap;

    /// Every weight's gradient of Σ hidden ⊙ probe for a tiny BERT on a ragged batch: through
    /// the stack (a sink, as a training step), the per-op fused path (no sink), or candle's
    /// composed ops (`reference`).
    fn grads(with_sink: bool, reference: bool) -> Result<(HashMap<String, Vec<f32>>, usize)> {
        // 3 rows of 13 tokens, padded after 13, 8 and 3: ragged, and not multiples of the
        // kernels' 12-row or 32-column blocks.
        grads_of((3, 13, 5), with_sink, reference)
    }

    /// As [`grads`], for `b` rows of `s` tokens, row i padded after `s − shrink · i`.
    #[allow(clippy::type_complexity)]
    fn grads_of(
        (b, s, shrink): (usize, usize, usize),
        with_sink: bool,
        reference: bool,
    ) -> Result<(HashMap<String, Vec<f32>>, usize)> {
        let dev = Device::Cpu;
        let (vm, bert) = crate::backbone::tiny::trainable((60, 3, 160, 40), 11)
            .map_err(candle_core::Error::wrap)?;
        let mut rng = crate::util::rng(5);
        let (ids, mask) = crate::backbone::tiny::ragged_batch(&mut rng, (b, s, 60, shrink))?;
        let probe: Vec<f32> = {
            use rand::Rng;
            (0..b * s * 64)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect()
        };
        let probe = Tensor::from_vec(probe, (b, s, 64), &dev)?;
        REFERENCE.with(|r| r.set(reference));
        let before = STACK_RUNS.with(|r| r.get());
        let sink = std::sync::Arc::new(GradSink::default());
        let out = bert
            .forward_train(&ids, &mask, None, with_sink.then_some(&sink))
            .and_then(|h| {
                let loss = (h * &probe)?.sum_all()?;
                let mut g = loss.backward()?;
                sink.drain_into(&mut g)?;
                Ok(g)
            });
        REFERENCE.with(|r| r.set(false));
        let g = out?;
        let runs = STACK_RUNS.with(|r| r.get()) - before;
        let mut out = HashMap::new();
        for (name, var) in vm.data().lock().expect("varmap lock").iter() {
            let gv = g
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            out.insert(name.clone(), gv.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok((out, runs))
    }

    #[test]
    fn the_stack_gives_every_weight_the_gradient_of_the_per_op_and_composed_paths() -> Result<()> {
        if skipped_without_avx512(
            "the_stack_gives_every_weight_the_gradient_of_the_per_op_and_composed_paths",
        ) {
            return Ok(());
        }
        let (stack, runs) = grads(true, false)?;
        assert_eq!(runs, 1, "a step with a sink runs the stack once");
        let (per_op, runs) = grads(false, false)?;
        assert_eq!(runs, 0, "without a sink the per-op path runs");
        let (composed, _) = grads(false, true)?;
        assert_eq!(stack.len(), composed.len());
        let mut layer_weights = 0;
        for (name, want) in &composed {
            let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
            for (what, got) in [("stack", &stack[name]), ("per-op", &per_op[name])] {
                let diff = got
                    .iter()
                    .zip(want)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt();
                // The key bias's gradient is zero in exact arithmetic (a softmax does not
                // change when one row's scores all shift by q·b): only rounding is left of it,
                // hence the absolute floor.
                assert!(
                    diff < 1e-4 * norm + 1e-5,
                    "{name}: {what} off by {diff} (norm {norm})"
                );
            }
            // Same kernels as the per-op path: equal up to the order of a few sums.
            let close = stack[name]
                .iter()
                .zip(&per_op[name])
                .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs()));
            assert!(close, "{name}: the stack and the per-op path differ");
            layer_weights += name.starts_with("encoder.layer.") as usize;
            let zero = name.contains("token_type") || name.ends_with("key.bias");
            assert!(norm > 1e-3 || zero, "{name}: no gradient");
        }
        assert_eq!(layer_weights, 3 * 16, "every layer weight has a gradient");
        Ok(())
    }

    /// The step's large buffers come from `numerics::scratch` with whatever an earlier user
    /// left in them: a step that reads any element before writing it would change with the
    /// pool's contents. At 8 × 40 tokens every activation is large enough to be pooled; the
    /// second step runs after the pool was filled with NaN buffers of each activation's size
    /// (and holds the first step's buffers), and must give the same gradients, bit for bit.
    #[test]
    fn the_stack_gives_the_same_gradients_from_recycled_buffers() -> Result<()> {
        if skipped_without_avx512("the_stack_gives_the_same_gradients_from_recycled_buffers") {
            return Ok(());
        }
        let (b, s, h, heads, ffn) = (8, 40, 64, 4, 160);
        let m = b * s;
        let (first, runs) = grads_of((b, s, 4), true, false)?;
        assert_eq!(runs, 1);
        for len in [m * h, m * 3 * h, m * ffn, b * heads * s * s] {
            assert!(
                len >= 1 << 14,
                "{len} floats: below the pool's minimum, not a test of it"
            );
            for _ in 0..3 {
                scratch::give(vec![f32::NAN; len]);
            }
        }
        let (second, _) = grads_of((b, s, 4), true, false)?;
        for (name, want) in &first {
            assert!(want.iter().all(|v| v.is_finite()), "{name}: not finite");
            assert_eq!(&second[name], want, "{name}: differs on recycled buffers");
        }
        Ok(())
    }
}
