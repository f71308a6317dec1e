//! Least-squares proxy: ridge regression of one-hot class targets on the cached features, solved
//! in closed form, its scores projected onto the probability simplex.
//!
//! Fit (on standardised features x̃, the labelled rows' mean and standard deviation, switchable):
//!
//! ```text
//! minimise  ||Y − X̃W − 1bᵀ||² + α ||W||²        (Y: n × C one-hot, b not penalised)
//! W = (X̃ᵀX̃ + αI)⁻¹ X̃ᵀY      b = ȳ (the class frequencies: X̃ is centred)
//! ```
//!
//! — the estimator of scikit-learn's `make_pipeline(StandardScaler(), Ridge(alpha=1.0))` on one-hot
//! targets, so it can be checked there. W and b are folded back into raw-feature space, so scoring
//! is one matmul. Two solvers give the same W (tested): [`LsqSolver::Cholesky`] (default) forms the
//! d × d regularised normal equations once and solves all C classes with one Cholesky
//! factorisation (linfa-linalg); [`LsqSolver::LinfaLinear`] fits linfa-linear's
//! `LinearRegression` (ordinary least squares by Householder QR) once per class on the ridge
//! system written as an augmented least-squares problem `[X̃ 1; √α I 0] θ ≈ [y_k; 0]` — better
//! conditioned (it never squares X̃), but linfa-linear's regression is univariate, so it
//! factorises the same matrix C times: on 800 banking77-s rows × 384 dims × 77 classes
//! (examples/logistic_fit_timing.rs, 2 shared cores at load ~12) 113 s against 0.17 s through
//! Cholesky, with the same f32 scores.
//!
//! Scores to probabilities: every row of Y sums to 1, and the solution is linear in Y, so the
//! fitted scores s = xW + b of *any* row also sum to 1 (ΣW_k = 0, Σb_k = 1): they are already a
//! least-squares estimate of the class probabilities, off the simplex only where some are negative
//! or above 1. The probabilities are their Euclidean projection onto the simplex
//! ([`simplex_project_rows`], "sparsemax"): the nearest distribution in the same squared-error
//! geometry the regression was fitted in. It leaves the differences between the classes it keeps
//! unchanged, so margin sampling ranks rows by the regression's own score margin, and it needs no
//! parameter. A softmax would treat the scores as logits, which they are not (its output would
//! hinge on a temperature the fit does not provide); clip-and-renormalise would rescale the
//! differences by a row-dependent factor.
use super::Proxy;
use crate::numerics::linalg::{matmul_into, simplex_project_rows};
use anyhow::{anyhow, bail, Context, Result};
use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_linalg::cholesky::SolveCInplace;
use linfa_linear::LinearRegression;
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How the ridge system is solved (both give the same weights up to rounding).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LsqSolver {
    /// Regularised normal equations, one Cholesky factorisation for all classes (linfa-linalg).
    #[default]
    Cholesky,
    /// linfa-linear's `LinearRegression` (QR least squares) once per class on the augmented
    /// system; C times slower, never squares the condition number (the choice for `alpha = 0`
    /// with well-conditioned, plentiful rows).
    LinfaLinear,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LsqConfig {
    /// Ridge penalty α on the (standardised) weights, against the summed squared error.
    /// 0 is ordinary least squares, which needs more labelled rows than feature dimensions.
    pub alpha: f64,
    /// Standardise features with the labelled rows' mean / std before fitting (folded into the
    /// weights afterwards). Off: the features are only centred (for the intercept).
    pub standardize: bool,
    pub solver: LsqSolver,
}

impl Default for LsqConfig {
    fn default() -> Self {
        LsqConfig {
            alpha: 1.0,
            standardize: true,
            solver: LsqSolver::Cholesky,
        }
    }
}

/// A fitted least-squares proxy: scores `x·w + b`, probabilities their simplex projection.
#[derive(Debug, Clone)]
pub struct Lsq {
    /// d × C weights acting on raw features.
    pub w: Array2<f32>,
    /// C intercepts.
    pub b: Array1<f32>,
}

impl Lsq {
    /// Fit on `x` (n × d) with labels `y` in `0..n_classes`.
    pub fn fit(cfg: &LsqConfig, x: ArrayView2<f32>, y: &[u32], n_classes: usize) -> Result<Lsq> {
        super::check_training_set(x, y, n_classes)?;
        if !(cfg.alpha >= 0.0 && cfg.alpha.is_finite()) {
            bail!(
                "lsq: alpha must be finite and non-negative, got {}",
                cfg.alpha
            );
        }
        let (n, d) = x.dim();
        let xf = x.mapv(f64::from);
        let mean = xf.mean_axis(Axis(0)).context("empty training set")?;
        let mut xs = xf - &mean;
        let scale = if cfg.standardize && n > 1 {
            let std = xs.map_axis(Axis(0), |c| {
                (c.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt()
            });
            let top = std.iter().copied().fold(0.0f64, f64::max);
            std.mapv(|s| if s > 1e-6 * top.max(1e-30) { s } else { 1.0 })
        } else {
            Array1::ones(d)
        };
        xs /= &scale;
        let mut freq = Array1::<f64>::zeros(n_classes);
        for &c in y {
            freq[c as usize] += 1.0 / n as f64;
        }
        let ws = match cfg.solver {
            LsqSolver::Cholesky => solve_cholesky(&xs, y, n_classes, cfg.alpha)?,
            LsqSolver::LinfaLinear => solve_per_class(&xs, y, n_classes, cfg.alpha)?,
        };
        // Back to raw features: s = ((x − mean) / scale)·W_s + ȳ.
        let w = Array2::from_shape_fn((d, n_classes), |(j, k)| ws[[j, k]] / scale[j]);
        let b = Array1::from_shape_fn(n_classes, |k| {
            freq[k] - (0..d).map(|j| mean[j] * w[[j, k]]).sum::<f64>()
        });
        Ok(Lsq {
            w: w.mapv(|v| v as f32),
            b: b.mapv(|v| v as f32),
        })
    }

    /// The fitted scores `x·w + b` (rows × C; each row sums to 1 up to rounding).
    pub fn scores(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = Array2::<f32>::zeros((x.nrows(), self.b.len()));
        matmul_into(x, self.w.view(), z.view_mut(), false, false);
        z += &self.b;
        z
    }
}

/// W_s = (X̃ᵀX̃ + αI)⁻¹ X̃ᵀY for centred X̃ (so the unpenalised intercept drops out).
fn solve_cholesky(
    xs: &Array2<f64>,
    y: &[u32],
    n_classes: usize,
    alpha: f64,
) -> Result<Array2<f64>> {
    let d = xs.ncols();
    let mut gram = xs.t().dot(xs);
    for j in 0..d {
        gram[[j, j]] += alpha;
    }
    // X̃ᵀY: column k is the sum of the rows of class k.
    let mut rhs = Array2::<f64>::zeros((d, n_classes));
    for (row, &c) in xs.rows().into_iter().zip(y) {
        let mut col = rhs.column_mut(c as usize);
        col += &row;
    }
    gram.solvec_inplace(&mut rhs)
        .map_err(|e| anyhow!("lsq: the normal equations are singular ({e}); use alpha > 0"))?;
    Ok(rhs)
}

/// One linfa-linear `LinearRegression` per class on `[X̃ 1; √α I 0] θ ≈ [y_k; 0]` (no intercept
/// of its own: the ones column is the intercept, left out of the penalty rows). Returns the d × C
/// weights; the intercepts are the class frequencies (X̃ is centred), as the Cholesky path has it.
fn solve_per_class(
    xs: &Array2<f64>,
    y: &[u32],
    n_classes: usize,
    alpha: f64,
) -> Result<Array2<f64>> {
    let (n, d) = xs.dim();
    let mut a = Array2::<f64>::zeros((n + d, d + 1));
    a.slice_mut(s![..n, ..d]).assign(xs);
    a.slice_mut(s![..n, d]).fill(1.0);
    let r = alpha.sqrt();
    for j in 0..d {
        a[[n + j, j]] = r;
    }
    let model = LinearRegression::new().with_intercept(false);
    let columns: Vec<Array1<f64>> = (0..n_classes)
        .into_par_iter()
        .map(|k| {
            let mut target = Array1::<f64>::zeros(n + d);
            for (i, &c) in y.iter().enumerate() {
                if c as usize == k {
                    target[i] = 1.0;
                }
            }
            let fitted = model
                .fit(&DatasetBase::new(a.view(), target))
                .map_err(|e| anyhow!("lsq (linfa-linear, class {k}): {e}; use alpha > 0"))?;
            Ok(fitted.params().slice(s![..d]).to_owned())
        })
        .collect::<Result<_>>()?;
    let mut w = Array2::<f64>::zeros((d, n_classes));
    for (k, col) in columns.iter().enumerate() {
        w.column_mut(k).assign(col);
    }
    Ok(w)
}

impl Proxy for Lsq {
    fn kind(&self) -> &'static str {
        "lsq"
    }
    fn dim(&self) -> usize {
        self.w.nrows()
    }
    fn n_classes(&self) -> usize {
        self.b.len()
    }
    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = self.scores(x);
        simplex_project_rows(&mut z);
        z
    }
}
