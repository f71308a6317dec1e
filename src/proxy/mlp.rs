//! A small MLP proxy: Linear → BatchNorm → ReLU → Linear (the head the ASVP paper trains on
//! cached features). Trained with candle (autograd + AdamW) on standardised features, minibatches
//! shuffled by the project RNG; after training, batch norm (in inference mode) and the
//! standardisation are folded into the first layer, and prediction runs as two plain matmuls.
use super::Proxy;
use crate::numerics::linalg::{matmul_into, softmax_rows};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MlpConfig {
    pub hidden: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            hidden: 256,
            epochs: 30,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 1e-2,
        }
    }
}

/// A fitted MLP, stored folded for inference: p = softmax(relu(x·W1 + b1)·W2 + b2).
#[derive(Debug, Clone)]
pub struct Mlp {
    w1: Array2<f32>,
    b1: Array1<f32>,
    w2: Array2<f32>,
    b2: Array1<f32>,
    /// Mean training loss of the last epoch.
    pub final_loss: f32,
}

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f32 = 0.1;

fn uniform_tensor(
    rng: &mut impl Rng,
    shape: (usize, usize),
    bound: f32,
    dev: &Device,
) -> Result<Tensor> {
    let v: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    Ok(Tensor::from_vec(v, shape, dev)?)
}

fn to_ndarray2(t: &Tensor) -> Result<Array2<f32>> {
    let (r, c) = t.dims2()?;
    Ok(Array2::from_shape_vec(
        (r, c),
        t.flatten_all()?.to_vec1::<f32>()?,
    )?)
}

impl Mlp {
    pub fn fit(
        cfg: &MlpConfig,
        x: ArrayView2<f32>,
        y: &[u32],
        n_classes: usize,
        seed: u64,
    ) -> Result<Mlp> {
        super::check_training_set(x, y, n_classes)?;
        if cfg.hidden == 0 || cfg.epochs == 0 || cfg.batch_size < 2 {
            bail!("mlp: hidden, epochs must be positive and batch_size at least 2");
        }
        let (n, d) = x.dim();
        let h = cfg.hidden;
        let dev = Device::Cpu;
        let mut rng = crate::util::rng(seed);

        // Standardise inputs (folded into the first layer at the end).
        let mean = x.mean_axis(Axis(0)).context("empty training set")?;
        let std = x
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 1e-6 { s } else { 1.0 });
        let xs = (&x - &mean) / &std;
        let x_t = Tensor::from_vec(xs.iter().copied().collect::<Vec<f32>>(), (n, d), &dev)?;
        let y_t = Tensor::from_vec(y.to_vec(), n, &dev)?;

        let w1 = Var::from_tensor(&uniform_tensor(
            &mut rng,
            (d, h),
            1.0 / (d as f32).sqrt(),
            &dev,
        )?)?;
        let b1 = Var::from_tensor(&uniform_tensor(
            &mut rng,
            (1, h),
            1.0 / (d as f32).sqrt(),
            &dev,
        )?)?;
        let gamma = Var::from_tensor(&Tensor::ones((1, h), DType::F32, &dev)?)?;
        let beta = Var::from_tensor(&Tensor::zeros((1, h), DType::F32, &dev)?)?;
        let w2 = Var::from_tensor(&uniform_tensor(
            &mut rng,
            (h, n_classes),
            1.0 / (h as f32).sqrt(),
            &dev,
        )?)?;
        let b2 = Var::from_tensor(&uniform_tensor(
            &mut rng,
            (1, n_classes),
            1.0 / (h as f32).sqrt(),
            &dev,
        )?)?;
        let mut opt = AdamW::new(
            vec![
                w1.clone(),
                b1.clone(),
                gamma.clone(),
                beta.clone(),
                w2.clone(),
                b2.clone(),
            ],
            ParamsAdamW {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?;
        let mut run_mean = vec![0.0f32; h];
        let mut run_var = vec![1.0f32; h];
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut final_loss = f32::NAN;
        for _epoch in 0..cfg.epochs {
            order.shuffle(&mut rng);
            let mut batches: Vec<&[u32]> = order.chunks(cfg.batch_size).collect();
            // Batch norm needs at least two rows: fold a trailing singleton into the previous batch.
            if batches.len() > 1 && batches.last().is_some_and(|b| b.len() < 2) {
                batches.pop();
                let k = batches.len() - 1;
                batches[k] = &order[k * cfg.batch_size..];
            }
            let mut total = 0.0f32;
            for idx in batches {
                let bsz = idx.len();
                let it = Tensor::from_slice(idx, bsz, &dev)?;
                let xb = x_t.index_select(&it, 0)?;
                let yb = y_t.index_select(&it, 0)?;
                let hpre = xb.matmul(w1.as_tensor())?.broadcast_add(b1.as_tensor())?;
                let (hn, bm, bv) = if bsz > 1 {
                    let m = hpre.mean_keepdim(0)?;
                    let c = hpre.broadcast_sub(&m)?;
                    let v = c.sqr()?.mean_keepdim(0)?;
                    let hn = c.broadcast_div(&(v.clone() + BN_EPS)?.sqrt()?)?;
                    (hn, Some(m), Some(v))
                } else {
                    (hpre, None, None)
                };
                let hb = hn
                    .broadcast_mul(gamma.as_tensor())?
                    .broadcast_add(beta.as_tensor())?
                    .relu()?;
                let logits = hb.matmul(w2.as_tensor())?.broadcast_add(b2.as_tensor())?;
                let loss = candle_nn::loss::cross_entropy(&logits, &yb)?;
                opt.backward_step(&loss)?;
                total += loss.to_scalar::<f32>()? * bsz as f32;
                if let (Some(m), Some(v)) = (bm, bv) {
                    let m = m.flatten_all()?.to_vec1::<f32>()?;
                    let v = v.flatten_all()?.to_vec1::<f32>()?;
                    let unbias = bsz as f32 / (bsz as f32 - 1.0);
                    for k in 0..h {
                        run_mean[k] = (1.0 - BN_MOMENTUM) * run_mean[k] + BN_MOMENTUM * m[k];
                        run_var[k] = (1.0 - BN_MOMENTUM) * run_var[k] + BN_MOMENTUM * v[k] * unbias;
                    }
                }
            }
            final_loss = total / n as f32;
        }
        if !final_loss.is_finite() {
            bail!("mlp: training diverged (loss {final_loss}); lower the learning rate");
        }

        // Fold: input standardisation and inference-mode batch norm into layer 1.
        let w1 = to_ndarray2(w1.as_tensor())?;
        let b1 = to_ndarray2(b1.as_tensor())?.row(0).to_owned();
        let gamma = to_ndarray2(gamma.as_tensor())?.row(0).to_owned();
        let beta = to_ndarray2(beta.as_tensor())?.row(0).to_owned();
        let w2 = to_ndarray2(w2.as_tensor())?;
        let b2 = to_ndarray2(b2.as_tensor())?.row(0).to_owned();
        let bn_scale: Array1<f32> = (0..h)
            .map(|k| gamma[k] / (run_var[k] as f64 + BN_EPS).sqrt() as f32)
            .collect();
        let mut fw1 = Array2::<f32>::zeros((d, h));
        for j in 0..d {
            for k in 0..h {
                fw1[[j, k]] = w1[[j, k]] / std[j] * bn_scale[k];
            }
        }
        let mut fb1 = Array1::<f32>::zeros(h);
        for k in 0..h {
            let shift: f32 = (0..d).map(|j| mean[j] / std[j] * w1[[j, k]]).sum();
            fb1[k] = (b1[k] - shift - run_mean[k]) * bn_scale[k] + beta[k];
        }
        Ok(Mlp {
            w1: fw1,
            b1: fb1,
            w2,
            b2,
            final_loss,
        })
    }

    fn hidden(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut hdn = Array2::<f32>::zeros((x.nrows(), self.b1.len()));
        matmul_into(x, self.w1.view(), hdn.view_mut(), false, false);
        hdn += &self.b1;
        hdn.mapv_inplace(|v| v.max(0.0));
        hdn
    }
}

impl Proxy for Mlp {
    fn kind(&self) -> &'static str {
        "mlp"
    }
    fn dim(&self) -> usize {
        self.w1.nrows()
    }
    fn n_classes(&self) -> usize {
        self.b2.len()
    }
    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let hdn = self.hidden(x);
        let mut z = Array2::<f32>::zeros((x.nrows(), self.b2.len()));
        matmul_into(hdn.view(), self.w2.view(), z.view_mut(), false, false);
        z += &self.b2;
        softmax_rows(&mut z);
        z
    }
    fn penultimate(&self, x: ArrayView2<f32>) -> Option<Array2<f32>> {
        Some(self.hidden(x))
    }
}
