//! f32 matrix products for the inference paths: `C = A · W (+ bias)` with the weight `W` packed
//! once.
//!
//! On CPUs with AVX-512 a 12 × 32 register-blocked kernel runs over `W` stored as 32-column
//! panels (`[⌈n/32⌉][k][32]`, the last panel zero-padded, its stores masked), with the rows of
//! `A` broadcast straight from their row-major layout (no packing of activations). [`Panels`]
//! is the kernel on plain slices (the backbone's dense layers and the proxy's logits both use
//! it), serial or split over rayon by (row block, panel group); [`PackedWeight`] wraps it with
//! candle's matmul as the fallback elsewhere. The kernel accumulates over `k` in order, one FMA
//! per step, starting from the bias (or zero), so a row's result does not depend on the other
//! rows of the batch, nor on threading.
use anyhow::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

const NR: usize = 32;
const MR: usize = 12;
/// Rows per task (a multiple of MR); 96 rows × k = 384 floats stay in L2 across the panels.
const MB: usize = 96;
/// 32-column panels per task.
const NP: usize = 4;

/// Whether the AVX-512F kernels can run on this CPU (checked at run time; the build is
/// baseline x86-64).
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One k-step of a 32-column panel, 64-byte aligned: loaded as two 16-lane vectors by value
/// (no pointer reads, so no per-load UB checks in builds with debug assertions).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct PanelRow([f32; NR]);

/// A weight `[k, n]` packed for the AVX-512 kernel. Only built where [`avx512`] holds.
#[derive(Clone)]
pub struct Panels {
    k: usize,
    n: usize,
    /// `[⌈n / NR⌉][k]` rows of NR floats; columns past `n` are zero.
    data: Vec<PanelRow>,
}

impl std::fmt::Debug for Panels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Panels")
            .field("k", &self.k)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl Panels {
    /// Pack `w`, row-major `[k, n]`. `None` when the CPU lacks AVX-512F.
    pub fn new(w: &[f32], k: usize, n: usize) -> Option<Panels> {
        assert_eq!(w.len(), k * n, "Panels::new: w is not k × n");
        if !avx512() {
            return None;
        }
        let np = n.div_ceil(NR);
        let mut data = vec![PanelRow([0.0; NR]); k * np];
        for (pi, panel) in data.chunks_exact_mut(k.max(1)).enumerate().take(np) {
            let (c0, c1) = (pi * NR, ((pi + 1) * NR).min(n));
            for (kk, dst) in panel.iter_mut().enumerate() {
                dst.0[..c1 - c0].copy_from_slice(&w[kk * n + c0..kk * n + c1]);
            }
        }
        Some(Panels { k, n, data })
    }

    /// Pack the transpose of `w`, row-major `[n, k]` (a linear layer's `[out, in]` weight), as
    /// the `[k, n]` operand, so that [`Panels::matmul_into`] computes `a · wᵀ`. `None` when the
    /// CPU lacks AVX-512F. Panels are filled in parallel.
    pub fn new_transposed(w: &[f32], n: usize, k: usize) -> Option<Panels> {
        assert_eq!(w.len(), k * n, "Panels::new_transposed: w is not n × k");
        if !avx512() {
            return None;
        }
        let np = n.div_ceil(NR);
        let mut data = vec![PanelRow([0.0; NR]); k * np];
        if k > 0 {
            data.par_chunks_exact_mut(k)
                .enumerate()
                .for_each(|(pi, panel)| {
                    let (c0, c1) = (pi * NR, ((pi + 1) * NR).min(n));
                    for j in c0..c1 {
                        for (dst, &v) in panel.iter_mut().zip(&w[j * k..(j + 1) * k]) {
                            dst.0[j - c0] = v;
                        }
                    }
                });
        }
        Some(Panels { k, n, data })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// `c = a · W + bias` for `a` row-major `[m, k]` and `c` row-major `[m, n]` (overwritten);
    /// `bias` (length n) is the accumulators' starting value. `parallel` splits the work over
    /// the rayon pool; callers that already run one task per block pass `false`. Bit-identical
    /// either way.
    pub fn matmul_into(
        &self,
        a: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        c: &mut [f32],
        parallel: bool,
    ) {
        let (k, n) = (self.k, self.n);
        assert_eq!(a.len(), m * k, "matmul: A is not m × k");
        assert_eq!(c.len(), m * n, "matmul: C is not m × n");
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "matmul: bias is not n long");
        }
        if m == 0 || n == 0 {
            return;
        }
        // Zero-padded bias in panel layout (one PanelRow per panel).
        let np = n.div_ceil(NR);
        let mut bp = vec![PanelRow([0.0; NR]); np];
        if let Some(b) = bias {
            for (p, row) in bp.iter_mut().enumerate() {
                let (c0, c1) = (p * NR, ((p + 1) * NR).min(n));
                row.0[..c1 - c0].copy_from_slice(&b[c0..c1]);
            }
        }
        #[cfg(target_arch = "x86_64")]
        x86::gemm(a, m, k, n, &self.data, &bp, c, parallel);
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("Panels are only built with AVX-512");
    }
}

/// A weight `[k, n]` ready for [`PackedWeight::matmul`].
pub struct PackedWeight {
    k: usize,
    n: usize,
    /// `[k, n]` row-major, for the fallback.
    tensor: Tensor,
    /// The AVX-512 kernel's copy, when it can run.
    panels: Option<Panels>,
}

impl PackedWeight {
    /// `w` is `[k, n]` (input features × output features).
    pub fn new(w: &Tensor) -> Result<Self> {
        let (k, n) = w.dims2()?;
        let tensor = w.contiguous()?.copy()?;
        let panels = if avx512() {
            Panels::new(&tensor.flatten_all()?.to_vec1::<f32>()?, k, n)
        } else {
            None
        };
        Ok(PackedWeight {
            k,
            n,
            tensor,
            panels,
        })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// `a` is `[m, k]` row-major; returns `[m, n]`, computed over the rayon pool.
    pub fn matmul(&self, a: &[f32], m: usize) -> Result<Vec<f32>> {
        assert_eq!(a.len(), m * self.k, "matmul: A is not m × k");
        if let Some(p) = &self.panels {
            let mut c = vec![0f32; m * self.n];
            p.matmul_into(a, m, None, &mut c, true);
            return Ok(c);
        }
        let at = Tensor::from_slice(a, (m, self.k), &Device::Cpu)?;
        Ok(at.matmul(&self.tensor)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    struct SendPtr(*mut f32);
    // SAFETY: tasks write disjoint (row block × panel group) regions of C.
    unsafe impl Send for SendPtr {}
    unsafe impl Sync for SendPtr {}

    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        a: &[f32],
        m: usize,
        k: usize,
        n: usize,
        panels: &[PanelRow],
        bias: &[PanelRow],
        c: &mut [f32],
        parallel: bool,
    ) {
        let np = n.div_ceil(NR);
        let cp = SendPtr(c.as_mut_ptr());
        let ap = a.as_ptr() as usize;
        let run = move |(m0, m1, p0, p1): (usize, usize, usize, usize)| {
            let cp = cp;
            // SAFETY: Panels exist only where AVX-512F was detected; every pointer stays inside
            // a (m × k) and c (m × n); regions written by different tasks are disjoint.
            unsafe { block(ap as *const f32, k, m0, m1, p0, p1, panels, bias, cp.0, n) }
        };
        if !parallel {
            // Row blocks outer, all panels inner: the block's rows stay in cache while every
            // panel passes over them.
            for m0 in (0..m).step_by(MB) {
                run((m0, (m0 + MB).min(m), 0, np));
            }
            return;
        }
        let mut tasks = Vec::new();
        for m0 in (0..m).step_by(MB) {
            for p0 in (0..np).step_by(NP) {
                tasks.push((m0, (m0 + MB).min(m), p0, (p0 + NP).min(np)));
            }
        }
        tasks.into_par_iter().for_each(run);
    }

    /// Store masks for panel `p` of an `n`-wide output: (low 16 columns, high 16 columns).
    fn masks(p: usize, n: usize) -> (u16, u16) {
        let cols = (n - p * NR).min(NR);
        let m = |c: usize| if c >= 16 { u16::MAX } else { (1u16 << c) - 1 };
        (m(cols.min(16)), m(cols.saturating_sub(16)))
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block(
        a: *const f32,
        k: usize,
        m0: usize,
        m1: usize,
        p0: usize,
        p1: usize,
        panels: &[PanelRow],
        bias: &[PanelRow],
        c: *mut f32,
        n: usize,
    ) {
        for p in p0..p1 {
            let bp = &panels[p * k..(p + 1) * k];
            let b0 = bias[p];
            let mk = masks(p, n);
            let mut i = m0;
            while i + MR <= m1 {
                tile::<MR>(a.add(i * k), k, bp, b0, c.add(i * n + p * NR), n, mk);
                i += MR;
            }
            let (a, c) = (a.add(i * k), c.add(i * n + p * NR));
            match m1 - i {
                0 => {}
                1 => tile::<1>(a, k, bp, b0, c, n, mk),
                2 => tile::<2>(a, k, bp, b0, c, n, mk),
                3 => tile::<3>(a, k, bp, b0, c, n, mk),
                4 => tile::<4>(a, k, bp, b0, c, n, mk),
                5 => tile::<5>(a, k, bp, b0, c, n, mk),
                6 => tile::<6>(a, k, bp, b0, c, n, mk),
                7 => tile::<7>(a, k, bp, b0, c, n, mk),
                8 => tile::<8>(a, k, bp, b0, c, n, mk),
                9 => tile::<9>(a, k, bp, b0, c, n, mk),
                10 => tile::<10>(a, k, bp, b0, c, n, mk),
                _ => tile::<11>(a, k, bp, b0, c, n, mk),
            }
        }
    }

    /// C[R × 32] = bias + A[R × k] · panel[k × 32]; A rows `k` apart, C rows `ldc` apart, only
    /// the columns in the masks stored.
    ///
    /// Pointer steps use `wrapping_add` and loads go through intrinsics: in this crate's dev
    /// profile (debug assertions on) `ptr.add` and `*ptr` carry per-use UB checks that would
    /// otherwise sit in the innermost loop.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const R: usize>(
        a: *const f32,
        k: usize,
        bp: &[PanelRow],
        bias: PanelRow,
        c: *mut f32,
        ldc: usize,
        (mlo, mhi): (u16, u16),
    ) {
        let [z0, z1]: [__m512; 2] = std::mem::transmute(bias.0);
        let mut lo = [z0; R];
        let mut hi = [z1; R];
        let mut rows = [a; R];
        for (r, p) in rows.iter_mut().enumerate() {
            *p = a.wrapping_add(r * k);
        }
        for row in bp {
            let [b0, b1]: [__m512; 2] = std::mem::transmute(row.0);
            for r in 0..R {
                let av = _mm512_broadcastss_ps(_mm_load_ss(rows[r]));
                lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
                hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
                rows[r] = rows[r].wrapping_add(1);
            }
        }
        for r in 0..R {
            let cr = c.wrapping_add(r * ldc);
            _mm512_mask_storeu_ps(cr, mlo, lo[r]);
            _mm512_mask_storeu_ps(cr.wrapping_add(16), mhi, hi[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| r.random_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn panels_match_f64_reference_any_shape() {
        if !avx512() {
            assert!(Panels::new(&[0.0; 6], 2, 3).is_none());
            // Machine-dependent: printed, and counted by `make test` (tests/common's `skip`).
            let line = "SKIPPED: panels_match_f64_reference_any_shape: no AVX-512F on this CPU (the packed kernel is not built here)";
            eprintln!("{line}");
            if let Some(log) = std::env::var_os("PROXAL_SKIP_LOG") {
                use std::io::Write;
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                {
                    let _ = writeln!(f, "machine {line}");
                }
            }
            return;
        }
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 3, 7),
            (13, 17, 32),
            (25, 40, 33),
            (97, 384, 150),
            (2051, 64, 150),
            (30, 100, 160),
        ] {
            let a = random(m * k, 1 + m as u64);
            let w = random(k * n, 2 + n as u64);
            let bias = random(n, 3);
            let p = Panels::new(&w, k, n).expect("avx512");
            let mut serial = vec![f32::NAN; m * n];
            let mut par = vec![f32::NAN; m * n];
            p.matmul_into(&a, m, Some(&bias), &mut serial, false);
            p.matmul_into(&a, m, Some(&bias), &mut par, true);
            assert_eq!(serial, par, "{m}×{k}×{n}: serial and parallel differ");
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = bias[j] as f64
                        + (0..k)
                            .map(|t| a[i * k + t] as f64 * w[t * n + j] as f64)
                            .sum::<f64>();
                    let got = serial[i * n + j] as f64;
                    assert!(
                        (got - want).abs() < 1e-5 * (k as f64).sqrt().max(1.0),
                        "{m}×{k}×{n} [{i},{j}]: {got} vs {want}"
                    );
                }
            }
            // A row's result does not depend on the rest of the batch.
            let i = m / 2;
            let mut one = vec![0.0; n];
            p.matmul_into(&a[i * k..(i + 1) * k], 1, Some(&bias), &mut one, false);
            assert_eq!(one[..], serial[i * n..(i + 1) * n]);
            // No bias: starts from zero.
            let mut nb = vec![0.0; m * n];
            p.matmul_into(&a, m, None, &mut nb, false);
            let w0: f64 = (0..k).map(|t| a[t] as f64 * w[t * n] as f64).sum();
            assert!((nb[0] as f64 - w0).abs() < 1e-5 * (k as f64).sqrt().max(1.0));
        }
    }

    #[test]
    fn packed_weight_matches_candle_for_ragged_widths() {
        for &(m, k, n) in &[(7, 16, 50), (40, 384, 96)] {
            let a = random(m * k, 7);
            let w = random(k * n, 8);
            let wt = Tensor::from_slice(&w, (k, n), &Device::Cpu).unwrap();
            let pw = PackedWeight::new(&wt).unwrap();
            let got = pw.matmul(&a, m).unwrap();
            let at = Tensor::from_slice(&a, (m, k), &Device::Cpu).unwrap();
            let want = at.matmul(&wt).unwrap().flatten_all().unwrap();
            let want = want.to_vec1::<f32>().unwrap();
            let diff = got
                .iter()
                .zip(&want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "{m}×{k}×{n}: max diff {diff}");
        }
    }
}
