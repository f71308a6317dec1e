//! Cold start without labels: k-means typicality (TypiClust-style, Hacohen et al. 2022).
//!
//! Cluster a seeded subsample of the pool into k clusters (k-means++ seeding, Lloyd
//! iterations with matmul assignments), then take from each cluster its most *typical* row:
//! typicality = 1 / mean distance to its `knn` nearest neighbours inside the cluster. Dense,
//! representative rows first; clusters that end up empty are made up by random rows.
use super::{Pick, Round, Strategy};
use crate::numerics::linalg::sq_dist;
use anyhow::Result;
use ndarray::Array2;
use rand::Rng;

#[derive(Debug, Clone)]
pub struct Typicality {
    /// Most rows clustered (a seeded subsample of the pool beyond that).
    pub max_rows: usize,
    pub iterations: usize,
    pub knn: usize,
}

impl Default for Typicality {
    fn default() -> Self {
        Typicality {
            max_rows: 20_000,
            iterations: 10,
            knn: 20,
        }
    }
}

/// k-means on the rows of `x`: k-means++ seeding, then Lloyd iterations ([`super::ivf::lloyd`]).
/// Returns labels.
pub fn kmeans(x: &Array2<f32>, k: usize, iterations: usize, rng: &mut impl Rng) -> Vec<u32> {
    let n = x.nrows();
    let k = k.clamp(1, n.max(1));
    let row = |i: usize| x.row(i).to_slice().expect("owned rows are contiguous");
    let mut centres = Array2::<f32>::zeros((k, x.ncols()));
    let first = rng.random_range(0..n);
    centres.row_mut(0).assign(&x.row(first));
    let mut d2: Vec<f64> = (0..n).map(|i| sq_dist(row(i), row(first)) as f64).collect();
    for c in 1..k {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut acc = 0.0;
            let mut p = n - 1;
            for (i, &w) in d2.iter().enumerate() {
                acc += w;
                if acc > target {
                    p = i;
                    break;
                }
            }
            p
        } else {
            rng.random_range(0..n)
        };
        centres.row_mut(c).assign(&x.row(pick));
        for (i, v) in d2.iter_mut().enumerate() {
            *v = v.min(sq_dist(row(i), row(pick)) as f64);
        }
    }
    super::ivf::lloyd(x, centres, iterations, rng).1
}

impl Strategy for Typicality {
    fn name(&self) -> &'static str {
        "typicality"
    }
    fn needs_proxy(&self) -> bool {
        false
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        let n = round.unlabelled.len();
        let k = k.min(n);
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut rng = crate::util::rng(round.seed);
        let sub: Vec<usize> = if n > self.max_rows.max(k) {
            let mut s = rand::seq::index::sample(&mut rng, n, self.max_rows.max(k)).into_vec();
            s.sort_unstable();
            s
        } else {
            (0..n).collect()
        };
        let rows: Vec<usize> = sub.iter().map(|&i| round.unlabelled[i]).collect();
        let x = round.features.gather(&rows);
        let labels = kmeans(&x, k, self.iterations, &mut rng);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (i, &l) in labels.iter().enumerate() {
            members[l as usize].push(i);
        }
        let mut picks: Vec<Pick> = Vec::with_capacity(k);
        let mut taken = vec![false; n];
        let slice = |i: usize| x.row(i).to_slice().expect("owned rows are contiguous");
        for m in members.iter().filter(|m| !m.is_empty()) {
            // Typicality against at most 512 seeded members of the cluster keeps this O(n·512·d).
            let refs: Vec<usize> = if m.len() > 512 {
                rand::seq::index::sample(&mut rng, m.len(), 512)
                    .into_iter()
                    .map(|t| m[t])
                    .collect()
            } else {
                m.clone()
            };
            let mut best = (m[0], f32::NEG_INFINITY);
            for &i in m {
                let mut ds: Vec<f32> = refs
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| sq_dist(slice(i), slice(j)).sqrt())
                    .collect();
                let kk = self.knn.min(ds.len());
                let typ = if kk == 0 {
                    0.0
                } else {
                    ds.select_nth_unstable_by(kk - 1, f32::total_cmp);
                    let mean = ds[..kk].iter().sum::<f32>() / kk as f32;
                    1.0 / (mean + 1e-12)
                };
                if typ > best.1 {
                    best = (i, typ);
                }
            }
            taken[sub[best.0]] = true;
            picks.push(Pick {
                row: rows[best.0],
                score: best.1,
            });
        }
        // Empty clusters: fill up with random rows not taken yet.
        while picks.len() < k {
            let i = rng.random_range(0..n);
            if !taken[i] {
                taken[i] = true;
                picks.push(Pick {
                    row: round.unlabelled[i],
                    score: 0.0,
                });
            }
        }
        picks.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        Ok(picks)
    }
}
