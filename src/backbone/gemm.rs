//! f32 matrix products for the inference path: `C = A · W` with the weight `W` packed once.
//!
//! On CPUs with AVX-512 a 12 × 32 register-blocked kernel runs over `W` stored as 32-column
//! panels (`[n/32][k][32]`), with the rows of `A` broadcast straight from their row-major
//! layout (no packing of activations); work is split over rayon by (row block, panel group).
//! Elsewhere (or when `n` is not a multiple of 32) candle's matmul runs instead. The kernel
//! accumulates over `k` in order, one FMA per step, so a row's result does not depend on the
//! other rows of the batch.
use anyhow::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

const NR: usize = 32;
const MR: usize = 12;
/// Rows per task (a multiple of MR).
const MB: usize = 96;
/// 32-column panels per task.
const NP: usize = 4;

/// A weight `[k, n]` ready for [`PackedWeight::matmul`].
pub struct PackedWeight {
    k: usize,
    n: usize,
    /// `[k, n]` row-major, for the fallback.
    tensor: Tensor,
    /// `[n / NR][k]` rows of NR floats, when the AVX-512 kernel can run.
    panels: Option<Vec<PanelRow>>,
}

/// One k-step of a 32-column panel, 64-byte aligned: loaded as two 16-lane vectors by value
/// (no pointer reads, so no per-load UB checks in builds with debug assertions).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct PanelRow([f32; NR]);

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl PackedWeight {
    /// `w` is `[k, n]` (input features × output features).
    pub fn new(w: &Tensor) -> Result<Self> {
        let (k, n) = w.dims2()?;
        let tensor = w.contiguous()?.copy()?;
        let panels = if avx512() && n % NR == 0 {
            let flat = tensor.flatten_all()?.to_vec1::<f32>()?;
            let mut p = vec![PanelRow([0.0; NR]); k * (n / NR)];
            for (pi, panel) in p.chunks_exact_mut(k).enumerate() {
                for (kk, dst) in panel.iter_mut().enumerate() {
                    dst.0
                        .copy_from_slice(&flat[kk * n + pi * NR..kk * n + (pi + 1) * NR]);
                }
            }
            Some(p)
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

    /// `a` is `[m, k]` row-major; returns `[m, n]`.
    pub fn matmul(&self, a: &[f32], m: usize) -> Result<Vec<f32>> {
        assert_eq!(a.len(), m * self.k, "matmul: A is not m × k");
        #[cfg(target_arch = "x86_64")]
        if let Some(p) = &self.panels {
            let mut c = vec![0f32; m * self.n];
            x86::gemm(a, m, self.k, self.n, p, &mut c);
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

    pub fn gemm(a: &[f32], m: usize, k: usize, n: usize, panels: &[PanelRow], c: &mut [f32]) {
        let np = n / NR;
        let mut tasks = Vec::new();
        for m0 in (0..m).step_by(MB) {
            for p0 in (0..np).step_by(NP) {
                tasks.push((m0, (m0 + MB).min(m), p0, (p0 + NP).min(np)));
            }
        }
        let cp = SendPtr(c.as_mut_ptr());
        let ap = a.as_ptr() as usize;
        tasks.into_par_iter().for_each(move |(m0, m1, p0, p1)| {
            let cp = cp;
            // SAFETY: AVX-512F was detected when the panels were built; every pointer stays
            // inside a (m × k) and c (m × n); regions written are disjoint.
            unsafe { block(ap as *const f32, k, m0, m1, p0, p1, panels, cp.0, n) }
        });
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
        c: *mut f32,
        n: usize,
    ) {
        for p in p0..p1 {
            let bp = &panels[p * k..(p + 1) * k];
            let mut i = m0;
            while i + MR <= m1 {
                tile::<MR>(a.add(i * k), k, bp, c.add(i * n + p * NR), n);
                i += MR;
            }
            let (a, c) = (a.add(i * k), c.add(i * n + p * NR));
            match m1 - i {
                0 => {}
                1 => tile::<1>(a, k, bp, c, n),
                2 => tile::<2>(a, k, bp, c, n),
                3 => tile::<3>(a, k, bp, c, n),
                4 => tile::<4>(a, k, bp, c, n),
                5 => tile::<5>(a, k, bp, c, n),
                6 => tile::<6>(a, k, bp, c, n),
                7 => tile::<7>(a, k, bp, c, n),
                8 => tile::<8>(a, k, bp, c, n),
                9 => tile::<9>(a, k, bp, c, n),
                10 => tile::<10>(a, k, bp, c, n),
                _ => tile::<11>(a, k, bp, c, n),
            }
        }
    }

    /// C[R × 32] = A[R × k] · panel[k × 32]; A rows `k` apart, C rows `ldc` apart.
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
        c: *mut f32,
        ldc: usize,
    ) {
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
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
            _mm512_storeu_ps(cr, lo[r]);
            _mm512_storeu_ps(cr.wrapping_add(16), hi[r]);
        }
    }
}
