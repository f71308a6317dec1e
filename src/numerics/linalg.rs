//! Small dense helpers shared by the proxy heads and the strategies: an f32 matmul on top of
//! ndarray's `general_mat_mul` (matrixmultiply's AVX2/FMA kernels), split over the rayon pool by
//! output rows when asked, row norms and a numerically safe softmax (vectorised with AVX-512
//! where the CPU has it).
//!
//! Measured here (2 cores, shared with other jobs, so noisy): matrixmultiply was as fast or
//! faster than the `gemm` crate without its AVX-512 feature on the shapes we use
//! (10K×384·384×150: 30–60 ms either way; 4096×384·384×10K: 19 vs 7 GFMA/s).
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2, Axis};

/// `c = a · b` (or `c += a · b` when `accumulate`), any strides. `parallel` splits the output
/// rows over the rayon pool; callers that already run one task per block pass `false`.
pub fn matmul_into(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<f32>,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "matmul: inner dimensions differ ({k} vs {k2})");
    assert_eq!(c.dim(), (m, n), "matmul: output has the wrong shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let beta = if accumulate { 1.0 } else { 0.0 };
    let parts = if parallel {
        rayon::current_num_threads().min(m / 32).max(1)
    } else {
        1
    };
    if parts <= 1 || m * n * k < (1 << 21) {
        general_mat_mul(1.0, &a, &b, beta, &mut c);
        return;
    }
    split_rows(a, b, c, beta, parts);
}

fn split_rows(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<f32>,
    beta: f32,
    parts: usize,
) {
    if parts <= 1 {
        general_mat_mul(1.0, &a, &b, beta, &mut c);
        return;
    }
    let left = parts / 2;
    let h = a.nrows() * left / parts;
    let (c1, c2) = c.view_mut().split_at(Axis(0), h);
    let (a1, a2) = (a.slice(s![..h, ..]), a.slice(s![h.., ..]));
    rayon::join(
        || split_rows(a1, b, c1, beta, left),
        || split_rows(a2, b, c2, beta, parts - left),
    );
}

/// `a · b` into a new matrix.
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>, parallel: bool) -> Array2<f32> {
    let mut c = Array2::<f32>::zeros((a.nrows(), b.ncols()));
    matmul_into(a, b, c.view_mut(), false, parallel);
    c
}

/// Squared L2 norm of each row.
pub fn row_sq_norms(x: ArrayView2<f32>) -> Array1<f32> {
    x.map_axis(Axis(1), |r| r.iter().map(|v| v * v).sum())
}

/// In-place softmax of each row of logits (max-shifted, so large logits never overflow).
///
/// With AVX-512F (detected at run time) the exponentials are a vectorised polynomial (see
/// [`exp_slice`]; relative error ≤ ~2 ulp) and the row sum is a 16-lane tree; elsewhere
/// glibc's `expf` and a sequential sum ([`softmax_rows_scalar`]). Each row is computed on its
/// own, so a row's probabilities never depend on the other rows of the block.
pub fn softmax_rows(z: &mut Array2<f32>) {
    let c = z.ncols();
    match z.as_slice_mut() {
        Some(s) => softmax_rows_slice(s, c),
        None => softmax_rows_scalar(z),
    }
}

/// [`softmax_rows`] on the `c`-long rows of a plain slice (the backbone's attention rows).
pub fn softmax_rows_slice(z: &mut [f32], c: usize) {
    if c == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::numerics::gemm::avx512() {
        // SAFETY: AVX-512F was detected just above.
        unsafe { x86::softmax_rows(z, c) };
        return;
    }
    for row in z.chunks_exact_mut(c) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            s += *v;
        }
        let inv = 1.0 / s;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// The portable softmax (glibc `expf`, sequential sums): the fallback of [`softmax_rows`] and
/// the reference its vectorised path is tested against.
pub fn softmax_rows_scalar(z: &mut Array2<f32>) {
    for mut row in z.rows_mut() {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            s += *v;
        }
        let inv = 1.0 / s;
        row.mapv_inplace(|v| v * inv);
    }
}

/// In-place Euclidean projection of each row onto the probability simplex ("sparsemax",
/// Martins & Astudillo 2016): `p = max(z − τ, 0)` with the one τ that makes the row sum to 1.
/// Classes scoring at most τ get probability 0; the others keep their score differences
/// exactly. τ comes from the sorted row (O(C log C)), accumulated in f64. A row with a NaN
/// score becomes all NaN (as a softmax would). Each row is computed on its own.
pub fn simplex_project_rows(z: &mut Array2<f32>) {
    let mut sorted: Vec<f32> = Vec::with_capacity(z.ncols());
    for mut row in z.rows_mut() {
        if row.iter().any(|v| v.is_nan()) {
            row.fill(f32::NAN);
            continue;
        }
        sorted.clear();
        sorted.extend(row.iter().copied());
        sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        // The support is the largest k with s_(k) > (s_(1) + … + s_(k) − 1) / k; the condition
        // holds for every j ≤ k and for none after, so the scan stops at the first failure.
        let mut cum = 0.0f64;
        let mut tau = 0.0f64;
        for (j, &v) in sorted.iter().enumerate() {
            cum += v as f64;
            let t = (cum - 1.0) / (j + 1) as f64;
            if v as f64 > t {
                tau = t;
            } else {
                break;
            }
        }
        row.mapv_inplace(|v| (v as f64 - tau).max(0.0) as f32);
    }
}

/// `exp` of each element through the AVX-512 polynomial where available (else `f32::exp`);
/// exposed for tests and measurements.
pub fn exp_slice(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::numerics::gemm::avx512() {
        // SAFETY: AVX-512F was detected just above.
        unsafe { x86::exp_slice(v) };
        return;
    }
    v.iter_mut().for_each(|x| *x = x.exp());
}

/// The largest and second-largest values of `v` (the second counts a repeated maximum again;
/// NaNs are skipped; `-inf` where there are not enough values). Vectorised with AVX-512 where
/// available, with exactly the scalar loop's result (max and compare only, no rounding).
pub fn top2(v: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if v.len() >= 16 && crate::numerics::gemm::avx512() {
        // SAFETY: AVX-512F was detected just above.
        return unsafe { x86::top2(v) };
    }
    top2_scalar(v)
}

/// The scalar [`top2`].
pub fn top2_scalar(v: &[f32]) -> (f32, f32) {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &x in v {
        if x > a {
            b = a;
            a = x;
        } else if x > b {
            b = x;
        }
    }
    (a, b)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// e^x for 16 lanes: x = n·ln2 + r with n = round(x / ln2) and |r| ≤ ln2/2 (ln2 split in
    /// two so n·ln2_hi is exact), e^r by its Taylor series to degree 7 (truncation < 6e-9
    /// relative), then scaled by 2^n with `scalef` (which also handles underflow and overflow).
    /// NaN stays NaN; e^0 is exactly 1.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn exp16(x: __m512) -> __m512 {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_359_4; // 355 / 512, exact in 9 bits
        const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 − LN2_HI
                                             // Below −104, e^x is under half the smallest subnormal: clamp so n stays small. The
                                             // constant goes first so a NaN x is the one returned.
        let x = _mm512_max_ps(_mm512_set1_ps(-104.0), x);
        let n = _mm512_roundscale_ps::<0>(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(1.0 / 5040.0);
        for c in [
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
            1.0,
        ] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_slice(v: &mut [f32]) {
        let mut ch = v.chunks_exact_mut(16);
        for c in &mut ch {
            let p = c.as_mut_ptr();
            _mm512_storeu_ps(p, exp16(_mm512_loadu_ps(p)));
        }
        let rest = ch.into_remainder();
        let mask = ((1u32 << rest.len()) - 1) as u16;
        let p = rest.as_mut_ptr();
        _mm512_mask_storeu_ps(p, mask, exp16(_mm512_maskz_loadu_ps(mask, p)));
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn top2(v: &[f32]) -> (f32, f32) {
        let full = v.len() / 16;
        let tail = ((1u32 << (v.len() % 16)) - 1) as u16;
        let p = v.as_ptr();
        let at = |i: usize| p.wrapping_add(16 * i);
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let load = |i: usize| {
            if i < full {
                _mm512_loadu_ps(at(i))
            } else {
                _mm512_mask_loadu_ps(ninf, tail, at(i))
            }
        };
        let n = full + usize::from(tail != 0);
        // Pass 1: the maximum (max_ps returns its second operand when the first is NaN).
        let mut mx = ninf;
        for i in 0..n {
            mx = _mm512_max_ps(load(i), mx);
        }
        let a = _mm512_reduce_max_ps(mx);
        let va = _mm512_set1_ps(a);
        // Pass 2: how often it occurs, and the largest value below it (NaN compares false).
        let mut count = 0u32;
        let mut below = ninf;
        for i in 0..n {
            let x = load(i);
            count += _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, va).count_ones();
            below = _mm512_mask_max_ps(below, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, va), x, below);
        }
        if a == f32::NEG_INFINITY {
            // Only -inf or NaN values: as the scalar loop, nothing ever beat -inf.
            return (a, a);
        }
        let b = if count >= 2 {
            a
        } else {
            _mm512_reduce_max_ps(below)
        };
        (a, b)
    }

    /// Softmax of each `c`-long row of `z` in place.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn softmax_rows(z: &mut [f32], c: usize) {
        let full = c / 16;
        let tail = ((1u32 << (c % 16)) - 1) as u16;
        for row in z.chunks_exact_mut(c) {
            let p = row.as_mut_ptr();
            let at = |i: usize| p.wrapping_add(16 * i);
            let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
            for i in 0..full {
                mx = _mm512_max_ps(mx, _mm512_loadu_ps(at(i)));
            }
            if tail != 0 {
                mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, at(full)));
            }
            let m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
            let mut sum = _mm512_setzero_ps();
            for i in 0..full {
                let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(at(i)), m));
                _mm512_storeu_ps(at(i), e);
                sum = _mm512_add_ps(sum, e);
            }
            if tail != 0 {
                let e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, at(full)), m));
                _mm512_mask_storeu_ps(at(full), tail, e);
                sum = _mm512_mask_add_ps(sum, tail, sum, e);
            }
            let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
            for i in 0..full {
                _mm512_storeu_ps(at(i), _mm512_mul_ps(_mm512_loadu_ps(at(i)), inv));
            }
            if tail != 0 {
                let v = _mm512_maskz_loadu_ps(tail, at(full));
                _mm512_mask_storeu_ps(at(full), tail, _mm512_mul_ps(v, inv));
            }
        }
    }
}

/// Squared euclidean distance between two equally long slices.
#[inline]
pub fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            let d = a[c * 8 + l] - b[c * 8 + l];
            acc[l] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        let d = a[i] - b[i];
        s += d * d;
    }
    s
}

/// Dot product of two equally long slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += a[c * 8 + l] * b[c * 8 + l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        s += a[i] * b[i];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn matmul_matches_ndarray_with_transposed_views() {
        let a = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let b = array![[1.0f32, 0.5], [-1.0, 2.0], [0.0, 1.0]];
        let c = matmul(a.view(), b.view(), false);
        assert_eq!(c, a.dot(&b));
        let ct = matmul(b.t(), a.t(), true);
        assert_eq!(ct, a.dot(&b).t().to_owned());
        let mut acc = c.clone();
        matmul_into(a.view(), b.view(), acc.view_mut(), true, false);
        assert_eq!(acc, &c * 2.0);
    }

    #[test]
    fn softmax_is_stable() {
        let mut z = array![[1000.0f32, 1000.0], [0.0, -1000.0]];
        softmax_rows(&mut z);
        assert!((z[[0, 0]] - 0.5).abs() < 1e-6);
        assert!((z[[1, 0]] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn vector_exp_is_accurate() {
        let mut xs: Vec<f32> = (0..20_000).map(|i| -110.0 + i as f32 * 0.0101).collect();
        xs.extend([
            0.0,
            -0.0,
            1.0,
            80.0,
            88.0,
            -87.3,
            -103.9,
            -200.0,
            f32::NEG_INFINITY,
        ]);
        let mut e = xs.clone();
        exp_slice(&mut e);
        for (&x, &got) in xs.iter().zip(&e) {
            let want = (x as f64).exp();
            if want > f32::MAX as f64 {
                assert_eq!(got, f32::INFINITY, "exp({x})");
            } else if want < f32::MIN_POSITIVE as f64 {
                // Subnormal range: absolute error of a few subnormal steps.
                assert!(
                    (got as f64 - want).abs() < 1e-44,
                    "exp({x}) = {got}, want {want}"
                );
            } else {
                let rel = ((got as f64 - want) / want).abs();
                assert!(rel < 4e-7, "exp({x}) = {got}, want {want} (rel {rel:e})");
            }
        }
        let mut one = [0.0f32, f32::NAN, 1.0];
        exp_slice(&mut one);
        assert_eq!(one[0], 1.0);
        assert!(one[1].is_nan());
    }

    #[test]
    fn softmax_matches_the_scalar_path() {
        use rand::{Rng, SeedableRng};
        let mut r = rand::rngs::StdRng::seed_from_u64(5);
        for &(rows, c) in &[(37usize, 150usize), (5, 16), (9, 7), (3, 33), (2, 1)] {
            let z = Array2::from_shape_fn((rows, c), |_| r.random_range(-30.0f32..30.0));
            let (mut a, mut b) = (z.clone(), z.clone());
            softmax_rows(&mut a);
            softmax_rows_scalar(&mut b);
            for (x, y) in a.iter().zip(b.iter()) {
                assert!((x - y).abs() <= 1e-6 * y.max(1e-30) + 1e-12, "{x} vs {y}");
            }
            for row in a.rows() {
                assert!((row.sum() - 1.0).abs() < 1e-5);
            }
        }
        // Non-standard layout goes through the scalar path.
        let mut t = array![[1.0f32, 3.0], [2.0, 0.0]].reversed_axes();
        softmax_rows(&mut t);
        assert!((t[[0, 0]] + t[[0, 1]] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn top2_matches_the_scalar_loop() {
        use rand::{Rng, SeedableRng};
        let mut r = rand::rngs::StdRng::seed_from_u64(9);
        for len in [0usize, 1, 2, 15, 16, 17, 31, 150, 160] {
            for trial in 0..200 {
                let mut v: Vec<f32> = (0..len).map(|_| r.random_range(0.0f32..1.0)).collect();
                if len > 3 && trial % 3 == 0 {
                    // Repeated maximum / repeated runner-up.
                    let m = v.iter().copied().fold(0.0, f32::max);
                    let i = r.random_range(0..len);
                    v[i] = m;
                }
                if len > 3 && trial % 5 == 0 {
                    let i = r.random_range(0..len);
                    v[i] = f32::NAN;
                }
                if len > 3 && trial % 7 == 0 {
                    v.iter_mut().for_each(|x| *x = (*x * 4.0).round());
                }
                assert_eq!(top2(&v), top2_scalar(&v), "{v:?}");
            }
        }
        assert_eq!(
            top2(&[f32::NEG_INFINITY; 20]),
            top2_scalar(&[f32::NEG_INFINITY; 20])
        );
    }
}
