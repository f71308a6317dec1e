//! The embedding loop: tokenise, bucket by length, forward, pool, normalise, restore order.
use super::{batch_tensors, encode_with, fast, pooling, tokenizer_with_max_len, Backbone, Pooling};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tokenizers::{Encoding, Tokenizer};

/// How texts become vectors. Recorded in each feature-store manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedOptions {
    /// Sentences per forward pass.
    pub batch: usize,
    /// Truncation length in tokens, special tokens included.
    pub max_len: usize,
    pub pooling: Pooling,
    /// L2-normalise each vector (as the sentence-transformers MiniLM pipeline does).
    pub normalize: bool,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            batch: 32,
            max_len: 128,
            pooling: Pooling::Mean,
            normalize: true,
        }
    }
}

/// Embeds texts with one backbone and fixed options.
///
/// Texts are sorted by token length (longest first, ties in input order) and cut into batches
/// of `batch`, each padded only to its own longest row; vectors come back in input order. The
/// result for a given list of texts is deterministic: the same list gives the same bits.
pub struct Embedder<'a> {
    backbone: &'a Backbone,
    tokenizer: Tokenizer,
    opts: EmbedOptions,
    fast: Option<fast::FastBert>,
}

impl<'a> Embedder<'a> {
    /// `opts.max_len` is capped at the longest sequence the model takes.
    pub fn new(backbone: &'a Backbone, mut opts: EmbedOptions) -> Result<Self> {
        if opts.batch == 0 {
            bail!("batch size must be at least 1");
        }
        opts.max_len = opts.max_len.min(backbone.model.config.max_tokens());
        let tokenizer = tokenizer_with_max_len(&backbone.tokenizer, opts.max_len)?;
        let fast = fast::FastBert::new(&backbone.model)?;
        Ok(Embedder {
            backbone,
            tokenizer,
            opts,
            fast,
        })
    }

    /// The options in force (`max_len` capped at the model's limit).
    pub fn options(&self) -> &EmbedOptions {
        &self.opts
    }

    /// Whether the fused inference kernels (`backbone::fast`) embed, rather than the reference path.
    pub fn uses_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    pub fn dim(&self) -> usize {
        self.backbone.dim()
    }

    /// Use the differentiable reference path instead of the fused inference kernels.
    pub fn without_fast_path(mut self) -> Self {
        self.fast = None;
        self
    }

    /// Tokenise (parallel) without padding.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        encode_with(&self.tokenizer, texts)
    }

    /// Embed `texts`: `texts.len() × dim` floats, row-major, in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<f32>> {
        let enc = self.encode(texts)?;
        self.embed_encoded(&enc)
    }

    /// Embed already tokenised texts (see [`Embedder::encode`]).
    pub fn embed_encoded(&self, enc: &[Encoding]) -> Result<Vec<f32>> {
        self.embed_encoded_with(enc, |_| {})
    }

    /// As [`Embedder::embed_encoded`], calling `progress(rows)` after each batch.
    pub fn embed_encoded_with(
        &self,
        enc: &[Encoding],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<f32>> {
        let dim = self.dim();
        // The fast path recycles its layers' buffers from batch to batch; they go back when
        // this call ends.
        let _release = crate::numerics::scratch::ReleaseOnDrop;
        let mut out = vec![0f32; enc.len() * dim];
        let mut order: Vec<usize> = (0..enc.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(enc[i].get_ids().len()), i));
        for idx in order.chunks(self.opts.batch) {
            let batch: Vec<&Encoding> = idx.iter().map(|&i| &enc[i]).collect();
            let rows = self.embed_batch(&batch)?;
            for (k, &i) in idx.iter().enumerate() {
                out[i * dim..(i + 1) * dim].copy_from_slice(&rows[k * dim..(k + 1) * dim]);
            }
            progress(idx.len());
        }
        Ok(out)
    }

    /// One batch, in the order given: `batch.len() × dim` floats.
    fn embed_batch(&self, batch: &[&Encoding]) -> Result<Vec<f32>> {
        if let Some(f) = &self.fast {
            let seqs: Vec<&[u32]> = batch.iter().map(|e| e.get_ids()).collect();
            return f.embed(&seqs, self.opts.pooling, self.opts.normalize);
        }
        let bb = self.backbone;
        let (ids, mask) = batch_tensors(batch, bb.model.config.pad_token_id, bb.device())?;
        let hidden = bb.model.forward(&ids, &mask)?;
        let mut pooled = pooling::pool(&hidden, &mask, self.opts.pooling)?;
        if self.opts.normalize {
            pooled = pooling::l2_normalize(&pooled)?;
        }
        Ok(pooled.flatten_all()?.to_vec1::<f32>()?)
    }
}
