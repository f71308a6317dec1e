//! The proxy: a cheap classifier head trained on cached feature rows of the labelled set, used to
//! score the unlabelled pool every round.
//!
//! * [`Proxy`] — a fitted model: class probabilities for a block of rows.
//! * [`ProxyConfig`] — which head and its hyper-parameters; [`ProxyConfig::fit`] trains one.
//!   [`LogRegConfig`] (default): multinomial logistic regression, L2-regularised, full-batch
//!   L-BFGS on standardised features, deterministic. [`MlpConfig`]: Linear-BatchNorm-ReLU-Linear
//!   (the ASVP paper's head) trained with AdamW through candle. [`LsqConfig`]: ridge regression
//!   of one-hot targets in closed form, scores projected onto the simplex (`lsq.rs`).
//! * linfa: the configs are linfa `Fit` params and the fitted heads linfa `Predict` models
//!   (labels); [`LinfaProxy`] serves any fitted linfa classifier as a [`Proxy`]
//!   (`linfa_traits.rs`).
//! * [`map_proba`] / [`map_scores`] — stream any [`RowBlocks`] (the memory-mapped store, or an
//!   in-memory matrix) through a closure in parallel chunks, zero-copy where rows are contiguous,
//!   so a 1M-row pool is scored without materialising its n × C probability matrix.
pub mod linfa_traits;
pub mod logreg;
pub mod lsq;
pub mod mlp;

use crate::features::{map_blocks, map_rows, Block, RowBlocks};
use anyhow::{bail, Result};
use ndarray::{s, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

pub use linfa_traits::{scatter_classes, Head, HeadParams, LinfaProxy, ProxyError};
pub use logreg::{ClassWeight, LogReg, LogRegConfig};
pub use lsq::{Lsq, LsqConfig, LsqSolver};
pub use mlp::{Mlp, MlpConfig};

/// A fitted proxy head.
pub trait Proxy: Send + Sync {
    /// Short name ("logreg", "mlp", "lsq", "linfa").
    fn kind(&self) -> &'static str;
    /// Feature dimension it was trained on.
    fn dim(&self) -> usize;
    fn n_classes(&self) -> usize;
    /// Class probabilities (rows × n_classes) for a block of feature rows. Single-threaded:
    /// callers parallelise over blocks (see [`map_proba`]).
    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32>;
    /// The input of the last linear layer for `x`, when that is not `x` itself (the MLP's hidden
    /// activations). BADGE builds its gradient embeddings on it. `None`: the features themselves.
    fn penultimate(&self, _x: ArrayView2<f32>) -> Option<Array2<f32>> {
        None
    }
}

/// A boxed proxy is a proxy (so `Box<dyn Proxy>` serves where a `P: Proxy` is asked for).
impl<P: Proxy + ?Sized> Proxy for Box<P> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn n_classes(&self) -> usize {
        (**self).n_classes()
    }
    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        (**self).predict_proba(x)
    }
    fn penultimate(&self, x: ArrayView2<f32>) -> Option<Array2<f32>> {
        (**self).penultimate(x)
    }
}

/// Which proxy head to train, with its hyper-parameters (serialisable, for policy configs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProxyConfig {
    Logreg(LogRegConfig),
    Mlp(MlpConfig),
    Lsq(LsqConfig),
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig::Logreg(LogRegConfig::default())
    }
}

impl ProxyConfig {
    /// Parse a short name: "logreg", "mlp" or "lsq" (alias "ridge") with default
    /// hyper-parameters.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "logreg" | "linear" | "lr" => Ok(ProxyConfig::Logreg(LogRegConfig::default())),
            "mlp" => Ok(ProxyConfig::Mlp(MlpConfig::default())),
            "lsq" | "ridge" => Ok(ProxyConfig::Lsq(LsqConfig::default())),
            other => bail!("unknown proxy '{other}' (expected logreg, mlp or lsq)"),
        }
    }

    /// Train on labelled rows `x` (n × d, already gathered) with labels `y` in `0..n_classes`.
    pub fn fit(
        &self,
        x: ArrayView2<f32>,
        y: &[u32],
        n_classes: usize,
        seed: u64,
    ) -> Result<Box<dyn Proxy>> {
        check_training_set(x, y, n_classes)?;
        Ok(match self {
            ProxyConfig::Logreg(c) => Box::new(LogReg::fit(c, x, y, n_classes, None)?),
            ProxyConfig::Mlp(c) => Box::new(Mlp::fit(c, x, y, n_classes, seed)?),
            ProxyConfig::Lsq(c) => Box::new(Lsq::fit(c, x, y, n_classes)?),
        })
    }

    /// Gather `rows` from `features` and train on them.
    pub fn fit_rows(
        &self,
        features: &dyn RowBlocks,
        rows: &[usize],
        y: &[u32],
        n_classes: usize,
        seed: u64,
    ) -> Result<Box<dyn Proxy>> {
        if let Some(&r) = rows.iter().find(|&&r| r >= features.n_rows()) {
            bail!(
                "labelled row {r} is out of range (the feature version has {} rows)",
                features.n_rows()
            );
        }
        let x = features.gather(rows);
        self.fit(x.view(), y, n_classes, seed)
    }
}

/// Accuracy of `cfg` estimated by seeded `k`-fold cross-validation on `x`, `y`: the share of
/// rows predicted right by a proxy trained on the other folds, and a binomial standard error of
/// that share. On rows chosen by active learning (harder than the pool's typical row) it tends
/// to understate the accuracy on the pool.
pub fn cross_validated_accuracy(
    cfg: &ProxyConfig,
    x: ArrayView2<f32>,
    y: &[u32],
    n_classes: usize,
    k: usize,
    seed: u64,
) -> Result<(f64, f64)> {
    use rand::seq::SliceRandom;
    let n = y.len();
    if k < 2 || n < k {
        bail!("cross-validation needs at least {k} labelled rows, got {n}");
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut crate::util::rng(seed));
    let mut right = 0usize;
    for f in 0..k {
        let (test, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| i % k == f);
        let (test, train): (Vec<usize>, Vec<usize>) = (
            test.iter().map(|&i| order[i]).collect(),
            train.iter().map(|&i| order[i]).collect(),
        );
        let yt: Vec<u32> = train.iter().map(|&i| y[i]).collect();
        let proxy = cfg.fit(
            x.select(ndarray::Axis(0), &train).view(),
            &yt,
            n_classes,
            seed,
        )?;
        let p = proxy.predict_proba(x.select(ndarray::Axis(0), &test).view());
        right += crate::numerics::argmax_rows(p.view())
            .iter()
            .zip(&test)
            .filter(|((c, _), &i)| *c == y[i])
            .count();
    }
    let acc = right as f64 / n as f64;
    Ok((acc, (acc * (1.0 - acc) / n as f64).sqrt()))
}

pub(crate) fn check_training_set(x: ArrayView2<f32>, y: &[u32], n_classes: usize) -> Result<()> {
    if x.nrows() != y.len() {
        bail!(
            "proxy fit: {} feature rows but {} labels",
            x.nrows(),
            y.len()
        );
    }
    if x.nrows() == 0 {
        bail!("proxy fit: no labelled rows (use a cold-start strategy for the first batch)");
    }
    if n_classes < 2 {
        bail!("proxy fit: need at least 2 classes, got {n_classes}");
    }
    if let Some(&c) = y.iter().find(|&&c| c as usize >= n_classes) {
        bail!("proxy fit: label {c} is out of range for {n_classes} classes");
    }
    if x.iter().any(|v| !v.is_finite()) {
        bail!("proxy fit: the labelled features contain NaN or infinite values");
    }
    Ok(())
}

/// Like [`map_rows`], with the proxy's probabilities for the chunk: `f(rows, x, proba)`.
pub fn map_proba<T, F>(proxy: &dyn Proxy, features: &dyn RowBlocks, rows: &[usize], f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&[usize], ArrayView2<f32>, ArrayView2<f32>) -> T + Sync,
{
    map_rows(features, rows, |rs, x| {
        let p = proxy.predict_proba(x);
        f(rs, x, p.view())
    })
}

/// One score per row of `rows` (sorted ascending, unique), `f(probability row)`, in row order:
/// the scoring loop of the uncertainty strategies. Like [`map_proba`], but when a chunk's rows
/// are not contiguous (labelled rows scattered through the pool) and fill at least 4/5 of the
/// block span they cover, the probabilities are computed for the whole span, zero-copy from
/// the block, and the rows not asked for are dropped: a few percent of extra matmul instead of
/// copying every feature row of the chunk. Sparser chunks are copied as in [`map_rows`]. A
/// row's probabilities do not depend on the rows around it, so the scores are the same either
/// way.
pub fn map_scores<F>(proxy: &dyn Proxy, features: &dyn RowBlocks, rows: &[usize], f: F) -> Vec<f32>
where
    F: Fn(&[f32]) -> f32 + Sync,
{
    let score = |p: ArrayView2<f32>, local: &mut dyn Iterator<Item = usize>| -> Vec<f32> {
        match p.as_slice() {
            Some(s) => {
                let c = p.ncols();
                local.map(|i| f(&s[i * c..(i + 1) * c])).collect()
            }
            None => local.map(|i| f(&p.row(i).to_vec())).collect::<Vec<f32>>(),
        }
    };
    let parts = map_blocks(features, rows, |rs, first, block| {
        let a = rs[0] - first;
        let b = rs[rs.len() - 1] - first;
        let span = b - a + 1;
        // (f16 rows are widened either way: there the span would only add work.)
        if span * 4 <= rs.len() * 5 && matches!(block, Block::F32(_)) {
            let p = proxy.predict_proba(block.rows(a..b + 1).view());
            score(p.view(), &mut rs.iter().map(|r| r - first - a))
        } else {
            let local: Vec<usize> = rs.iter().map(|r| r - first).collect();
            let p = proxy.predict_proba(block.select(&local).view());
            score(p.view(), &mut (0..rs.len()))
        }
    });
    let mut out = Vec::with_capacity(rows.len());
    for p in parts {
        out.extend(p);
    }
    out
}

/// Probabilities for `rows` as one matrix (rows.len() × C). Convenient for small sets; for a
/// large pool prefer [`map_proba`], which never holds more than a chunk per worker.
pub fn predict_rows(proxy: &dyn Proxy, features: &dyn RowBlocks, rows: &[usize]) -> Array2<f32> {
    let parts = map_proba(proxy, features, rows, |_, _, p| p.to_owned());
    let mut out = Array2::<f32>::zeros((rows.len(), proxy.n_classes()));
    let mut at = 0;
    for p in parts {
        out.slice_mut(s![at..at + p.nrows(), ..]).assign(&p);
        at += p.nrows();
    }
    out
}
