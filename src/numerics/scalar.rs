//! Branch-free scalar `exp` and `erf` for loops the compiler vectorises: the backbone's fused
//! kernels (GELU, attention softmax) inline them inside functions compiled for AVX-512 or AVX2,
//! so one source serves every instruction set. (For a whole slice on AVX-512,
//! [`super::linalg::exp_slice`] calls its explicit 16-lane polynomial instead.)

/// e^x for x ≤ 88, branch-free (vectorises): 2^n · p(r), r = x − n ln 2, |r| ≤ ln2/2,
/// p the degree-6 Taylor polynomial (relative error ~1e-7).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // The low bits of t hold n; (n + 127) << 23 is 2^n as an f32.
    let scale = f32::from_bits(t.to_bits().wrapping_add(127).wrapping_shl(23));
    scale * p
}

/// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), branch-free.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    erf_gauss(x).0
}

/// (erf(x), exp(−x²)): the Gaussian factor the erf approximation computes anyway, for callers
/// that need the density too (GELU's slope).
#[inline(always)]
pub fn erf_gauss(x: f32) -> (f32, f32) {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let g = exp(-a * a);
    let y = 1.0 - poly * g;
    (y.copysign(x), g)
}

/// Σ xs in 8 interleaved partial sums (lane l adds elements l, l + 8, …), then the tail: the
/// order a vectorised loop can keep, so the compiler vectorises it (a plain float sum is a
/// strict left-to-right chain it may not reorder).
#[inline(always)]
pub fn sum_lanes(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = xs.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    let mut s = it.remainder().iter().sum::<f32>();
    for a in acc {
        s += a;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sum_matches_a_plain_one() {
        for n in [0usize, 1, 7, 8, 9, 37, 128] {
            let xs: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 97) as f32 * 0.25 - 9.0)
                .collect();
            let plain: f64 = xs.iter().map(|&x| x as f64).sum();
            assert!((sum_lanes(&xs) as f64 - plain).abs() < 1e-3, "sum of {n}");
        }
    }

    #[test]
    fn exp_matches_std_to_float_precision() {
        let mut worst = 0f32;
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erf_matches_reference_values() {
        // erf at 0, 0.5, 1, 2, 3 (Abramowitz & Stegun, table 7.1).
        let table = [
            (0.0, 0.0),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (3.0, 0.999_977_9),
        ];
        for (x, want) in table {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() < 2e-7, "erf(-{x}) = {}", erf(-x));
        }
    }
}
