//! Hand-written numerics, in one place: what proxal computes itself instead of calling a crate,
//! each justified by a measurement (docs/ARCHITECTURE.md) and tested against a reference.
//!
//! * [`gemm`] — the packed AVX-512 f32 matrix product of the backbone's dense layers and the
//!   proxy's logits, with run-time CPU detection ([`gemm::avx512`]).
//! * [`linalg`] — ndarray-based helpers of the proxies and strategies (matmul over the rayon pool,
//!   row norms, distances, softmax), the AVX-512 `exp` of a slice and `top2`.
//! * [`scalar`] — branch-free `exp` and `erf` that the backbone's fused kernels inline and the
//!   compiler vectorises.
//! * [`argmax_rows`] — the predicted class of each row of scores.
pub mod gemm;
pub mod linalg;
pub mod scalar;

use ndarray::ArrayView2;

/// Index and value of the largest entry of each row (the first one on ties; NaN never wins).
pub fn argmax_rows(p: ArrayView2<f32>) -> Vec<(u32, f32)> {
    p.rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0u32, f32::NEG_INFINITY), |b, (i, &v)| {
                    if v > b.1 {
                        (i as u32, v)
                    } else {
                        b
                    }
                })
        })
        .collect()
}
