//! The inference-only encoder path (CPU): no padding at all, fused kernels, no backward.
//!
//! A batch is packed into one `[tokens, hidden]` matrix (sequences back to back, no pad rows),
//! so the four dense layers per block are single large matmuls ([`super::gemm`]: an AVX-512
//! kernel over pre-packed weights, candle's matmul elsewhere) and no work is spent on padding.
//! Everything else is fused kernels over plain slices: embedding gather + layer norm,
//! bias + GELU, bias + residual + layer norm, and attention per (sequence, head) with the
//! softmax in registers. Kernels are compiled three times (baseline, AVX2+FMA, AVX-512) and
//! picked at run time.
//!
//! [`FastBert`] is a snapshot of the weights when it is made: build a new one after training.
//! The differentiable [`Bert::forward_t`] is the reference; the tests hold the two together.
use super::bert::Bert;
use super::config::HiddenAct;
use super::pooling::{l2_normalize_row, Pooling};
use crate::numerics::gemm::PackedWeight;
use crate::numerics::scratch;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};

struct FastLayer {
    wqkv: PackedWeight, // [hidden, 3 hidden] (x · wqkv)
    bqkv: Vec<f32>,
    wo: PackedWeight, // [hidden, hidden]
    bo: Vec<f32>,
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    wi: PackedWeight, // [hidden, intermediate]
    bi: Vec<f32>,
    wout: PackedWeight, // [intermediate, hidden]
    bout: Vec<f32>,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
}

/// A snapshot of a [`Bert`]'s weights laid out for the fused CPU inference path.
pub struct FastBert {
    hidden: usize,
    heads: usize,
    eps: f32,
    act: HiddenAct,
    max_pos: usize,
    /// The position id of a sequence's first token (MPNet: after the padding id; BERT: 0).
    first_pos: usize,
    word: Vec<f32>,
    pos: Vec<f32>,
    /// Token type 0's embedding (zeros for MPNet, which has none).
    typ0: Vec<f32>,
    /// MPNet's relative-position bias: the `[buckets, heads]` table and its bucket count.
    rel: Option<(Vec<f32>, usize)>,
    emb_g: Vec<f32>,
    emb_b: Vec<f32>,
    layers: Vec<FastLayer>,
}

fn vec1(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?)
}

/// `[out, in]` weight → packed `[in, out]` copy.
fn transposed(w: &Tensor) -> Result<PackedWeight> {
    PackedWeight::new(&w.t()?)
}

impl FastBert {
    /// `None` on a non-CPU device: the reference path runs there. BERT and MPNet (its position
    /// offset and relative-position bias on every attention score) both run here.
    pub fn new(model: &Bert) -> Result<Option<Self>> {
        if !matches!(model.device(), Device::Cpu) {
            return Ok(None);
        }
        let cfg = &model.config;
        let mut layers = Vec::with_capacity(model.layers.len());
        for l in &model.layers {
            let bias = |lin: &candle_nn::Linear| -> Result<Vec<f32>> {
                match lin.bias() {
                    Some(b) => vec1(b),
                    None => Ok(vec![0.0; lin.weight().dim(0)?]),
                }
            };
            let wqkv = Tensor::cat(&[l.query.weight(), l.key.weight(), l.value.weight()], 0)?;
            let mut bqkv = bias(&l.query)?;
            bqkv.extend(bias(&l.key)?);
            bqkv.extend(bias(&l.value)?);
            layers.push(FastLayer {
                wqkv: transposed(&wqkv)?,
                bqkv,
                wo: transposed(l.attn_out.weight())?,
                bo: bias(&l.attn_out)?,
                ln1_g: vec1(&l.attn_ln.weight)?,
                ln1_b: vec1(&l.attn_ln.bias)?,
                wi: transposed(l.intermediate.weight())?,
                bi: bias(&l.intermediate)?,
                wout: transposed(l.output.weight())?,
                bout: bias(&l.output)?,
                ln2_g: vec1(&l.out_ln.weight)?,
                ln2_b: vec1(&l.out_ln.bias)?,
            });
        }
        Ok(Some(FastBert {
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps as f32,
            act: cfg.hidden_act,
            max_pos: cfg.max_position_embeddings,
            first_pos: cfg.first_position(),
            rel: match &model.relative_attention_bias {
                Some(t) => Some((vec1(t)?, t.dim(0)?)),
                None => None,
            },
            word: vec1(&model.word_embeddings)?,
            pos: vec1(&model.position_embeddings)?,
            typ0: vec1(&model.token_type_embeddings.narrow(0, 0, 1)?)?,
            emb_g: vec1(&model.emb_ln.weight)?,
            emb_b: vec1(&model.emb_ln.bias)?,
            layers,
        }))
    }

    /// Final hidden states of the packed sequences: `[Σ len, hidden]`, sequences back to back.
    pub fn hidden_states(&self, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        let h = self.hidden;
        let vocab = self.word.len() / h;
        let mut offsets = Vec::with_capacity(seqs.len() + 1);
        offsets.push(0usize);
        for s in seqs {
            if s.is_empty() {
                bail!("empty token sequence");
            }
            if s.len() + self.first_pos > self.max_pos {
                bail!(
                    "sequence of {} tokens exceeds max_position_embeddings {}{}",
                    s.len(),
                    self.max_pos,
                    if self.first_pos > 0 {
                        format!(" (positions start at {})", self.first_pos)
                    } else {
                        String::new()
                    }
                );
            }
            if let Some(&bad) = s.iter().find(|&&id| id as usize >= vocab) {
                bail!("token id {bad} outside the vocabulary ({vocab})");
            }
            offsets.push(offsets.last().unwrap() + s.len());
        }
        let total = *offsets.last().unwrap();
        let t = profile::start();
        // The layers' buffers (the largest are [tokens, 3·hidden] and [tokens, ffn]) come from
        // and go back to `numerics::scratch`: fresh ones fault their pages in on every batch.
        let mut x = scratch::take(total * h);
        kernels::embed_ln(seqs, &offsets, self, &mut x);
        profile::add(profile::EMBED, t);
        // MPNet: the bucket ids of each sequence length of the batch, made once for every layer.
        let buckets: kernels::BucketIds = match &self.rel {
            Some((_, n)) => seqs
                .iter()
                .map(|s| {
                    (
                        s.len(),
                        crate::backbone::bert::relative_buckets(s.len(), *n),
                    )
                })
                .collect(),
            None => Default::default(),
        };
        let rel = self.rel.as_ref().map(|(t, _)| (t.as_slice(), &buckets));
        for l in &self.layers {
            let t = profile::start();
            let qkv = l.wqkv.matmul(&x, total)?;
            profile::add(profile::MATMUL, t);
            let t = profile::start();
            let mut ctx = scratch::take(total * h);
            kernels::attention(&qkv, &l.bqkv, &offsets, self.heads, h, rel, &mut ctx);
            scratch::give(qkv);
            profile::add(profile::ATTENTION, t);
            let t = profile::start();
            let mut a = l.wo.matmul(&ctx, total)?;
            scratch::give(ctx);
            profile::add(profile::MATMUL, t);
            let t = profile::start();
            kernels::bias_residual_ln(&mut a, &l.bo, &x, &l.ln1_g, &l.ln1_b, self.eps);
            scratch::give(std::mem::replace(&mut x, a));
            profile::add(profile::NORM, t);
            let t = profile::start();
            let mut i = l.wi.matmul(&x, total)?;
            profile::add(profile::MATMUL, t);
            let t = profile::start();
            kernels::bias_act(&mut i, &l.bi, self.act);
            profile::add(profile::GELU, t);
            let t = profile::start();
            let mut o = l.wout.matmul(&i, total)?;
            scratch::give(i);
            profile::add(profile::MATMUL, t);
            let t = profile::start();
            kernels::bias_residual_ln(&mut o, &l.bout, &x, &l.ln2_g, &l.ln2_b, self.eps);
            scratch::give(std::mem::replace(&mut x, o));
            profile::add(profile::NORM, t);
        }
        Ok(x)
    }

    /// Pooled (and optionally L2-normalised) sentence vectors, `seqs.len() × hidden`, in order.
    pub fn embed(&self, seqs: &[&[u32]], pooling: Pooling, normalize: bool) -> Result<Vec<f32>> {
        let h = self.hidden;
        let x = self.hidden_states(seqs)?;
        let mut out = vec![0f32; seqs.len() * h];
        let mut start = 0;
        for (r, s) in seqs.iter().enumerate() {
            let dst = &mut out[r * h..(r + 1) * h];
            let rows = &x[start * h..(start + s.len()) * h];
            match pooling {
                Pooling::Cls => dst.copy_from_slice(&rows[..h]),
                Pooling::Mean => {
                    for row in rows.chunks_exact(h) {
                        dst.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                    }
                    let inv = 1.0 / s.len() as f32;
                    dst.iter_mut().for_each(|d| *d *= inv);
                }
            }
            if normalize {
                l2_normalize_row(dst);
            }
            start += s.len();
        }
        scratch::give(x);
        Ok(out)
    }
}

/// Wall-clock time spent in each part of the fast path, summed over all calls in this process
/// (for `bench_embed` and profiling; a few nanoseconds per layer).
pub mod profile {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    pub const EMBED: usize = 0;
    pub const MATMUL: usize = 1;
    pub const ATTENTION: usize = 2;
    pub const NORM: usize = 3;
    pub const GELU: usize = 4;
    pub const NAMES: [&str; 5] = [
        "embeddings+LN",
        "matmul",
        "attention",
        "bias+residual+LN",
        "bias+GELU",
    ];
    static NANOS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

    pub fn start() -> Instant {
        Instant::now()
    }
    pub fn add(slot: usize, t: Instant) {
        NANOS[slot].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
    /// `(part, seconds)` so far.
    pub fn report() -> Vec<(&'static str, f64)> {
        NAMES
            .iter()
            .zip(&NANOS)
            .map(|(n, a)| (*n, a.load(Ordering::Relaxed) as f64 * 1e-9))
            .collect()
    }
    pub fn reset() {
        NANOS.iter().for_each(|a| a.store(0, Ordering::Relaxed));
    }
}

/// The fused kernels. Each public function dispatches to an AVX2+FMA build of the same code
/// when the CPU has it.
pub mod kernels {
    use super::{FastBert, HiddenAct};
    use crate::numerics::scalar::{erf, exp, sum_lanes};
    use rayon::prelude::*;

    use crate::numerics::multiversion;

    #[inline(always)]
    fn gelu(x: f32) -> f32 {
        0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
    }

    #[inline(always)]
    fn gelu_tanh(x: f32) -> f32 {
        // tanh(u) = 1 − 2 / (e^{2u} + 1)
        let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
        let th = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
        0.5 * x * (1.0 + th)
    }

    /// Normalise one row in place: (x − mean) / sqrt(var + eps) · g + b.
    #[inline(always)]
    fn ln_row(x: &mut [f32], g: &[f32], b: &[f32], eps: f32) {
        let n = x.len() as f32;
        let mean = sum_lanes(x) / n;
        x.iter_mut().for_each(|v| *v -= mean);
        let mut acc = [0f32; 8];
        let mut it = x.chunks_exact(8);
        for c in &mut it {
            for l in 0..8 {
                acc[l] += c[l] * c[l];
            }
        }
        let mut ss = it.remainder().iter().map(|v| v * v).sum::<f32>();
        for a in acc {
            ss += a;
        }
        let inv = 1.0 / (ss / n + eps).sqrt();
        for ((v, g), b) in x.iter_mut().zip(g).zip(b) {
            *v = *v * inv * g + b;
        }
    }

    const ROWS_PER_TASK: usize = 16;

    /// Word + position + token-type-0 embeddings of packed sequences, then layer norm.
    pub fn embed_ln(seqs: &[&[u32]], offsets: &[usize], m: &FastBert, out: &mut [f32]) {
        let h = m.hidden;
        let mut rows: Vec<(u32, usize)> = Vec::with_capacity(*offsets.last().unwrap_or(&0));
        for s in seqs {
            rows.extend(s.iter().enumerate().map(|(p, &id)| (id, p)));
        }
        out.par_chunks_mut(h * ROWS_PER_TASK)
            .zip(rows.par_chunks(ROWS_PER_TASK))
            .for_each(|(o, r)| embed_rows(o, r, m));
    }

    multiversion! {
        fn embed_rows(o: &mut [f32], r: &[(u32, usize)], m: &FastBert) {
            let h = m.hidden;
            for (row, &(id, p)) in o.chunks_exact_mut(h).zip(r) {
                let w = &m.word[id as usize * h..(id as usize + 1) * h];
                let pe = &m.pos[(p + m.first_pos) * h..(p + m.first_pos + 1) * h];
                for i in 0..h {
                    row[i] = w[i] + pe[i] + m.typ0[i];
                }
                ln_row(row, &m.emb_g, &m.emb_b, m.eps);
            }
        }
    }

    /// x ← LN(x + bias + residual), row by row.
    pub fn bias_residual_ln(
        x: &mut [f32],
        bias: &[f32],
        res: &[f32],
        g: &[f32],
        b: &[f32],
        eps: f32,
    ) {
        let h = bias.len();
        x.par_chunks_mut(h * ROWS_PER_TASK)
            .zip(res.par_chunks(h * ROWS_PER_TASK))
            .for_each(|(xs, rs)| bias_residual_ln_rows(xs, bias, rs, g, b, eps));
    }

    multiversion! {
        fn bias_residual_ln_rows(xs: &mut [f32], bias: &[f32], rs: &[f32], g: &[f32], b: &[f32], eps: f32) {
            let h = bias.len();
            for (row, r) in xs.chunks_exact_mut(h).zip(rs.chunks_exact(h)) {
                for i in 0..h {
                    row[i] += bias[i] + r[i];
                }
                ln_row(row, g, b, eps);
            }
        }
    }

    /// x ← act(x + bias), row by row.
    pub fn bias_act(x: &mut [f32], bias: &[f32], act: HiddenAct) {
        let n = bias.len();
        x.par_chunks_mut(n * ROWS_PER_TASK)
            .for_each(|xs| bias_act_rows(xs, bias, act));
    }

    multiversion! {
        fn bias_act_rows(xs: &mut [f32], bias: &[f32], act: HiddenAct) {
            let n = bias.len();
            for row in xs.chunks_exact_mut(n) {
                match act {
                    HiddenAct::Gelu => row.iter_mut().zip(bias).for_each(|(v, b)| *v = gelu(*v + b)),
                    HiddenAct::GeluNew => row.iter_mut().zip(bias).for_each(|(v, b)| *v = gelu_tanh(*v + b)),
                    HiddenAct::Relu => row.iter_mut().zip(bias).for_each(|(v, b)| *v = (*v + b).max(0.0)),
                }
            }
        }
    }

    /// MPNet's relative-position bucket ids (`[len, len]`, row = query) by sequence length.
    pub type BucketIds = std::collections::HashMap<usize, Vec<u32>>;

    /// Multi-head self-attention over packed sequences. `qkv` is `[tokens, 3·hidden]`
    /// (query | key | value, before bias); `out` `[tokens, hidden]` gets the context. `rel`:
    /// MPNet's `[buckets, heads]` relative-position table and the bucket ids (`[len, len]`,
    /// `bert::relative_buckets`) of every sequence length; the table's entry for a pair's bucket
    /// is added to its (scaled) score.
    pub fn attention(
        qkv: &[f32],
        bqkv: &[f32],
        offsets: &[usize],
        heads: usize,
        hidden: usize,
        rel: Option<(&[f32], &BucketIds)>,
        out: &mut [f32],
    ) {
        // Split `out` into one block of rows per sequence.
        let mut blocks: Vec<(usize, &mut [f32])> = Vec::with_capacity(offsets.len());
        let mut rest = out;
        for win in offsets.windows(2) {
            let (a, b) = rest.split_at_mut((win[1] - win[0]) * hidden);
            blocks.push((win[0], a));
            rest = b;
        }
        blocks.into_par_iter().for_each(|(start, o)| {
            // Longer sequences as two matrix products per head on the packed kernel; short ones
            // in the loops below, where packing would cost more than it saves.
            let len = o.len() / hidden;
            let rel = rel.map(|(t, b)| (t, b[&len].as_slice()));
            if len < PACKED_ATTENTION_MIN_LEN
                || !attention_seq_packed(qkv, bqkv, start, heads, hidden, rel, o)
            {
                attention_seq(qkv, bqkv, start, heads, hidden, rel, o)
            }
        });
    }

    /// Head `hd` of the sequence starting at row `start` of `qkv` (biases added): queries scaled
    /// by `scale` into `q` `[len, d]`, keys transposed into `kt` `[d, len]`, values into `v`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn gather_head(
        qkv: &[f32],
        bqkv: &[f32],
        start: usize,
        hidden: usize,
        hd: usize,
        d: usize,
        scale: f32,
        q: &mut [f32],
        kt: &mut [f32],
        v: &mut [f32],
    ) {
        let len = q.len() / d.max(1);
        let w = 3 * hidden;
        let (qo, ko, vo) = (hd * d, hidden + hd * d, 2 * hidden + hd * d);
        for t in 0..len {
            let row = &qkv[(start + t) * w..(start + t + 1) * w];
            for c in 0..d {
                q[t * d + c] = (row[qo + c] + bqkv[qo + c]) * scale;
                kt[c * len + t] = row[ko + c] + bqkv[ko + c];
                v[t * d + c] = row[vo + c] + bqkv[vo + c];
            }
        }
    }

    /// Sequences at least this long take [`attention_seq_packed`] (where AVX-512F runs).
    pub const PACKED_ATTENTION_MIN_LEN: usize = 48;

    /// As `attention_seq`, with S = q kᵀ and C = P v per head on the packed AVX-512 kernel
    /// (`numerics::gemm::Panels`). False, having written nothing, where the kernel cannot run.
    fn attention_seq_packed(
        qkv: &[f32],
        bqkv: &[f32],
        start: usize,
        heads: usize,
        hidden: usize,
        rel: Option<(&[f32], &[u32])>,
        o: &mut [f32],
    ) -> bool {
        use crate::numerics::gemm::Panels;
        if !crate::numerics::gemm::avx512() {
            return false;
        }
        let d = hidden / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let len = o.len() / hidden;
        let mut q = vec![0f32; len * d];
        let mut kt = vec![0f32; d * len];
        let mut v = vec![0f32; len * d];
        let mut scores = vec![0f32; len * len];
        let mut c = vec![0f32; len * d];
        for hd in 0..heads {
            gather_head(
                qkv, bqkv, start, hidden, hd, d, scale, &mut q, &mut kt, &mut v,
            );
            let (Some(pk), Some(pv)) = (Panels::new(&kt, d, len), Panels::new(&v, len, d)) else {
                return false;
            };
            pk.matmul_into(&q, len, None, &mut scores, false);
            if let Some((table, buckets)) = rel {
                scores
                    .iter_mut()
                    .zip(buckets)
                    .for_each(|(s, &b)| *s += table[b as usize * heads + hd]);
            }
            crate::numerics::linalg::softmax_rows_slice(&mut scores, len);
            pv.matmul_into(&scores, len, None, &mut c, false);
            for i in 0..len {
                o[i * hidden + hd * d..i * hidden + (hd + 1) * d]
                    .copy_from_slice(&c[i * d..(i + 1) * d]);
            }
        }
        true
    }

    multiversion! {
        /// Attention of one sequence (rows `start..start + len` of `qkv`), all heads.
        fn attention_seq(qkv: &[f32], bqkv: &[f32], start: usize, heads: usize, hidden: usize, rel: Option<(&[f32], &[u32])>, o: &mut [f32]) {
            let d = hidden / heads;
            let scale = 1.0 / (d as f32).sqrt();
            let len = o.len() / hidden;
            let mut q = vec![0f32; len * d];
            let mut kt = vec![0f32; d * len]; // keys transposed: [d, len]
            let mut v = vec![0f32; len * d];
            let mut scores = vec![0f32; len];
            for hd in 0..heads {
                gather_head(qkv, bqkv, start, hidden, hd, d, scale, &mut q, &mut kt, &mut v);
                for i in 0..len {
                    scores.iter_mut().for_each(|s| *s = 0.0);
                    for c in 0..d {
                        let qc = q[i * d + c];
                        let krow = &kt[c * len..(c + 1) * len];
                        scores.iter_mut().zip(krow).for_each(|(s, k)| *s += qc * k);
                    }
                    if let Some((table, buckets)) = rel {
                        let row = &buckets[i * len..(i + 1) * len];
                        scores.iter_mut().zip(row).for_each(|(s, &b)| *s += table[b as usize * heads + hd]);
                    }
                    let mut max = f32::NEG_INFINITY;
                    for &s in scores.iter() {
                        max = max.max(s);
                    }
                    scores.iter_mut().for_each(|s| *s = exp(*s - max));
                    let inv = 1.0 / sum_lanes(&scores);
                    let dst = &mut o[i * hidden + hd * d..i * hidden + (hd + 1) * d];
                    dst.iter_mut().for_each(|x| *x = 0.0);
                    for (j, &p) in scores.iter().enumerate() {
                        let vr = &v[j * d..(j + 1) * d];
                        dst.iter_mut().zip(vr).for_each(|(x, vv)| *x += p * vv);
                    }
                    dst.iter_mut().for_each(|x| *x *= inv);
                }
            }
        }
    }
}
