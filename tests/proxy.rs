//! Proxy heads: convergence, gradient, determinism, calibration sanity, streamed scoring.
use ndarray::{s, Array2};
use proxal::features::{row_cow, Block, RowBlocks};
use proxal::proxy::logreg::Objective;
use std::borrow::Cow;
#[path = "common/synth.rs"]
mod synth;
use proxal::proxy::{
    map_proba, predict_rows, ClassWeight, LogReg, LogRegConfig, Mlp, MlpConfig, Proxy, ProxyConfig,
};
use synth::Mixture;

fn accuracy(p: &Array2<f32>, y: &[u32]) -> f64 {
    let hits = p
        .rows()
        .into_iter()
        .zip(y)
        .filter(|(r, &t)| {
            let am = r
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0;
            am == t as usize
        })
        .count();
    hits as f64 / y.len() as f64
}

#[test]
fn logreg_fits_separable_data() {
    let mix = Mixture::new(20, 4, 4.0, 1.0, 7);
    let (x, y) = mix.sample(800);
    let (xt, yt) = (x.slice(s![..600, ..]), &y[..600]);
    let m = LogReg::fit(&LogRegConfig::default(), xt, yt, 4, None).unwrap();
    assert!(
        m.converged,
        "did not converge: {} iterations, |g| {}",
        m.iterations, m.grad_max
    );
    let p = m.predict_proba(x.slice(s![600.., ..]));
    let acc = accuracy(&p, &y[600..]);
    assert!(acc > 0.97, "held-out accuracy {acc}");
    for r in p.rows() {
        assert!((r.sum() - 1.0).abs() < 1e-4);
    }
}

#[test]
fn logreg_gradient_matches_finite_differences() {
    let mix = Mixture::new(5, 3, 2.0, 1.0, 3);
    let (x, y) = mix.sample(40);
    for cw in [ClassWeight::None, ClassWeight::Balanced] {
        let cfg = LogRegConfig {
            c: 0.5,
            class_weight: cw,
            ..Default::default()
        };
        let (obj, _, _) = Objective::new(&cfg, x.view(), &y, 3);
        let p = obj.n_params();
        let theta: Vec<f64> = (0..p)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.05)
            .collect();
        let mut g = vec![0.0; p];
        obj.eval(&theta, &mut g);
        let mut scratch = vec![0.0; p];
        for i in 0..p {
            let h = 1e-3;
            let mut tp = theta.clone();
            tp[i] += h;
            let fp = obj.eval(&tp, &mut scratch);
            tp[i] -= 2.0 * h;
            let fm = obj.eval(&tp, &mut scratch);
            let fd = (fp - fm) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 2e-3 * (1.0 + g[i].abs()),
                "param {i}: analytic {} vs numeric {fd}",
                g[i]
            );
        }
    }
}

#[test]
fn logreg_loss_decreases_and_is_deterministic() {
    let mix = Mixture::new(16, 5, 1.5, 3.0, 11);
    let (x, y) = mix.sample(500);
    let cfg = LogRegConfig::default();
    let (obj, _, _) = Objective::new(&cfg, x.view(), &y, 5);
    let mut g = vec![0.0; obj.n_params()];
    let f0 = obj.eval(&vec![0.0; obj.n_params()], &mut g);
    let a = LogReg::fit(&cfg, x.view(), &y, 5, None).unwrap();
    let b = LogReg::fit(&cfg, x.view(), &y, 5, None).unwrap();
    assert!(a.loss < f0 * 0.9, "loss {} not below start {f0}", a.loss);
    assert_eq!(a.w, b.w);
    assert_eq!(a.b, b.b);
    // Warm start from the solution converges at once to the same model (uncalibrated fits:
    // calibration refits on a held-out split, which moves away from the full-data optimum).
    let plain = LogRegConfig {
        calibrate: false,
        ..Default::default()
    };
    let a = LogReg::fit(&plain, x.view(), &y, 5, None).unwrap();
    let c = LogReg::fit(&plain, x.view(), &y, 5, Some(&a)).unwrap();
    assert!(
        c.iterations <= 2,
        "warm start took {} iterations",
        c.iterations
    );
    let pa = a.predict_proba(x.view());
    let pc = c.predict_proba(x.view());
    let diff = (&pa - &pc).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(diff < 1e-3, "warm-started probabilities differ by {diff}");
}

#[test]
fn logreg_is_roughly_calibrated_on_overlapping_classes() {
    let mix = Mixture::new(32, 6, 1.0, 2.5, 5);
    let (x, y) = mix.sample(6000);
    let m = LogReg::fit(
        &LogRegConfig::default(),
        x.slice(s![..3000, ..]),
        &y[..3000],
        6,
        None,
    )
    .unwrap();
    let p = m.predict_proba(x.slice(s![3000.., ..]));
    let acc = accuracy(&p, &y[3000..]);
    let conf: f64 = p
        .rows()
        .into_iter()
        .map(|r| r.iter().copied().fold(0.0f32, f32::max) as f64)
        .sum::<f64>()
        / p.nrows() as f64;
    assert!(
        acc > 0.5 && acc < 0.99,
        "test problem should be hard but learnable: acc {acc}"
    );
    assert!(
        (conf - acc).abs() < 0.06,
        "mean confidence {conf} vs accuracy {acc}"
    );
}

#[test]
fn class_weights_shift_towards_the_minority() {
    let mix = Mixture::new(8, 2, 1.0, 3.0, 9);
    let (x, y) = mix.sample(2000);
    // Keep all of class 0 and a tenth of class 1.
    let keep: Vec<usize> = (0..2000).filter(|&i| y[i] == 0 || i % 10 == 0).collect();
    let xk = x.select(ndarray::Axis(0), &keep);
    let yk: Vec<u32> = keep.iter().map(|&i| y[i]).collect();
    let plain = LogReg::fit(&LogRegConfig::default(), xk.view(), &yk, 2, None).unwrap();
    let cfg = LogRegConfig {
        class_weight: ClassWeight::Balanced,
        ..Default::default()
    };
    let bal = LogReg::fit(&cfg, xk.view(), &yk, 2, None).unwrap();
    let mean1 = |m: &LogReg| m.predict_proba(x.view()).column(1).mean().unwrap();
    assert!(mean1(&bal) > mean1(&plain) + 0.02);
}

#[test]
fn mlp_fits_and_is_deterministic() {
    let mix = Mixture::new(16, 3, 4.0, 1.0, 21);
    let (x, y) = mix.sample(600);
    let cfg = MlpConfig {
        hidden: 32,
        epochs: 15,
        ..Default::default()
    };
    let a = Mlp::fit(&cfg, x.slice(s![..400, ..]), &y[..400], 3, 1).unwrap();
    let b = Mlp::fit(&cfg, x.slice(s![..400, ..]), &y[..400], 3, 1).unwrap();
    let pa = a.predict_proba(x.slice(s![400.., ..]));
    assert_eq!(pa, b.predict_proba(x.slice(s![400.., ..])));
    let acc = accuracy(&pa, &y[400..]);
    assert!(acc > 0.95, "mlp held-out accuracy {acc}");
    assert_eq!(a.penultimate(x.slice(s![..3, ..])).unwrap().dim(), (3, 32));
}

#[test]
fn fit_rejects_bad_input() {
    let x = Array2::<f32>::zeros((3, 2));
    let cfg = ProxyConfig::default();
    assert!(cfg.fit(x.view(), &[0, 1], 2, 0).is_err());
    assert!(cfg
        .fit(x.view(), &[0, 1, 5], 2, 0)
        .err()
        .unwrap()
        .to_string()
        .contains("out of range"));
    assert!(cfg.fit(x.view(), &[0, 1, 1], 1, 0).is_err());
}

/// Rows served as several blocks of uneven size, like the store's chunk files.
struct Blocks(Vec<Array2<f32>>);

impl RowBlocks for Blocks {
    fn n_rows(&self) -> usize {
        self.0.iter().map(|b| b.nrows()).sum()
    }
    fn dim(&self) -> usize {
        self.0[0].ncols()
    }
    fn blocks(&self) -> Vec<(usize, Block<'_>)> {
        let mut at = 0;
        self.0
            .iter()
            .map(|b| {
                let v = (at, Block::F32(b.view()));
                at += b.nrows();
                v
            })
            .collect()
    }
    fn row(&self, mut i: usize) -> Cow<'_, [f32]> {
        for b in &self.0 {
            if i < b.nrows() {
                return row_cow(b.row(i));
            }
            i -= b.nrows();
        }
        panic!("row out of range")
    }
}

#[test]
fn streamed_scoring_matches_direct_prediction() {
    let mix = Mixture::new(12, 4, 2.0, 2.0, 2);
    let (x, y) = mix.sample(5000);
    let m = ProxyConfig::default()
        .fit(x.slice(s![..500, ..]), &y[..500], 4, 0)
        .unwrap();
    let blocks = Blocks(vec![
        x.slice(s![..1234, ..]).to_owned(),
        x.slice(s![1234..1240, ..]).to_owned(),
        x.slice(s![1240.., ..]).to_owned(),
    ]);
    // Contiguous runs and scattered rows across block boundaries.
    let rows: Vec<usize> = (0..5000).filter(|i| i % 7 != 3 || *i > 4000).collect();
    let streamed = predict_rows(m.as_ref(), &blocks, &rows);
    let direct = m.predict_proba(x.select(ndarray::Axis(0), &rows).view());
    let diff = (&streamed - &direct)
        .iter()
        .fold(0.0f32, |a, v| a.max(v.abs()));
    assert!(diff < 1e-6, "streamed vs direct {diff}");
    // Each chunk sees its own rows.
    let seen: Vec<usize> = map_proba(m.as_ref(), &blocks, &rows, |rs, _, p| {
        assert_eq!(rs.len(), p.nrows());
        rs.to_vec()
    })
    .concat();
    assert_eq!(seen, rows);
}

#[test]
fn cross_validation_estimates_accuracy_from_the_labels_alone() {
    // Separable classes: close to perfect. Labels shuffled away from the features: near chance
    // (1/4), and within a few standard errors of it.
    let mix = Mixture::new(16, 4, 6.0, 1.0, 3);
    let (x, y) = mix.sample(400);
    let cfg = proxal::proxy::ProxyConfig::default();
    let (acc, se) = proxal::proxy::cross_validated_accuracy(&cfg, x.view(), &y, 4, 5, 0).unwrap();
    assert!(acc > 0.95, "{acc}");
    assert!((0.0..0.02).contains(&se), "{se}");
    let mut shuffled = y.clone();
    {
        use rand::{seq::SliceRandom, SeedableRng};
        shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(9));
    }
    let (chance, se) =
        proxal::proxy::cross_validated_accuracy(&cfg, x.view(), &shuffled, 4, 5, 0).unwrap();
    assert!((chance - 0.25).abs() < 4.0 * se + 0.03, "{chance} ± {se}");
    // The same seed gives the same folds and the same estimate.
    let again = proxal::proxy::cross_validated_accuracy(&cfg, x.view(), &y, 4, 5, 0).unwrap();
    assert_eq!(again, (acc, (acc * (1.0 - acc) / 400.0).sqrt()));
    assert!(proxal::proxy::cross_validated_accuracy(&cfg, x.view(), &y[..3], 4, 5, 0).is_err());
}

#[test]
fn logreg_row_weights_count_a_row_as_often_as_its_weight() {
    // The reference: a row of weight 2 is that row twice. Same objective (value and gradient) at
    // any parameters, and the same fit, against the unweighted fit on the duplicated rows
    // (standardisation off: it is taken over the rows as given, so duplicates would shift it).
    let mix = Mixture::new(6, 3, 2.0, 1.0, 5);
    let (x, y) = mix.sample(60);
    let cfg = LogRegConfig {
        c: 0.7,
        standardize: false,
        calibrate: false,
        ..Default::default()
    };
    let w: Vec<f32> = (0..60)
        .map(|i| if i % 3 == 0 { 2.0 } else { 1.0 })
        .collect();
    let dup: Vec<usize> = (0..60)
        .flat_map(|i| std::iter::repeat_n(i, w[i] as usize))
        .collect();
    let xd = x.select(ndarray::Axis(0), &dup);
    let yd: Vec<u32> = dup.iter().map(|&i| y[i]).collect();
    let (ow, _, _) = Objective::weighted(&cfg, x.view(), &y, Some(&w), 3);
    let (od, _, _) = Objective::new(&cfg, xd.view(), &yd, 3);
    let p = ow.n_params();
    let theta: Vec<f64> = (0..p).map(|i| ((i * 13 % 7) as f64 - 3.0) * 0.1).collect();
    let (mut gw, mut gd) = (vec![0.0; p], vec![0.0; p]);
    let (fw, fd) = (ow.eval(&theta, &mut gw), od.eval(&theta, &mut gd));
    assert!((fw - fd).abs() < 1e-6 * fd.abs(), "objective {fw} vs {fd}");
    for i in 0..p {
        assert!(
            (gw[i] - gd[i]).abs() < 1e-5,
            "gradient {i}: {} vs {}",
            gw[i],
            gd[i]
        );
    }
    let a = LogReg::fit_weighted(&cfg, x.view(), &y, &w, 3).unwrap();
    let b = LogReg::fit(&cfg, xd.view(), &yd, 3, None).unwrap();
    let (pa, pb) = (a.predict_proba(x.view()), b.predict_proba(x.view()));
    let diff = (&pa - &pb).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
    assert!(diff < 1e-3, "probabilities differ by {diff}");
    // …and weights matter: down-weighting a third of the rows gives another model.
    let light: Vec<f32> = w.iter().map(|&v| if v > 1.0 { 0.1 } else { 1.0 }).collect();
    let c = LogReg::fit_weighted(&cfg, x.view(), &y, &light, 3).unwrap();
    let moved = (&c.predict_proba(x.view()) - &pa)
        .mapv(f32::abs)
        .fold(0.0f32, |m, &v| m.max(v));
    assert!(moved > 1e-2, "row weights had no effect ({moved})");
    assert!(LogReg::fit_weighted(&cfg, x.view(), &y, &w[..59], 3).is_err());
}
