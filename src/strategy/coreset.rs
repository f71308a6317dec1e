//! Core-set (Sener & Savarese, ICLR 2018), greedy k-center: repeatedly pick the candidate
//! farthest from every labelled or already-picked row.
//!
//! State is one running min squared distance per candidate (O(n) memory, no n × n matrix):
//!
//! 1. Initial distances to the labelled set come from tiled matmuls
//!    (||x||² + ||l||² − 2 x·l, a tile of labelled rows at a time, candidates in parallel chunks).
//!    With no labelled rows the first centre is a seeded random candidate.
//! 2. The greedy loop is *lazy*: each candidate remembers how many picks its distance already
//!    accounts for; a max-heap holds the (possibly stale) distances, which are upper bounds since
//!    distances only shrink. The top is brought up to date against the picks it has not seen yet;
//!    if it is still on top it is the exact farthest point and is picked. Rows far from every new
//!    pick are never touched again, so a batch costs far less than k full passes over the pool,
//!    and the result is identical to the textbook O(n·k) loop (ties go to the lower row).
use super::{Pick, Round, Strategy};
use crate::features::map_rows;
use crate::features::RowBlocks;
use crate::numerics::linalg::{matmul_into, row_sq_norms, sq_dist};
use anyhow::Result;
use ndarray::{s, Array2};
use rand::Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Debug, Clone)]
pub struct CoreSet {
    /// Labelled rows per matmul tile when computing the initial distances.
    pub tile: usize,
}

impl Default for CoreSet {
    fn default() -> Self {
        CoreSet { tile: 2048 }
    }
}

/// Squared distance from each of `rows` (sorted) to its nearest row among `centres`.
pub fn min_dist2(
    features: &dyn RowBlocks,
    rows: &[usize],
    centres: &[usize],
    tile: usize,
) -> Vec<f32> {
    if centres.is_empty() {
        return vec![f32::INFINITY; rows.len()];
    }
    let cm = features.gather(centres);
    let cn2 = row_sq_norms(cm.view());
    let tile = tile.max(1);
    map_rows(features, rows, |_, x| {
        let xn2 = row_sq_norms(x);
        let mut best = vec![f32::INFINITY; x.nrows()];
        let mut prod = Array2::<f32>::zeros((x.nrows(), tile.min(cm.nrows())));
        for t0 in (0..cm.nrows()).step_by(tile) {
            let t1 = (t0 + tile).min(cm.nrows());
            let mut pv = prod.slice_mut(s![.., ..t1 - t0]);
            matmul_into(x, cm.slice(s![t0..t1, ..]).t(), pv.view_mut(), false, false);
            for (r, b) in best.iter_mut().enumerate() {
                let xr = xn2[r];
                let pr = pv.row(r);
                for (c, &pc) in pr.iter().enumerate() {
                    let d = xr + cn2[t0 + c] - 2.0 * pc;
                    if d < *b {
                        *b = d;
                    }
                }
            }
        }
        best.iter_mut().for_each(|b| *b = b.max(0.0));
        best
    })
    .concat()
}

impl CoreSet {
    /// Greedy k-center picks over `round.unlabelled`: (candidate index, distance when picked).
    pub fn greedy(&self, round: &Round, k: usize) -> Vec<(usize, f32)> {
        let cand = &round.unlabelled;
        let n = cand.len();
        let k = k.min(n);
        if k == 0 {
            return Vec::new();
        }
        let f = round.features;
        let mut d2 = min_dist2(f, cand, &round.labelled, self.tile);
        let mut picks: Vec<(usize, f32)> = Vec::with_capacity(k);
        let mut pick_rows: Vec<usize> = Vec::with_capacity(k);
        let mut ev = vec![0u32; n];
        let mut heap: BinaryHeap<(u32, Reverse<u32>)> = BinaryHeap::with_capacity(n);
        let mut taken = vec![false; n];
        if round.labelled.is_empty() {
            let first = crate::util::rng(round.seed).random_range(0..n);
            picks.push((first, f32::INFINITY));
            pick_rows.push(cand[first]);
            taken[first] = true;
        }
        for i in 0..n {
            if !taken[i] {
                heap.push((d2[i].to_bits(), Reverse(i as u32)));
            }
        }
        while picks.len() < k {
            let Some(&(_, Reverse(top))) = heap.peek() else {
                break;
            };
            let i = top as usize;
            heap.pop();
            if ev[i] as usize == pick_rows.len() {
                picks.push((i, d2[i].sqrt()));
                pick_rows.push(cand[i]);
                continue;
            }
            let xi = f.row(cand[i]);
            for &p in &pick_rows[ev[i] as usize..] {
                let d = sq_dist(xi.as_ref(), f.row(p).as_ref());
                if d < d2[i] {
                    d2[i] = d;
                }
            }
            ev[i] = pick_rows.len() as u32;
            heap.push((d2[i].to_bits(), Reverse(top)));
        }
        picks
    }
}

impl Strategy for CoreSet {
    fn name(&self) -> &'static str {
        "coreset"
    }
    fn needs_proxy(&self) -> bool {
        false
    }
    fn select(&mut self, round: &Round, k: usize) -> Result<Vec<Pick>> {
        Ok(self
            .greedy(round, k)
            .into_iter()
            .map(|(i, d)| Pick {
                row: round.unlabelled[i],
                score: d,
            })
            .collect())
    }
}
