//! proxal's proxy heads as linfa models, and linfa classifiers as proxal proxies.
//!
//! * Fitting: each head config ([`LogRegConfig`], [`MlpConfig`], [`LsqConfig`], [`ProxyConfig`])
//!   implements linfa's [`Fit`] over a [`DatasetBase`] of f32 or f64 records (n × d) and
//!   class-index targets (`usize` or `u32`, in `0..C`), with [`ProxyError`] as the error. From a
//!   dataset alone, C is the largest label + 1 and the MLP's seed is 0; [`HeadParams`]
//!   (`config.params().classes(c).seed(s)`) fixes both, as an AL round needs: C outputs before
//!   every class has a label. It is the same fit as [`ProxyConfig::fit`] (tested bit-identical).
//! * Predicting: the fitted heads ([`LogReg`], [`Mlp`], [`Lsq`], `Box<dyn Proxy>`, and
//!   [`LinfaProxy`]) implement [`PredictInplace`], hence linfa's `Predict`, to class labels
//!   (`Array1<usize>`): the argmax of [`Proxy::predict_proba`], ties to the lower class. The
//!   probabilities themselves stay with [`Proxy`], which the strategies consume.
//! * [`LinfaProxy`] wraps any fitted linfa classifier as a [`Proxy`]. linfa has no common trait
//!   for class probabilities (each crate names its own method), so
//!   [`LinfaProxy::with_probabilities`] takes a closure that calls the model's method;
//!   [`LinfaProxy::from_labels`] takes any model predicting labels and uses one-hot
//!   probabilities — enough to run a strategy, but every uncertainty score is then a tie (margin
//!   1, entropy 0), so margin/entropy/least-confidence degrade to lowest-row-first; only
//!   probability-giving models make those strategies meaningful.
//!
//! The heads compute in f32: f64 records are rounded to f32 once on the way in (f32 records are
//! used in place). Dataset weights are refused rather than ignored.
use super::{LogReg, LogRegConfig, Lsq, LsqConfig, Mlp, MlpConfig, Proxy, ProxyConfig};
use crate::features::CHUNK_ROWS;
use crate::numerics::argmax_rows;
use linfa::dataset::AsSingleTargets;
use linfa::traits::{Fit, PredictInplace};
use linfa::DatasetBase;
use ndarray::{s, Array1, Array2, ArrayBase, ArrayView2, CowArray, Data, Ix2};
use rayon::prelude::*;

/// The error of fitting a proxy head through linfa's [`Fit`].
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A dataset problem in linfa's terms (mismatched shapes, weights, no samples).
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
    /// The head's own fit failed (bad labels or features, a parameter out of range, divergence).
    #[error(transparent)]
    Fit(#[from] anyhow::Error),
}

/// Record element types the heads accept: f32 in place, f64 rounded to f32.
pub trait FeatureFloat: linfa::Float {
    fn as_f32<D: Data<Elem = Self>>(x: &ArrayBase<D, Ix2>) -> CowArray<'_, f32, Ix2>;
}

impl FeatureFloat for f32 {
    fn as_f32<D: Data<Elem = f32>>(x: &ArrayBase<D, Ix2>) -> CowArray<'_, f32, Ix2> {
        CowArray::from(x.view())
    }
}

impl FeatureFloat for f64 {
    fn as_f32<D: Data<Elem = f64>>(x: &ArrayBase<D, Ix2>) -> CowArray<'_, f32, Ix2> {
        CowArray::from(x.mapv(|v| v as f32))
    }
}

/// Target element types read as class indices.
pub trait ClassIndex: Copy {
    fn index(self) -> usize;
}

impl ClassIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl ClassIndex for u32 {
    fn index(self) -> usize {
        self as usize
    }
}

/// A proxy head's hyper-parameters: what [`HeadParams`] and the linfa [`Fit`] impls fit.
pub trait Head: Clone {
    type Model: Proxy;
    /// Train on `x` (n × d) with labels `y` in `0..n_classes` (seeded where the head is random).
    fn fit_head(
        &self,
        x: ArrayView2<f32>,
        y: &[u32],
        n_classes: usize,
        seed: u64,
    ) -> anyhow::Result<Self::Model>;

    /// These hyper-parameters with the class count and seed open for setting.
    fn params(self) -> HeadParams<Self> {
        HeadParams {
            head: self,
            classes: None,
            seed: 0,
        }
    }
}

impl Head for LogRegConfig {
    type Model = LogReg;
    fn fit_head(&self, x: ArrayView2<f32>, y: &[u32], c: usize, _: u64) -> anyhow::Result<LogReg> {
        LogReg::fit(self, x, y, c, None)
    }
}

impl Head for MlpConfig {
    type Model = Mlp;
    fn fit_head(&self, x: ArrayView2<f32>, y: &[u32], c: usize, seed: u64) -> anyhow::Result<Mlp> {
        Mlp::fit(self, x, y, c, seed)
    }
}

impl Head for LsqConfig {
    type Model = Lsq;
    fn fit_head(&self, x: ArrayView2<f32>, y: &[u32], c: usize, _: u64) -> anyhow::Result<Lsq> {
        Lsq::fit(self, x, y, c)
    }
}

impl Head for ProxyConfig {
    type Model = Box<dyn Proxy>;
    fn fit_head(
        &self,
        x: ArrayView2<f32>,
        y: &[u32],
        c: usize,
        seed: u64,
    ) -> anyhow::Result<Box<dyn Proxy>> {
        self.fit(x, y, c, seed)
    }
}

/// A head's hyper-parameters with the number of classes (default: largest label + 1) and the
/// seed (default 0) set, ready for linfa's [`Fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct HeadParams<H> {
    pub head: H,
    pub classes: Option<usize>,
    pub seed: u64,
}

impl<H> HeadParams<H> {
    /// Fit `n` outputs whatever labels the dataset holds.
    pub fn classes(mut self, n: usize) -> Self {
        self.classes = Some(n);
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// The shared body of every [`Fit`] impl: checks the dataset, converts records and labels, fits.
fn fit_dataset<H, F, D, T>(
    head: &H,
    classes: Option<usize>,
    seed: u64,
    dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
) -> Result<H::Model, ProxyError>
where
    H: Head,
    F: FeatureFloat,
    D: Data<Elem = F>,
    T: AsSingleTargets,
    T::Elem: ClassIndex,
{
    if dataset.weights().is_some() {
        return Err(linfa::Error::Parameters(
            "proxal's proxy heads do not take sample weights".into(),
        )
        .into());
    }
    let targets = dataset.targets().as_single_targets();
    let records = dataset.records();
    if targets.len() != records.nrows() {
        return Err(linfa::Error::MismatchedShapes(records.nrows(), targets.len()).into());
    }
    if targets.is_empty() {
        return Err(linfa::Error::NotEnoughSamples.into());
    }
    let y: Vec<u32> = targets
        .iter()
        .map(|l| {
            u32::try_from(l.index())
                .map_err(|_| linfa::Error::Parameters(format!("label {} is too large", l.index())))
        })
        .collect::<Result<_, _>>()?;
    let n_classes = classes.unwrap_or_else(|| y.iter().max().map_or(0, |&m| m as usize + 1));
    let x = F::as_f32(records);
    Ok(head.fit_head(x.view(), &y, n_classes, seed)?)
}

macro_rules! fit_from_dataset {
    ($($config:ty),*) => {$(
        impl<F, D, T> Fit<ArrayBase<D, Ix2>, T, ProxyError> for $config
        where
            F: FeatureFloat,
            D: Data<Elem = F>,
            T: AsSingleTargets,
            T::Elem: ClassIndex,
        {
            type Object = <$config as Head>::Model;
            /// Classes: largest label + 1; seed 0 (see [`HeadParams`] to set them).
            fn fit(
                &self,
                dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
            ) -> Result<Self::Object, ProxyError> {
                fit_dataset(self, None, 0, dataset)
            }
        }
    )*};
}

fit_from_dataset!(LogRegConfig, MlpConfig, LsqConfig, ProxyConfig);

impl<H: Head, F, D, T> Fit<ArrayBase<D, Ix2>, T, ProxyError> for HeadParams<H>
where
    F: FeatureFloat,
    D: Data<Elem = F>,
    T: AsSingleTargets,
    T::Elem: ClassIndex,
{
    type Object = H::Model;
    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<H::Model, ProxyError> {
        fit_dataset(&self.head, self.classes, self.seed, dataset)
    }
}

/// The argmax class of every row of `x`, in parallel chunks of [`CHUNK_ROWS`].
pub fn predict_labels<P: Proxy + ?Sized>(proxy: &P, x: ArrayView2<f32>) -> Vec<usize> {
    let n = x.nrows();
    let starts: Vec<usize> = (0..n).step_by(CHUNK_ROWS).collect();
    let parts: Vec<Vec<usize>> = starts
        .par_iter()
        .map(|&a| {
            let p = proxy.predict_proba(x.slice(s![a..(a + CHUNK_ROWS).min(n), ..]));
            argmax_rows(p.view())
                .into_iter()
                .map(|(c, _)| c as usize)
                .collect()
        })
        .collect();
    parts.concat()
}

macro_rules! predict_to_labels {
    ($($model:ty),*) => {$(
        impl<F: FeatureFloat, D: Data<Elem = F>> PredictInplace<ArrayBase<D, Ix2>, Array1<usize>>
            for $model
        {
            fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<usize>) {
                assert_eq!(x.nrows(), y.len(), "one target per record");
                y.assign(&Array1::from(predict_labels(self, F::as_f32(x).view())));
            }
            fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<usize> {
                Array1::zeros(x.nrows())
            }
        }
    )*};
}

predict_to_labels!(LogReg, Mlp, Lsq, Box<dyn Proxy>);

type ProbaFn<M> = dyn Fn(&M, ArrayView2<f32>) -> Array2<f32> + Send + Sync;

/// A fitted linfa classifier serving as a proxal [`Proxy`].
pub struct LinfaProxy<M> {
    model: M,
    dim: usize,
    n_classes: usize,
    proba: Box<ProbaFn<M>>,
}

impl<M: Send + Sync + 'static> LinfaProxy<M> {
    /// `proba(model, x)` returns the model's class probabilities (x.nrows() × `n_classes`,
    /// column k for class k; see [`scatter_classes`] for models that index columns by the
    /// classes they saw). `dim` is the feature dimension the model was fitted on.
    pub fn with_probabilities(
        model: M,
        dim: usize,
        n_classes: usize,
        proba: impl Fn(&M, ArrayView2<f32>) -> Array2<f32> + Send + Sync + 'static,
    ) -> Self {
        LinfaProxy {
            model,
            dim,
            n_classes,
            proba: Box::new(proba),
        }
    }

    /// Any model predicting class labels in `0..n_classes`: probability 1 on the predicted
    /// class (see the module notes for what that does to uncertainty strategies).
    pub fn from_labels<L: ClassIndex>(model: M, dim: usize, n_classes: usize) -> Self
    where
        M: for<'a> PredictInplace<ArrayView2<'a, f32>, Array1<L>>,
    {
        Self::with_probabilities(model, dim, n_classes, move |m: &M, x: ArrayView2<f32>| {
            let mut labels = m.default_target(&x);
            m.predict_inplace(&x, &mut labels);
            let mut p = Array2::<f32>::zeros((x.nrows(), n_classes));
            for (i, l) in labels.iter().enumerate() {
                let c = l.index();
                assert!(
                    c < n_classes,
                    "predicted label {c} is outside 0..{n_classes}"
                );
                p[[i, c]] = 1.0;
            }
            p
        })
    }

    pub fn model(&self) -> &M {
        &self.model
    }
}

impl<M: Send + Sync> Proxy for LinfaProxy<M> {
    fn kind(&self) -> &'static str {
        "linfa"
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn n_classes(&self) -> usize {
        self.n_classes
    }
    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let p = (self.proba)(&self.model, x);
        assert_eq!(
            p.dim(),
            (x.nrows(), self.n_classes),
            "the wrapped model's probabilities have the wrong shape"
        );
        p
    }
}

impl<M, F, D> PredictInplace<ArrayBase<D, Ix2>, Array1<usize>> for LinfaProxy<M>
where
    M: Send + Sync,
    F: FeatureFloat,
    D: Data<Elem = F>,
{
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<usize>) {
        assert_eq!(x.nrows(), y.len(), "one target per record");
        y.assign(&Array1::from(predict_labels(self, F::as_f32(x).view())));
    }
    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<usize> {
        Array1::zeros(x.nrows())
    }
}

/// Probabilities whose column j belongs to class `classes[j]` (as linfa classifiers order them:
/// the classes seen in training) spread into `n_classes` columns, 0 for unseen classes.
pub fn scatter_classes<L: ClassIndex>(
    p: ArrayView2<f32>,
    classes: &[L],
    n_classes: usize,
) -> Array2<f32> {
    assert_eq!(p.ncols(), classes.len(), "one column per class");
    let mut out = Array2::<f32>::zeros((p.nrows(), n_classes));
    for (j, c) in classes.iter().enumerate() {
        out.column_mut(c.index()).assign(&p.column(j));
    }
    out
}
