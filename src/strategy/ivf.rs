//! An inverted-file (IVF) index over a feature version, for candidate subpooling at pool sizes
//! where the exhaustive strategies stop fitting in a round (`subpool.rs`).
//!
//! Build: k-means (random initial centres, Lloyd iterations) on a seeded sample of
//! `train_per_cell` rows per cell, then every row assigned to its nearest centre, kept as
//! inverted lists (the rows of each cell, ascending). A query probes its `nprobe` nearest cells
//! and scans their rows only, so a k-nearest-neighbour query reads about nprobe · n / cells rows
//! instead of n (with cells ≈ √n, √n-ish per query). Built once per feature version and cached
//! as one binary file beside the version when the round has a cache directory.
use crate::features::{map_rows, RowBlocks};
use crate::numerics::linalg::matmul_into;
use crate::numerics::nearest::Centres;
use anyhow::{bail, Context, Result};
use ndarray::Array2;
use rand::Rng;
use rayon::prelude::*;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IvfConfig {
    /// Cells; 0: √n, clamped to 16..=4096.
    pub cells: usize,
    /// k-means trains on this many sampled rows per cell.
    pub train_per_cell: usize,
    pub iterations: usize,
}

impl Default for IvfConfig {
    fn default() -> Self {
        IvfConfig {
            cells: 0,
            train_per_cell: 48,
            iterations: 8,
        }
    }
}

impl IvfConfig {
    /// The number of cells for `n` rows.
    pub fn cells_for(&self, n: usize) -> usize {
        let c = if self.cells > 0 {
            self.cells
        } else {
            ((n as f64).sqrt().round() as usize).clamp(16, 4096)
        };
        c.clamp(1, n.max(1))
    }
}

/// Lloyd iterations from the given centres; returns the final centres and each row's cell.
/// Deterministic: sums are accumulated in row order. A cell left empty takes a seeded random
/// row.
pub fn lloyd(
    x: &Array2<f32>,
    mut centres: Array2<f32>,
    iterations: usize,
    rng: &mut impl Rng,
) -> (Array2<f32>, Vec<u32>) {
    let assign = |c: &Array2<f32>| -> Vec<u32> {
        let cs = Centres::new(c.clone());
        let starts: Vec<usize> = (0..x.nrows()).step_by(1024).collect();
        starts
            .into_par_iter()
            .flat_map_iter(|s| {
                let b = x.slice(ndarray::s![s..(s + 1024).min(x.nrows()), ..]);
                cs.nearest(b).into_iter().map(|(c, _)| c)
            })
            .collect()
    };
    let k = centres.nrows();
    let mut labels = assign(&centres);
    for _ in 0..iterations {
        let mut sums = Array2::<f32>::zeros(centres.dim());
        let mut cnt = vec![0usize; k];
        for (i, &l) in labels.iter().enumerate() {
            let mut s = sums.row_mut(l as usize);
            s += &x.row(i);
            cnt[l as usize] += 1;
        }
        for (c, &m) in cnt.iter().enumerate() {
            if m > 0 {
                let mean = &sums.row(c) / m as f32;
                centres.row_mut(c).assign(&mean);
            } else if x.nrows() > 0 {
                centres
                    .row_mut(c)
                    .assign(&x.row(rng.random_range(0..x.nrows())));
            }
        }
        let next = assign(&centres);
        if next == labels {
            break;
        }
        labels = next;
    }
    (centres, labels)
}

/// A fingerprint of a feature version's contents: its shape and 64 evenly spaced rows.
pub fn fingerprint(features: &dyn RowBlocks) -> u64 {
    use sha2::{Digest, Sha256};
    let n = features.n_rows();
    let mut h = Sha256::new();
    h.update((n as u64).to_le_bytes());
    h.update((features.dim() as u64).to_le_bytes());
    if n > 0 {
        for i in 0..64 {
            let r = (i * (n - 1)) / 63;
            for v in features.row(r).iter() {
                h.update(v.to_bits().to_le_bytes());
            }
        }
    }
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// The index: centres and, per cell, its rows.
#[derive(Debug)]
pub struct IvfIndex {
    centres: Centres,
    /// Rows of cell c: `members[offsets[c]..offsets[c + 1]]`, ascending.
    offsets: Vec<usize>,
    members: Vec<u32>,
    pub fingerprint: u64,
    /// Seconds the build took (0 when loaded from the cache).
    pub build_seconds: f64,
}

const MAGIC: &[u8; 8] = b"PXIVF001";
/// Rows of a cell scored per product in a k-NN query.
const KNN_TILE: usize = 4096;

impl IvfIndex {
    /// Build the index over every row of `features`.
    pub fn build(features: &dyn RowBlocks, cfg: &IvfConfig, seed: u64) -> Result<IvfIndex> {
        let t = std::time::Instant::now();
        let n = features.n_rows();
        if n == 0 {
            bail!("cannot index an empty feature version");
        }
        if n > u32::MAX as usize {
            bail!("{n} rows: the index stores row ids as 32-bit");
        }
        let cells = cfg.cells_for(n);
        let mut rng = crate::util::rng(seed ^ 0x1f_1f);
        let m = (cells * cfg.train_per_cell.max(1)).min(n);
        let mut sample = rand::seq::index::sample(&mut rng, n, m).into_vec();
        sample.sort_unstable();
        let x = features.gather(&sample);
        let init: Vec<usize> = rand::seq::index::sample(&mut rng, m, cells).into_vec();
        let mut c0 = Array2::<f32>::zeros((cells, features.dim()));
        for (j, &i) in init.iter().enumerate() {
            c0.row_mut(j).assign(&x.row(i));
        }
        tracing::info!("IVF index: k-means of {cells} cells on {m} sampled rows");
        let (centres, _) = lloyd(&x, c0, cfg.iterations, &mut rng);
        drop(x);
        let centres = Centres::new(centres);
        tracing::info!("IVF index: assigning {n} rows to {cells} cells");
        let all: Vec<usize> = (0..n).collect();
        let cell: Vec<u32> = map_rows(features, &all, |_, xb| {
            centres
                .nearest(xb)
                .into_iter()
                .map(|(c, _)| c)
                .collect::<Vec<u32>>()
        })
        .concat();
        let mut offsets = vec![0usize; cells + 1];
        for &c in &cell {
            offsets[c as usize + 1] += 1;
        }
        for c in 0..cells {
            offsets[c + 1] += offsets[c];
        }
        let mut fill = offsets.clone();
        let mut members = vec![0u32; n];
        for (r, &c) in cell.iter().enumerate() {
            members[fill[c as usize]] = r as u32;
            fill[c as usize] += 1;
        }
        Ok(IvfIndex {
            centres,
            offsets,
            members,
            fingerprint: fingerprint(features),
            build_seconds: t.elapsed().as_secs_f64(),
        })
    }

    /// [`IvfIndex::build`], reusing the index cached in `dir` for the same contents, config and
    /// seed, and caching a new one there (a cache that cannot be written is only a warning).
    pub fn cached(
        features: &dyn RowBlocks,
        cfg: &IvfConfig,
        seed: u64,
        dir: &Path,
    ) -> Result<IvfIndex> {
        let fp = fingerprint(features);
        let path = dir.join(format!(
            "ivf-c{}-t{}-i{}-s{seed}-{fp:016x}.bin",
            cfg.cells_for(features.n_rows()),
            cfg.train_per_cell,
            cfg.iterations
        ));
        if path.is_file() {
            match IvfIndex::load(&path) {
                Ok(ix) if ix.fingerprint == fp && ix.n_rows() == features.n_rows() => {
                    return Ok(ix)
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("rebuilding the IVF index: {e:#}"),
            }
        }
        let ix = IvfIndex::build(features, cfg, seed)?;
        if let Err(e) = std::fs::create_dir_all(dir)
            .map_err(anyhow::Error::from)
            .and_then(|_| ix.save(&path))
        {
            tracing::warn!("cannot cache the IVF index at {}: {e:#}", path.display());
        }
        Ok(ix)
    }

    pub fn n_rows(&self) -> usize {
        self.members.len()
    }

    pub fn cells(&self) -> usize {
        self.centres.len()
    }

    /// The rows of cell `c`, ascending.
    pub fn members(&self, c: usize) -> &[u32] {
        &self.members[self.offsets[c]..self.offsets[c + 1]]
    }

    /// For each query row, its `k` nearest rows (squared distance, row; nearest first) among
    /// the rows of its `nprobe` nearest cells that `keep` accepts.
    pub fn knn(
        &self,
        features: &dyn RowBlocks,
        queries: &[usize],
        k: usize,
        nprobe: usize,
        keep: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<Vec<(f32, usize)>> {
        if queries.is_empty() || k == 0 {
            return vec![Vec::new(); queries.len()];
        }
        let q = features.gather(queries);
        let probes = self.centres.nearest_n(q.view(), nprobe.max(1));
        // Queries per cell, so each probed cell's rows are read once.
        let mut by_cell: Vec<Vec<u32>> = vec![Vec::new(); self.cells()];
        for (qi, ps) in probes.iter().enumerate() {
            for &c in ps {
                by_cell[c as usize].push(qi as u32);
            }
        }
        let work: Vec<(usize, &Vec<u32>)> = by_cell
            .iter()
            .enumerate()
            .filter(|(_, qs)| !qs.is_empty())
            .collect();
        let found: Vec<Vec<(u32, f32, usize)>> = work
            .into_par_iter()
            .map(|(c, qs)| {
                let rows: Vec<usize> = self
                    .members(c)
                    .iter()
                    .map(|&r| r as usize)
                    .filter(|&r| keep(r))
                    .collect();
                if rows.is_empty() {
                    return Vec::new();
                }
                let qi: Vec<usize> = qs.iter().map(|&i| i as usize).collect();
                let qm = q.select(ndarray::Axis(0), &qi);
                let qn2: Vec<f32> = qm
                    .rows()
                    .into_iter()
                    .map(|r| r.iter().map(|v| v * v).sum())
                    .collect();
                // The cell's rows a tile at a time (a lopsided cell cannot make one huge
                // distance matrix), keeping each query's k nearest so far.
                let mut best: Vec<Vec<(f32, usize)>> = vec![Vec::new(); qm.nrows()];
                for tile in rows.chunks(KNN_TILE) {
                    let xm = features.gather(tile);
                    let xn2: Vec<f32> = xm
                        .rows()
                        .into_iter()
                        .map(|r| r.iter().map(|v| v * v).sum())
                        .collect();
                    let mut g = Array2::<f32>::zeros((qm.nrows(), tile.len()));
                    matmul_into(qm.view(), xm.t(), g.view_mut(), false, false);
                    for ((gr, b), &qn) in g.rows().into_iter().zip(&mut best).zip(&qn2) {
                        b.extend(
                            gr.iter()
                                .zip(&xn2)
                                .zip(tile)
                                .map(|((&p, &xn), &r)| ((qn + xn - 2.0 * p).max(0.0), r)),
                        );
                        nearest_first(b, k);
                    }
                }
                best.into_iter()
                    .enumerate()
                    .flat_map(|(j, b)| b.into_iter().map(move |(dd, r)| (qs[j], dd, r)))
                    .collect()
            })
            .collect();
        let mut per_query: Vec<Vec<(f32, usize)>> = vec![Vec::new(); queries.len()];
        for (qi, d, r) in found.into_iter().flatten() {
            per_query[qi as usize].push((d, r));
        }
        for v in &mut per_query {
            nearest_first(v, k);
        }
        per_query
    }

    /// Save as one binary file (atomically): magic, fingerprint, cells, dim, rows, then the
    /// centres (f32), offsets (u64) and members (u32), little-endian.
    pub fn save(&self, path: &Path) -> Result<()> {
        let c = self.centres.view();
        let mut b: Vec<u8> =
            Vec::with_capacity(32 + c.len() * 4 + self.offsets.len() * 8 + self.members.len() * 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.fingerprint.to_le_bytes());
        for v in [c.nrows(), c.ncols(), self.members.len()] {
            b.extend_from_slice(&(v as u64).to_le_bytes());
        }
        c.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
        self.offsets
            .iter()
            .for_each(|&v| b.extend_from_slice(&(v as u64).to_le_bytes()));
        self.members
            .iter()
            .for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
        crate::util::atomic_write(path, &b)
    }

    pub fn load(path: &Path) -> Result<IvfIndex> {
        let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let bad = || anyhow::anyhow!("{}: not a saved IVF index", path.display());
        if b.len() < 40 || &b[..8] != MAGIC {
            return Err(bad());
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let fp = u64_at(8);
        let (k, d, n) = (
            u64_at(16) as usize,
            u64_at(24) as usize,
            u64_at(32) as usize,
        );
        let want = k
            .checked_mul(d)
            .and_then(|kd| kd.checked_mul(4))
            .and_then(|c| c.checked_add(k.checked_add(1)?.checked_mul(8)?))
            .and_then(|c| c.checked_add(n.checked_mul(4)?))
            .and_then(|c| c.checked_add(40));
        if want != Some(b.len()) {
            return Err(bad());
        }
        let mut o = 40;
        let c: Vec<f32> = b[o..o + k * d * 4]
            .chunks_exact(4)
            .map(|x| f32::from_le_bytes(x.try_into().expect("4 bytes")))
            .collect();
        o += k * d * 4;
        let offsets: Vec<usize> = b[o..o + (k + 1) * 8]
            .chunks_exact(8)
            .map(|x| u64::from_le_bytes(x.try_into().expect("8 bytes")) as usize)
            .collect();
        o += (k + 1) * 8;
        let members: Vec<u32> = b[o..]
            .chunks_exact(4)
            .map(|x| u32::from_le_bytes(x.try_into().expect("4 bytes")))
            .collect();
        if offsets.first() != Some(&0)
            || offsets.last() != Some(&n)
            || offsets.windows(2).any(|w| w[0] > w[1])
            || members.iter().any(|&r| r as usize >= n)
        {
            return Err(bad());
        }
        Ok(IvfIndex {
            centres: Centres::new(Array2::from_shape_vec((k, d), c).map_err(|_| bad())?),
            offsets,
            members,
            fingerprint: fp,
            build_seconds: 0.0,
        })
    }
}

/// Keep the `k` smallest (distance, row) pairs, sorted (ties: the lower row).
fn nearest_first(v: &mut Vec<(f32, usize)>, k: usize) {
    let cmp = |a: &(f32, usize), b: &(f32, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if v.len() > k && k > 0 {
        v.select_nth_unstable_by(k - 1, cmp);
    }
    v.truncate(k);
    v.sort_unstable_by(cmp);
}
