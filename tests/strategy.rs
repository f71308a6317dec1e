//! Query strategies on small hand-checkable cases.
use ndarray::{array, Array2, ArrayView2};
#[path = "common/synth.rs"]
mod synth;
use proxal::proxy::{Proxy, ProxyConfig};
use proxal::strategy::badge::GradEmbedding;
use proxal::strategy::{
    from_name, top_k, Badge, ClusterConfig, ClusterMargin, Clusters, CoreSet, Pick, Round,
    Strategy, Typicality, Ups, STRATEGY_NAMES,
};
use std::collections::HashSet;
use std::sync::Arc;
use synth::Mixture;

/// A proxy that returns a fixed probability row per feature row: the row's id is stored in
/// feature column 0.
struct Fixed(Array2<f32>, usize);

impl Proxy for Fixed {
    fn kind(&self) -> &'static str {
        "fixed"
    }
    fn dim(&self) -> usize {
        self.1
    }
    fn n_classes(&self) -> usize {
        self.0.ncols()
    }
    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let ids: Vec<usize> = x.column(0).iter().map(|&v| v as usize).collect();
        self.0.select(ndarray::Axis(0), &ids)
    }
}

fn id_features(n: usize, d: usize) -> Array2<f32> {
    Array2::from_shape_fn((n, d), |(i, j)| {
        if j == 0 {
            i as f32
        } else {
            ((i * 7 + j * 3) % 5) as f32
        }
    })
}

fn rows(p: &[Pick]) -> Vec<usize> {
    p.iter().map(|p| p.row).collect()
}

fn probs() -> Array2<f32> {
    array![
        [0.90, 0.05, 0.05], // 0 confident
        [0.40, 0.38, 0.22], // 1 margin 0.02
        [0.34, 0.33, 0.33], // 2 margin 0.01, max entropy, lc 0.66
        [0.60, 0.39, 0.01], // 3 margin 0.21
        [0.50, 0.10, 0.40], // 4 margin 0.10
        [0.98, 0.01, 0.01], // 5 confident
    ]
}

#[test]
fn uncertainty_strategies_pick_the_hand_computed_rows() {
    let x = id_features(6, 3);
    let proxy = Fixed(probs(), 3);
    let round = Round::new(&x, &[0, 1, 2, 3, 4, 5], &[], Some(&proxy), 0).unwrap();
    let margin = from_name("margin").unwrap().select(&round, 2).unwrap();
    assert_eq!(rows(&margin), vec![2, 1]);
    assert!((margin[0].score - 0.01).abs() < 1e-6);
    let lc = from_name("least-confidence")
        .unwrap()
        .select(&round, 3)
        .unwrap();
    assert_eq!(rows(&lc), vec![2, 1, 4]);
    let ent = from_name("entropy").unwrap().select(&round, 1).unwrap();
    assert_eq!(rows(&ent), vec![2]);
    assert!((ent[0].score - 1.0985).abs() < 1e-3);
}

#[test]
fn balanced_fills_the_smallest_labelled_classes_first_in_the_inner_order() {
    // Predicted class and margin of each row: margin sampling alone takes rows 0, 1, 2.
    let p = array![
        [0.50, 0.49, 0.01], // 0: class 0, margin 0.01
        [0.48, 0.50, 0.02], // 1: class 1, 0.02
        [0.52, 0.45, 0.03], // 2: class 0, 0.07
        [0.10, 0.35, 0.55], // 3: class 2, 0.20
        [0.60, 0.30, 0.10], // 4: class 0, 0.30
        [0.20, 0.70, 0.10], // 5: class 1, 0.50
        [0.05, 0.15, 0.80], // 6: class 2, 0.65
        [0.90, 0.05, 0.05], // 7: class 0, 0.85
    ];
    let x = id_features(8, 2);
    let proxy = Fixed(p, 2);
    let pool: Vec<usize> = (0..8).collect();
    let round = Round::new(&x, &pool, &[], Some(&proxy), 0).unwrap();
    let margin = from_name("margin").unwrap().select(&round, 3).unwrap();
    assert_eq!(rows(&margin), [0, 1, 2]);
    // Labelled so far: 10 of class 0, 2 of class 1, none of class 2. The 3 slots go to class 2
    // (0 → 1 → 2 labelled, its two candidates), then class 1: rows 3 and 6, then row 1, picked
    // in margin's order with margin's scores.
    let ys: Vec<u32> = [vec![0; 10], vec![1; 2]].concat();
    let labelled = Round::new(&x, &pool, &[], Some(&proxy), 0)
        .unwrap()
        .with_labels(&ys, 3);
    let mut balanced = from_name("balanced:margin").unwrap();
    let picks = balanced.select(&labelled, 3).unwrap();
    assert_eq!(rows(&picks), [1, 3, 6]);
    assert!((picks[1].score - 0.20).abs() < 1e-6, "{picks:?}");
    // Without known labels every class counts as empty: one slot each.
    assert_eq!(rows(&balanced.select(&round, 3).unwrap()), [0, 1, 3]);
}

#[test]
fn labelled_rows_are_never_selected() {
    let mix = Mixture::new(8, 3, 2.0, 2.0, 1);
    let (x, y) = mix.sample(300);
    let labelled: Vec<usize> = (0..300).step_by(3).collect();
    let ly: Vec<u32> = labelled.iter().map(|&i| y[i]).collect();
    let proxy = ProxyConfig::default()
        .fit_rows(&x, &labelled, &ly, 3, 0)
        .unwrap();
    let pool: Vec<usize> = (0..300).collect();
    let round = Round::new(&x, &pool, &labelled, Some(proxy.as_ref()), 4).unwrap();
    assert_eq!(round.unlabelled.len(), 200);
    let lab: HashSet<usize> = labelled.iter().copied().collect();
    for name in STRATEGY_NAMES
        .iter()
        .map(|s| s.to_string())
        .chain(["ups:margin".to_string(), "balanced:margin".to_string()])
    {
        let picks = from_name(&name).unwrap().select(&round, 150).unwrap();
        assert_eq!(picks.len(), 150, "{name}");
        let set: HashSet<usize> = rows(&picks).into_iter().collect();
        assert_eq!(set.len(), 150, "{name} picked a row twice");
        assert!(set.is_disjoint(&lab), "{name} picked a labelled row");
        // Asking for more than the pool returns the whole pool.
        let all = from_name(&name).unwrap().select(&round, 1000).unwrap();
        assert_eq!(all.len(), 200, "{name}");
    }
}

#[test]
fn strategies_are_deterministic_under_a_seed() {
    let mix = Mixture::new(8, 4, 1.5, 2.0, 2);
    let (x, y) = mix.sample(400);
    let labelled: Vec<usize> = (0..40).collect();
    let proxy = ProxyConfig::default()
        .fit_rows(&x, &labelled, &y[..40], 4, 0)
        .unwrap();
    let pool: Vec<usize> = (0..400).collect();
    let r1 = Round::new(&x, &pool, &labelled, Some(proxy.as_ref()), 9).unwrap();
    let r2 = Round::new(&x, &pool, &labelled, Some(proxy.as_ref()), 10).unwrap();
    for name in STRATEGY_NAMES {
        let a = from_name(name).unwrap().select(&r1, 20).unwrap();
        let b = from_name(name).unwrap().select(&r1, 20).unwrap();
        assert_eq!(a, b, "{name}");
    }
    let a = from_name("random").unwrap().select(&r1, 20).unwrap();
    let b = from_name("random").unwrap().select(&r2, 20).unwrap();
    assert_ne!(a, b);
}

#[test]
fn coreset_covers_isolated_clusters_first() {
    // Four tight clusters far apart; only cluster 0 is labelled.
    let centres = [[0.0f32, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]];
    let mut x = Array2::<f32>::zeros((40, 2));
    for i in 0..40 {
        let c = centres[i / 10];
        x[[i, 0]] = c[0] + (i % 10) as f32 * 0.1;
        x[[i, 1]] = c[1] + (i % 3) as f32 * 0.1;
    }
    let pool: Vec<usize> = (0..40).collect();
    let round = Round::new(&x, &pool, &[0, 1, 2], None, 0).unwrap();
    let picks = CoreSet::default().select(&round, 3).unwrap();
    let clusters: HashSet<usize> = picks.iter().map(|p| p.row / 10).collect();
    assert_eq!(clusters, HashSet::from([1, 2, 3]));
    // The far corner comes first, at distance ≈ 141.
    assert_eq!(picks[0].row / 10, 3);
    assert!((picks[0].score - 141.4).abs() < 1.0);
    // Brute force agrees on a random problem.
    let mix = Mixture::new(6, 5, 2.0, 1.0, 4);
    let (x, _) = mix.sample(300);
    let pool: Vec<usize> = (0..300).collect();
    let lab = [5usize, 77, 120];
    let round = Round::new(&x, &pool, &lab, None, 0).unwrap();
    let fast: Vec<usize> = rows(&CoreSet::default().select(&round, 25).unwrap());
    let mut centres: Vec<usize> = lab.to_vec();
    let mut brute = Vec::new();
    for _ in 0..25 {
        let mut best = (0, -1.0f32);
        for &i in &round.unlabelled {
            if brute.contains(&i) {
                continue;
            }
            let d = centres
                .iter()
                .map(|&c| (&x.row(i) - &x.row(c)).mapv(|v| v * v).sum())
                .fold(f32::INFINITY, f32::min);
            if d > best.1 {
                best = (i, d);
            }
        }
        brute.push(best.0);
        centres.push(best.0);
    }
    assert_eq!(fast, brute);
}

#[test]
fn badge_implicit_distance_equals_explicit() {
    let mix = Mixture::new(5, 3, 1.0, 2.0, 8);
    let (x, y) = mix.sample(60);
    let lab: Vec<usize> = (0..30).collect();
    let proxy = ProxyConfig::default()
        .fit_rows(&x, &lab, &y[..30], 3, 0)
        .unwrap();
    let pool: Vec<usize> = (0..60).collect();
    let round = Round::new(&x, &pool, &lab, Some(proxy.as_ref()), 0).unwrap();
    let ge = GradEmbedding::new(&round, proxy.as_ref());
    for i in 0..ge.len() {
        for j in 0..ge.len() {
            let gi = ge.explicit(i);
            let gj = ge.explicit(j);
            let explicit: f32 = gi.iter().zip(&gj).map(|(a, b)| (a - b) * (a - b)).sum();
            let implicit = ge.dist2(i, j);
            assert!(
                (explicit - implicit).abs() < 1e-4 * (1.0 + explicit),
                "{i},{j}: {explicit} vs {implicit}"
            );
        }
        let n2: f32 = ge.explicit(i).iter().map(|v| v * v).sum();
        assert!((n2 - ge.g2[i]).abs() < 1e-5 * (1.0 + n2));
    }
}

#[test]
fn badge_first_pick_is_largest_gradient_and_draws_follow_d2() {
    let mix = Mixture::new(4, 3, 1.0, 2.0, 12);
    let (x, y) = mix.sample(40);
    let lab: Vec<usize> = (0..20).collect();
    let proxy = ProxyConfig::default()
        .fit_rows(&x, &lab, &y[..20], 3, 0)
        .unwrap();
    let pool: Vec<usize> = (0..40).collect();
    let round = Round::new(&x, &pool, &lab, Some(proxy.as_ref()), 0).unwrap();
    let ge = GradEmbedding::new(&round, proxy.as_ref());
    let first = (0..ge.len())
        .max_by(|&a, &b| ge.g2[a].total_cmp(&ge.g2[b]).then(b.cmp(&a)))
        .unwrap();
    let d2: Vec<f64> = (0..ge.len())
        .map(|i| {
            if i == first {
                0.0
            } else {
                ge.dist2(i, first) as f64
            }
        })
        .collect();
    let total: f64 = d2.iter().sum();
    // Fast (rejection-sampling) path: second draws over many seeds follow D² / ΣD².
    let trials = 20_000;
    let mut counts = vec![0usize; ge.len()];
    let badge = Badge {
        refresh_every: 4,
        uniforms: None,
        origin_centre: false,
    };
    for s in 0..trials {
        let c = badge.seed_centres(&ge, 2, s);
        assert_eq!(c[0].0, first);
        counts[c[1].0] += 1;
    }
    for i in 0..ge.len() {
        let expect = d2[i] / total;
        let got = counts[i] as f64 / trials as f64;
        let sd = (expect * (1.0 - expect) / trials as f64).sqrt();
        assert!(
            (got - expect).abs() < 5.0 * sd + 1e-3,
            "row {i}: {got} vs {expect}"
        );
    }
    // Reference path with given uniforms: inverse CDF on exact D².
    let u = 0.37;
    let r = Badge {
        refresh_every: 64,
        uniforms: Some(vec![u]),
        origin_centre: false,
    }
    .seed_centres(&ge, 2, 0);
    let mut acc = 0.0;
    let expect = d2.iter().position(|&w| {
        acc += w;
        acc > u * total
    });
    assert_eq!(Some(r[1].0), expect);
}

#[test]
fn badge_fast_and_reference_paths_agree_in_quality() {
    let mix = Mixture::new(16, 6, 1.0, 2.0, 13);
    let (x, y) = mix.sample(1500);
    let lab: Vec<usize> = (0..150).collect();
    let proxy = ProxyConfig::default()
        .fit_rows(&x, &lab, &y[..150], 6, 0)
        .unwrap();
    let pool: Vec<usize> = (0..1500).collect();
    let round = Round::new(&x, &pool, &lab, Some(proxy.as_ref()), 0).unwrap();
    let ge = GradEmbedding::new(&round, proxy.as_ref());
    // Quality: k-means cost (sum of min D² to the picked centres), averaged over seeds.
    let cost = |c: &[(usize, f32)]| -> f64 {
        (0..ge.len())
            .map(|i| {
                c.iter()
                    .map(|&(j, _)| ge.dist2(i, j) as f64)
                    .fold(f64::INFINITY, f64::min)
            })
            .sum()
    };
    let mut fast = 0.0;
    let mut refr = 0.0;
    for s in 0..20u64 {
        fast += cost(
            &Badge {
                refresh_every: 8,
                uniforms: None,
                origin_centre: false,
            }
            .seed_centres(&ge, 30, s),
        );
        let mut rng = proxal::util::rng(1000 + s);
        let us: Vec<f64> = (0..30)
            .map(|_| rand::Rng::random::<f64>(&mut rng))
            .collect();
        refr += cost(
            &Badge {
                refresh_every: 8,
                uniforms: Some(us),
                origin_centre: false,
            }
            .seed_centres(&ge, 30, s),
        );
    }
    let ratio = fast / refr;
    assert!(
        (ratio - 1.0).abs() < 0.1,
        "fast/reference k-means cost ratio {ratio}"
    );
}

#[test]
fn cluster_margin_takes_at_most_one_row_per_cluster_per_pass() {
    // 12 candidates in clusters of sizes 1, 2, 4, 5 (cluster = id / bucket).
    let keyed: Vec<(usize, u64)> = (0..12)
        .map(|i| {
            (
                i,
                if i < 1 {
                    0
                } else if i < 3 {
                    1
                } else if i < 7 {
                    2
                } else {
                    3
                },
            )
        })
        .collect();
    let order = ClusterMargin::round_robin(&keyed, 10, 3);
    assert_eq!(order.len(), 10);
    let cl = |i: usize| keyed[i].1;
    // Pass 1: one per cluster, smallest cluster first.
    assert_eq!(
        order[..4].iter().map(|&i| cl(i)).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    // Pass 2: clusters 1, 2, 3 (cluster 0 is exhausted); pass 3: clusters 2 and 3.
    assert_eq!(
        order[4..7].iter().map(|&i| cl(i)).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        order[7..9].iter().map(|&i| cl(i)).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let uniq: HashSet<usize> = order.iter().copied().collect();
    assert_eq!(uniq.len(), 10);
}

#[test]
fn cluster_margin_end_to_end_spreads_over_clusters() {
    let mix = Mixture::new(8, 5, 3.0, 1.0, 30);
    let (x, y) = mix.sample(500);
    let lab: Vec<usize> = (0..50).collect();
    let proxy = ProxyConfig::default()
        .fit_rows(&x, &lab, &y[..50], 5, 0)
        .unwrap();
    let pool: Vec<usize> = (0..500).collect();
    let clusters = Arc::new(Clusters::compute(&x, &pool, &ClusterConfig::default(), 0).unwrap());
    assert_eq!(clusters.n_clusters, 50);
    assert_eq!(clusters.hac_rows, 500);
    let round = Round::new(&x, &pool, &lab, Some(proxy.as_ref()), 1).unwrap();
    let mut cm = ClusterMargin::with_clusters(clusters.clone());
    let picks = cm.select(&round, 20).unwrap();
    assert_eq!(picks.len(), 20);
    // Count how many distinct clusters the preselected rows span; the first pass covers them.
    let distinct: HashSet<u32> = picks.iter().map(|p| clusters.of(p.row).unwrap()).collect();
    let first_pass = distinct.len().min(20);
    let firsts: HashSet<u32> = picks[..first_pass]
        .iter()
        .map(|p| clusters.of(p.row).unwrap())
        .collect();
    assert_eq!(firsts.len(), first_pass);
    // Subsampled clustering assigns every row and keeps cluster sizes sensible.
    let cfg = ClusterConfig {
        target_size: 10,
        max_hac_rows: 200,
    };
    let sub = Clusters::compute(&x, &pool, &cfg, 0).unwrap();
    assert_eq!(sub.cluster.len(), 500);
    assert_eq!(sub.n_clusters, 20);
    // Save / load round trip.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    sub.save(&path).unwrap();
    assert_eq!(Clusters::load(&path).unwrap(), sub);
}

#[test]
fn hac_average_matches_a_hand_checked_case() {
    // Two tight pairs and a far point: cutting at 3 clusters gives {0,1}, {2,3}, {4}.
    let x = array![
        [0.0f32, 0.0],
        [0.1, 0.0],
        [5.0, 5.0],
        [5.1, 5.0],
        [20.0, 0.0]
    ];
    let l = proxal::strategy::cluster_margin::hac_average(&x, 3);
    assert_eq!(l, vec![0, 0, 1, 1, 2]);
}

#[test]
fn ups_scores_only_a_subsample_after_the_first_round() {
    let mix = Mixture::new(8, 4, 1.5, 2.0, 6);
    let (x, y) = mix.sample(4000);
    let lab: Vec<usize> = (0..100).collect();
    let proxy = ProxyConfig::default()
        .fit_rows(&x, &lab, &y[..100], 4, 0)
        .unwrap();
    let pool: Vec<usize> = (0..4000).collect();
    let round = Round::new(&x, &pool, &lab, Some(proxy.as_ref()), 2).unwrap();
    let mut ups = Ups::new(from_name("margin").unwrap());
    let full = ups.select(&round, 10).unwrap();
    assert_eq!(ups.last_kept, 3900);
    let sub = ups.select(&round, 10).unwrap();
    let frac = ups.last_kept as f64 / 3900.0;
    assert!(frac > 0.09 && frac < 0.13, "kept fraction {frac}");
    // The most uncertain rows survive subsampling, so margin's picks agree.
    assert_eq!(rows(&full), rows(&sub));
}

#[test]
fn typicality_cold_start_needs_no_proxy_and_spreads() {
    let mix = Mixture::new(8, 5, 6.0, 1.0, 40);
    let (x, y) = mix.sample(1000);
    let pool: Vec<usize> = (0..1000).collect();
    let round = Round::new(&x, &pool, &[], None, 3).unwrap();
    let picks = Typicality::default().select(&round, 5).unwrap();
    let classes: HashSet<u32> = picks.iter().map(|p| y[p.row]).collect();
    assert_eq!(classes.len(), 5, "one typical row per well-separated class");
    // Strategies that need a proxy say so.
    let err = from_name("margin")
        .unwrap()
        .select(&round, 5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a proxy"), "{err}");
}

#[test]
fn round_checks_ranges_and_dimensions() {
    let x = id_features(10, 3);
    assert!(Round::new(&x, &[0, 10], &[], None, 0)
        .err()
        .unwrap()
        .to_string()
        .contains("out of range"));
    let proxy = Fixed(probs(), 4);
    let e = Round::new(&x, &[0, 1], &[], Some(&proxy), 0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("dimension mismatch"), "{e}");
    assert!(from_name("nope").is_err());
}

#[test]
fn top_k_breaks_ties_by_index() {
    assert_eq!(top_k(&[1.0, 3.0, 3.0, 2.0, f32::NAN], 3), vec![1, 2, 3]);
    assert_eq!(top_k(&[0.5; 4], 2), vec![0, 1]);
    assert!(top_k(&[], 3).is_empty());
}

/// The logistic proxy through its reference probability path (ndarray matmul + scalar softmax).
struct ReferenceLogReg(proxal::proxy::LogReg);

impl Proxy for ReferenceLogReg {
    fn kind(&self) -> &'static str {
        "logreg-reference"
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn n_classes(&self) -> usize {
        self.0.n_classes()
    }
    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        self.0.predict_proba_reference(x)
    }
}

/// The packed-kernel logits and vectorised softmax (AVX-512 where the CPU has it) agree with
/// the reference path: probabilities to ~1e-6, the same argmax everywhere, and the same picks
/// for margin, least-confidence and entropy. Class counts off the 32-column panel width and
/// pool sizes off the 2,048-row streaming chunk and the 12-row register tile.
#[test]
fn packed_probability_path_matches_the_reference() {
    use proxal::numerics::argmax_rows;
    use proxal::proxy::{predict_rows, LogReg, LogRegConfig};
    for &(classes, dim, pool) in &[
        (150usize, 64usize, 5003usize),
        (7, 40, 2051),
        (33, 24, 1013),
    ] {
        let mix = Mixture::new(dim, classes, 1.0, 1.2, classes as u64);
        let (x, y) = mix.sample(pool + 20 * classes);
        let labelled: Vec<usize> = (pool..x.nrows()).collect();
        let xl = x.select(ndarray::Axis(0), &labelled);
        let yl: Vec<u32> = labelled.iter().map(|&i| y[i]).collect();
        let m = LogReg::fit(&LogRegConfig::default(), xl.view(), &yl, classes, None).unwrap();
        let reference = ReferenceLogReg(m.clone());
        // Logits, on a ragged block.
        let blk = x.slice(ndarray::s![3..3 + 1001, ..]);
        let (z, zr) = (m.logits(blk), m.logits_reference(blk));
        let zmax = zr.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let zdiff = z
            .iter()
            .zip(zr.iter())
            .fold(0.0f32, |a, (p, q)| a.max((p - q).abs()));
        assert!(
            zdiff <= 1e-5 * zmax.max(1.0),
            "{classes} classes: logits differ by {zdiff}"
        );
        // Probabilities over the whole pool, streamed (labelled rows interleaved: every 7th).
        let all: Vec<usize> = (0..x.nrows()).collect();
        let lab_rows: Vec<usize> = (0..x.nrows()).step_by(7).collect();
        let p = predict_rows(&m, &x, &all);
        let pr = predict_rows(&reference, &x, &all);
        // Both against f64 arithmetic: the new path is as accurate as the old one (the
        // differences are f32 summation order in the 1×d·d×C products, not the exp).
        let (mut err, mut err_ref) = (0.0f64, 0.0f64);
        for (i, (u, v)) in p.rows().into_iter().zip(pr.rows()).enumerate() {
            let z: Vec<f64> = (0..classes)
                .map(|c| {
                    m.b[c] as f64
                        + (0..dim)
                            .map(|j| x[[i, j]] as f64 * m.w[[j, c]] as f64)
                            .sum::<f64>()
                })
                .collect();
            let zm = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = z.iter().map(|t| (t - zm).exp()).sum();
            for c in 0..classes {
                let t = (z[c] - zm).exp() / s;
                err = err.max((u[c] as f64 - t).abs());
                err_ref = err_ref.max((v[c] as f64 - t).abs());
            }
        }
        assert!(
            err <= 2.0 * err_ref + 1e-6 && err < 1e-5,
            "{classes} classes: probability error {err:e} (reference path {err_ref:e})"
        );
        for (r, u) in p.rows().into_iter().enumerate() {
            let s: f32 = u.sum();
            assert!((s - 1.0).abs() < 1e-5, "row {r} sums to {s}");
            assert!(u.iter().all(|v| v.is_finite() && *v >= 0.0));
        }
        let (am, amr) = (argmax_rows(p.view()), argmax_rows(pr.view()));
        assert!(
            am.iter().zip(&amr).all(|(a, b)| a.0 == b.0),
            "{classes}: argmax differs"
        );
        // Selections, with labelled rows scattered through the pool (non-contiguous chunks).
        for name in ["margin", "least-confidence", "entropy"] {
            let round = Round::new(&x, &all, &lab_rows, Some(&m), 0).unwrap();
            let rround = Round::new(&x, &all, &lab_rows, Some(&reference), 0).unwrap();
            let k = 50;
            let got = from_name(name).unwrap().select(&round, k).unwrap();
            let want = from_name(name).unwrap().select(&rround, k).unwrap();
            assert_eq!(
                rows(&got),
                rows(&want),
                "{classes} classes, {name}: picks differ"
            );
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g.score - w.score).abs() < 1e-5,
                    "{name}: {} vs {}",
                    g.score,
                    w.score
                );
            }
        }
    }
}

#[test]
fn every_strategy_picks_the_same_rows_from_an_f16_store_as_from_its_values_in_memory() {
    use proxal::features::{Dtype, Provenance, Store, Verify, VersionSpec};
    // 700 rows in chunks of 64: scattered labelled rows make the readers both slice and gather.
    let mix = Mixture::new(12, 5, 1.2, 2.0, 21);
    let (x, y) = mix.sample(700);
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::at(tmp.path().join("s"), "s");
    let spec = VersionSpec {
        dataset: "s".into(),
        dataset_fingerprint: "0".repeat(64),
        rows: 700,
        dim: 12,
        dtype: Dtype::F16,
        chunk_rows: 64,
        source: Provenance::synthetic(),
    };
    let mut w = store.writer(0, spec).unwrap();
    for c in 0..w.n_chunks() {
        let r = w.chunk_range(c);
        let block = x.slice(ndarray::s![r, ..]).to_owned();
        w.write_chunk(c, block.as_slice().unwrap()).unwrap();
    }
    let fv = store.open(0, Verify::Checksums).unwrap();
    assert_eq!(fv.dtype(), Dtype::F16);
    let rounded = x.mapv(|v| half::f16::from_f32(v).to_f32());
    assert_ne!(rounded, x);
    let labelled: Vec<usize> = (0..700).step_by(9).collect();
    let ys: Vec<u32> = labelled.iter().map(|&i| y[i]).collect();
    let pool: Vec<usize> = (0..700).collect();
    // The proxy is fitted on each source's rows: the store's gather must give the rounded rows.
    let on_store = ProxyConfig::default()
        .fit_rows(&fv, &labelled, &ys, 5, 0)
        .unwrap();
    let in_memory = ProxyConfig::default()
        .fit_rows(&rounded, &labelled, &ys, 5, 0)
        .unwrap();
    let a = Round::new(&fv, &pool, &labelled, Some(on_store.as_ref()), 3).unwrap();
    let b = Round::new(&rounded, &pool, &labelled, Some(in_memory.as_ref()), 3).unwrap();
    for name in STRATEGY_NAMES {
        let pa = from_name(name).unwrap().select(&a, 25).unwrap();
        let pb = from_name(name).unwrap().select(&b, 25).unwrap();
        assert_eq!(rows(&pa), rows(&pb), "{name}");
    }
}

/// Brute-force k nearest rows of `q` among `rows` (squared distance, then row).
fn brute_knn(x: &Array2<f32>, q: usize, rows: &[usize], k: usize) -> Vec<usize> {
    let mut d: Vec<(f32, usize)> = rows
        .iter()
        .map(|&r| {
            let s: f32 = x
                .row(q)
                .iter()
                .zip(x.row(r).iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            (s, r)
        })
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter().take(k).map(|p| p.1).collect()
}

#[test]
fn ivf_index_finds_the_exact_neighbours_when_it_probes_every_cell_and_most_with_two() {
    use proxal::strategy::ivf::{IvfConfig, IvfIndex};
    let mix = Mixture::new(16, 12, 3.0, 1.0, 41);
    let (x, _) = mix.sample(6000);
    let cfg = IvfConfig {
        cells: 40,
        ..Default::default()
    };
    let ix = IvfIndex::build(&x, &cfg, 3).unwrap();
    assert_eq!(ix.cells(), 40);
    assert_eq!(ix.n_rows(), 6000);
    // Every row in exactly one cell, each cell ascending.
    let mut seen = vec![0u8; 6000];
    for c in 0..ix.cells() {
        let m = ix.members(c);
        assert!(m.windows(2).all(|w| w[0] < w[1]));
        m.iter().for_each(|&r| seen[r as usize] += 1);
    }
    assert!(seen.iter().all(|&s| s == 1));
    // Queries: labelled rows; candidates: the even rows that are not queries.
    let queries: Vec<usize> = (0..6000).step_by(97).collect();
    let keep = |r: usize| r.is_multiple_of(2) && !r.is_multiple_of(97);
    let cands: Vec<usize> = (0..6000).filter(|&r| keep(r)).collect();
    let exact = ix.knn(&x, &queries, 10, 40, &keep);
    let two = ix.knn(&x, &queries, 10, 2, &keep);
    let (mut hit, mut total) = (0, 0);
    for (qi, &q) in queries.iter().enumerate() {
        let want = brute_knn(&x, q, &cands, 10);
        let got: Vec<usize> = exact[qi].iter().map(|p| p.1).collect();
        assert_eq!(got, want, "query {q}");
        assert!(exact[qi].windows(2).all(|w| w[0].0 <= w[1].0));
        hit += two[qi].iter().filter(|p| want.contains(&p.1)).count();
        total += want.len();
    }
    let recall = hit as f64 / total as f64;
    assert!(recall > 0.8, "recall at nprobe 2: {recall}");
    assert!(
        recall < 1.0 || ix.cells() == 1,
        "two probes of 40 found everything"
    );
}

#[test]
fn ivf_index_is_cached_per_contents_and_rebuilt_when_they_change() {
    use proxal::strategy::ivf::{IvfConfig, IvfIndex};
    let mix = Mixture::new(8, 5, 3.0, 1.0, 42);
    let (mut x, _) = mix.sample(2000);
    let dir = tempfile::tempdir().unwrap();
    let cfg = IvfConfig::default();
    let built = IvfIndex::cached(&x, &cfg, 1, dir.path()).unwrap();
    assert!(built.build_seconds > 0.0);
    let loaded = IvfIndex::cached(&x, &cfg, 1, dir.path()).unwrap();
    assert_eq!(loaded.build_seconds, 0.0, "the second call loads the cache");
    assert_eq!(loaded.fingerprint, built.fingerprint);
    for c in 0..built.cells() {
        assert_eq!(loaded.members(c), built.members(c));
    }
    // The same shape, other contents: another fingerprint, a fresh build.
    x.row_mut(0).iter_mut().for_each(|v| *v += 1.0);
    let rebuilt = IvfIndex::cached(&x, &cfg, 1, dir.path()).unwrap();
    assert_ne!(rebuilt.fingerprint, built.fingerprint);
    assert!(rebuilt.build_seconds > 0.0);
    // A torn file is not an index.
    let f = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let b = std::fs::read(&f).unwrap();
    std::fs::write(&f, &b[..b.len() - 3]).unwrap();
    assert!(IvfIndex::load(&f).is_err());
}

#[test]
fn subpool_holds_the_neighbours_and_the_least_certain_rows_and_queries_only_new_labels() {
    use proxal::strategy::{Subpool, SubpoolMode};
    let mix = Mixture::new(16, 6, 1.5, 1.0, 43);
    let (x, y) = mix.sample(8000);
    let lab: Vec<usize> = (0..8000).step_by(40).collect();
    let ys: Vec<u32> = lab.iter().map(|&r| y[r]).collect();
    let proxy = ProxyConfig::default()
        .fit_rows(&x, &lab, &ys, 6, 0)
        .unwrap();
    let pool: Vec<usize> = (0..8000).collect();
    let round = Round::new(&x, &pool, &lab, Some(proxy.as_ref()), 5)
        .unwrap()
        .with_labelled_classes(&lab, &ys, 6)
        .unwrap();
    let err = Round::new(&x, &pool, &lab, None, 5)
        .unwrap()
        .with_labelled_classes(&lab[1..], &ys[1..], 6)
        .err()
        .expect("a labelled row without its class");
    assert!(
        err.to_string().contains("labelled row 0 has no label"),
        "{err}"
    );
    for name in ["badge", "coreset", "cluster-margin"] {
        let mut sp = Subpool::new(name, SubpoolMode::Always).unwrap();
        sp.config.uncertain = 300;
        sp.config.coverage = 200;
        sp.config.neighbours = 5;
        sp.config.anchor_neighbours = 5;
        sp.config.nprobe = 1_000; // every cell: exact neighbours
        let picks = sp.select(&round, 30).unwrap();
        assert_eq!(picks.len(), 30, "{name}");
        assert_eq!(sp.name(), from_name(name).unwrap().name());
        let st = sp.last.clone().unwrap();
        assert!(!st.exhaustive);
        assert_eq!(st.queries, lab.len());
        // Two anchors of each of the 6 classes, 5 nearest unlabelled rows each.
        assert_eq!((st.anchors, st.anchored), (12, 60), "{name}");
        let sub = &sp.last_pool;
        assert_eq!(sub.len(), st.subpool);
        assert!(sub.len() < 8000 / 4, "{name}: subpool of {}", sub.len());
        for p in &picks {
            assert!(
                sub.binary_search(&p.row).is_ok(),
                "{name}: pick outside the subpool"
            );
            assert!(lab.binary_search(&p.row).is_err());
        }
        // Exact neighbours of every labelled row are in.
        for &q in lab.iter().step_by(17) {
            for r in brute_knn(&x, q, &round.unlabelled, 5) {
                assert!(
                    sub.binary_search(&r).is_ok(),
                    "{name}: neighbour {r} of {q}"
                );
            }
        }
        // So are the 300 lowest-margin candidates, for the strategies that read the proxy.
        let m = proxal::strategy::score_candidates(
            &round,
            proxy.as_ref(),
            proxal::strategy::Measure::Margin,
        );
        let pr: Vec<f32> = m.iter().map(|v| -v).collect();
        let held = top_k(&pr, 300)
            .into_iter()
            .filter(|&i| sub.binary_search(&round.unlabelled[i]).is_ok())
            .count();
        if name == "coreset" {
            assert_eq!(st.uncertain, 0);
            assert!(held < 300, "core-set's subpool holds every low-margin row");
        } else {
            assert_eq!(st.uncertain, 300);
            assert_eq!(held, 300, "{name}");
        }
        // Next round: every labelled row is queried again, and a fresh wrapper (a run resumed
        // after a kill) makes the same subpool and picks as the one that went on.
        let mut lab2 = lab.clone();
        lab2.extend(picks.iter().map(|p| p.row));
        lab2.sort_unstable();
        let r2 = Round::new(&x, &pool, &lab2, Some(proxy.as_ref()), 6).unwrap();
        let picks2 = sp.select(&r2, 30).unwrap();
        assert_eq!(sp.last.as_ref().unwrap().queries, lab2.len(), "{name}");
        // Without the rows' classes there are no anchors.
        assert_eq!(sp.last.as_ref().unwrap().anchors, 0, "{name}");
        assert!(picks2.iter().all(|p| lab2.binary_search(&p.row).is_err()));
        let mut resumed = Subpool::new_with(name, SubpoolMode::Always, &sp.config).unwrap();
        assert_eq!(
            rows(&resumed.select(&r2, 30).unwrap()),
            rows(&picks2),
            "{name}"
        );
        assert_eq!(resumed.last_pool, sp.last_pool, "{name}");
    }
}

#[test]
fn subpooling_is_off_below_its_pool_size_and_by_the_exhaustive_prefix() {
    let mix = Mixture::new(8, 5, 3.0, 1.0, 44);
    let (x, y) = mix.sample(1500);
    let lab: Vec<usize> = (0..60).collect();
    let proxy = ProxyConfig::default()
        .fit_rows(&x, &lab, &y[..60], 5, 0)
        .unwrap();
    let pool: Vec<usize> = (0..1500).collect();
    let round = Round::new(&x, &pool, &lab, Some(proxy.as_ref()), 2).unwrap();
    for name in ["badge", "coreset", "cluster-margin"] {
        let auto = from_name(name).unwrap().select(&round, 20).unwrap();
        let exhaustive = from_name(&format!("exhaustive:{name}"))
            .unwrap()
            .select(&round, 20)
            .unwrap();
        assert_eq!(rows(&auto), rows(&exhaustive), "{name}");
        // A subpool as large as the pool (the defaults here) changes nothing …
        let whole = from_name(&format!("subpool:{name}"))
            .unwrap()
            .select(&round, 20)
            .unwrap();
        assert_eq!(rows(&whole), rows(&exhaustive), "{name}");
        // … a small one does.
        let mut sp =
            proxal::strategy::Subpool::new(name, proxal::strategy::SubpoolMode::Always).unwrap();
        sp.config.uncertain = 100;
        sp.config.coverage = 50;
        let small = sp.select(&round, 20).unwrap();
        assert!(sp.last_pool.len() < 1000);
        assert_ne!(
            rows(&small),
            rows(&exhaustive),
            "{name}: subpooled like exhaustive"
        );
    }
    assert!(from_name("subpool:magic").is_err());
    // A run's [subpool] table reaches the strategy built by name, inside a wrapper too (UPS
    // scores the whole pool in its first round, so it hands on the same round).
    let cfg = proxal::strategy::SubpoolConfig {
        uncertain: 100,
        coverage: 50,
        ..Default::default()
    };
    let mut sp =
        proxal::strategy::Subpool::new_with("badge", proxal::strategy::SubpoolMode::Always, &cfg)
            .unwrap();
    let want = sp.select(&round, 20).unwrap();
    for name in ["subpool:badge", "ups:subpool:badge"] {
        let got = proxal::strategy::from_name_with(name, &cfg)
            .unwrap()
            .select(&round, 20)
            .unwrap();
        assert_eq!(rows(&got), rows(&want), "{name}");
    }
    // `exhaustive:` reaches inside wrappers: with subpooling from 100 candidates on, `ups:badge`
    // subpools and `exhaustive:ups:badge` picks like `ups:badge` on a small pool.
    let low = proxal::strategy::SubpoolConfig { above: 100, ..cfg };
    let pick = |name: &str, c: &proxal::strategy::SubpoolConfig| {
        rows(
            &proxal::strategy::from_name_with(name, c)
                .unwrap()
                .select(&round, 20)
                .unwrap(),
        )
    };
    let plain = pick("ups:badge", &proxal::strategy::SubpoolConfig::default());
    assert_eq!(pick("exhaustive:ups:badge", &low), plain);
    assert_ne!(pick("ups:badge", &low), plain);
}
