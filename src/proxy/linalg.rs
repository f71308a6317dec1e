//! Small dense helpers shared by the proxy heads and the strategies: an f32 matmul on top of the
//! `gemm` crate (faster than ndarray's `dot` here, and optionally multi-threaded), row norms and
//! a numerically safe softmax.
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};

/// `c = a · b` (or `c += a · b` when `accumulate`), any strides. `parallel` lets gemm use the
/// rayon pool; callers that already run one task per block pass `false`.
pub fn matmul_into(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>, accumulate: bool, parallel: bool) {
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
    let par = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked
    // above; `c` is a unique mutable view, so the destination does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
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
