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
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape};
use candle_core::{Tensor, D};
use rayon::prelude::*;

/// Elements per rayon task.
const TASK_ELEMS: usize = 1 << 14;

fn rows_per_task(h: usize) -> usize {
    (TASK_ELEMS / h.max(1)).max(1)
}

/// `f(out_row, in_row)` on each row of `h` values of `x` (rows spread over the rayon pool); the
/// outputs, in the shape of `x`.
fn per_row(x: &[f32], h: usize, f: impl Fn(&mut [f32], &[f32]) + Sync) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
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

fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
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
        let y = per_row(x, h, |y, x| {
            let (mean, rstd) = ln_stats(x, self.eps);
            for (((y, &x), &w), &b) in y.iter_mut().zip(x).zip(w).zip(b) {
                *y = (x - mean) * rstd * w + b;
            }
        });
        Ok((CpuStorage::F32(y), x_layout.shape().clone()))
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
        let rows = rows_per_task(h) * h;
        let (dw, db) = dx
            .par_chunks_mut(rows)
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
                    let (mean, rstd) = ln_stats(x, self.eps);
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
            );
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
        let y = per_row(x, h, |y, x| {
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (y, &x) in y.iter_mut().zip(x) {
                *y = (x - max).exp();
                sum += *y;
            }
            let inv = 1.0 / sum;
            y.iter_mut().for_each(|y| *y *= inv);
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let y = res.contiguous()?;
        Ok(Some(
            y.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxLastBwd)?,
        ))
    }
}

/// Softmax's backward: from (y, dy), dx.
struct SoftmaxLastBwd;

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
        let mut dx = vec![0f32; y.len()];
        let rows = rows_per_task(h) * h;
        dx.par_chunks_mut(rows)
            .zip(y.par_chunks(rows))
            .zip(g.par_chunks(rows))
            .for_each(|((dx, y), g)| {
                for ((dx, y), g) in dx
                    .chunks_exact_mut(h)
                    .zip(y.chunks_exact(h))
                    .zip(g.chunks_exact(h))
                {
                    let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                    for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(g) {
                        *dx = y * (g - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(dx), y_layout.shape().clone()))
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

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "proxal-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(TASK_ELEMS)
            .zip(x.par_chunks(TASK_ELEMS))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = (candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2)
                        + 1.0)
                        * 0.5
                        * x;
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
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
        // 1/√(2π)
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(TASK_ELEMS)
            .zip(x.par_chunks(TASK_ELEMS))
            .zip(g.par_chunks(TASK_ELEMS))
            .for_each(|((dx, x), g)| {
                for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(g) {
                    let cdf = 0.5
                        * (1.0
                            + candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
                    let pdf = INV_SQRT_2PI * (-0.5 * x * x).exp();
                    *dx = g * (cdf + x * pdf);
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
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
