//! LogME (You et al., ICML 2021; fixed-point form of You et al. 2021, "Ranking and Tuning
//! Pre-trained Models"): the log maximum evidence of a Bayesian linear model from features to
//! one-hot labels, averaged over classes and divided by the number of rows. Higher means the
//! features fit the labels better. ASVP logs it every round on the labelled cached features and
//! triggers alignment when it drops.
//!
//! Per class c with target y = 1[label = c], prior w ~ N(0, α⁻¹I), noise N(0, β⁻¹), and
//! σ_k the eigenvalues of FᵀF (the squared singular values of F), x = Uᵀy in the singular basis:
//! iterate t = α/β; γ = Σ σ/(σ+t); m² = Σ σx²/(t+σ)²; r² = Σ x²/(1+σ/t)² + (‖y‖² − ‖x‖²);
//! α = γ/m², β = (N−γ)/r², until t changes by less than 0.1 %, at most 11 times; then
//! evidence = D/2 log α + N/2 log β − ½ Σ log(α+βσ) − β/2 r² − α/2 m² − N/2 log 2π, over N.
//! The decomposition is done once (eigh of the D×D Gram matrix, pure Rust via linfa-linalg).
use anyhow::{bail, Context, Result};
use linfa_linalg::eigh::Eigh;
use ndarray::{Array1, Array2, ArrayView2};

/// LogME of features `f` (N × D) for integer labels `y` in `0..n_classes`.
/// Classes with no row are skipped (their evidence is undefined); at least one must be present.
pub fn logme(f: ArrayView2<'_, f32>, y: &[u32], n_classes: usize) -> Result<f64> {
    let (n, d) = f.dim();
    if n != y.len() {
        bail!("logme: {} feature rows but {} labels", n, y.len());
    }
    if n < 2 {
        bail!("logme: needs at least 2 labelled rows, got {n}");
    }
    if f.iter().any(|v| !v.is_finite()) {
        bail!("logme: features contain NaN or infinity");
    }
    let f64m: Array2<f64> = f.mapv(f64::from);
    let gram = f64m.t().dot(&f64m);
    let (sigma, v) = gram
        .eigh()
        .context("logme: eigendecomposition of FᵀF failed")?;
    // Keep the directions with a non-zero singular value (rank of F).
    let max_s = sigma.iter().cloned().fold(0.0f64, f64::max);
    let keep: Vec<usize> = (0..d)
        .filter(|&k| sigma[k] > max_s * 1e-12 && sigma[k] > 1e-20)
        .collect();
    let sig: Array1<f64> = keep.iter().map(|&k| sigma[k]).collect();
    // F V_k for kept k; U_k = F V_k / s_k.
    let vk = v.select(ndarray::Axis(1), &keep);
    let fv = f64m.dot(&vk); // N × k
    let s: Array1<f64> = sig.mapv(f64::sqrt);

    let mut total = 0.0;
    let mut counted = 0usize;
    for c in 0..n_classes as u32 {
        let yc: Array1<f64> = y.iter().map(|&l| if l == c { 1.0 } else { 0.0 }).collect();
        let ones = yc.sum();
        if ones == 0.0 {
            continue;
        }
        let x: Array1<f64> = fv.t().dot(&yc) / &s;
        let x2 = x.mapv(|v| v * v);
        let res_x2 = (yc.dot(&yc) - x2.sum()).max(0.0);
        let (mut alpha, mut beta) = (1.0f64, 1.0f64);
        let (mut m2, mut res2) = (0.0, 0.0);
        for _ in 0..11 {
            let t = alpha / beta;
            let gamma: f64 = sig.iter().map(|&sg| sg / (sg + t)).sum();
            m2 = sig
                .iter()
                .zip(&x2)
                .map(|(&sg, &x2)| sg * x2 / ((t + sg) * (t + sg)))
                .sum();
            res2 = sig
                .iter()
                .zip(&x2)
                .map(|(&sg, &x2)| x2 / ((1.0 + sg / t) * (1.0 + sg / t)))
                .sum::<f64>()
                + res_x2;
            alpha = gamma / (m2 + 1e-5);
            beta = (n as f64 - gamma) / (res2 + 1e-5);
            if ((alpha / beta) - t).abs() / t <= 1e-3 {
                break;
            }
        }
        let nf = n as f64;
        let evidence = d as f64 / 2.0 * alpha.ln() + nf / 2.0 * beta.ln()
            - 0.5 * sig.iter().map(|&sg| (alpha + beta * sg).ln()).sum::<f64>()
            - beta / 2.0 * res2
            - alpha / 2.0 * m2
            - nf / 2.0 * (2.0 * std::f64::consts::PI).ln();
        total += evidence / nf;
        counted += 1;
    }
    if counted == 0 {
        bail!("logme: no class has a labelled row");
    }
    Ok(total / counted as f64)
}
