//! The least-squares proxy against an independent closed form, and the linfa side of the proxies:
//! heads fitted through linfa's `Fit` are the heads `ProxyConfig::fit` gives, their `Predict` is
//! the argmax, and a third-party linfa classifier (linfa-logistic) serves as a proxy.
use linfa::traits::{Fit, Predict};
use linfa::{Dataset, DatasetBase};
use linfa_linalg::qr::QR;
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use proxal::numerics::linalg::simplex_project_rows;
#[path = "common/synth.rs"]
mod synth;
use proxal::proxy::{
    scatter_classes, Head, LinfaProxy, LogReg, LogRegConfig, Lsq, LsqConfig, LsqSolver, Mlp,
    MlpConfig, Proxy, ProxyConfig, ProxyError,
};
use proxal::strategy::{Measure, Round, Strategy, Uncertainty};
use synth::Mixture;

fn argmax(r: ndarray::ArrayView1<f32>) -> usize {
    r.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0
}

fn accuracy(p: &Array2<f32>, y: &[u32]) -> f64 {
    let hits = p
        .rows()
        .into_iter()
        .zip(y)
        .filter(|(r, &t)| argmax(r.view()) == t as usize)
        .count();
    hits as f64 / y.len() as f64
}

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    (a - b).iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// Ridge on one-hot targets written out from its definition, in f64: standardise with the
/// population std, append a ones column, solve the normal equations
/// (AᵀA + α·diag(1,…,1,0)) θ = AᵀY by inverting the matrix through QR, and score raw rows by
/// standardising them the same way.
fn reference_scores(
    x: ArrayView2<f32>,
    y: &[u32],
    c: usize,
    alpha: f64,
    test: ArrayView2<f32>,
) -> Array2<f64> {
    let (n, d) = x.dim();
    let xf = x.mapv(f64::from);
    let mean = xf.mean_axis(Axis(0)).unwrap();
    let std = xf.std_axis(Axis(0), 0.0);
    let a_of = |m: ArrayView2<f32>| {
        let mut a = Array2::<f64>::ones((m.nrows(), d + 1));
        for i in 0..m.nrows() {
            for j in 0..d {
                a[[i, j]] = (m[[i, j]] as f64 - mean[j]) / std[j];
            }
        }
        a
    };
    let a = a_of(x);
    let mut yy = Array2::<f64>::zeros((n, c));
    for (i, &k) in y.iter().enumerate() {
        yy[[i, k as usize]] = 1.0;
    }
    let mut lhs = a.t().dot(&a);
    for j in 0..d {
        lhs[[j, j]] += alpha;
    }
    let theta = lhs.qr().unwrap().inverse().unwrap().dot(&a.t().dot(&yy));
    a_of(test).dot(&theta)
}

/// Projection onto the simplex by bisection on τ (Σ max(s − τ, 0) = 1), independent of the
/// sort-based projection the proxy uses.
fn reference_project(s: &Array2<f64>) -> Array2<f64> {
    let mut out = s.clone();
    for mut row in out.rows_mut() {
        let (mut lo, mut hi) = (
            row.iter().copied().fold(f64::INFINITY, f64::min) - 1.0,
            row.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            let total: f64 = row.iter().map(|v| (v - mid).max(0.0)).sum();
            if total > 1.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let tau = 0.5 * (lo + hi);
        row.mapv_inplace(|v| (v - tau).max(0.0));
    }
    out
}

#[test]
fn lsq_fits_separable_data() {
    let mix = Mixture::new(20, 4, 4.0, 1.0, 7);
    let (x, y) = mix.sample(800);
    let m = Lsq::fit(&LsqConfig::default(), x.slice(s![..600, ..]), &y[..600], 4).unwrap();
    let p = m.predict_proba(x.slice(s![600.., ..]));
    let acc = accuracy(&p, &y[600..]);
    assert!(acc > 0.97, "held-out accuracy {acc}");
    for r in p.rows() {
        assert!((r.sum() - 1.0).abs() < 1e-5, "row sums to {}", r.sum());
        assert!(r.iter().all(|&v| v >= 0.0));
    }
    // The training rows are fitted, too.
    let train = m.predict_proba(x.slice(s![..600, ..]));
    assert!(accuracy(&train, &y[..600]) > 0.97);
}

#[test]
fn lsq_matches_the_normal_equations() {
    // More rows than dimensions, and fewer (where the ridge term carries the fit).
    for (n, d, c, alpha, seed) in [
        (300, 12, 5, 1.0, 1),
        (40, 60, 6, 1.0, 2),
        (200, 30, 3, 25.0, 3),
    ] {
        let mix = Mixture::new(d, c, 2.0, 2.0, seed);
        let (x, y) = mix.sample(n + 100);
        let (xt, yt, test) = (x.slice(s![..n, ..]), &y[..n], x.slice(s![n.., ..]));
        let cfg = LsqConfig {
            alpha,
            ..Default::default()
        };
        let m = Lsq::fit(&cfg, xt, yt, c).unwrap();
        let want = reference_scores(xt, yt, c, alpha, test);
        let got = m.scores(test);
        let diff = max_abs_diff(&got, &want.mapv(|v| v as f32));
        assert!(diff < 1e-4, "n={n} d={d}: scores differ by {diff}");
        let pw = reference_project(&want).mapv(|v| v as f32);
        let diff = max_abs_diff(&m.predict_proba(test), &pw);
        assert!(diff < 1e-4, "n={n} d={d}: probabilities differ by {diff}");
        // Scores of any row sum to one (targets do, and the fit is linear in them).
        for r in got.rows() {
            assert!((r.sum() - 1.0).abs() < 1e-4);
        }
    }
}

#[test]
fn lsq_solvers_agree() {
    let mix = Mixture::new(24, 5, 2.0, 2.0, 11);
    let (x, y) = mix.sample(260);
    let (xt, yt, test) = (x.slice(s![..160, ..]), &y[..160], x.slice(s![160.., ..]));
    let chol = Lsq::fit(&LsqConfig::default(), xt, yt, 5).unwrap();
    let cfg = LsqConfig {
        solver: LsqSolver::LinfaLinear,
        ..Default::default()
    };
    let per_class = Lsq::fit(&cfg, xt, yt, 5).unwrap();
    let diff = max_abs_diff(&chol.scores(test), &per_class.scores(test));
    assert!(diff < 1e-4, "cholesky vs linfa-linear: {diff}");
    // Ordinary least squares (alpha 0) with plenty of rows works through both, too.
    for solver in [LsqSolver::Cholesky, LsqSolver::LinfaLinear] {
        let cfg = LsqConfig {
            alpha: 0.0,
            solver,
            ..Default::default()
        };
        let m = Lsq::fit(&cfg, xt, yt, 5).unwrap();
        let want = reference_scores(xt, yt, 5, 0.0, test).mapv(|v| v as f32);
        let diff = max_abs_diff(&m.scores(test), &want);
        assert!(diff < 1e-3, "OLS via {solver:?}: {diff}");
    }
    // OLS with fewer rows than dimensions is singular: a clear error, not garbage.
    let cfg = LsqConfig {
        alpha: 0.0,
        ..Default::default()
    };
    let err = Lsq::fit(&cfg, x.slice(s![..10, ..]), &y[..10], 5).unwrap_err();
    assert!(err.to_string().contains("alpha > 0"), "{err}");
    assert!(Lsq::fit(
        &LsqConfig {
            alpha: -1.0,
            ..Default::default()
        },
        xt,
        yt,
        5
    )
    .is_err());
}

#[test]
fn lsq_is_selectable_by_name() {
    for name in ["lsq", "ridge", "LSQ"] {
        assert_eq!(
            ProxyConfig::from_name(name).unwrap(),
            ProxyConfig::Lsq(LsqConfig::default())
        );
    }
    let mix = Mixture::new(8, 3, 3.0, 1.0, 5);
    let (x, y) = mix.sample(90);
    let m = ProxyConfig::from_name("lsq")
        .unwrap()
        .fit(x.view(), &y, 4, 0)
        .unwrap();
    assert_eq!((m.kind(), m.n_classes(), m.dim()), ("lsq", 4, 8));
    // Class 3 has no labels: it scores 0, so no probability beyond rounding.
    let p = m.predict_proba(x.view());
    assert!(p.column(3).iter().all(|&v| v < 1e-6));
    // The serialised form (policy configs) round-trips.
    let cfg = ProxyConfig::Lsq(LsqConfig {
        alpha: 3.0,
        standardize: false,
        solver: LsqSolver::LinfaLinear,
    });
    let text = serde_json::to_string(&cfg).unwrap();
    assert!(
        text.contains("\"kind\":\"lsq\"") && text.contains("\"linfa-linear\""),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<ProxyConfig>(&text).unwrap(), cfg);
}

#[test]
fn simplex_projection_keeps_differences_and_handles_edges() {
    let mut z = ndarray::array![
        [0.5f32, 0.3, 0.2],   // already on the simplex
        [1.4, 0.1, -0.5],     // one class left
        [0.6, 0.5, -0.1],     // two kept, difference 0.1 preserved
        [0.0, 0.0, 0.0],      // uniform
        [f32::NAN, 0.5, 0.5], // NaN spreads
    ];
    simplex_project_rows(&mut z);
    let want = [[0.5, 0.3, 0.2], [1.0, 0.0, 0.0], [0.55, 0.45, 0.0]];
    for (i, w) in want.iter().enumerate() {
        for (a, b) in z.row(i).iter().zip(w) {
            assert!((a - b).abs() < 1e-6, "row {i}: {:?}", z.row(i));
        }
    }
    assert!(z.row(3).iter().all(|&v| (v - 1.0 / 3.0).abs() < 1e-6));
    assert!(z.row(4).iter().all(|v| v.is_nan()));
}

#[test]
fn linfa_fit_is_the_proxy_fit() {
    let mix = Mixture::new(16, 4, 2.0, 1.5, 9);
    let (x, y) = mix.sample(300);
    let (xt, yt, test) = (x.slice(s![..200, ..]), &y[..200], x.slice(s![200.., ..]));
    let labels: Array1<usize> = yt.iter().map(|&c| c as usize).collect();
    let ds = Dataset::new(xt.to_owned(), labels.clone());

    let direct = LogReg::fit(&LogRegConfig::default(), xt, yt, 4, None).unwrap();
    let via: LogReg = LogRegConfig::default().fit(&ds).unwrap();
    assert_eq!(via.predict_proba(test), direct.predict_proba(test));

    let direct = Mlp::fit(&MlpConfig::default(), xt, yt, 5, 42).unwrap();
    let via = MlpConfig::default()
        .params()
        .classes(5)
        .seed(42)
        .fit(&ds)
        .unwrap();
    assert_eq!(via.predict_proba(test), direct.predict_proba(test));

    let direct = Lsq::fit(&LsqConfig::default(), xt, yt, 4).unwrap();
    let via = LsqConfig::default().fit(&ds).unwrap();
    assert_eq!(via.predict_proba(test), direct.predict_proba(test));

    // ProxyConfig itself, with u32 targets and a view of the records.
    let ds32 = DatasetBase::new(xt, Array1::from(yt.to_vec()));
    let boxed: Box<dyn Proxy> = ProxyConfig::default()
        .params()
        .classes(6)
        .fit(&ds32)
        .unwrap();
    let direct = ProxyConfig::default().fit(xt, yt, 6, 0).unwrap();
    assert_eq!(boxed.n_classes(), 6);
    assert_eq!(boxed.predict_proba(test), direct.predict_proba(test));
}

#[test]
fn linfa_predict_gives_the_argmax_class() {
    let mix = Mixture::new(10, 3, 4.0, 1.0, 4);
    let (x, y) = mix.sample(5000);
    let labels: Array1<usize> = y.iter().map(|&c| c as usize).collect();
    let ds = Dataset::new(x.clone(), labels.clone());
    let m = LogRegConfig::default().fit(&ds).unwrap();
    // 5000 rows: three parallel chunks.
    let pred: Array1<usize> = m.predict(&x);
    let p = m.predict_proba(x.view());
    for (i, r) in p.rows().into_iter().enumerate() {
        assert_eq!(pred[i], argmax(r));
    }
    let acc = pred.iter().zip(&labels).filter(|(a, b)| a == b).count() as f64 / 5000.0;
    assert!(acc > 0.95, "{acc}");
    // f64 records fit and predict the same model (rounded once to f32).
    let ds64 = Dataset::new(x.mapv(f64::from), labels);
    let m64 = LsqConfig::default().fit(&ds64).unwrap();
    let m32 = LsqConfig::default().fit(&ds).unwrap();
    let p64: Array1<usize> = m64.predict(ds64.records());
    let p32: Array1<usize> = m32.predict(&x);
    assert_eq!(p64, p32);
}

#[test]
fn linfa_fit_rejects_what_it_cannot_honour() {
    let mix = Mixture::new(4, 2, 3.0, 1.0, 1);
    let (x, y) = mix.sample(20);
    let labels: Array1<usize> = y.iter().map(|&c| c as usize).collect();
    let weighted = Dataset::new(x.clone(), labels.clone()).with_weights(Array1::ones(20));
    assert!(matches!(
        LogRegConfig::default().fit(&weighted),
        Err(ProxyError::Linfa(linfa::Error::Parameters(_)))
    ));
    let short = DatasetBase::new(x.clone(), labels.slice(s![..10]).to_owned());
    assert!(matches!(
        LsqConfig::default().fit(&short),
        Err(ProxyError::Linfa(linfa::Error::MismatchedShapes(20, 10)))
    ));
    // One class only: the head's own check, as anyhow's message.
    let one = Dataset::new(x, Array1::<usize>::zeros(20));
    let err = LsqConfig::default().fit(&one).unwrap_err();
    assert!(
        matches!(err, ProxyError::Fit(_)) && err.to_string().contains("2 classes"),
        "{err}"
    );
}

#[test]
fn a_linfa_classifier_serves_as_a_proxy() {
    let mix = Mixture::new(8, 3, 3.0, 1.5, 6);
    let (x, y) = mix.sample(400);
    // Labelled rows hold classes 0 and 2 only, of 4: the model's columns are its own classes.
    let labelled: Vec<usize> = (0..300).filter(|&i| y[i] != 1).collect();
    let xl = x.select(Axis(0), &labelled);
    let yl: Array1<usize> = labelled.iter().map(|&i| y[i] as usize).collect();
    let model = linfa_logistic::MultiLogisticRegression::default()
        .max_iterations(200)
        .fit(&Dataset::new(xl.clone(), yl))
        .unwrap();
    let proxy = LinfaProxy::with_probabilities(model, 8, 4, |m, x| {
        let m: &linfa_logistic::MultiFittedLogisticRegression<f32, usize> = m;
        scatter_classes(m.predict_probabilities(&x).view(), m.classes(), 4)
    });
    let p = proxy.predict_proba(x.view());
    assert_eq!(p.dim(), (400, 4));
    assert!(p.column(1).iter().all(|&v| v == 0.0) && p.column(3).iter().all(|&v| v == 0.0));
    for r in p.rows() {
        assert!((r.sum() - 1.0).abs() < 1e-4);
    }
    // A strategy runs on it like on any proxy.
    let pool: Vec<usize> = (0..400).collect();
    let round = Round::new(&x, &pool, &labelled, Some(&proxy), 0).unwrap();
    let picks = Uncertainty(Measure::Margin).select(&round, 10).unwrap();
    assert_eq!(picks.len(), 10);
    assert!(picks.iter().all(|pk| !labelled.contains(&pk.row)));
    assert!(picks.windows(2).all(|w| w[0].score <= w[1].score));

    // Labels only: one-hot probabilities on the predicted class, and the proxy predicts it back.
    let model = linfa_logistic::MultiLogisticRegression::default()
        .max_iterations(200)
        .fit(&Dataset::new(
            xl,
            labelled
                .iter()
                .map(|&i| y[i] as usize)
                .collect::<Array1<usize>>(),
        ))
        .unwrap();
    let want: Array1<usize> = model.predict(&x);
    let hard = LinfaProxy::from_labels::<usize>(model, 8, 4);
    let p = hard.predict_proba(x.view());
    for (i, r) in p.rows().into_iter().enumerate() {
        assert_eq!(r[want[i]], 1.0);
        assert_eq!(r.sum(), 1.0);
    }
    let back: Array1<usize> = hard.predict(&x);
    assert_eq!(back, want);
}

#[test]
fn head_trait_fits_like_proxy_config() {
    let mix = Mixture::new(6, 3, 3.0, 1.0, 8);
    let (x, y) = mix.sample(120);
    let a = LsqConfig::default().fit_head(x.view(), &y, 3, 0).unwrap();
    let b = ProxyConfig::Lsq(LsqConfig::default())
        .fit(x.view(), &y, 3, 0)
        .unwrap();
    assert_eq!(a.predict_proba(x.view()), b.predict_proba(x.view()));
}
