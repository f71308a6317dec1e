//! Cluster-Margin (Citovsky et al., NeurIPS 2021): margin preselection plus diversity from a
//! clustering computed once per feature version.
//!
//! * Clustering ([`Clusters::compute`]): average-linkage hierarchical clustering (kodama) of the
//!   pool, cut into `rows / target_size` clusters. Pools larger than `max_hac_rows` are clustered
//!   on a seeded random subsample of that size, and every other row joins the cluster with the
//!   nearest centroid. The result can be saved and loaded ([`Clusters::save`], [`Clusters::load`])
//!   and handed to [`ClusterMargin::with_clusters`], so it is computed once per feature version.
//! * Each round: take the k_m = `preselect`·k lowest-margin candidates, group them by cluster,
//!   order clusters by how many preselected rows they hold (smallest first, then id), and go round
//!   robin over them taking one random row per cluster per pass until k rows are picked. A pass
//!   never takes two rows from one cluster.
use super::{score_candidates, top_k, Measure, Pick, Round, Strategy};
use crate::features::map_rows;
use crate::features::RowBlocks;
use crate::numerics::linalg::{matmul_into, row_sq_norms};
use anyhow::{bail, Context, Result};
use ndarray::{s, Array2};
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClusterConfig {
    /// Mean cluster size aimed at: the dendrogram is cut into `rows / target_size` clusters.
    pub target_size: usize,
    /// Most rows clustered exactly (HAC needs a rows²/2 distance matrix: 10,000 rows → 200 MB).
    pub max_hac_rows: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            target_size: 10,
            max_hac_rows: 10_000,
        }
    }
}

/// A clustering of pool rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Clusters {
    /// Rows covered, sorted.
    pub rows: Vec<usize>,
    /// Cluster id of each row in `rows`.
    pub cluster: Vec<u32>,
    pub n_clusters: usize,
    /// How many rows were clustered by HAC (the rest were assigned to the nearest centroid).
    pub hac_rows: usize,
    pub config: ClusterConfig,
}

fn find(parent: &mut [usize], mut a: usize) -> usize {
    while parent[a] != a {
        parent[a] = parent[parent[a]];
        a = parent[a];
    }
    a
}

/// Average-linkage HAC of the rows of `x`, cut into `n_clusters`; labels 0.. in order of first
/// appearance.
pub fn hac_average(x: &Array2<f32>, n_clusters: usize) -> Vec<u32> {
    let m = x.nrows();
    if m == 0 {
        return Vec::new();
    }
    if m == 1 {
        return vec![0];
    }
    let n2 = row_sq_norms(x.view());
    // Condensed upper-triangle distances, filled in parallel blocks of rows.
    let mut cond = vec![0.0f32; m * (m - 1) / 2];
    let block = 256;
    let mut pieces: Vec<(usize, &mut [f32])> = Vec::new();
    let mut rest: &mut [f32] = &mut cond;
    let mut r0 = 0;
    while r0 < m - 1 {
        let r1 = (r0 + block).min(m - 1);
        let len: usize = (r0..r1).map(|i| m - 1 - i).sum();
        let (head, tail) = rest.split_at_mut(len);
        pieces.push((r0, head));
        rest = tail;
        r0 = r1;
    }
    pieces.into_par_iter().for_each(|(r0, out)| {
        let r1 = (r0 + block).min(m - 1);
        let mut g = Array2::<f32>::zeros((r1 - r0, m));
        matmul_into(x.slice(s![r0..r1, ..]), x.t(), g.view_mut(), false, false);
        let mut at = 0;
        for i in r0..r1 {
            for j in i + 1..m {
                out[at] = (n2[i] + n2[j] - 2.0 * g[[i - r0, j]]).max(0.0).sqrt();
                at += 1;
            }
        }
    });
    let dend = kodama::linkage(&mut cond, m, kodama::Method::Average);
    drop(cond);
    let k = n_clusters.clamp(1, m);
    let mut parent: Vec<usize> = (0..2 * m - 1).collect();
    for (t, step) in dend.steps().iter().enumerate().take(m - k) {
        let new = m + t;
        let a = find(&mut parent, step.cluster1);
        let b = find(&mut parent, step.cluster2);
        parent[a] = new;
        parent[b] = new;
    }
    let mut label = BTreeMap::new();
    (0..m)
        .map(|i| {
            let r = find(&mut parent, i);
            let next = label.len() as u32;
            *label.entry(r).or_insert(next)
        })
        .collect()
}

impl Clusters {
    /// Cluster `rows` (sorted) of `features`.
    pub fn compute(
        features: &dyn RowBlocks,
        rows: &[usize],
        cfg: &ClusterConfig,
        seed: u64,
    ) -> Result<Clusters> {
        if cfg.target_size == 0 || cfg.max_hac_rows < 2 {
            bail!("cluster config: target_size must be ≥ 1 and max_hac_rows ≥ 2");
        }
        let n = rows.len();
        let (sub, exact): (Vec<usize>, bool) = if n <= cfg.max_hac_rows {
            ((0..n).collect(), true)
        } else {
            let mut rng = crate::util::rng(seed);
            let mut s: Vec<usize> =
                rand::seq::index::sample(&mut rng, n, cfg.max_hac_rows).into_vec();
            s.sort_unstable();
            (s, false)
        };
        let sub_rows: Vec<usize> = sub.iter().map(|&i| rows[i]).collect();
        let x = features.gather(&sub_rows);
        let k = (sub.len() / cfg.target_size).max(1);
        let labels = hac_average(&x, k);
        let n_clusters = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
        let cluster = if exact {
            labels
        } else {
            // Nearest centroid for everything (subsample rows keep their HAC label).
            let d = features.dim();
            let mut cent = Array2::<f32>::zeros((n_clusters, d));
            let mut cnt = vec![0usize; n_clusters];
            for (r, &l) in labels.iter().enumerate() {
                let mut c = cent.row_mut(l as usize);
                c += &x.row(r);
                cnt[l as usize] += 1;
            }
            for (mut c, &m) in cent.rows_mut().into_iter().zip(&cnt) {
                c /= m.max(1) as f32;
            }
            let cn2 = row_sq_norms(cent.view());
            let mut all: Vec<u32> = map_rows(features, rows, |_, xb| {
                let mut g = Array2::<f32>::zeros((xb.nrows(), n_clusters));
                matmul_into(xb, cent.t(), g.view_mut(), false, false);
                g.rows()
                    .into_iter()
                    .map(|gr| {
                        let mut best = (0u32, f32::INFINITY);
                        for (c, &v) in gr.iter().enumerate() {
                            let dd = cn2[c] - 2.0 * v;
                            if dd < best.1 {
                                best = (c as u32, dd);
                            }
                        }
                        best.0
                    })
                    .collect::<Vec<u32>>()
            })
            .concat();
            for (&i, &l) in sub.iter().zip(&labels) {
                all[i] = l;
            }
            all
        };
        Ok(Clusters {
            rows: rows.to_vec(),
            cluster,
            n_clusters,
            hac_rows: sub.len(),
            config: cfg.clone(),
        })
    }

    /// Cluster of a row, if covered.
    /// [`Clusters::compute`], reusing a clustering cached in `dir` for the same pool, config and
    /// seed, and caching a new one there (a cache that cannot be written is only a warning).
    pub fn cached(
        features: &dyn RowBlocks,
        pool: &[usize],
        cfg: &ClusterConfig,
        seed: u64,
        dir: &Path,
    ) -> Result<Arc<Clusters>> {
        let path = dir.join(format!(
            "clusters-t{}-m{}-s{seed}.json",
            cfg.target_size, cfg.max_hac_rows
        ));
        if path.is_file() {
            if let Ok(c) = Clusters::load(&path) {
                if c.rows == pool && c.config == *cfg {
                    return Ok(Arc::new(c));
                }
            }
        }
        let c = Clusters::compute(features, pool, cfg, seed)?;
        if let Err(e) = c.save(&path) {
            tracing::warn!("cannot cache the clustering at {}: {e:#}", path.display());
        }
        Ok(Arc::new(c))
    }

    pub fn of(&self, row: usize) -> Option<u32> {
        self.rows.binary_search(&row).ok().map(|i| self.cluster[i])
    }

    /// Save as JSON (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::util::atomic_write(path, &serde_json::to_vec(self)?)
    }

    pub fn load(path: &Path) -> Result<Clusters> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a saved clustering", path.display()))
    }
}

#[derive(Debug, Clone)]
pub struct ClusterMargin {
    pub config: ClusterConfig,
    /// k_m = preselect · k lowest-margin rows enter the round robin.
    pub preselect: f64,
    clusters: Option<Arc<Clusters>>,
}

impl Default for ClusterMargin {
    fn default() -> Self {
        ClusterMargin {
            config: ClusterConfig::default(),
            preselect: 10.0,
            clusters: None,
        }
    }
}

impl ClusterMargin {
    /// Use a precomputed (e.g. cached) clustering.
    pub fn with_clusters(clusters: Arc<Clusters>) -> Self {
        ClusterMargin {
            config: clusters.config.clone(),
            clusters: Some(clusters),
            ..Default::default()
        }
    }

    /// The clustering in use (computed on the first `select` when none was given).
    pub fn clusters(&self) -> Option<&Arc<Clusters>> {
        self.clusters.as_ref()
    }

    /// Round robin over clusters, smallest first, one random row per cluster per pass.
    /// `cands` are (candidate index, cluster key); returns candidate indices in pick order.
    pub fn round_robin(cands: &[(usize, u64)], k: usize, seed: u64) -> Vec<usize> {
        let mut groups: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for &(i, c) in cands {
            groups.entry(c).or_default().push(i);
        }
        let mut rng = crate::util::rng(seed);
        let mut order: Vec<(usize, u64, Vec<usize>)> = groups
            .into_iter()
            .map(|(c, mut v)| {
                v.sort_unstable();
                v.shuffle(&mut rng);
                (v.len(), c, v)
            })
            .collect();
        order.sort_by_key(|(len, c, _)| (*len, *c));
        let mut out = Vec::with_capacity(k.min(cands.len()));
        let mut pass = 0;
        while out.len() < k.min(cands.len()) {
            let mut any = false;
            for (_, _, members) in &order {
                if let Some(&i) = members.get(pass) {
                    out.push(i);
                    any = true;
                    if out.len() == k {
                        break;
                    }
                }
            }
            if !any {
                break;
            }
            pass += 1;
        }
        out
    }
}

impl Strategy for ClusterMargin {
    fn name(&self) -> &'static str {
        "cluster-margin"
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        let proxy = round.need_proxy("cluster-margin")?;
        if self.clusters.is_none() {
            let mut pool: Vec<usize> = round
                .unlabelled
                .iter()
                .chain(&round.labelled)
                .copied()
                .collect();
            pool.sort_unstable();
            self.clusters = Some(match round.cache_dir {
                Some(dir) => {
                    Clusters::cached(round.features, &pool, &self.config, round.seed, dir)?
                }
                None => Arc::new(Clusters::compute(
                    round.features,
                    &pool,
                    &self.config,
                    round.seed,
                )?),
            });
        }
        let clusters = self.clusters.as_ref().expect("set above");
        let margins = score_candidates(round, proxy, Measure::Margin);
        let priority: Vec<f32> = margins.iter().map(|&m| -m).collect();
        let km = ((k as f64 * self.preselect).ceil() as usize).max(k);
        let pre = top_k(&priority, km);
        let nc = clusters.n_clusters as u64;
        let keyed: Vec<(usize, u64)> = pre
            .into_iter()
            .map(|i| {
                let row = round.unlabelled[i];
                (i, clusters.of(row).map_or(nc + row as u64, |c| c as u64))
            })
            .collect();
        Ok(Self::round_robin(&keyed, k, round.seed)
            .into_iter()
            .map(|i| Pick {
                row: round.unlabelled[i],
                score: margins[i],
            })
            .collect())
    }
}
