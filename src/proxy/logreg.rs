//! Multinomial logistic regression on cached features, trained full-batch with L-BFGS.
//!
//! Objective (the same minimiser as scikit-learn's `LogisticRegression(C=c)`, multinomial, lbfgs):
//!
//! ```text
//! f(W, b) = (1 / Σw) · [ Σ_i w_i · CE(softmax(x̃_i W + b), y_i) + ||W||² / (2c) ]
//! ```
//!
//! where x̃ are the features standardised with the labelled rows' mean and standard deviation
//! (switchable), w_i are class weights (none, or "balanced"), and the bias is not penalised. The
//! fitted weights are folded back into raw-feature space, so prediction is one matmul and a
//! softmax with no per-row standardisation.
//!
//! Why L-BFGS written here: the objective is smooth and strongly convex, so a quasi-Newton method
//! converges in tens to a few hundred iterations with no learning rate to tune, and the whole
//! fit is deterministic (full batch, fixed-order reductions). Each evaluation is two f32 matmuls
//! (n×d·d×C through the AVX-512 kernel of `numerics::gemm` where the CPU has it, d×n·n×C through
//! matrixmultiply; both multi-threaded) plus a softmax; the L-BFGS state and
//! the loss are kept in f64, which is what keeps it converging where an all-f32 L-BFGS stalls.
use super::Proxy;
use crate::numerics::gemm::Panels;
use crate::numerics::linalg::{matmul_into, softmax_rows, softmax_rows_scalar};
use anyhow::{bail, Result};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::OnceLock;

/// Per-class loss weights.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    /// Every row counts once.
    #[default]
    None,
    /// Row weight n / (C · n_class), as scikit-learn's `class_weight="balanced"`.
    Balanced,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LogRegConfig {
    /// Inverse L2 strength, scikit-learn's `C` (penalty ||W||²/(2C) against the summed loss).
    pub c: f64,
    pub class_weight: ClassWeight,
    /// Standardise features with the labelled rows' mean / std before fitting (folded into the
    /// weights afterwards). Makes one `c` work across feature scales.
    pub standardize: bool,
    pub max_iter: usize,
    /// Stop when the largest gradient component of the (averaged) objective is below this.
    pub gtol: f64,
    /// L-BFGS memory (pairs kept).
    pub history: usize,
    /// Temperature-scale the probabilities (Guo et al. 2017): refit on a seeded 80% of the
    /// labelled rows (warm-started, so cheap), choose the temperature T that minimises the
    /// log-loss on the other 20%, and divide the final model's logits by T. Skipped below
    /// 50 labelled rows.
    pub calibrate: bool,
}

impl Default for LogRegConfig {
    fn default() -> Self {
        LogRegConfig {
            c: 1.0,
            class_weight: ClassWeight::None,
            standardize: true,
            max_iter: 500,
            gtol: 1e-4,
            history: 10,
            calibrate: true,
        }
    }
}

/// A fitted multinomial logistic regression.
#[derive(Debug, Clone)]
pub struct LogReg {
    /// d × C weights acting on raw features.
    pub w: Array2<f32>,
    /// C biases.
    pub b: Array1<f32>,
    mean: Array1<f32>,
    scale: Array1<f32>,
    /// L-BFGS iterations and objective evaluations used.
    pub iterations: usize,
    pub evaluations: usize,
    /// Whether the gradient tolerance was reached (else max_iter or a failed line search).
    pub converged: bool,
    /// Final value of the averaged objective.
    pub loss: f64,
    /// Largest gradient component at the end.
    pub grad_max: f64,
    /// Temperature the logits were divided by (1 when not calibrated).
    pub temperature: f32,
    /// `w` packed for the AVX-512 kernel (`None` inside without AVX-512), built on the first
    /// prediction. `w` is final by then: only `fit` changes it, before returning.
    packed: OnceLock<Option<Panels>>,
}

/// The training objective over standardised features; public so tests can check its gradient.
pub struct Objective {
    xs: Array2<f32>,
    y: Vec<u32>,
    sw: Vec<f32>,
    sw_sum: f64,
    n_classes: usize,
    l2: f64,
}

impl Objective {
    /// Build the objective: standardises `x` when `standardize`, returning (objective, mean, scale).
    pub fn new(
        cfg: &LogRegConfig,
        x: ArrayView2<f32>,
        y: &[u32],
        n_classes: usize,
    ) -> (Objective, Array1<f32>, Array1<f32>) {
        Self::weighted(cfg, x, y, None, n_classes)
    }

    /// As [`Objective::new`], each row's loss also multiplied by `row_weight` (on top of the
    /// class weights): a row of weight 2 counts as that row twice in the loss and in the
    /// penalty's scale (the standardisation stays over the rows as given).
    pub fn weighted(
        cfg: &LogRegConfig,
        x: ArrayView2<f32>,
        y: &[u32],
        row_weight: Option<&[f32]>,
        n_classes: usize,
    ) -> (Objective, Array1<f32>, Array1<f32>) {
        let (n, d) = x.dim();
        let (mean, scale) = if cfg.standardize && n > 1 {
            let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(d));
            let mut var = Array1::<f32>::zeros(d);
            for r in x.rows() {
                for ((v, &xv), &m) in var.iter_mut().zip(r.iter()).zip(mean.iter()) {
                    let t = xv - m;
                    *v += t * t;
                }
            }
            let std = var.mapv(|v| (v / n as f32).sqrt());
            let top = std.iter().copied().fold(0.0f32, f32::max);
            let scale = std.mapv(|s| {
                if s > 1e-6 * top.max(1e-30) && s > 0.0 {
                    s
                } else {
                    1.0
                }
            });
            (mean, scale)
        } else {
            (Array1::zeros(d), Array1::ones(d))
        };
        let mut xs = x.to_owned();
        if cfg.standardize && n > 1 {
            for mut r in xs.rows_mut() {
                for ((v, &m), &s) in r.iter_mut().zip(mean.iter()).zip(scale.iter()) {
                    *v = (*v - m) / s;
                }
            }
        }
        let sw: Vec<f32> = match cfg.class_weight {
            ClassWeight::None => vec![1.0; n],
            ClassWeight::Balanced => {
                let mut counts = vec![0usize; n_classes];
                for &c in y {
                    counts[c as usize] += 1;
                }
                let present = counts.iter().filter(|&&c| c > 0).count().max(1);
                y.iter()
                    .map(|&c| n as f32 / (present as f32 * counts[c as usize] as f32))
                    .collect()
            }
        };
        let sw: Vec<f32> = match row_weight {
            Some(rw) => sw.iter().zip(rw).map(|(&a, &b)| a * b).collect(),
            None => sw,
        };
        let sw_sum: f64 = sw.iter().map(|&v| v as f64).sum();
        let obj = Objective {
            xs,
            y: y.to_vec(),
            sw,
            sw_sum,
            n_classes,
            l2: 1.0 / (cfg.c * sw_sum),
        };
        (obj, mean, scale)
    }

    /// Number of parameters: d·C weights (row-major d × C) then C biases.
    pub fn n_params(&self) -> usize {
        self.xs.ncols() * self.n_classes + self.n_classes
    }

    /// Objective value at `theta`, gradient written into `grad`.
    pub fn eval(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let (n, d) = self.xs.dim();
        let c = self.n_classes;
        let w = Array2::from_shape_vec((d, c), theta[..d * c].iter().map(|&v| v as f32).collect())
            .expect("theta has d·C weights");
        let b: Vec<f32> = theta[d * c..].iter().map(|&v| v as f32).collect();
        let mut z = Array2::<f32>::zeros((n, c));
        let ws = w.as_slice().expect("standard layout");
        match Panels::new(ws, d, c) {
            // The AVX-512 kernel (W packed afresh each evaluation: d·C floats, negligible).
            Some(p) => p.matmul_into(
                self.xs.as_slice().expect("standard layout"),
                n,
                None,
                z.as_slice_mut().expect("standard layout"),
                true,
            ),
            None => matmul_into(self.xs.view(), w.view(), z.view_mut(), false, true),
        }
        // Softmax, loss and residuals R = w_i (P - Y) / Σw, in fixed-size row chunks whose partial
        // sums are added in order: the result does not depend on thread scheduling.
        const ROWS: usize = 512;
        let inv = (1.0 / self.sw_sum) as f32;
        let zs = z.as_slice_mut().expect("standard layout");
        let partial: Vec<f64> = zs
            .par_chunks_mut(ROWS * c)
            .enumerate()
            .map(|(k, chunk)| {
                let mut loss = 0.0f64;
                for (r, row) in chunk.chunks_mut(c).enumerate() {
                    let i = k * ROWS + r;
                    let mut m = f32::NEG_INFINITY;
                    for (v, &bb) in row.iter_mut().zip(&b) {
                        *v += bb;
                        m = m.max(*v);
                    }
                    let mut s = 0.0f32;
                    for v in row.iter() {
                        s += (*v - m).exp();
                    }
                    let lse = m + s.ln();
                    let yi = self.y[i] as usize;
                    loss += self.sw[i] as f64 * (lse - row[yi]) as f64;
                    let wi = self.sw[i] * inv;
                    for v in row.iter_mut() {
                        *v = (*v - lse).exp() * wi;
                    }
                    row[yi] -= wi;
                }
                loss
            })
            .collect();
        let data_loss: f64 = partial.iter().sum();
        let mut gw = Array2::<f32>::zeros((d, c));
        matmul_into(self.xs.t(), z.view(), gw.view_mut(), false, true);
        let mut reg = 0.0f64;
        for (k, (g, &t)) in grad[..d * c].iter_mut().zip(&theta[..d * c]).enumerate() {
            *g = gw.as_slice().expect("standard layout")[k] as f64 + self.l2 * t;
            reg += t * t;
        }
        let mut gb = vec![0.0f64; c];
        for row in z.rows() {
            for (g, &v) in gb.iter_mut().zip(row.iter()) {
                *g += v as f64;
            }
        }
        grad[d * c..].copy_from_slice(&gb);
        data_loss / self.sw_sum + 0.5 * self.l2 * reg
    }
}

struct LbfgsResult {
    theta: Vec<f64>,
    f: f64,
    gmax: f64,
    iterations: usize,
    evaluations: usize,
    converged: bool,
}

fn dotv(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn lbfgs(obj: &Objective, theta0: Vec<f64>, cfg: &LogRegConfig) -> LbfgsResult {
    let p = theta0.len();
    let mut x = theta0;
    let mut g = vec![0.0; p];
    let mut f = obj.eval(&x, &mut g);
    let mut evals = 1;
    let mut hist: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    let mut xn = vec![0.0; p];
    let mut gn = vec![0.0; p];
    let mut d = vec![0.0; p];
    let mut alpha_buf = vec![0.0; cfg.history.max(1)];
    let gmax = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut iterations = 0;
    let mut converged = false;
    while iterations < cfg.max_iter {
        if gmax(&g) <= cfg.gtol {
            converged = true;
            break;
        }
        iterations += 1;
        // Two-loop recursion: d = -H g.
        d.iter_mut().zip(&g).for_each(|(di, gi)| *di = -gi);
        for (k, (s, yv, rho)) in hist.iter().enumerate().rev() {
            let a = rho * dotv(s, &d);
            alpha_buf[k] = a;
            d.iter_mut().zip(yv).for_each(|(di, yi)| *di -= a * yi);
        }
        let first_step = hist.is_empty();
        if let Some((s, yv, _)) = hist.back() {
            let gamma = dotv(s, yv) / dotv(yv, yv);
            d.iter_mut().for_each(|di| *di *= gamma);
        }
        for (k, (s, yv, rho)) in hist.iter().enumerate() {
            let bcoef = rho * dotv(yv, &d);
            let a = alpha_buf[k];
            d.iter_mut()
                .zip(s)
                .for_each(|(di, si)| *di += (a - bcoef) * si);
        }
        let mut gd = dotv(&g, &d);
        if gd >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            hist.clear();
            d.iter_mut().zip(&g).for_each(|(di, gi)| *di = -gi);
            gd = dotv(&g, &d);
        }
        let mut step = if first_step {
            1.0 / dotv(&g, &g).sqrt().max(1.0)
        } else {
            1.0
        };
        // Backtracking line search with safeguarded quadratic interpolation (Armijo condition).
        let mut accepted = false;
        let mut fnew = f;
        for _ in 0..40 {
            xn.iter_mut()
                .zip(&x)
                .zip(&d)
                .for_each(|((v, xi), di)| *v = xi + step * di);
            fnew = obj.eval(&xn, &mut gn);
            evals += 1;
            if fnew.is_finite() && fnew <= f + 1e-4 * step * gd {
                accepted = true;
                break;
            }
            let denom = 2.0 * (fnew - f - gd * step);
            let mut next = if fnew.is_finite() && denom > 0.0 {
                -gd * step * step / denom
            } else {
                0.5 * step
            };
            next = next.clamp(0.1 * step, 0.5 * step);
            step = next;
        }
        if !accepted {
            break;
        }
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dotv(&s, &yv);
        if sy > 1e-12 * dotv(&yv, &yv).max(1e-300) {
            if hist.len() == cfg.history.max(1) {
                hist.pop_front();
            }
            hist.push_back((s, yv, 1.0 / sy));
        }
        let decrease = f - fnew;
        std::mem::swap(&mut x, &mut xn);
        std::mem::swap(&mut g, &mut gn);
        f = fnew;
        if decrease <= 1e-13 * f.abs().max(1.0) {
            // No measurable progress left in f32 arithmetic.
            converged = gmax(&g) <= cfg.gtol * 10.0;
            break;
        }
    }
    let gm = gmax(&g);
    if gm <= cfg.gtol {
        converged = true;
    }
    LbfgsResult {
        theta: x,
        f,
        gmax: gm,
        iterations,
        evaluations: evals,
        converged,
    }
}

impl LogReg {
    /// Fit on `x` (n × d) with labels `y`; `warm` (a previous fit of the same shape) starts the
    /// optimiser from its solution, which usually saves most iterations between AL rounds.
    /// With `cfg.calibrate`, the probabilities are temperature-scaled on a held-out split.
    pub fn fit(
        cfg: &LogRegConfig,
        x: ArrayView2<f32>,
        y: &[u32],
        n_classes: usize,
        warm: Option<&LogReg>,
    ) -> Result<LogReg> {
        let n = x.nrows();
        if !cfg.calibrate || n < 50 {
            return Self::fit_plain(cfg, x, y, n_classes, warm);
        }
        // Held-out fit first (it never sees the 20% it is judged on), then the full fit
        // warm-started from it, so calibration costs well under a second fit.
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut crate::util::rng(0x7e37_ca11));
        let (hold, train) = idx.split_at(n / 5);
        let mut train = train.to_vec();
        train.sort_unstable();
        let mut hold = hold.to_vec();
        hold.sort_unstable();
        let yt: Vec<u32> = train.iter().map(|&i| y[i]).collect();
        let sub = Self::fit_plain(cfg, x.select(Axis(0), &train).view(), &yt, n_classes, warm)?;
        let z = sub.logits(x.select(Axis(0), &hold).view());
        let yh: Vec<u32> = hold.iter().map(|&i| y[i]).collect();
        let t = best_temperature(&z, &yh);
        let mut m = Self::fit_plain(cfg, x, y, n_classes, Some(&sub))?;
        m.iterations += sub.iterations;
        m.evaluations += sub.evaluations;
        m.w.mapv_inplace(|v| v / t);
        m.b.mapv_inplace(|v| v / t);
        m.temperature = t;
        m.packed = OnceLock::new(); // (still empty: nothing has predicted with `m` yet)
        Ok(m)
    }

    /// An uncalibrated fit in which row i's loss weighs `row_weight[i]` (pseudo-labelled rows
    /// below 1; see [`Objective::weighted`]). `cfg.calibrate` is ignored.
    pub fn fit_weighted(
        cfg: &LogRegConfig,
        x: ArrayView2<f32>,
        y: &[u32],
        row_weight: &[f32],
        n_classes: usize,
    ) -> Result<LogReg> {
        if row_weight.len() != y.len() {
            bail!(
                "logreg: {} row weights for {} rows",
                row_weight.len(),
                y.len()
            );
        }
        if row_weight.iter().any(|w| !w.is_finite() || *w <= 0.0) {
            bail!("logreg: row weights must be positive and finite");
        }
        Self::fit_rows(cfg, x, y, Some(row_weight), n_classes, None)
    }

    /// One uncalibrated fit, optimised from `start`'s solution when given (any shape mismatch
    /// starts from zero).
    fn fit_plain(
        cfg: &LogRegConfig,
        x: ArrayView2<f32>,
        y: &[u32],
        n_classes: usize,
        start: Option<&LogReg>,
    ) -> Result<LogReg> {
        Self::fit_rows(cfg, x, y, None, n_classes, start)
    }

    fn fit_rows(
        cfg: &LogRegConfig,
        x: ArrayView2<f32>,
        y: &[u32],
        row_weight: Option<&[f32]>,
        n_classes: usize,
        start: Option<&LogReg>,
    ) -> Result<LogReg> {
        super::check_training_set(x, y, n_classes)?;
        if cfg.c.is_nan() || cfg.c <= 0.0 {
            bail!("logreg: C must be positive, got {}", cfg.c);
        }
        let d = x.ncols();
        let (obj, mean, scale) = Objective::weighted(cfg, x, y, row_weight, n_classes);
        let mut theta = vec![0.0f64; obj.n_params()];
        if let Some(prev) = start.filter(|p| p.w.dim() == (d, n_classes)) {
            // Express the previous raw-space solution in this fit's standardised coordinates.
            // (Undo its temperature: the optimiser works on the uncalibrated objective.)
            let t = prev.temperature;
            for j in 0..d {
                for k in 0..n_classes {
                    theta[j * n_classes + k] = (prev.w[[j, k]] * t * scale[j]) as f64;
                }
            }
            for k in 0..n_classes {
                let shift: f32 = (0..d).map(|j| mean[j] * prev.w[[j, k]] * t).sum();
                theta[d * n_classes + k] = (prev.b[k] * t + shift) as f64;
            }
        }
        let res = lbfgs(&obj, theta, cfg);
        let mut w = Array2::<f32>::zeros((d, n_classes));
        for j in 0..d {
            for k in 0..n_classes {
                w[[j, k]] = (res.theta[j * n_classes + k] / scale[j] as f64) as f32;
            }
        }
        let mut b = Array1::<f32>::zeros(n_classes);
        for k in 0..n_classes {
            let shift: f64 = (0..d).map(|j| mean[j] as f64 * w[[j, k]] as f64).sum();
            b[k] = (res.theta[d * n_classes + k] - shift) as f32;
        }
        Ok(LogReg {
            w,
            b,
            mean,
            scale,
            iterations: res.iterations,
            evaluations: res.evaluations,
            converged: res.converged,
            loss: res.f,
            grad_max: res.gmax,
            temperature: 1.0,
            packed: OnceLock::new(),
        })
    }

    /// The per-feature mean and scale the fit standardised with (ones/zeros when disabled).
    pub fn standardization(&self) -> (&Array1<f32>, &Array1<f32>) {
        (&self.mean, &self.scale)
    }

    /// Logits for a block (rows × C), single-threaded. With AVX-512: the packed 12 × 32 kernel
    /// of [`crate::numerics::gemm`] (W zero-padded to a multiple of 32 columns, accumulators
    /// starting from the bias); elsewhere [`LogReg::logits_reference`].
    pub fn logits(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let Some(p) = self.panels() else {
            return self.logits_reference(x);
        };
        let (m, c) = (x.nrows(), self.b.len());
        let xs = x.as_standard_layout();
        let mut z = Array2::<f32>::zeros((m, c));
        p.matmul_into(
            xs.as_slice().expect("standard layout"),
            m,
            self.b.as_slice(),
            z.as_slice_mut().expect("standard layout"),
            false,
        );
        z
    }

    /// Logits through ndarray's matmul (matrixmultiply) plus the bias: the portable path, and
    /// the reference the packed kernel is tested against.
    pub fn logits_reference(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = Array2::<f32>::zeros((x.nrows(), self.b.len()));
        matmul_into(x, self.w.view(), z.view_mut(), false, false);
        z += &self.b;
        z
    }

    /// Probabilities through [`LogReg::logits_reference`] and the scalar softmax: what
    /// `predict_proba` computed before the AVX-512 paths (kept for tests and benchmarks).
    pub fn predict_proba_reference(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = self.logits_reference(x);
        softmax_rows_scalar(&mut z);
        z
    }

    fn panels(&self) -> Option<&Panels> {
        self.packed
            .get_or_init(|| {
                let (d, c) = self.w.dim();
                Panels::new(
                    self.w
                        .as_standard_layout()
                        .as_slice()
                        .expect("standard layout"),
                    d,
                    c,
                )
            })
            .as_ref()
    }
}

/// Mean negative log-likelihood of labels `y` under softmax(z / t).
fn nll_at(z: &Array2<f32>, y: &[u32], t: f64) -> f64 {
    let mut total = 0.0;
    for (row, &c) in z.rows().into_iter().zip(y) {
        let m = row
            .iter()
            .fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64 / t));
        let s: f64 = row.iter().map(|&v| (v as f64 / t - m).exp()).sum();
        total += m + s.ln() - row[c as usize] as f64 / t;
    }
    total / y.len().max(1) as f64
}

/// The temperature in [0.05, 20] minimising held-out log-loss (golden-section search on ln t;
/// the NLL is unimodal in 1/t).
fn best_temperature(z: &Array2<f32>, y: &[u32]) -> f32 {
    let (mut a, mut b) = ((0.05f64).ln(), (20.0f64).ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (nll_at(z, y, c.exp()), nll_at(z, y, d.exp()));
    for _ in 0..40 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = nll_at(z, y, c.exp());
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = nll_at(z, y, d.exp());
        }
    }
    ((a + b) / 2.0).exp() as f32
}

impl Proxy for LogReg {
    fn kind(&self) -> &'static str {
        "logreg"
    }
    fn dim(&self) -> usize {
        self.w.nrows()
    }
    fn n_classes(&self) -> usize {
        self.b.len()
    }
    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = self.logits(x);
        softmax_rows(&mut z);
        z
    }
}
