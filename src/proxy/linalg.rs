//! Small dense helpers shared by the proxy heads and the strategies: an f32 matmul on top of
//! ndarray's `general_mat_mul` (matrixmultiply's AVX2/FMA kernels), split over the rayon pool by
//! output rows when asked, row norms and a numerically safe softmax.
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
pub fn softmax_rows(z: &mut Array2<f32>) {
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
}
