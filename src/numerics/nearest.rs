//! Nearest centres: for each row x, the centre c minimising ‖x − c‖², found as the maximum of
//! x·c − ‖c‖²/2 (one matrix product per tile of rows, the centres packed once for the AVX-512
//! kernel of [`super::gemm`], ndarray's matmul elsewhere). k-means (typicality, the IVF index of
//! candidate subpooling) and the index's probes all assign rows this way.
use super::gemm::Panels;
use super::linalg::matmul_into;
use ndarray::{Array2, ArrayView2};

/// Rows per product: a tile of scores (rows × centres) stays a few megabytes.
const TILE: usize = 256;

/// A set of centres ready for nearest-centre queries.
#[derive(Debug)]
pub struct Centres {
    c: Array2<f32>,
    /// −‖c‖²/2 per centre: the bias of the product.
    bias: Vec<f32>,
    panels: Option<Panels>,
}

impl Centres {
    /// Centres from the rows of `c` (k × d).
    pub fn new(c: Array2<f32>) -> Centres {
        let c = c.as_standard_layout().into_owned();
        let bias = c
            .rows()
            .into_iter()
            .map(|r| -0.5 * r.iter().map(|v| v * v).sum::<f32>())
            .collect();
        let (k, d) = c.dim();
        let panels = Panels::new_transposed(c.as_slice().expect("standard layout"), k, d);
        Centres { c, bias, panels }
    }

    pub fn len(&self) -> usize {
        self.c.nrows()
    }

    pub fn is_empty(&self) -> bool {
        self.c.nrows() == 0
    }

    pub fn view(&self) -> ArrayView2<'_, f32> {
        self.c.view()
    }

    /// Call `f(i, scores)` for each row i of `x` with its scores x·c − ‖c‖²/2 over every centre
    /// (higher = nearer). Serial: callers split rows over the rayon pool.
    pub fn scores(&self, x: ArrayView2<f32>, mut f: impl FnMut(usize, &[f32])) {
        let k = self.len();
        assert_eq!(x.ncols(), self.c.ncols(), "centres: dimensions differ");
        if k == 0 {
            return;
        }
        let mut buf = vec![0.0f32; TILE.min(x.nrows().max(1)) * k];
        for t0 in (0..x.nrows()).step_by(TILE) {
            let t1 = (t0 + TILE).min(x.nrows());
            let m = t1 - t0;
            let xt = x.slice(ndarray::s![t0..t1, ..]);
            let out = &mut buf[..m * k];
            match &self.panels {
                Some(p) => {
                    // Borrowed when the rows are already contiguous.
                    let a = xt.as_standard_layout();
                    let a = a.as_slice().expect("standard layout");
                    p.matmul_into(a, m, Some(&self.bias), out, false)
                }
                None => {
                    let mut ov = ndarray::ArrayViewMut2::from_shape((m, k), out).expect("m × k");
                    matmul_into(xt, self.c.t(), ov.view_mut(), false, false);
                    for mut r in ov.rows_mut() {
                        r.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
                    }
                }
            }
            for (i, row) in out.chunks_exact(k).enumerate() {
                f(t0 + i, row);
            }
        }
    }

    /// The nearest centre of each row of `x` and the squared distance to it (ties: the lower
    /// centre).
    pub fn nearest(&self, x: ArrayView2<f32>) -> Vec<(u32, f32)> {
        let mut out = Vec::with_capacity(x.nrows());
        self.scores(x, |i, s| {
            let mut best = (0u32, f32::NEG_INFINITY);
            for (c, &v) in s.iter().enumerate() {
                if v > best.1 {
                    best = (c as u32, v);
                }
            }
            let xn2: f32 = x.row(i).iter().map(|v| v * v).sum();
            out.push((best.0, (xn2 - 2.0 * best.1).max(0.0)));
        });
        out
    }

    /// The `n` nearest centres of each row of `x`, nearest first.
    pub fn nearest_n(&self, x: ArrayView2<f32>, n: usize) -> Vec<Vec<u32>> {
        let n = n.min(self.len());
        let mut out = Vec::with_capacity(x.nrows());
        self.scores(x, |_, s| {
            let top = crate::strategy::top_k(s, n);
            out.push(top.into_iter().map(|c| c as u32).collect());
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::linalg::sq_dist;
    use rand::Rng;

    /// Against a brute-force scan of squared distances, on shapes that leave partial tiles and
    /// partial 32-column panels.
    #[test]
    fn nearest_matches_brute_force() {
        let mut rng = crate::util::rng(7);
        let (n, k, d) = (600, 45, 19);
        let x = Array2::from_shape_fn((n, d), |_| rng.random::<f32>() - 0.5);
        let c = Array2::from_shape_fn((k, d), |_| rng.random::<f32>() - 0.5);
        let cs = Centres::new(c.clone());
        let got = cs.nearest(x.view());
        let top3 = cs.nearest_n(x.view(), 3);
        for i in 0..n {
            let xi = x.row(i).to_vec();
            let mut d2: Vec<(f32, usize)> = (0..k)
                .map(|j| (sq_dist(&xi, c.row(j).as_slice().unwrap()), j))
                .collect();
            d2.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert_eq!(got[i].0 as usize, d2[0].1, "row {i}");
            assert!((got[i].1 - d2[0].0).abs() < 1e-4, "row {i}");
            let want: Vec<u32> = d2[..3].iter().map(|p| p.1 as u32).collect();
            assert_eq!(top3[i], want, "row {i}");
        }
        // A strided (non-contiguous) view gives the same answer.
        let xt = x.t().to_owned();
        let strided = xt.t();
        assert_eq!(cs.nearest(strided), got);
    }
}
