//! BADGE (Ash et al., ICLR 2020): k-means++ seeding over gradient embeddings
//! g_i = (p_i − onehot(ŷ_i)) ⊗ x_i, where x_i is the input of the proxy's last linear layer
//! (the features for logistic regression, the hidden activations for the MLP).
//!
//! g is never materialised (it would be n × C·d): with q_i = p_i − onehot(ŷ_i),
//!
//! ```text
//! ⟨g_i, g_j⟩ = ⟨q_i, q_j⟩ · ⟨x_i, x_j⟩,   ||g_i||² = ||q_i||² · ||x_i||²,
//! D²(i, c) = ||g_i||² + ||g_c||² − 2 ⟨q_i, q_c⟩⟨x_i, x_c⟩ .
//! ```
//!
//! Memory: q (n × C), two norms and one running D² per row, and the features read from the
//! store: O(n · (C + d)) at most, never O(n · C · d) or O(n²).
//!
//! The first centre is the row with the largest gradient norm (as in the reference
//! implementation); each further centre is drawn with probability D²_i / Σ D², exactly.
//!
//! Speed: the textbook loop updates every row's D² after every centre — one memory-bound pass
//! over n × (d + C) per pick. Here the centres picked since the last pass are kept *pending*, the
//! stored D² values are upper bounds, and a centre is drawn by rejection sampling: propose i with
//! probability ∝ U_i (a Fenwick tree), compute its exact D²_i against the pending centres, accept
//! with probability D²_i / U_i (else tighten U_i to D²_i). Accepted draws are exactly
//! D²-distributed. Every `refresh_every` centres all rows are updated against the pending batch
//! at once, which turns the work into compute-bound matmuls.
use super::{Pick, Round, Strategy};
use crate::features::map_rows;
use crate::features::row_cow;
use crate::features::RowBlocks;
use crate::numerics::argmax_rows;
use crate::numerics::linalg::{dot, matmul_into, row_sq_norms};
use crate::proxy::map_proba;
use anyhow::Result;
use ndarray::{s, Array2};
use rand::Rng;

#[derive(Debug, Clone)]
pub struct Badge {
    /// Centres picked between two batched refreshes of every row's D².
    pub refresh_every: usize,
    /// Reference mode for cross-checks: draw centre j+1 by inverse CDF on these uniforms in
    /// [0, 1) (what numpy's `RandomState.choice(p=…)` does), updating every row's D² after every
    /// centre. Exact and RNG-compatible, but memory-bound: for tests and the peer check.
    pub uniforms: Option<Vec<f64>>,
    /// Treat the zero vector as an extra initial centre, so D²_i ≤ ||g_i||² from the start (a
    /// confident row, g ≈ 0, counts as covered). scikit-activeml's BADGE does this; the original
    /// BADGE code does not (default: off).
    pub origin_centre: bool,
}

impl Default for Badge {
    fn default() -> Self {
        Badge {
            refresh_every: 64,
            uniforms: None,
            origin_centre: false,
        }
    }
}

/// Gradient-embedding factors of the candidates: q (n × C), ||g||², and where x lives.
pub struct GradEmbedding<'a> {
    pub q: Array2<f32>,
    pub g2: Vec<f32>,
    emb_owned: Option<Array2<f32>>,
    features: &'a dyn RowBlocks,
    rows: Vec<usize>,
}

impl<'a> GradEmbedding<'a> {
    /// Compute q and the norms for `round.unlabelled` with the round's proxy.
    pub fn new(round: &Round<'a>, proxy: &dyn crate::proxy::Proxy) -> GradEmbedding<'a> {
        let cand = &round.unlabelled;
        let c = proxy.n_classes();
        type Part = (Array2<f32>, Vec<f32>, Option<Array2<f32>>);
        let parts: Vec<Part> = map_proba(proxy, round.features, cand, |_, x, p| {
            let mut q = p.to_owned();
            for ((y, _), mut row) in argmax_rows(p).into_iter().zip(q.rows_mut()) {
                row[y as usize] -= 1.0;
            }
            let emb = proxy.penultimate(x);
            let xn2 = match &emb {
                Some(e) => row_sq_norms(e.view()),
                None => row_sq_norms(x),
            };
            let qn2 = row_sq_norms(q.view());
            let g2 = xn2.iter().zip(qn2.iter()).map(|(a, b)| a * b).collect();
            (q, g2, emb)
        });
        let n = cand.len();
        let mut q = Array2::<f32>::zeros((n, c));
        let mut g2 = Vec::with_capacity(n);
        let owned = parts.first().is_some_and(|p| p.2.is_some());
        let mut emb = if owned {
            Some(Array2::<f32>::zeros((
                n,
                parts[0].2.as_ref().map_or(0, |e| e.ncols()),
            )))
        } else {
            None
        };
        let mut at = 0;
        for (pq, pg, pe) in parts {
            let m = pq.nrows();
            q.slice_mut(s![at..at + m, ..]).assign(&pq);
            g2.extend(pg);
            if let (Some(e), Some(pe)) = (emb.as_mut(), pe) {
                e.slice_mut(s![at..at + m, ..]).assign(&pe);
            }
            at += m;
        }
        let rows = if emb.is_some() {
            (0..n).collect()
        } else {
            cand.clone()
        };
        GradEmbedding {
            q,
            g2,
            emb_owned: emb,
            features: round.features,
            rows,
        }
    }

    fn emb(&self) -> &dyn RowBlocks {
        match &self.emb_owned {
            Some(e) => e,
            None => self.features,
        }
    }

    pub fn len(&self) -> usize {
        self.g2.len()
    }

    pub fn is_empty(&self) -> bool {
        self.g2.is_empty()
    }

    /// ⟨g_i, g_j⟩ computed implicitly.
    pub fn inner(&self, i: usize, j: usize) -> f32 {
        let e = self.emb();
        let xi = e.row(self.rows[i]);
        let xj = e.row(self.rows[j]);
        let qq = dot(
            row_cow(self.q.row(i)).as_ref(),
            row_cow(self.q.row(j)).as_ref(),
        );
        qq * dot(xi.as_ref(), xj.as_ref())
    }

    /// ||g_i − g_j||² computed implicitly (clamped at 0).
    pub fn dist2(&self, i: usize, j: usize) -> f32 {
        (self.g2[i] + self.g2[j] - 2.0 * self.inner(i, j)).max(0.0)
    }

    /// The explicit embedding g_i (C·d values, class-major): for tests on small cases only.
    pub fn explicit(&self, i: usize) -> Vec<f32> {
        let x = self.emb().row(self.rows[i]).into_owned();
        self.q
            .row(i)
            .iter()
            .flat_map(|&qc| x.iter().map(move |&xv| qc * xv))
            .collect()
    }

    /// Minimum D² from every candidate to the given centres (candidate indices), in one
    /// batched pass: two matmuls per chunk, in parallel over chunks.
    fn min_dist2_to(&self, centres: &[usize]) -> Vec<f32> {
        let e = self.emb();
        let m = centres.len();
        let xc = e.gather(&centres.iter().map(|&c| self.rows[c]).collect::<Vec<_>>());
        let qc = Array2::from_shape_fn((m, self.q.ncols()), |(a, b)| self.q[[centres[a], b]]);
        let g2c: Vec<f32> = centres.iter().map(|&c| self.g2[c]).collect();
        let parts = map_rows(e, &self.rows, |rs, x| {
            let off = self
                .rows
                .binary_search(&rs[0])
                .expect("chunk rows come from self.rows");
            let len = rs.len();
            let mut xx = Array2::<f32>::zeros((len, m));
            matmul_into(x, xc.t(), xx.view_mut(), false, false);
            let mut qq = Array2::<f32>::zeros((len, m));
            matmul_into(
                self.q.slice(s![off..off + len, ..]),
                qc.t(),
                qq.view_mut(),
                false,
                false,
            );
            (0..len)
                .map(|r| {
                    let gi = self.g2[off + r];
                    let mut best = f32::INFINITY;
                    for c in 0..m {
                        let d = gi + g2c[c] - 2.0 * qq[[r, c]] * xx[[r, c]];
                        best = best.min(d);
                    }
                    best.max(0.0)
                })
                .collect::<Vec<f32>>()
        });
        parts.concat()
    }
}

/// A Fenwick (binary indexed) tree over non-negative f64 weights: O(log n) update and draw.
struct Fenwick {
    tree: Vec<f64>,
    w: Vec<f64>,
}

impl Fenwick {
    fn new(w: Vec<f64>) -> Fenwick {
        let n = w.len();
        let mut tree = vec![0.0; n + 1];
        for i in 0..n {
            tree[i + 1] += w[i];
            let j = i + 1 + ((i + 1) & (i + 1).wrapping_neg());
            if j <= n {
                tree[j] += tree[i + 1];
            }
        }
        Fenwick { tree, w }
    }
    fn set(&mut self, i: usize, v: f64) {
        let delta = v - self.w[i];
        self.w[i] = v;
        let mut j = i + 1;
        while j < self.tree.len() {
            self.tree[j] += delta;
            j += j & j.wrapping_neg();
        }
    }
    fn total(&self) -> f64 {
        self.w.iter().sum()
    }
    /// Smallest i whose prefix sum exceeds `u` (u in [0, total)).
    fn find(&self, mut u: f64) -> usize {
        let n = self.w.len();
        let mut pos = 0;
        let mut step = n.next_power_of_two();
        while step > 0 {
            if pos + step <= n && self.tree[pos + step] <= u {
                pos += step;
                u -= self.tree[pos];
            }
            step >>= 1;
        }
        pos.min(n - 1)
    }
}

/// Index of the largest value, lowest index on ties.
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

impl Badge {
    /// k-means++ over the gradient embedding; returns (candidate index, D² when drawn).
    pub fn seed_centres(&self, ge: &GradEmbedding, k: usize, seed: u64) -> Vec<(usize, f32)> {
        let n = ge.len();
        let k = k.min(n);
        if k == 0 {
            return Vec::new();
        }
        let mut rng = crate::util::rng(seed);
        let first = argmax(&ge.g2);
        let mut picks = vec![(first, ge.g2[first])];
        let mut chosen = vec![false; n];
        chosen[first] = true;
        let mut d2 = ge.min_dist2_to(&[first]);
        if self.origin_centre {
            d2.iter_mut().zip(&ge.g2).for_each(|(d, &g)| *d = d.min(g));
        }
        d2[first] = 0.0;
        if let Some(us) = &self.uniforms {
            // Reference path: exact D² everywhere, inverse-CDF draws on the given uniforms.
            for j in 0..k - 1 {
                let u = us.get(j).copied().unwrap_or_else(|| rng.random::<f64>());
                let total: f64 = d2.iter().map(|&v| v as f64).sum();
                let weights: Vec<f64> = if total > 0.0 {
                    d2.iter().map(|&v| v as f64).collect()
                } else {
                    chosen.iter().map(|&c| if c { 0.0 } else { 1.0 }).collect()
                };
                let tot: f64 = weights.iter().sum();
                let target = u * tot;
                let mut acc = 0.0;
                let mut pick = n - 1;
                for (i, &w) in weights.iter().enumerate() {
                    acc += w;
                    if acc > target {
                        pick = i;
                        break;
                    }
                }
                picks.push((pick, d2[pick]));
                chosen[pick] = true;
                let upd = ge.min_dist2_to(&[pick]);
                for (i, v) in d2.iter_mut().enumerate() {
                    *v = if chosen[i] { 0.0 } else { v.min(upd[i]) };
                }
            }
            return picks;
        }
        let mut fw = Fenwick::new(d2.iter().map(|&v| v as f64).collect());
        let mut pending: Vec<usize> = Vec::new();
        let mut rejections = 0usize;
        let refresh = |fw: &mut Fenwick, pending: &mut Vec<usize>, chosen: &[bool]| {
            let upd = ge.min_dist2_to(pending);
            let w: Vec<f64> = (0..n)
                .map(|i| {
                    if chosen[i] {
                        0.0
                    } else {
                        fw.w[i].min(upd[i] as f64)
                    }
                })
                .collect();
            *fw = Fenwick::new(w);
            pending.clear();
        };
        while picks.len() < k {
            let total = fw.total();
            if total <= 0.0 || !total.is_finite() {
                // Every remaining row coincides with a centre: draw uniformly among them.
                let rest: Vec<usize> = (0..n).filter(|&i| !chosen[i]).collect();
                let i = rest[rng.random_range(0..rest.len())];
                picks.push((i, 0.0));
                chosen[i] = true;
                fw.set(i, 0.0);
                continue;
            }
            let i = fw.find(rng.random::<f64>() * total);
            let ui = fw.w[i];
            if chosen[i] || ui <= 0.0 {
                // The tree's sums drift from `w` through many updates; where the weight left is
                // below that drift (rows all but on their centres) the draws keep landing on
                // chosen rows: rebuild the tree from the weights.
                rejections += 1;
                if rejections > 64 {
                    if pending.is_empty() {
                        fw = Fenwick::new(std::mem::take(&mut fw.w));
                    } else {
                        refresh(&mut fw, &mut pending, &chosen);
                    }
                    rejections = 0;
                }
                continue;
            }
            let mut exact = ui;
            for &c in &pending {
                exact = exact.min(ge.dist2(i, c) as f64);
            }
            if rng.random::<f64>() * ui < exact {
                picks.push((i, exact as f32));
                chosen[i] = true;
                fw.set(i, 0.0);
                pending.push(i);
                rejections = 0;
                if pending.len() >= self.refresh_every.max(1) {
                    refresh(&mut fw, &mut pending, &chosen);
                }
            } else {
                fw.set(i, exact);
                rejections += 1;
                if rejections > 64 && !pending.is_empty() {
                    refresh(&mut fw, &mut pending, &chosen);
                    rejections = 0;
                }
            }
        }
        picks
    }
}

impl Strategy for Badge {
    fn name(&self) -> &'static str {
        "badge"
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        let proxy = round.need_proxy("badge")?;
        let ge = GradEmbedding::new(round, proxy);
        Ok(self
            .seed_centres(&ge, k, round.seed)
            .into_iter()
            .map(|(i, d2)| Pick {
                row: round.unlabelled[i],
                score: d2,
            })
            .collect())
    }
}
