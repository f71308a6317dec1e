//! Synthetic Gaussian-mixture features for tests and benchmarks (deterministic under a seed,
//! generated in parallel chunks with one RNG stream per chunk). A test fixture, not part of the
//! library: the integration tests and `bench_select` include this file by path.
#![allow(dead_code)]
use ndarray::Array2;
use rand::Rng;
use rayon::prelude::*;

/// A mixture of `classes` Gaussians in `dim` dimensions.
///
/// Class centres are N(0, I)·`separation`/√dim (so ‖μ_c‖ ≈ `separation`); a row of class c is
/// μ_c + N(0, I)·`noise`/√dim. Rows cycle through classes in a seeded random order.
#[derive(Debug, Clone)]
pub struct Mixture {
    pub dim: usize,
    pub classes: usize,
    pub separation: f32,
    pub noise: f32,
    pub seed: u64,
}

/// Standard normal draws by Box–Muller.
pub fn fill_normal(rng: &mut impl Rng, out: &mut [f32]) {
    let mut i = 0;
    while i < out.len() {
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out[i] = (r * t.cos()) as f32;
        if i + 1 < out.len() {
            out[i + 1] = (r * t.sin()) as f32;
        }
        i += 2;
    }
}

impl Mixture {
    pub fn new(dim: usize, classes: usize, separation: f32, noise: f32, seed: u64) -> Mixture {
        Mixture {
            dim,
            classes,
            separation,
            noise,
            seed,
        }
    }

    /// The class centres (classes × dim).
    pub fn centres(&self) -> Array2<f32> {
        let mut rng = proxal::util::rng(self.seed);
        let mut c = vec![0.0f32; self.classes * self.dim];
        fill_normal(&mut rng, &mut c);
        let s = self.separation / (self.dim as f32).sqrt();
        c.iter_mut().for_each(|v| *v *= s);
        Array2::from_shape_vec((self.classes, self.dim), c).expect("shape")
    }

    /// Label of row i (a seeded pseudo-random class, uniform over classes).
    pub fn label(&self, i: usize) -> u32 {
        let h = (i as u64 ^ self.seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> 17) % self.classes as u64) as u32
    }

    /// Fill `out` (rows × dim) with rows `first..first + rows`.
    pub fn fill_rows(&self, centres: &Array2<f32>, first: usize, out: &mut [f32]) {
        let d = self.dim;
        let scale = self.noise / (d as f32).sqrt();
        const CHUNK: usize = 4096;
        out.par_chunks_mut(CHUNK * d)
            .enumerate()
            .for_each(|(k, chunk)| {
                let start = first + k * CHUNK;
                let mut rng =
                    proxal::util::rng(self.seed.wrapping_add(1 + (start / CHUNK) as u64 * 7919));
                fill_normal(&mut rng, chunk);
                for (r, row) in chunk.chunks_mut(d).enumerate() {
                    let c = centres.row(self.label(start + r) as usize);
                    for (v, &m) in row.iter_mut().zip(c.iter()) {
                        *v = *v * scale + m;
                    }
                }
            });
    }

    /// `n` rows and their labels. (Chunk-aligned `first` values give the same rows as one call.)
    pub fn sample(&self, n: usize) -> (Array2<f32>, Vec<u32>) {
        let centres = self.centres();
        let mut x = vec![0.0f32; n * self.dim];
        self.fill_rows(&centres, 0, &mut x);
        let y = (0..n).map(|i| self.label(i)).collect();
        (Array2::from_shape_vec((n, self.dim), x).expect("shape"), y)
    }
}
