//! Query strategies: given the pool's cached features, the labelled rows and a fitted proxy,
//! choose the next batch of pool rows to label, each with the score that got it picked.
//!
//! | name               | file                 | score reported (why it was picked)                  |
//! |--------------------|----------------------|-----------------------------------------------------|
//! | `random`           | `random.rs`          | 0                                                   |
//! | `least-confidence` | `uncertainty.rs`     | 1 − max p (higher = less confident)                 |
//! | `margin`           | `uncertainty.rs`     | p(1) − p(2) (lower = closer call)                   |
//! | `entropy`          | `uncertainty.rs`     | −Σ p ln p (nats)                                    |
//! | `badge`            | `badge.rs`           | D² in gradient-embedding space when drawn           |
//! | `coreset`          | `coreset.rs`         | distance to the nearest labelled/picked row         |
//! | `cluster-margin`   | `cluster_margin.rs`  | margin of the row (cluster round-robin order)       |
//! | `typicality`       | `typicality.rs`      | typicality 1 / mean k-NN distance in its cluster    |
//! | `ups:<inner>`      | `ups.rs`             | the inner strategy's score, on a subsampled pool    |
//! | `balanced:<inner>` | `balanced.rs`        | the inner strategy's score, class-balanced batch    |
//! | `subpool:<inner>`  | `subpool.rs`         | the inner strategy's score, on a candidate subpool  |
//!
//! `badge`, `coreset` and `cluster-margin` subpool their candidates by themselves above 250,000
//! candidates (`subpool.rs`, through the IVF index of `ivf.rs`); `exhaustive:<inner>` never does.
//!
//! A [`Round`] is built once per AL round; strategies are stateful objects kept across rounds
//! (Cluster-Margin caches its clustering, UPS its last uncertainties).
pub mod badge;
pub mod balanced;
pub mod cluster_margin;
pub mod coreset;
pub mod ivf;
pub mod random;
pub mod subpool;
pub mod typicality;
pub mod uncertainty;
pub mod ups;

use crate::features::RowBlocks;
use crate::proxy::{map_scores, Proxy};
use anyhow::{bail, Result};
use ndarray::ArrayView1;

pub use badge::Badge;
pub use balanced::Balanced;
pub use cluster_margin::{ClusterConfig, ClusterMargin, Clusters};
pub use coreset::CoreSet;
pub use random::Random;
pub use subpool::{Mode as SubpoolMode, Subpool, SubpoolConfig};
pub use typicality::Typicality;
pub use uncertainty::Uncertainty;
pub use ups::Ups;

/// One chosen row: its index in the feature version, and the score that got it picked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    pub row: usize,
    pub score: f32,
}

/// What a strategy sees in one round.
pub struct Round<'a> {
    /// Every row of the feature version (pool, dev and test alike), indexed by table row.
    pub features: &'a dyn RowBlocks,
    /// Candidate rows: unlabelled pool rows, sorted, unique, never overlapping `labelled`.
    pub unlabelled: Vec<usize>,
    /// Labelled rows (sorted, unique): core-set measures distances from them.
    pub labelled: Vec<usize>,
    /// The proxy fitted on the labelled rows; `None` at cold start.
    pub proxy: Option<&'a dyn Proxy>,
    pub seed: u64,
    /// Where a strategy may cache work that depends only on the feature version and the pool
    /// (Cluster-Margin's clustering); `None`: compute it in memory.
    pub cache_dir: Option<&'a std::path::Path>,
    /// Labelled rows per class, when the caller knows the labels (`balanced:` fills the smallest
    /// classes first); `None`: treated as none labelled.
    pub class_counts: Option<Vec<usize>>,
    /// The class of each `labelled` row (same order), when the caller gave the rows with their
    /// labels ([`Round::with_labelled_classes`]; subpooling's class anchors read it).
    pub labels: Option<Vec<u32>>,
}

impl<'a> Round<'a> {
    /// Build a round: sorts and de-duplicates both sets, drops labelled rows from the
    /// candidates (so they can never be selected), and checks ranges and the proxy's dimension.
    pub fn new(
        features: &'a dyn RowBlocks,
        pool: &[usize],
        labelled: &[usize],
        proxy: Option<&'a dyn Proxy>,
        seed: u64,
    ) -> Result<Round<'a>> {
        let n = features.n_rows();
        let mut labelled = labelled.to_vec();
        labelled.sort_unstable();
        labelled.dedup();
        let mut unlabelled = pool.to_vec();
        unlabelled.sort_unstable();
        unlabelled.dedup();
        if let Some(&r) = unlabelled
            .last()
            .filter(|&&r| r >= n)
            .or(labelled.last().filter(|&&r| r >= n))
        {
            bail!("row {r} is out of range: the feature version has {n} rows");
        }
        unlabelled.retain(|r| labelled.binary_search(r).is_err());
        if let Some(p) = proxy {
            if p.dim() != features.dim() {
                bail!(
                    "dimension mismatch: the proxy was trained on {}-dim features, the feature version has {}",
                    p.dim(),
                    features.dim()
                );
            }
        }
        Ok(Round {
            features,
            unlabelled,
            labelled,
            proxy,
            seed,
            cache_dir: None,
            class_counts: None,
            labels: None,
        })
    }

    /// The same round with the labelled rows' classes (`ys`, class ids below `n_classes`).
    pub fn with_labels(mut self, ys: &[u32], n_classes: usize) -> Round<'a> {
        let mut counts = vec![0usize; n_classes];
        for &y in ys {
            counts[y as usize] += 1;
        }
        self.class_counts = Some(counts);
        self
    }

    /// [`Round::with_labels`] given the labelled `rows` and their classes `ys` (same order), which
    /// also keeps each labelled row's class. Errors if a labelled row of the round has no class.
    pub fn with_labelled_classes(
        self,
        rows: &[usize],
        ys: &[u32],
        n_classes: usize,
    ) -> Result<Round<'a>> {
        if rows.len() != ys.len() {
            bail!("{} labelled rows but {} labels", rows.len(), ys.len());
        }
        let mut by_row: Vec<(usize, u32)> = rows.iter().copied().zip(ys.iter().copied()).collect();
        by_row.sort_unstable();
        let labels = self
            .labelled
            .iter()
            .map(|r| match by_row.binary_search_by_key(r, |p| p.0) {
                Ok(i) => Ok(by_row[i].1),
                Err(_) => bail!("labelled row {r} has no label"),
            })
            .collect::<Result<Vec<u32>>>()?;
        let mut round = self.with_labels(ys, n_classes);
        round.labels = Some(labels);
        Ok(round)
    }

    /// The same round, allowed to cache per-version work under `dir`.
    pub fn with_cache_dir(mut self, dir: &'a std::path::Path) -> Round<'a> {
        self.cache_dir = Some(dir);
        self
    }

    /// The proxy, or a clear error naming the strategy that needs it.
    pub fn need_proxy(&self, strategy: &str) -> Result<&'a dyn Proxy> {
        match self.proxy {
            Some(p) => Ok(p),
            None => bail!(
                "strategy '{strategy}' needs a proxy fitted on labelled rows; with no labels yet use 'random' or 'typicality'"
            ),
        }
    }

    /// The same round over a subset of candidates (used by UPS).
    pub fn with_candidates(&self, unlabelled: Vec<usize>) -> Round<'a> {
        Round {
            features: self.features,
            unlabelled,
            labelled: self.labelled.clone(),
            proxy: self.proxy,
            seed: self.seed,
            cache_dir: self.cache_dir,
            class_counts: self.class_counts.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// A query strategy.
pub trait Strategy: Send {
    /// The name it is selected by (`proxal select --strategy`).
    fn name(&self) -> &'static str;
    /// Whether `select` needs `round.proxy` (random, core-set and typicality do not).
    fn needs_proxy(&self) -> bool {
        true
    }
    /// Choose up to `k` rows of `round.unlabelled` (fewer only when the pool is smaller), in
    /// pick order, each with its score.
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>>;
}

/// A strategy's name, the aliases it is also selected by, and how to build it.
type Entry = (
    &'static str,
    &'static [&'static str],
    fn() -> Box<dyn Strategy>,
);

/// Every strategy: the one list [`from_name`], [`STRATEGY_NAMES`] and the error message read.
const REGISTRY: &[Entry] = &[
    ("random", &[], || Box::new(Random)),
    ("least-confidence", &["lc", "least-confident"], || {
        Box::new(Uncertainty(Measure::LeastConfidence))
    }),
    ("margin", &["breaking-ties", "smallest-margin"], || {
        Box::new(Uncertainty(Measure::Margin))
    }),
    ("entropy", &[], || Box::new(Uncertainty(Measure::Entropy))),
    ("badge", &[], || Box::new(Badge::default())),
    ("coreset", &["core-set", "kcenter", "k-center"], || {
        Box::new(CoreSet::default())
    }),
    ("cluster-margin", &["clustermargin"], || {
        Box::new(ClusterMargin::default())
    }),
    ("typicality", &["typiclust", "kmeans-typicality"], || {
        Box::new(Typicality::default())
    }),
];

/// The strategies that subpool their candidates on large pools unless asked not to.
const SUBPOOLED: &[&str] = &["badge", "coreset", "cluster-margin"];

/// Build a strategy by name (see the table above); `ups:<name>` wraps any of them in UPS,
/// `balanced:<name>` in class balancing, `subpool:<name>` in candidate subpooling;
/// `exhaustive:<name>` is the strategy without the subpooling it has by default.
pub fn from_name(name: &str) -> Result<Box<dyn Strategy>> {
    from_name_with(name, &SubpoolConfig::default())
}

/// [`from_name`] with the given subpooling settings (a run's `[subpool]` table).
pub fn from_name_with(name: &str, subpool: &SubpoolConfig) -> Result<Box<dyn Strategy>> {
    build(name, subpool, true)
}

/// The registry name of `n` or one of its aliases.
fn canonical(n: &str) -> Option<&'static str> {
    REGISTRY
        .iter()
        .find(|(name, aliases, _)| *name == n || aliases.contains(&n))
        .map(|(name, _, _)| *name)
}

/// [`from_name_with`] with no default subpooling anywhere in the name (what `exhaustive:` and a
/// subpool's own inner strategy are).
pub(crate) fn base_from_name(name: &str, subpool: &SubpoolConfig) -> Result<Box<dyn Strategy>> {
    build(name, subpool, false)
}

/// Build a strategy by name; `auto`: the strategies of [`SUBPOOLED`] get their default
/// subpooling (not under `exhaustive:`, nor inside a `subpool:`).
fn build(name: &str, subpool: &SubpoolConfig, auto: bool) -> Result<Box<dyn Strategy>> {
    let n = name.trim().to_ascii_lowercase().replace('_', "-");
    if let Some(inner) = n.strip_prefix("subpool:") {
        return Ok(Box::new(Subpool::new_with(
            inner,
            SubpoolMode::Always,
            subpool,
        )?));
    }
    if let Some(inner) = n.strip_prefix("exhaustive:") {
        return build(inner, subpool, false);
    }
    if let Some(inner) = n.strip_prefix("ups:") {
        return Ok(Box::new(Ups::new(build(inner, subpool, auto)?)));
    }
    if let Some(inner) = n.strip_prefix("balanced:") {
        return Ok(Box::new(Balanced::new(build(inner, subpool, auto)?)));
    }
    if auto && canonical(&n).is_some_and(|c| SUBPOOLED.contains(&c)) {
        return Ok(Box::new(Subpool::new_with(&n, SubpoolMode::Auto, subpool)?));
    }
    match REGISTRY
        .iter()
        .find(|(name, aliases, _)| *name == n || aliases.contains(&n.as_str()))
    {
        Some((_, _, make)) => Ok(make()),
        None => bail!(
            "unknown strategy '{n}' (expected {}, or ups:, balanced:, subpool: or exhaustive: before one of these)",
            STRATEGY_NAMES.join(", ")
        ),
    }
}

/// Names accepted by [`from_name`] (without the `ups:` prefix), in the registry's order.
pub const STRATEGY_NAMES: &[&str] = &{
    let mut names = [""; REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        names[i] = REGISTRY[i].0;
        i += 1;
    }
    names
};

// ---------------------------------------------------------------------------------------------
// Shared scoring helpers.

/// Uncertainty measures computed from one probability row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// 1 − max p.
    LeastConfidence,
    /// p(1) − p(2) (small = uncertain).
    Margin,
    /// −Σ p ln p.
    Entropy,
}

impl Measure {
    /// The strategy name of uncertainty sampling by this measure.
    pub fn name(self) -> &'static str {
        match self {
            Measure::LeastConfidence => "least-confidence",
            Measure::Margin => "margin",
            Measure::Entropy => "entropy",
        }
    }

    /// The score of one probability row.
    pub fn score(self, p: ArrayView1<f32>) -> f32 {
        match p.as_slice() {
            Some(s) => self.score_slice(s),
            None => self.score_slice(&p.to_vec()),
        }
    }

    /// [`Measure::score`] on a contiguous row.
    pub fn score_slice(self, p: &[f32]) -> f32 {
        match self {
            Measure::LeastConfidence => 1.0 - p.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            Measure::Margin => {
                let (a, b) = crate::numerics::linalg::top2(p);
                if b == f32::NEG_INFINITY {
                    1.0
                } else {
                    a - b
                }
            }
            Measure::Entropy => {
                let mut h = 0.0f64;
                for &v in p {
                    if v > 0.0 {
                        h -= v as f64 * (v as f64).ln();
                    }
                }
                h as f32
            }
        }
    }

    /// Higher = more worth labelling.
    pub fn priority(self, score: f32) -> f32 {
        match self {
            Measure::Margin => -score,
            _ => score,
        }
    }
}

/// Score every candidate of the round with `measure`, streamed over blocks in parallel.
/// Returns one score per `round.unlabelled` row, in the same order.
pub fn score_candidates(round: &Round, proxy: &dyn Proxy, measure: Measure) -> Vec<f32> {
    map_scores(proxy, round.features, &round.unlabelled, |p| {
        measure.score_slice(p)
    })
}

/// Indices (into `priority`) of the `k` largest priorities, best first; ties go to the lower
/// index, so results are deterministic. O(n) selection, then a sort of the k chosen.
pub fn top_k(priority: &[f32], k: usize) -> Vec<usize> {
    let k = k.min(priority.len());
    if k == 0 {
        return Vec::new();
    }
    let key = |i: usize| {
        let v = priority[i];
        if v.is_nan() {
            f32::NEG_INFINITY
        } else {
            v
        }
    };
    let cmp = |a: &usize, b: &usize| key(*b).total_cmp(&key(*a)).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..priority.len()).collect();
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_unstable_by(cmp);
    idx
}

/// Pick the top `k` candidates of a round by an uncertainty measure.
pub(crate) fn select_by_measure(
    round: &Round,
    k: usize,
    measure: Measure,
    name: &str,
) -> Result<Vec<Pick>> {
    let proxy = round.need_proxy(name)?;
    let scores = score_candidates(round, proxy, measure);
    let priority: Vec<f32> = scores.iter().map(|&s| measure.priority(s)).collect();
    Ok(top_k(&priority, k)
        .into_iter()
        .map(|i| Pick {
            row: round.unlabelled[i],
            score: scores[i],
        })
        .collect())
}
