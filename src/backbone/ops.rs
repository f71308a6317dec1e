//! Fused CPU ops with hand-written backward passes for the training path of [`super::Bert`].
//!
//! Written as compositions of candle ops, layer norm, softmax and GELU are each 5–12 ops, and
//! every one of them costs a pass over memory and a fresh allocation forward, and a few more
//! backward (candle starts each gradient from a zero tensor and adds to it). Here each is one
//! candle custom op: one forward pass over plain `f32` rows, and a backward that is one more
//! op computing every input's gradient in a pass. Rows are split over the rayon pool.
//!
//! The maths (per row of the last dimension, length h):
//! * layer norm: μ, σ² = mean and biased variance, r = 1/√(σ² + ε), x̂ = (x − μ) r,
//!   y = x̂ w + b. Backward with u = g ⊙ w: dx = r (u − mean(u) − x̂ mean(u ⊙ x̂)),
//!   dw = Σ_rows g ⊙ x̂, db = Σ_rows g.
//! * softmax: y = exp(x − max x) / Σ exp(x − max x). Backward: dx = y ⊙ (g − Σ g ⊙ y).
//! * GELU (erf form): y = x Φ(x) = ½ x (1 + erf(x/√2)). Backward: dx = g (Φ(x) + x φ(x)),
//!   φ(x) = e^(−x²/2)/√(2π).
//!
//! Off the CPU or for other dtypes the functions fall back to the composed versions
//! ([`layer_norm_composed`], [`softmax_last_composed`], `Tensor::gelu_erf`), which the tests also
//! use as the reference.
use crate::numerics::gemm::{transpose, Panels};
use crate::numerics::linalg::softmax_rows_slice;
use crate::numerics::scratch;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape};
use candle_core::{Tensor, D};
use rayon::prelude::*;

/// Elements per rayon task.
const TASK_ELEMS: usize = 1 << 14;
/// 1/√(2π), the standard normal density's factor (GELU's slope).
const INV_SQRT_2PI: f32 = 0.398_942_3;

fn rows_per_task(h: usize) -> usize {
    (TASK_ELEMS / h.max(1)).max(1)
}

/// `f(out_row, in_row)` on each row of `h` values of `x` (rows spread over the rayon pool); the
/// outputs, in the shape of `x`.
fn per_row(x: &[f32], h: usize, f: impl Fn(&mut [f32], &[f32]) + Sync) -> Vec<f32> {
    // `f` writes every element of its row.
    let mut y = scratch::take(x.len());
    let rows = rows_per_task(h) * h;
    y.par_chunks_mut(rows)
        .zip(x.par_chunks(rows))
        .for_each(|(y, x)| {
            for (y, x) in y.chunks_exact_mut(h).zip(x.chunks_exact(h)) {
                f(y, x);
            }
        });
    y
}

#[cfg(test)]
thread_local! {
    /// Encoder-stack ops run on this thread (tests check the stack ran).
    pub(super) static STACK_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Tests: build graphs from the composed reference ops instead (this thread only).
    pub(super) static REFERENCE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the fused ops (and [`super::stack`]) may run: always, but in tests that ask for the
/// composed reference ops on this thread.
pub(super) fn fused_enabled() -> bool {
    #[cfg(test)]
    if REFERENCE.with(|r| r.get()) {
        return false;
    }
    true
}

fn fused(x: &Tensor) -> bool {
    fused_enabled() && x.device().is_cpu() && x.dtype() == DType::F32
}

/// The `f32` elements a contiguous layout addresses.
fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: input is not contiguous");
    };
    Ok(&s.as_slice::<f32>()?[a..b])
}

// ---------------------------------------------------------------------------------------------
// Layer norm

/// Layer normalisation over the last dimension: `(x − μ)/√(σ² + eps) · weight + bias`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if !fused(x) || !fused(weight) || !fused(bias) {
        return layer_norm_composed(x, weight, bias, eps);
    }
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNorm { eps: eps as f32 },
    )
}

/// Layer norm as a composition of differentiable candle ops (reference and fallback).
pub fn layer_norm_composed(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xn.broadcast_mul(weight)?.broadcast_add(bias)
}

/// Mean and 1/√(σ² + eps) of a row.
#[inline]
fn ln_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let h = row.len() as f32;
    let mean = row.iter().sum::<f32>() / h;
    let var = row
        .iter()
        .map(|&v| {
            let d = v - mean;
            d * d
        })
        .sum::<f32>()
        / h;
    (mean, 1.0 / (var + eps).sqrt())
}

struct LayerNorm {
    eps: f32,
}

/// Layer norm of each row of `x` (rows of `w.len()` values), weight `w` and bias `b`.
pub(super) fn layer_norm_rows(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    per_row(x, w.len(), |y, x| {
        let (mean, rstd) = ln_stats(x, eps);
        for (((y, &x), &w), &b) in y.iter_mut().zip(x).zip(w).zip(b) {
            *y = (x - mean) * rstd * w + b;
        }
    })
}

/// Layer norm's backward on rows: from its input `x`, weight `w` and the output's gradient
/// `g`, the input's gradient into `dx` (overwritten); returns (dweight, dbias).
pub(super) fn layer_norm_grads(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    eps: f32,
    dx: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let h = w.len();
    let rows = rows_per_task(h) * h;
    dx.par_chunks_mut(rows)
        .zip(x.par_chunks(rows))
        .zip(g.par_chunks(rows))
        .map(|((dx, x), g)| {
            let mut dw = vec![0f32; h];
            let mut db = vec![0f32; h];
            for ((dx, x), g) in dx
                .chunks_exact_mut(h)
                .zip(x.chunks_exact(h))
                .zip(g.chunks_exact(h))
            {
                let (mean, rstd) = ln_stats(x, eps);
                let (mut su, mut sux) = (0f32, 0f32);
                let sums = dw.iter_mut().zip(db.iter_mut());
                for (((&x, &g), &w), (dw, db)) in x.iter().zip(g).zip(w).zip(sums) {
                    let xh = (x - mean) * rstd;
                    let u = g * w;
                    su += u;
                    sux += u * xh;
                    *dw += g * xh;
                    *db += g;
                }
                let (mu, mux) = (su / h as f32, sux / h as f32);
                for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                    let xh = (x - mean) * rstd;
                    *dx = rstd * (g * w - mu - xh * mux);
                }
            }
            (dw, db)
        })
        .reduce(
            || (vec![0f32; h], vec![0f32; h]),
            |(mut aw, mut ab), (bw, bb)| {
                aw.iter_mut().zip(&bw).for_each(|(a, b)| *a += b);
                ab.iter_mut().zip(&bb).for_each(|(a, b)| *a += b);
                (aw, ab)
            },
        )
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "proxal-layer-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, w, b) = (
            slice(x, x_layout, name)?,
            slice(weight, weight_layout, name)?,
            slice(bias, bias_layout, name)?,
        );
        let h = w.len();
        if h == 0 || b.len() != h || x_layout.dims().last() != Some(&h) {
            candle_core::bail!(
                "{name}: x {:?} but weight {h}, bias {}",
                x_layout.dims(),
                b.len()
            );
        }
        Ok((
            CpuStorage::F32(layer_norm_rows(x, w, b, self.eps)),
            x_layout.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let packed = x.apply_op3_no_bwd(w, &grad, &LayerNormBwd { eps: self.eps })?;
        let (n, h) = (x.elem_count(), w.elem_count());
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dw = packed.narrow(0, n, h)?.reshape(w.shape())?;
        let db = packed.narrow(0, n + h, h)?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Layer norm's backward: from (x, weight, dy), `[dx (all of x), dweight (h), dbias (h)]`.
struct LayerNormBwd {
    eps: f32,
}

impl CustomOp3 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "proxal-layer-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        dy: &CpuStorage,
        dy_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, w, g) = (
            slice(input, input_layout, name)?,
            slice(weight, weight_layout, name)?,
            slice(dy, dy_layout, name)?,
        );
        let h = w.len();
        let n = x.len();
        if h == 0 || g.len() != n || n % h != 0 {
            candle_core::bail!("{name}: x {n}, weight {h}, gradient {}", g.len());
        }
        let mut out = vec![0f32; n + 2 * h];
        let (dx, dwb) = out.split_at_mut(n);
        let (dw, db) = layer_norm_grads(x, w, g, self.eps, dx);
        dwb[..h].copy_from_slice(&dw);
        dwb[h..].copy_from_slice(&db);
        Ok((CpuStorage::F32(out), Shape::from(n + 2 * h)))
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax

/// Softmax over the last dimension.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if !fused(x) {
        return softmax_last_composed(x);
    }
    x.contiguous()?.apply_op1(SoftmaxLast)
}

/// Softmax over the last dimension as differentiable candle ops (reference and fallback).
pub fn softmax_last_composed(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&sum)
}

struct SoftmaxLast;

fn last_dim(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

impl CustomOp1 for SoftmaxLast {
    fn name(&self) -> &'static str {
        "proxal-softmax-last"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let h = last_dim(l);
        let mut y = x.to_vec();
        y.par_chunks_mut(rows_per_task(h) * h)
            .for_each(|rows| softmax_rows_slice(rows, h));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let y = res.contiguous()?;
        Ok(Some(y.apply_op2_no_bwd(
            &grad.contiguous()?,
            &SoftmaxLastBwd { scale: 1.0 },
        )?))
    }
}

/// Softmax's backward: from (y, dy), dx = scale · y ⊙ (dy − Σ dy ⊙ y) (`scale` is the factor
/// the softmax's input was multiplied by: 1 for a plain softmax).
struct SoftmaxLastBwd {
    scale: f32,
}

/// One row of [`SoftmaxLastBwd`], in place: `g` (the gradient at the softmax's output `y`)
/// becomes the gradient at its input.
fn softmax_grad_row(g: &mut [f32], y: &[f32], scale: f32) {
    // In 8 interleaved partial sums: a plain sum is one chain of dependent adds (the compiler
    // may not reorder it), which cost attention's backward ~15% at 128 tokens.
    let dot = crate::numerics::linalg::dot(y, g);
    for (g, &y) in g.iter_mut().zip(y) {
        *g = y * (*g - dot) * scale;
    }
}

impl CustomOp2 for SoftmaxLastBwd {
    fn name(&self) -> &'static str {
        "proxal-softmax-last-bwd"
    }

    fn cpu_fwd(
        &self,
        y: &CpuStorage,
        y_layout: &Layout,
        dy: &CpuStorage,
        dy_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (y, g) = (slice(y, y_layout, name)?, slice(dy, dy_layout, name)?);
        if y.len() != g.len() {
            candle_core::bail!("{name}: y {} but gradient {}", y.len(), g.len());
        }
        let h = last_dim(y_layout);
        let mut dx = g.to_vec();
        let rows = rows_per_task(h) * h;
        dx.par_chunks_mut(rows)
            .zip(y.par_chunks(rows))
            .for_each(|(dx, y)| {
                for (dx, y) in dx.chunks_exact_mut(h).zip(y.chunks_exact(h)) {
                    softmax_grad_row(dx, y, self.scale);
                }
            });
        Ok((CpuStorage::F32(dx), y_layout.shape().clone()))
    }
}

/// Attention probabilities `softmax(scale · scores + mask)` over the last dimension, for
/// `scores` `[b, heads, s, s]` and an additive `mask` `[b, s]` (0 for tokens, a large negative
/// number for padding): one pass forward and one backward (dscores = scale · y ⊙ (g − Σ g ⊙ y))
/// instead of a scale, a broadcast add and a softmax, each with its own backward. The mask gets
/// no gradient.
pub fn attention_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    if !fused(scores) {
        let (b, s) = mask.dims2()?;
        let bias = mask.reshape((b, 1, 1, s))?;
        return softmax_last_composed(&(scores * scale)?.broadcast_add(&bias)?);
    }
    scores.contiguous()?.apply_op2(
        &mask.contiguous()?,
        AttentionSoftmax {
            scale: scale as f32,
        },
    )
}

struct AttentionSoftmax {
    scale: f32,
}

/// Softmax of `scale · x + mask` over each `mask.len()`-long row of `y` (holding x), in place.
fn masked_softmax_rows(y: &mut [f32], mask: &[f32], scale: f32) {
    for row in y.chunks_exact_mut(mask.len().max(1)) {
        for (v, &m) in row.iter_mut().zip(mask) {
            *v = *v * scale + m;
        }
    }
    softmax_rows_slice(y, mask.len());
}

impl CustomOp2 for AttentionSoftmax {
    fn name(&self) -> &'static str {
        "proxal-attention-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, mask) = (slice(s1, l1, name)?, slice(s2, l2, name)?);
        let (b, s) = match (l1.dims(), l2.dims()) {
            (&[b, _, q, s], &[mb, ms]) if mb == b && ms == s && q == s => (b, s),
            (d, m) => candle_core::bail!("{name}: scores {d:?} with mask {m:?}"),
        };
        // Rows of one batch item: heads × queries.
        let per_item = x.len() / (b * s).max(1);
        let mut y = x.to_vec();
        y.par_chunks_mut(per_item * s)
            .enumerate()
            .for_each(|(bi, y)| masked_softmax_rows(y, &mask[bi * s..(bi + 1) * s], self.scale));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = res
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxLastBwd { scale: self.scale })?;
        Ok((Some(dx), None))
    }
}

// ---------------------------------------------------------------------------------------------
// Dropout

/// Inverted dropout with a mask that depends only on `seed` and each element's index: element
/// `i` is kept when a SplitMix64 hash of (seed, i) falls at or above `p`, and scaled by
/// 1/(1 − p). The same seed gives the same mask on any machine and thread count (candle's CPU
/// dropout draws from an unseeded generator); the backward applies the same mask.
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 || p.is_nan() {
        candle_core::bail!("dropout probability {p} must be below 1");
    }
    if !fused(x) {
        let mask = dropout_mask(x.elem_count(), p, seed);
        let m = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        return x * m;
    }
    x.contiguous()?.apply_op1(Dropout { p, seed })
}

/// SplitMix64 of `seed` and `i`.
#[inline(always)]
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Element `offset + j`'s factor: 0 (dropped) or 1/(1 − p).
#[inline(always)]
fn keep_factor(seed: u64, i: u64, p: f32) -> f32 {
    // The top 24 bits as a uniform number in [0, 1).
    let u = (mix(seed, i) >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
    if u >= p {
        1.0 / (1.0 - p)
    } else {
        0.0
    }
}

/// The factors of `n` elements (the mask times the scale), as [`dropout`] applies them.
pub fn dropout_mask(n: usize, p: f32, seed: u64) -> Vec<f32> {
    (0..n as u64).map(|i| keep_factor(seed, i, p)).collect()
}

struct Dropout {
    p: f32,
    seed: u64,
}

impl Dropout {
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(TASK_ELEMS)
            .zip(x.par_chunks(TASK_ELEMS))
            .enumerate()
            .for_each(|(c, (y, x))| {
                let base = (c * TASK_ELEMS) as u64;
                for (j, (y, &x)) in y.iter_mut().zip(x).enumerate() {
                    *y = x * keep_factor(self.seed, base + j as u64, self.p);
                }
            });
        y
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "proxal-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        Ok((CpuStorage::F32(self.apply(x)), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // The same mask and scale on the gradient (dropout is linear in x).
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Dropout {
            p: self.p,
            seed: self.seed,
        })?))
    }
}

// ---------------------------------------------------------------------------------------------
// Self-attention

/// Multi-head self-attention from the fused projections: `qkv` `[b, s, 3h]` (queries, keys and
/// values side by side, each `h = heads × d` wide) and an additive `mask` `[b, s]` (0 for tokens,
/// a large negative number for padding); returns the context `[b, s, h]`: per item and head,
/// softmax(q kᵀ / √d + mask) v, heads side by side as BERT concatenates them.
///
/// On a CPU with AVX-512 one task per (item, head) does it all in cache-sized buffers, its
/// products on the packed kernel: no transposes to head-major layout and back, no
/// `[b, heads, s, s]` tensors between ops. The backward
/// recomputes the probabilities instead of keeping them, then dP = dC vᵀ, dV = Pᵀ dC,
/// dS = P ⊙ (dP − rowsum(dP ⊙ P)) / √d, dQ = dS k, dK = dSᵀ q. The mask gets no gradient.
pub fn attention(qkv: &Tensor, mask: &Tensor, heads: usize) -> Result<Tensor> {
    if !(fused(qkv) && crate::numerics::gemm::avx512()) {
        return attention_composed(qkv, mask, heads);
    }
    qkv.contiguous()?
        .apply_op2(&mask.contiguous()?, Attention { heads })
}

/// [`attention`] as differentiable candle ops (reference and fallback).
pub fn attention_composed(qkv: &Tensor, mask: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, s, h3) = qkv.dims3()?;
    let h = h3 / 3;
    let d = h / heads.max(1);
    let part = |i: usize| -> Result<Tensor> {
        qkv.narrow(2, i * h, h)?
            .reshape((b, s, heads, d))?
            .transpose(1, 2)?
            .contiguous()
    };
    let (q, k, v) = (part(0)?, part(1)?, part(2)?);
    let scale = 1.0 / (d as f64).sqrt();
    let bias = mask.reshape((b, 1, 1, s))?;
    let p = softmax_last_composed(&(q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?)?;
    p.matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, s, h))
}

struct Attention {
    heads: usize,
}

/// Shapes of an attention op: (items, tokens, hidden h, head width d).
fn attention_dims(
    name: &str,
    qkv: &Layout,
    mask: &Layout,
    heads: usize,
) -> Result<(usize, usize, usize, usize)> {
    match (qkv.dims(), mask.dims()) {
        (&[b, s, h3], &[mb, ms])
            if mb == b && ms == s && h3 % 3 == 0 && heads > 0 && (h3 / 3) % heads == 0 =>
        {
            Ok((b, s, h3 / 3, h3 / 3 / heads))
        }
        (q, m) => candle_core::bail!("{name}: qkv {q:?} with mask {m:?} and {heads} heads"),
    }
}

/// A pointer to an op's output that the (item, head) tasks write disjoint column ranges of.
#[derive(Clone, Copy)]
struct Rows(*mut f32);
// SAFETY: every task writes only its own head's columns of its own item's rows.
unsafe impl Send for Rows {}
unsafe impl Sync for Rows {}

impl Rows {
    /// The output from float `offset` on (a method, so that closures capture the whole `Send`
    /// wrapper).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Head `head`'s queries, keys or values (`which` 0, 1, 2) in an item's `[s, 3h]` rows: the
/// slice from its first element, its rows `3h` floats apart, read in place by the packed
/// kernel's strided products.
fn head_part(item: &[f32], h: usize, d: usize, which: usize, head: usize) -> &[f32] {
    &item[which * h + head * d..]
}

/// The attention probabilities of one head, `p` `[s, s]` = softmax(q kᵀ · scale + mask) by
/// rows, q and k read in place from the item's `[s, 3h]` rows. Only called where AVX-512F was
/// detected.
fn head_probs(item: &[f32], mask: &[f32], (h, d): (usize, usize), head: usize, p: &mut [f32]) {
    let s = mask.len();
    let scale = 1.0 / (d as f32).sqrt();
    let keys = head_part(item, h, d, 1, head);
    let kt = Panels::new_transposed_strided(keys, 3 * h, s, d).expect("attention: AVX-512F");
    assert_eq!(p.len(), s * s, "attention: probabilities' size");
    // SAFETY: p is s × s, this call's alone.
    unsafe { kt.matmul_strided(head_part(item, h, d, 0, head), 3 * h, s, p.as_mut_ptr(), s) };
    masked_softmax_rows(p, mask, scale);
}

/// The attention op's forward on slices: `qkv` `[b, s, 3h]`, `mask` `[b, s]`, `heads` of width
/// `d` (the dimensions as [`attention_dims`] gives them); the context `[b, s, h]`. With `keep`
/// (`[b · heads, s, s]`), every head's probabilities are written there too, for
/// [`attention_grads`] to reuse.
///
/// One task per (item, head): S = q kᵀ and C = P v on the packed kernel, q, k and v read where
/// they lie in `qkv` and C written straight to the head's columns of the context (no gathered
/// copies, no transposes).
pub(super) fn attention_rows(
    qkv: &[f32],
    mask: &[f32],
    (b, s, h, d): (usize, usize, usize, usize),
    heads: usize,
    keep: Option<&mut [f32]>,
) -> Vec<f32> {
    // Every (item, head) task writes its rows' columns of its head: all of it.
    let mut out = scratch::take(b * s * h);
    if s == 0 {
        return out;
    }
    let rows = Rows(out.as_mut_ptr());
    let run = |task: usize, p: &mut [f32]| {
        let (bi, hd) = (task / heads, task % heads);
        let item = &qkv[bi * s * 3 * h..(bi + 1) * s * 3 * h];
        head_probs(item, &mask[bi * s..(bi + 1) * s], (h, d), hd, p);
        let values = head_part(item, h, d, 2, hd);
        let v = Panels::new_strided(values, 3 * h, s, d).expect("attention: AVX-512F");
        // SAFETY: item bi's rows, head hd's columns of `out`: this task's alone, inside it.
        unsafe { v.matmul_strided(p, s, s, rows.at(bi * s * h + hd * d), h) };
    };
    match keep {
        Some(keep) => {
            assert_eq!(
                keep.len(),
                b * heads * s * s,
                "attention: kept probabilities' size"
            );
            keep.par_chunks_mut((s * s).max(1))
                .enumerate()
                .for_each(|(task, p)| run(task, p));
        }
        None => (0..b * heads)
            .into_par_iter()
            .for_each_init(|| vec![0f32; s * s], |p, task| run(task, p)),
    }
    out
}

impl CustomOp2 for Attention {
    fn name(&self) -> &'static str {
        "proxal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (qkv, mask) = (slice(s1, l1, name)?, slice(s2, l2, name)?);
        let (b, s, h, d) = attention_dims(name, l1, l2, self.heads)?;
        Ok((
            CpuStorage::F32(attention_rows(qkv, mask, (b, s, h, d), self.heads, None)),
            Shape::from((b, s, h)),
        ))
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dqkv = qkv.apply_op3_no_bwd(
            mask,
            &grad.contiguous()?,
            &AttentionBwd { heads: self.heads },
        )?;
        Ok((Some(dqkv), None))
    }
}

/// The attention op's backward: from (qkv, mask, dcontext), dqkv.
struct AttentionBwd {
    heads: usize,
}

/// The attention op's backward on slices: from `qkv`, `mask` and the context's gradient `g`
/// `[b, s, h]`, the gradient of `qkv` `[b, s, 3h]`. `kept`: the probabilities the forward kept
/// ([`attention_rows`]); without them they are computed again.
///
/// One task per (item, head), its four products on the packed kernel reading q, k, v and dC
/// where they lie (rows `3h` or `h` apart), Pᵀ and dSᵀ read as transposed sources instead of
/// being transposed, and dQ, dK, dV written straight to the head's columns of `dqkv`.
pub(super) fn attention_grads(
    qkv: &[f32],
    mask: &[f32],
    g: &[f32],
    (b, s, h, d): (usize, usize, usize, usize),
    heads: usize,
    kept: Option<&[f32]>,
) -> Vec<f32> {
    let scale = 1.0 / (d as f32).sqrt();
    // Every task writes its head's columns of q, k and v for all its item's rows: all of it.
    let mut dqkv = scratch::take(b * s * 3 * h);
    if s == 0 {
        return dqkv;
    }
    let rows = Rows(dqkv.as_mut_ptr());
    let packed =
        |w: &[f32], ld: usize| Panels::new_strided(w, ld, s, d).expect("attention: AVX-512F");
    // Each thread's dP (then dS) and, without `kept`, P, both [s, s].
    let init = || vec![0f32; 2 * s * s];
    (0..b * heads)
        .into_par_iter()
        .for_each_init(init, |buf, task| {
            let (bi, hd) = (task / heads, task % heads);
            let item = &qkv[bi * s * 3 * h..(bi + 1) * s * 3 * h];
            let (dp, own) = buf.split_at_mut(s * s);
            // The probabilities as the forward kept them (read in place), or again.
            let p: &[f32] = match kept {
                Some(all) => &all[task * s * s..(task + 1) * s * s],
                None => {
                    head_probs(item, &mask[bi * s..(bi + 1) * s], (h, d), hd, own);
                    own
                }
            };
            let dc = &g[bi * s * h + hd * d..];
            let base = bi * s * 3 * h + hd * d;
            // dP = dC vᵀ.
            let values = head_part(item, h, d, 2, hd);
            let vt =
                Panels::new_transposed_strided(values, 3 * h, s, d).expect("attention: AVX-512F");
            // SAFETY: dp is s × s, this task's alone.
            unsafe { vt.matmul_strided(dc, h, s, dp.as_mut_ptr(), s) };
            // dV = Pᵀ dC. SAFETY (this and the two below): item bi's rows, head hd's columns of
            // v, q or k in `dqkv`: this task's alone, inside it.
            unsafe { packed(dc, h).matmul_t_strided(p, s, rows.at(base + 2 * h), 3 * h) };
            // dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale, in place of dP.
            for (dr, pr) in dp.chunks_exact_mut(s).zip(p.chunks_exact(s)) {
                softmax_grad_row(dr, pr, scale);
            }
            // dQ = dS k, dK = dSᵀ q.
            let (q, k) = (head_part(item, h, d, 0, hd), head_part(item, h, d, 1, hd));
            unsafe { packed(k, 3 * h).matmul_strided(dp, s, s, rows.at(base), 3 * h) };
            unsafe { packed(q, 3 * h).matmul_t_strided(dp, s, rows.at(base + h), 3 * h) };
        });
    dqkv
}

impl CustomOp3 for AttentionBwd {
    fn name(&self) -> &'static str {
        "proxal-attention-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (qkv, mask, g) = (
            slice(s1, l1, name)?,
            slice(s2, l2, name)?,
            slice(s3, l3, name)?,
        );
        let (b, s, h, d) = attention_dims(name, l1, l2, self.heads)?;
        if g.len() != b * s * h {
            candle_core::bail!("{name}: gradient {} for [{b}, {s}, {h}]", g.len());
        }
        Ok((
            CpuStorage::F32(attention_grads(
                qkv,
                mask,
                g,
                (b, s, h, d),
                self.heads,
                None,
            )),
            l1.shape().clone(),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// GELU (erf)

/// GELU in its exact (erf) form, as `Tensor::gelu_erf`.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !fused(x) {
        return x.gelu_erf();
    }
    x.contiguous()?.apply_op1(GeluErf)
}

struct GeluErf;

crate::numerics::multiversion! {
    /// GELU of a chunk with the vectorising `erf` of [`crate::numerics::scalar`] (absolute
    /// error ≤ 1.5e-7, against libm's scalar `erff` that candle calls).
    fn gelu_chunk(y: &mut [f32], x: &[f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = (crate::numerics::scalar::erf(x * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * x;
        }
    }
}

crate::numerics::multiversion! {
    /// GELU's backward on a chunk: dx = g (Φ(x) + x φ(x)).
    fn gelu_bwd_chunk(dx: &mut [f32], x: &[f32], g: &[f32]) {
        use crate::numerics::scalar::{erf, exp};
        for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(g) {
            let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * exp(-0.5 * x * x);
            *dx = g * (cdf + x * pdf);
        }
    }
}

/// GELU (erf) of every element, over the rayon pool.
pub(super) fn gelu_rows(x: &[f32]) -> Vec<f32> {
    let mut y = scratch::take(x.len());
    y.par_chunks_mut(TASK_ELEMS)
        .zip(x.par_chunks(TASK_ELEMS))
        .for_each(|(y, x)| gelu_chunk(y, x));
    y
}

crate::numerics::multiversion! {
    /// GELU of a chunk, as [`gelu_chunk`], and its slope Φ(x) + x φ(x) (as
    /// [`gelu_bwd_chunk`], with φ from the exp(−x²/2) the erf already computed), for a backward
    /// that keeps the slope instead of the input.
    fn gelu_slope_chunk(y: &mut [f32], slope: &mut [f32], x: &[f32]) {
        for ((y, sl), &x) in y.iter_mut().zip(slope.iter_mut()).zip(x) {
            let (e, gauss) = crate::numerics::scalar::erf_gauss(x * std::f32::consts::FRAC_1_SQRT_2);
            *y = (e + 1.0) * 0.5 * x;
            *sl = 0.5 * (1.0 + e) + x * (INV_SQRT_2PI * gauss);
        }
    }
}

/// GELU (erf) of every element and its slope at each, over the rayon pool: `(gelu(x), gelu'(x))`.
pub(super) fn gelu_slope_rows(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (mut y, mut slope) = (scratch::take(x.len()), scratch::take(x.len()));
    y.par_chunks_mut(TASK_ELEMS)
        .zip(slope.par_chunks_mut(TASK_ELEMS))
        .zip(x.par_chunks(TASK_ELEMS))
        .for_each(|((y, sl), x)| gelu_slope_chunk(y, sl, x));
    (y, slope)
}

/// `a ⊙ b`, over the rayon pool: GELU's backward from its slope ([`gelu_slope_rows`]).
pub(super) fn mul_rows(a: &[f32], b: &[f32]) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "mul_rows: lengths differ");
    let mut out = scratch::take(a.len());
    out.par_chunks_mut(TASK_ELEMS)
        .zip(a.par_chunks(TASK_ELEMS))
        .zip(b.par_chunks(TASK_ELEMS))
        .for_each(|((o, a), b)| {
            o.iter_mut()
                .zip(a)
                .zip(b)
                .for_each(|((o, a), b)| *o = b * a)
        });
    out
}

/// GELU's backward: from its input `x` and the output's gradient `g`, the input's gradient.
pub(super) fn gelu_grads(x: &[f32], g: &[f32]) -> Vec<f32> {
    let mut dx = scratch::take(x.len());
    dx.par_chunks_mut(TASK_ELEMS)
        .zip(x.par_chunks(TASK_ELEMS))
        .zip(g.par_chunks(TASK_ELEMS))
        .for_each(|((dx, x), g)| gelu_bwd_chunk(dx, x, g));
    dx
}

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "proxal-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        Ok((CpuStorage::F32(gelu_rows(x)), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            x.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &GeluErfBwd)?,
        ))
    }
}

/// GELU's backward: from (x, dy), dx.
struct GeluErfBwd;

impl CustomOp2 for GeluErfBwd {
    fn name(&self) -> &'static str {
        "proxal-gelu-erf-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        if x.len() != g.len() {
            candle_core::bail!("{}: x {} but gradient {}", self.name(), x.len(), g.len());
        }
        Ok((CpuStorage::F32(gelu_grads(x, g)), l1.shape().clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// Parameter gradients outside candle's GradStore

/// Parameter gradients written straight by the fused ops' backward passes ([`linear_in`],
/// [`embedding_in`], the encoder stack) instead of returned to candle, whose backward starts
/// every gradient from a zero tensor and adds to it (for MiniLM's weights and word-embedding
/// table, ~90 MB of zeroing and adding a step).
///
/// The sink keeps its buffers from step to step: a step's backward overwrites each gradient
/// (adds to it when a parameter is used twice in one step), and [`crate::train::FusedAdamW`]
/// reads them where they are ([`GradSink::consume`]), so that no step allocates, zeroes or
/// first-touches ~90 MB of fresh pages. An embedding table's gradient is written by rows: only
/// the rows of the step's token ids are touched, and those of the step before are zeroed first
/// (the rest stays zero), so a step costs its tokens, not the table. For any other reader,
/// [`GradSink::drain_into`] moves the gradients into candle's `GradStore` (and empties the sink).
///
/// Writes come from one backward at a time (candle's backward runs its ops in turn).
#[derive(Default)]
pub struct GradSink(std::sync::Mutex<Held>);

#[derive(Default)]
struct Held {
    /// The current step: gradients written in it are its (live); older ones are stale buffers
    /// the next write overwrites.
    step: u64,
    grads: Vec<HeldGrad>,
}

struct HeldGrad {
    param: Tensor,
    values: Vec<f32>,
    /// The step that last wrote `values`.
    step: u64,
    /// For a gradient written by rows (an embedding table's): the rows written since it was
    /// last cleared, every other row being zero; `None` for a dense one.
    rows: Option<Vec<u32>>,
}

impl Held {
    fn find(&mut self, param: &Tensor) -> Option<&mut HeldGrad> {
        self.grads.iter_mut().find(|g| g.param.id() == param.id())
    }

    /// The current step's gradient of `param`, if one was written.
    fn live(&self, param: &Tensor) -> Option<&HeldGrad> {
        (self.grads.iter())
            .find(|g| g.param.id() == param.id())
            .filter(|g| g.step == self.step)
    }
}

impl HeldGrad {
    /// Add `g` to the values (written densely from now on).
    fn accumulate(&mut self, g: &[f32]) {
        self.values.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        self.rows = None;
    }
}

impl GradSink {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `f` writes every one of `len` values of `param`'s gradient (in its layout); the sink
    /// keeps them as this step's gradient, or adds them to it when the step already wrote one.
    /// `f` writes into the buffer of the parameter's last step when there is one (pages already
    /// mapped), and runs without the sink's lock.
    pub(super) fn write<R>(
        &self,
        param: &Tensor,
        len: usize,
        f: impl FnOnce(&mut [f32]) -> R,
    ) -> R {
        let (mut buf, live) = {
            let mut held = self.held();
            let step = held.step;
            match held.find(param) {
                Some(g) if g.step == step => (scratch::take(len), true),
                Some(g) => (std::mem::take(&mut g.values), false),
                None => (Vec::new(), false),
            }
        };
        // A parameter's gradient keeps its size: no-op but on first use.
        buf.resize(len, 0.0);
        let out = f(&mut buf);
        let mut held = self.held();
        let step = held.step;
        match held.find(param) {
            Some(g) if live => {
                g.accumulate(&buf);
                scratch::give(buf);
            }
            Some(g) => {
                (g.values, g.step, g.rows) = (buf, step, None);
            }
            None => held.grads.push(HeldGrad {
                param: param.clone(),
                values: buf,
                step,
                rows: None,
            }),
        }
        out
    }

    /// Add `g` (the gradient of `param`, in its layout) to this step's gradient of it.
    pub(super) fn add(&self, param: &Tensor, g: &[f32]) {
        self.write(param, g.len(), |buf| buf.copy_from_slice(g));
    }

    /// Add row `r` of `g` (rows of `h` values) to row `rows[r]` of `table`'s gradient
    /// `[len / h, h]`, touching only those rows (and clearing the rows the last step wrote).
    fn add_rows(&self, table: &Tensor, len: usize, h: usize, rows: &[u32], g: &[f32]) {
        let mut held = self.held();
        let step = held.step;
        if held.find(table).is_none() {
            // Zeroed by the allocator (fresh pages): only rows written are touched.
            held.grads.push(HeldGrad {
                param: table.clone(),
                values: vec![0f32; len],
                step,
                rows: Some(Vec::new()),
            });
        }
        let grad = held.find(table).expect("just added");
        if grad.step != step {
            // A stale gradient: back to all zeros, by the rows it wrote when it has them.
            match grad.rows.take() {
                Some(old) => old.iter().for_each(|&i| {
                    grad.values[i as usize * h..(i as usize + 1) * h].fill(0.0);
                }),
                None => grad.values.fill(0.0),
            }
            (grad.step, grad.rows) = (step, Some(Vec::new()));
        }
        for (src, &i) in g.chunks_exact(h.max(1)).zip(rows) {
            let dst = &mut grad.values[i as usize * h..(i as usize + 1) * h];
            dst.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
        }
        if let Some(written) = &mut grad.rows {
            written.extend_from_slice(rows);
        }
    }

    /// [`linear_grads`] with the weight's and bias's gradients added here; returns dx `[m, inp]`.
    /// `params` are the (weight, bias) tensors whose rows, stacked in order, make `w` `[out, inp]`
    /// (one pair for a layer; query, key and value for their fused product): each gets its share
    /// of dw's rows and db.
    pub(super) fn linear_grads(
        &self,
        x: &[f32],
        w: &[f32],
        g: &[f32],
        (m, inp, out): (usize, usize, usize),
        params: &[(&Tensor, &Tensor)],
    ) -> Result<Vec<f32>> {
        // Overwritten by the product.
        let mut dx = scratch::take(m * inp);
        let mut db = vec![0f32; out];
        // Rows of dw (and entries of db) per parameter.
        let part = out / params.len().max(1);
        if let [(wt, _)] = params {
            // One layer: the product writes the weight's gradient where the sink keeps it.
            self.write(wt, out * inp, |dw| {
                linear_grads(x, w, g, m, inp, out, &mut dx, dw, &mut db)
            })?;
        } else {
            // Overwritten by the product.
            let mut dw = scratch::take(out * inp);
            linear_grads(x, w, g, m, inp, out, &mut dx, &mut dw, &mut db)?;
            let rows = dw.chunks_exact(part * inp);
            super::stack::phases::time("  sink add", || {
                for ((wt, _), dw) in params.iter().zip(rows) {
                    self.add(wt, dw);
                }
            });
            scratch::give(dw);
        }
        for ((_, bt), db) in params.iter().zip(db.chunks_exact(part.max(1))) {
            self.add(bt, db);
        }
        Ok(dx)
    }

    /// [`layer_norm_grads`] with the weight's and bias's gradients added here; returns dx.
    pub(super) fn layer_norm_grads(
        &self,
        x: &[f32],
        w: &[f32],
        g: &[f32],
        eps: f32,
        (wt, bt): (&Tensor, &Tensor),
    ) -> Vec<f32> {
        // Every row written.
        let mut dx = scratch::take(x.len());
        let (dw, db) = layer_norm_grads(x, w, g, eps, &mut dx);
        self.add(wt, &dw);
        self.add(bt, &db);
        dx
    }

    /// This step's gradients, for an optimiser to read in place; when the returned value is
    /// dropped the step is over, and the next backward overwrites them.
    pub fn consume(&self) -> StepGrads<'_> {
        StepGrads(self.held())
    }

    /// Copies of this step's gradients into `grads` (summed with any candle computed for the
    /// same tensor); the sink keeps its own.
    pub fn copy_into(&self, grads: &mut candle_core::backprop::GradStore) -> Result<()> {
        let held = self.held();
        for g in held.grads.iter().filter(|g| g.step == held.step) {
            merge(grads, &g.param, g.values.clone())?;
        }
        Ok(())
    }

    /// Move this step's gradients into `grads` (summed with any candle computed for the same
    /// tensor), leaving the sink empty.
    pub fn drain_into(&self, grads: &mut candle_core::backprop::GradStore) -> Result<()> {
        let mut held = self.held();
        let step = held.step;
        for g in std::mem::take(&mut held.grads) {
            if g.step == step {
                merge(grads, &g.param, g.values)?;
            }
        }
        Ok(())
    }
}

/// `g` (the gradient of `t`) into `grads`, added to the one there.
fn merge(grads: &mut candle_core::backprop::GradStore, t: &Tensor, g: Vec<f32>) -> Result<()> {
    let g = Tensor::from_vec(g, t.shape(), t.device())?;
    let g = match grads.remove(t) {
        Some(prev) => (prev + g)?,
        None => g,
    };
    grads.insert(t, g);
    Ok(())
}

/// A step's gradients as a [`GradSink`] holds them, for an optimiser; dropping it ends the step.
pub struct StepGrads<'a>(std::sync::MutexGuard<'a, Held>);

impl StepGrads<'_> {
    /// This step's gradient of `param` (in its layout), if the sink holds one.
    pub fn get(&self, param: &Tensor) -> Option<&[f32]> {
        self.0.live(param).map(|g| &g.values[..])
    }

    /// Add `g` to this step's gradient of `param`; false (nothing added) if the sink holds none.
    pub fn add(&mut self, param: &Tensor, g: &[f32]) -> bool {
        let step = self.0.step;
        match self.0.find(param).filter(|h| h.step == step) {
            Some(h) if h.values.len() == g.len() => {
                h.accumulate(g);
                true
            }
            _ => false,
        }
    }
}

impl Drop for StepGrads<'_> {
    fn drop(&mut self) {
        self.0.step += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Embedding lookup

/// Rows `ids` (u32, any shape) of `table` `[vocab, h]`, shaped `[ids…, h]`. With a `sink`, the
/// table's gradient goes there, written once into freshly zeroed memory (only the rows seen
/// are touched); without one, candle's `index_select`.
pub fn embedding_in(
    ids: &Tensor,
    table: &Tensor,
    sink: Option<&std::sync::Arc<GradSink>>,
) -> Result<Tensor> {
    let (vocab, h) = table.dims2()?;
    let flat = ids.flatten_all()?;
    let mut dims = ids.dims().to_vec();
    dims.push(h);
    match sink {
        Some(sink) if fused(table) && ids.dtype() == DType::U32 => flat
            .contiguous()?
            .apply_op2(
                &table.contiguous()?,
                Embedding {
                    vocab,
                    sink: sink.clone(),
                },
            )?
            .reshape(dims),
        _ => table.index_select(&flat, 0)?.reshape(dims),
    }
}

struct Embedding {
    vocab: usize,
    sink: std::sync::Arc<GradSink>,
}

fn ids_of<'a>(s: &'a CpuStorage, l: &Layout, vocab: usize, op: &str) -> Result<&'a [u32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: ids are not contiguous");
    };
    let ids = &s.as_slice::<u32>()?[a..b];
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        candle_core::bail!("{op}: token id {bad} outside the vocabulary of {vocab}");
    }
    Ok(ids)
}

impl CustomOp2 for Embedding {
    fn name(&self) -> &'static str {
        "proxal-embedding"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (ids, table) = (ids_of(s1, l1, self.vocab, name)?, slice(s2, l2, name)?);
        let h = table.len() / self.vocab.max(1);
        let mut out = vec![0f32; ids.len() * h];
        for (row, &i) in out.chunks_exact_mut(h.max(1)).zip(ids) {
            row.copy_from_slice(&table[i as usize * h..(i as usize + 1) * h]);
        }
        Ok((CpuStorage::F32(out), Shape::from((ids.len(), h))))
    }

    fn bwd(
        &self,
        ids: &Tensor,
        table: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ids: Vec<u32> = ids.to_vec1()?;
        let g: Vec<f32> = grad.flatten_all()?.to_vec1()?;
        let h = table.dim(1)?;
        // Only the rows of the ids seen are written (see `GradSink`).
        self.sink.add_rows(table, self.vocab * h, h, &ids, &g);
        Ok((None, None))
    }
}

// ---------------------------------------------------------------------------------------------
// Linear layer

/// `y = x · wᵀ + b` for `x` `[.., in]`, a linear layer's `w` `[out, in]` and `b` `[out]`. On a
/// CPU with AVX-512 the forward and the backward (dx = dy · w, dw = dyᵀ · x, db = Σ_rows dy)
/// run on the packed kernel of [`crate::numerics::gemm`] (candle's matmul uses the gemm crate's
/// AVX2 kernels on x86); elsewhere, `candle_nn::Linear`'s composition.
pub fn linear(x: &Tensor, lin: &candle_nn::Linear) -> Result<Tensor> {
    linear_in(x, lin, None)
}

/// [`linear`] with the weight `[out, in]` and bias `[out]` given as tensors.
pub fn linear_wb(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    linear_wb_in(x, w, b, None)
}

/// [`linear`], its weight and bias gradients into `sink` when given (see [`GradSink`]).
pub fn linear_in(
    x: &Tensor,
    lin: &candle_nn::Linear,
    sink: Option<&std::sync::Arc<GradSink>>,
) -> Result<Tensor> {
    use candle_core::Module;
    match lin.bias() {
        Some(b) => linear_wb_in(x, lin.weight(), b, sink),
        None => lin.forward(x),
    }
}

fn linear_wb_in(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    sink: Option<&std::sync::Arc<GradSink>>,
) -> Result<Tensor> {
    if fused(x) && crate::numerics::gemm::avx512() {
        x.contiguous()?.apply_op3(
            &w.contiguous()?,
            &b.contiguous()?,
            Linear {
                sink: sink.cloned(),
            },
        )
    } else {
        linear_composed(x, w, b)
    }
}

/// `x · wᵀ + b` as differentiable candle ops (the reference in tests).
pub fn linear_composed(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.broadcast_matmul(&w.t()?)?.broadcast_add(b)
}

struct Linear {
    /// Where the weight and bias gradients go; `None`: back to candle.
    sink: Option<std::sync::Arc<GradSink>>,
}

/// (rows, in, out) of a linear op's operands, checked.
fn linear_dims(name: &str, x: &Layout, w: &Layout, b_len: usize) -> Result<(usize, usize, usize)> {
    let (out, inp) = match w.dims() {
        [o, i] => (*o, *i),
        d => candle_core::bail!("{name}: weight {d:?} is not [out, in]"),
    };
    if x.dims().last() != Some(&inp) || b_len != out {
        candle_core::bail!(
            "{name}: x {:?}, weight [{out}, {inp}], bias {b_len}",
            x.dims()
        );
    }
    Ok((x.shape().elem_count() / inp.max(1), inp, out))
}

/// `x · wᵀ + b` on slices: `x` `[m, inp]`, `w` `[out, inp]`, `b` `[out]`; `[m, out]`.
pub(super) fn linear_rows(
    x: &[f32],
    m: usize,
    w: &[f32],
    b: &[f32],
    inp: usize,
    out: usize,
) -> Result<Vec<f32>> {
    use super::stack::phases::time as ph;
    let Some(panels) = ph("  fwd pack", || {
        crate::numerics::gemm::Panels::new_transposed(w, out, inp)
    }) else {
        candle_core::bail!("proxal-linear: needs AVX-512F");
    };
    // Overwritten by the product.
    let mut y = scratch::take(m * out);
    ph("  fwd gemm", || {
        panels.matmul_into(x, m, Some(b), &mut y, true)
    });
    Ok(y)
}

/// The linear op's backward on slices: from `x` `[m, inp]`, `w` `[out, inp]` and the output's
/// gradient `g` `[m, out]`, dx = g · w into `dx` `[m, inp]`, dw = gᵀ · x into `dw`
/// `[out, inp]`, db = Σ_rows g into `db` (all overwritten).
#[allow(clippy::too_many_arguments)]
pub(super) fn linear_grads(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    m: usize,
    inp: usize,
    out: usize,
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) -> Result<()> {
    let no_kernel = || candle_core::Error::Msg("proxal-linear-bwd: needs AVX-512F".into());
    // dx [m, in] = dy [m, out] · w [out, in].
    use super::stack::phases::time as ph;
    ph("  dx pack", || Panels::new(w, out, inp))
        .ok_or_else(no_kernel)
        .map(|p| ph("  dx gemm", || p.matmul_into(g, m, None, dx, true)))?;
    // dw [out, in] = dyᵀ [out, m] · x [m, in]. The product packs its right operand (the m rows
    // of an activation, copied whole) and reads its left one transposed in place, so the
    // narrower of dy and x goes right: x as it stands (the product adds up db = Σ_rows dy as it
    // packs dy's tiles), or dy for dwᵀ = xᵀ · dy, transposed back (weight-sized). Each element
    // is the same chain of products over the rows in order either way, and db the same sums.
    if out >= inp {
        let p = ph("  dw pack", || Panels::new(x, m, inp)).ok_or_else(no_kernel)?;
        ph("  dw gemm", || p.matmul_t_sums_into(g, out, dw, db));
    } else {
        // Overwritten by the product.
        let mut dwt = scratch::take(inp * out);
        let p = ph("  dw pack", || Panels::new(g, m, out)).ok_or_else(no_kernel)?;
        ph("  dw gemm", || p.matmul_t_into(x, inp, &mut dwt));
        ph("  dw transpose", || transpose(&dwt, inp, out, dw));
        scratch::give(dwt);
        // db = Σ_rows dy, in row order.
        ph("  db", || crate::numerics::gemm::column_sums(g, out, db));
    }
    Ok(())
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "proxal-linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (xs, ws, bs) = (
            slice(x, x_layout, name)?,
            slice(w, w_layout, name)?,
            slice(b, b_layout, name)?,
        );
        let (m, inp, out) = linear_dims(name, x_layout, w_layout, bs.len())?;
        let y = linear_rows(xs, m, ws, bs, inp, out)?;
        let mut dims = x_layout.dims().to_vec();
        *dims.last_mut().expect("checked: x has a last dimension") = out;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let op = LinearBwd {
            sink: self.sink.clone().map(|s| (s, w.clone(), b.clone())),
        };
        let out = x.apply_op3_no_bwd(w, &grad, &op)?;
        let n = x.elem_count();
        let dx = out.narrow(0, 0, n)?.reshape(x.shape())?;
        if self.sink.is_some() {
            // The op wrote dw and db into the sink; it returned dx alone.
            return Ok((Some(dx), None, None));
        }
        let nw = w.elem_count();
        let dw = out.narrow(0, n, nw)?.reshape(w.shape())?;
        let db = out.narrow(0, n + nw, b.elem_count())?.reshape(b.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The linear op's backward: from (x, w, dy), `[dx (all of x), dw (out × in), db (out)]`; with
/// a sink (and the weight and bias tensors it keys them by), dw and db go there, written once,
/// and the output is dx alone.
struct LinearBwd {
    sink: Option<(std::sync::Arc<GradSink>, Tensor, Tensor)>,
}

impl CustomOp3 for LinearBwd {
    fn name(&self) -> &'static str {
        "proxal-linear-bwd"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
        dy: &CpuStorage,
        dy_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (xs, ws, g) = (
            slice(x, x_layout, name)?,
            slice(w, w_layout, name)?,
            slice(dy, dy_layout, name)?,
        );
        let out = w_layout.dims().first().copied().unwrap_or(0);
        let (m, inp, out) = linear_dims(name, x_layout, w_layout, out)?;
        if g.len() != m * out {
            candle_core::bail!("{name}: gradient {} for {m} rows × {out}", g.len());
        }
        match &self.sink {
            Some((sink, w, b)) => {
                let dx = sink.linear_grads(xs, ws, g, (m, inp, out), &[(w, b)])?;
                Ok((CpuStorage::F32(dx), Shape::from(m * inp)))
            }
            None => {
                let mut buf = vec![0f32; m * inp + out * inp + out];
                let (dx, rest) = buf.split_at_mut(m * inp);
                let (dw, db) = rest.split_at_mut(out * inp);
                linear_grads(xs, ws, g, m, inp, out, dx, dw, db)?;
                let len = buf.len();
                Ok((CpuStorage::F32(buf), Shape::from(len)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// max |a − b| / max(max |b|, 1e-6)
    fn rel(a: &Tensor, b: &Tensor) -> Result<f32> {
        let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        let m = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        Ok(d / m.max(1e-6))
    }

    fn check(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
        let r = rel(a, b)?;
        assert!(r < 1e-4, "{what}: relative error {r}");
        Ok(())
    }

    /// Forward values and gradients (of Σ y ⊙ r for a random r) of `f` and `reference` agree.
    fn compare(
        vars: &[Var],
        f: impl Fn(&[Tensor]) -> Result<Tensor>,
        reference: impl Fn(&[Tensor]) -> Result<Tensor>,
    ) -> Result<()> {
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts)?;
        let y_ref = reference(&ts)?;
        check("forward", &y, &y_ref)?;
        let r = Tensor::randn(0f32, 1.0, y.shape(), y.device())?;
        let g = (&y * &r)?.sum_all()?.backward()?;
        let g_ref = (&y_ref * &r)?.sum_all()?.backward()?;
        for (i, v) in vars.iter().enumerate() {
            let a = g.get(v.as_tensor()).expect("fused op gives a gradient");
            let b = g_ref
                .get(v.as_tensor())
                .expect("reference gives a gradient");
            check(&format!("gradient of input {i}"), a, b)?;
        }
        Ok(())
    }

    /// (Without AVX-512F `linear` is candle_nn::Linear, and these hold trivially.)
    #[test]
    fn linear_matches_composition_forward_and_backward_on_ragged_shapes() -> Result<()> {
        let dev = Device::Cpu;
        // Rows, inputs and outputs off the kernel's 12-row and 32-column blocks; 3-D input as
        // the backbone's [batch, tokens, hidden].
        for (b, s, inp, out) in [
            (1, 1, 1, 1),
            (2, 7, 45, 70),
            (3, 37, 384, 1536),
            (5, 13, 33, 31),
        ] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, s, inp), &dev)?)?;
            let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (out, inp), &dev)?)?;
            let bias = Var::from_tensor(&Tensor::randn(0f32, 0.5, out, &dev)?)?;
            let lin = candle_nn::Linear::new(w.as_tensor().clone(), Some(bias.as_tensor().clone()));
            compare(
                &[x, w, bias],
                |t| linear(&t[0], &lin),
                |t| linear_composed(&t[0], &t[1], &t[2]),
            )?;
        }
        Ok(())
    }

    /// The backward pass of Σ f(inputs) ⊙ r (r random) against central finite differences of
    /// the same loss, element by element of every input: `inputs` are f64, `f` runs on their
    /// f32 copies, the loss is summed in f64.
    fn check_finite_differences(
        inputs: &[Tensor],
        f: impl Fn(&[Tensor]) -> Result<Tensor>,
        tol: f64,
    ) -> Result<()> {
        let dev = Device::Cpu;
        let f32s = |xs: &[Tensor]| -> Result<Vec<Tensor>> {
            xs.iter().map(|x| x.to_dtype(DType::F32)).collect()
        };
        let vars: Vec<Var> = f32s(inputs)?
            .iter()
            .map(Var::from_tensor)
            .collect::<Result<_>>()?;
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts)?;
        let r = Tensor::randn(0f64, 1.0, y.shape(), &dev)?;
        let loss = |xs: &[Tensor]| -> Result<f64> {
            (f(&f32s(xs)?)?.to_dtype(DType::F64)? * &r)?
                .sum_all()?
                .to_scalar::<f64>()
        };
        let grads = (y * r.to_dtype(DType::F32)?)?.sum_all()?.backward()?;
        let eps = 1e-2;
        for (i, (base, v)) in inputs.iter().zip(&vars).enumerate() {
            let g: Vec<f32> = grads
                .get(v.as_tensor())
                .expect("a gradient")
                .flatten_all()?
                .to_vec1()?;
            let flat: Vec<f64> = base.flatten_all()?.to_vec1()?;
            for (j, &gj) in g.iter().enumerate() {
                let at = |d: f64| -> Result<Vec<Tensor>> {
                    let mut v = flat.clone();
                    v[j] += d;
                    let mut xs = inputs.to_vec();
                    xs[i] = Tensor::from_vec(v, base.shape(), &dev)?;
                    Ok(xs)
                };
                let fd = (loss(&at(eps)?)? - loss(&at(-eps)?)?) / (2.0 * eps);
                assert!(
                    (fd - gj as f64).abs() < tol * (1.0 + fd.abs()),
                    "input {i} element {j}: finite difference {fd}, backward {gj}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn linear_backward_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let (m, inp, out) = (5, 6, 4);
        let x = Tensor::randn(0f64, 1.0, (m, inp), &dev)?;
        let w = Tensor::randn(0f64, 0.5, (out, inp), &dev)?;
        let b = Tensor::randn(0f64, 0.5, out, &dev)?;
        check_finite_differences(
            &[x, w, b],
            |t| {
                linear(
                    &t[0],
                    &candle_nn::Linear::new(t[1].clone(), Some(t[2].clone())),
                )
            },
            2e-3,
        )
    }

    /// Losses of `steps` SGD steps of a tiny BERT (2 layers, a ragged padded batch) with a mean-
    /// pooled linear head, from seeded weights, built from the fused ops or (`reference`) from
    /// candle's compositions.
    fn tiny_loss_curve(reference: bool, with_sink: bool, steps: usize) -> Result<Vec<f32>> {
        use candle_nn::Optimizer;
        REFERENCE.with(|r| r.set(reference));
        let dev = Device::Cpu;
        let (vm, bert) = crate::backbone::tiny::trainable((50, 2, 128, 32), 7)
            .map_err(candle_core::Error::wrap)?;
        let mut rng = crate::util::rng(3);
        let head: Vec<f32> = {
            use rand::Rng;
            (0..3 * 64)
                .map(|_| rng.random_range(-0.2f32..0.2))
                .collect()
        };
        let head = Var::from_tensor(&Tensor::from_vec(head, (3, 64), &dev)?)?;
        let mut vars = vm.all_vars();
        vars.push(head.clone());
        let mut sgd = candle_nn::SGD::new(vars, 0.1)?;
        // One batch, fitted over and over: 4 rows of 9 tokens, row i padded after 9 − 2i.
        let (b, s) = (4, 9);
        let (ids, mask) = crate::backbone::tiny::ragged_batch(&mut rng, (b, s, 50, 2))?;
        let y = Tensor::from_vec(vec![0u32, 1, 2, 1], b, &dev)?;
        let mut losses = Vec::new();
        for _ in 0..steps {
            let sink = std::sync::Arc::new(GradSink::default());
            let hidden = bert.forward_train(&ids, &mask, None, with_sink.then_some(&sink))?;
            let f = crate::backbone::pooling::pool(&hidden, &mask, crate::backbone::Pooling::Mean)?;
            let logits = f.matmul(&head.as_tensor().t()?)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            losses.push(loss.to_scalar::<f32>()?);
            let mut grads = loss.backward()?;
            sink.drain_into(&mut grads)?;
            sgd.step(&grads)?;
        }
        REFERENCE.with(|r| r.set(false));
        Ok(losses)
    }

    #[test]
    fn a_tiny_fine_tune_follows_the_same_loss_curve_as_the_composed_ops() -> Result<()> {
        let reference = tiny_loss_curve(true, false, 12)?;
        let fused = tiny_loss_curve(false, false, 12)?;
        // As a training step runs: parameter gradients through the sink.
        let sunk = tiny_loss_curve(false, true, 12)?;
        for (i, ((a, b), c)) in fused.iter().zip(&reference).zip(&sunk).enumerate() {
            assert!(
                (a - b).abs() < 1e-4,
                "step {i}: fused {a}, composed {b}\n{fused:?}\n{reference:?}"
            );
            assert!(
                (c - b).abs() < 1e-4,
                "step {i}: with a sink {c}, composed {b}\n{sunk:?}\n{reference:?}"
            );
        }
        // The curve moved: the weights were trained, not left alone.
        assert!(
            fused.last().unwrap() < &(fused[0] * 0.8),
            "the loss did not fall: {fused:?}"
        );
        Ok(())
    }

    /// Rows of no tokens: both directions give nothing, without reading a head's columns of
    /// them.
    #[test]
    fn attention_of_rows_without_tokens_is_empty() {
        let dims = (2, 0, 8, 4);
        let heads = 2;
        assert!(attention_rows(&[], &[], dims, heads, None).is_empty());
        assert!(attention_rows(&[], &[], dims, heads, Some(&mut [])).is_empty());
        assert!(attention_grads(&[], &[], &[], dims, heads, None).is_empty());
    }

    #[test]
    fn attention_matches_its_composition_on_ragged_batches() -> Result<()> {
        let dev = Device::Cpu;
        // 3 items of 9 tokens (item i padded after 9 − 3i), 3 heads of width 5; and one token.
        for (b, s, heads, d) in [
            (3usize, 9usize, 3usize, 5usize),
            (1, 1, 2, 4),
            (2, 40, 12, 32),
        ] {
            let h = heads * d;
            let qkv = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, s, 3 * h), &dev)?)?;
            let mut m = vec![0f32; b * s];
            for i in 0..b {
                for t in s.saturating_sub(3 * i).max(1)..s {
                    m[i * s + t] = f32::MIN;
                }
            }
            let mask = Tensor::from_vec(m, (b, s), &dev)?;
            compare(
                &[qkv],
                |t| attention(&t[0], &mask, heads),
                |t| attention_composed(&t[0], &mask, heads),
            )?;
        }
        Ok(())
    }

    #[test]
    fn attention_backward_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let (b, s, heads, d) = (2, 4, 2, 3);
        let h = heads * d;
        let x = Tensor::randn(0f64, 1.0, (b, s, 3 * h), &dev)?;
        let mask = Tensor::from_vec(vec![0f32, 0., 0., f32::MIN, 0., 0., 0., 0.], (b, s), &dev)?;
        check_finite_differences(&[x], |t| attention(&t[0], &mask, heads), 3e-3)
    }

    #[test]
    fn seeded_dropout_is_reproducible_drops_about_p_and_masks_its_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let n = 3 * TASK_ELEMS + 17; // several rayon chunks and a ragged tail
        let x = Var::from_tensor(&(Tensor::randn(0f32, 1.0, n, &dev)? + 3.0)?)?;
        let p = 0.1f32;
        let y = dropout(x.as_tensor(), p, 42)?;
        // The same seed, the same mask; another seed, another mask.
        let again = dropout(x.as_tensor(), p, 42)?;
        assert_eq!(y.to_vec1::<f32>()?, again.to_vec1::<f32>()?);
        let other = dropout(x.as_tensor(), p, 43)?.to_vec1::<f32>()?;
        assert_ne!(y.to_vec1::<f32>()?, other);
        // About p of the elements dropped (binomial: 4 standard deviations), the rest scaled.
        let mask = dropout_mask(n, p, 42);
        let dropped = mask.iter().filter(|&&m| m == 0.0).count() as f64;
        let sd = (n as f64 * 0.1 * 0.9).sqrt();
        assert!(
            (dropped - 0.1 * n as f64).abs() < 4.0 * sd,
            "{dropped} of {n} dropped"
        );
        assert!(mask
            .iter()
            .all(|&m| m == 0.0 || (m - 1.0 / 0.9).abs() < 1e-6));
        // Forward and gradient are x ⊙ mask, the mask of `dropout_mask`.
        let m = Tensor::from_vec(mask, n, &dev)?;
        compare(&[x], |t| dropout(&t[0], p, 42), |t| &t[0] * &m)?;
        Ok(())
    }

    /// An embedding table `[11, 8]`, a linear layer's weight `[5, 8]` and bias, and that layer.
    fn sink_params(dev: &Device) -> Result<(Var, Var, Var, candle_nn::Linear)> {
        let table = Var::from_tensor(&Tensor::randn(0f32, 1.0, (11, 8), dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.3, (5, 8), dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, 5, dev)?)?;
        let lin = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        Ok((table, w, b, lin))
    }

    /// Σ r ⊙ (lin(x) + lin(x / 2)) for x the rows `ids` `[2, 3]` of `table`: the linear layer
    /// used twice (its gradients add up in the sink too).
    fn sink_loss(
        ids: &Tensor,
        table: &Var,
        lin: &candle_nn::Linear,
        r: &Tensor,
        sink: Option<&std::sync::Arc<GradSink>>,
    ) -> Result<Tensor> {
        let x = embedding_in(ids, table.as_tensor(), sink)?;
        let y = linear_in(&x, lin, sink)?;
        let y2 = linear_in(&(&x * 0.5)?, lin, sink)?;
        ((y + y2)? * r)?.sum_all()
    }

    /// Each named parameter's gradient in `grads` against `reference`'s.
    fn check_params(
        grads: &candle_core::backprop::GradStore,
        reference: &candle_core::backprop::GradStore,
        params: [(&str, &Var); 3],
    ) -> Result<()> {
        for (name, v) in params {
            check(
                name,
                grads.get(v.as_tensor()).expect("drained"),
                reference.get(v.as_tensor()).expect("reference"),
            )?;
        }
        Ok(())
    }

    #[test]
    fn a_grad_sink_holds_the_gradients_candle_would_have_computed() -> Result<()> {
        let dev = Device::Cpu;
        let (table, w, b, lin) = sink_params(&dev)?;
        // Repeated ids.
        let ids = Tensor::from_vec(vec![3u32, 0, 3, 10, 7, 3], (2, 3), &dev)?;
        let r = Tensor::randn(0f32, 1.0, (2, 3, 5), &dev)?;
        let loss = |sink| sink_loss(&ids, &table, &lin, &r, sink);
        let reference = loss(None)?.backward()?;
        let sink = std::sync::Arc::new(GradSink::default());
        let mut grads = loss(Some(&sink))?.backward()?;
        for v in [&table, &w, &b] {
            assert!(
                grads.get(v.as_tensor()).is_none(),
                "candle got a gradient the sink holds"
            );
        }
        sink.drain_into(&mut grads)?;
        check_params(
            &grads,
            &reference,
            [("table", &table), ("weight", &w), ("bias", &b)],
        )?;
        assert!(sink.held().grads.is_empty(), "drained sink not empty");
        Ok(())
    }

    /// A sink keeps its buffers from step to step: each step's gradients must be that step's
    /// alone (the embedding rows the step before wrote cleared, the weights overwritten, not
    /// added to), and a parameter used twice in a step still gets the sum.
    #[test]
    fn a_reused_sink_gives_each_step_its_own_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let (table, w, b, lin) = sink_params(&dev)?;
        let r = Tensor::randn(0f32, 1.0, (2, 3, 5), &dev)?;
        let loss = |ids: &[u32], sink: Option<&std::sync::Arc<GradSink>>| -> Result<Tensor> {
            let ids = Tensor::from_slice(ids, (2, 3), &dev)?;
            sink_loss(&ids, &table, &lin, &r, sink)
        };
        let sink = std::sync::Arc::new(GradSink::default());
        // Step 1 writes rows 0, 1, 2, 9 and 4; step 2 rows 4, 6, 9 and 10 only.
        let steps: [&[u32]; 2] = [&[1, 0, 2, 9, 4, 1], &[6, 6, 4, 10, 9, 6]];
        for (i, ids) in steps.iter().enumerate() {
            let candle_grads = loss(ids, Some(&sink))?.backward()?;
            let reference = loss(ids, None)?.backward()?;
            if i == 0 {
                // The optimiser's read: ends the step, the buffers stay.
                let held = sink.consume();
                assert!(held.get(table.as_tensor()).is_some());
                drop(held);
                continue;
            }
            let mut grads = candle_grads;
            sink.drain_into(&mut grads)?;
            check_params(
                &grads,
                &reference,
                [("table", &table), ("weight", &w), ("bias", &b)],
            )?;
            let dt = grads
                .get(table.as_tensor())
                .expect("drained")
                .to_vec2::<f32>()?;
            for r in [0, 1, 2] {
                assert!(dt[r].iter().all(|&v| v == 0.0), "row {r} of step 1 left");
            }
        }
        Ok(())
    }

    #[test]
    fn attention_softmax_matches_scale_mask_and_softmax_composed() -> Result<()> {
        let dev = Device::Cpu;
        // Ragged: 3 items of 7 tokens, 2 heads, item i padded after 7 − 2i tokens.
        let (b, n, s) = (3, 2, 7);
        let scores = Var::from_tensor(&Tensor::randn(0f32, 2.0, (b, n, s, s), &dev)?)?;
        let mut m = vec![0f32; b * s];
        for i in 0..b {
            for t in s - 2 * i..s {
                m[i * s + t] = f32::MIN;
            }
        }
        let mask = Tensor::from_vec(m, (b, s), &dev)?;
        let scale = 1.0 / (s as f64).sqrt();
        compare(
            &[scores],
            |t| attention_softmax(&t[0], &mask, scale),
            |t| {
                let bias = mask.reshape((b, 1, 1, s))?;
                softmax_last_composed(&(&t[0] * scale)?.broadcast_add(&bias)?)
            },
        )
    }

    #[test]
    fn layer_norm_matches_composition_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        // Enough rows to span several rayon tasks; an offset mean and scale as in BERT.
        for (rows, h) in [(3, 8), (2 * 700, 384)] {
            let x = Var::from_tensor(&(Tensor::randn(0f32, 3.0, (2, rows / 2, h), &dev)? + 1.5)?)?;
            let w = Var::from_tensor(&(Tensor::randn(0f32, 0.5, h, &dev)? + 1.0)?)?;
            let b = Var::from_tensor(&Tensor::randn(0f32, 0.5, h, &dev)?)?;
            compare(
                &[x, w, b],
                |t| layer_norm(&t[0], &t[1], &t[2], 1e-12),
                |t| layer_norm_composed(&t[0], &t[1], &t[2], 1e-12),
            )?;
        }
        Ok(())
    }

    #[test]
    fn layer_norm_of_a_non_contiguous_input() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (6, 4, 5), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, 6, &dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 6, &dev)?)?;
        compare(
            &[x, w, b],
            |t| layer_norm(&t[0].transpose(0, 2)?, &t[1], &t[2], 1e-5),
            |t| layer_norm_composed(&t[0].transpose(0, 2)?, &t[1], &t[2], 1e-5),
        )
    }

    #[test]
    fn softmax_matches_composition_with_attention_mask() -> Result<()> {
        let dev = Device::Cpu;
        let (b, n, s) = (3, 4, 37);
        let x = Var::from_tensor(&Tensor::randn(0f32, 4.0, (b, n, s, s), &dev)?)?;
        // The additive mask of BERT: the most negative f32 on padded key positions.
        let mut m = vec![0f32; b * s];
        for (i, v) in m.iter_mut().enumerate() {
            if i % s >= s - 5 * (i / s) {
                *v = f32::MIN;
            }
        }
        let mask = Tensor::from_vec(m, (b, 1, 1, s), &dev)?;
        compare(
            &[x],
            |t| softmax_last(&t[0].broadcast_add(&mask)?),
            |t| softmax_last_composed(&t[0].broadcast_add(&mask)?),
        )
    }

    #[test]
    fn gelu_matches_candle_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 3.0, (5, 40_000), &dev)?)?;
        compare(&[x], |t| gelu_erf(&t[0]), |t| t[0].gelu_erf())
    }

    #[test]
    fn gelu_backward_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let xs: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.1).collect();
        let x = Var::from_vec(xs.clone(), xs.len(), &dev)?;
        let g = gelu_erf(x.as_tensor())?.sum_all()?.backward()?;
        let dx = g.get(x.as_tensor()).unwrap().to_vec1::<f32>()?;
        let f = |v: f64| 0.5 * v * (1.0 + candle_core::cpu::erf::erf_f64(v / 2f64.sqrt()));
        for (&x, &d) in xs.iter().zip(&dx) {
            let e = 1e-4;
            let fd = (f(x as f64 + e) - f(x as f64 - e)) / (2.0 * e);
            assert!((d as f64 - fd).abs() < 1e-4, "x {x}: {d} vs {fd}");
        }
        Ok(())
    }
}
