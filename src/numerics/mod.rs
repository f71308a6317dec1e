//! Hand-written numerics, in one place: what proxal computes itself instead of calling a crate,
//! each justified by a measurement (docs/ARCHITECTURE.md) and tested against a reference.
//!
//! * [`gemm`] — the packed AVX-512 f32 matrix product of the backbone's dense layers and the
//!   proxy's logits, with run-time CPU detection ([`gemm::avx512`]).
//! * [`linalg`] — ndarray-based helpers of the proxies and strategies (matmul over the rayon pool,
//!   row norms, distances, softmax), the AVX-512 `exp` of a slice and `top2`.
//! * [`nearest`] — nearest centres (k-means assignments, the IVF index's probes) on the packed
//!   kernel.
//! * [`scalar`] — branch-free `exp` and `erf` that the backbone's fused kernels inline and the
//!   compiler vectorises.
//! * [`scratch`] — recycled buffers for the training step's large activations (fresh pages
//!   fault on first touch; measured in the module).
//! * [`argmax_rows`] — the predicted class of each row of scores.
//! * `multiversion!` — a function compiled for AVX-512 and AVX2+FMA besides the baseline, picked
//!   at run time (the fused kernels of inference and training use it).
pub mod gemm;
pub mod linalg;
pub mod nearest;
pub mod scalar;
pub mod scratch;

// Rayon closures run out of line, so target features must sit on the per-block functions
// they call, not on the functions that split the work.
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn inner($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) { inner($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) { inner($($arg),*) }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the features the function was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            inner($($arg),*)
        }
    };
}
pub(crate) use multiversion;

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
