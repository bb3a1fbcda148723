//! Importance matrices as llama.cpp's `llama-imatrix` computes them: for every
//! weight a layer multiplies its input by, the per-column sum of the squared
//! input activations over the calibration text, and the number of rows (tokens)
//! summed. llama-quantize weighs each column's rounding error by `sum / count`.
//!
//! The text is cut as llama-imatrix cuts it: at least two chunks of `ctx`
//! tokens are required, whole chunks only, at most `max_chunks`, each evaluated
//! from position 0 with its first token replaced by BOS where the vocabulary
//! adds one. llama-imatrix also reports the perplexity of the second half of
//! each chunk (as llama-perplexity scores it); so does this.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::eval::NllStats;
use crate::eval::token_nll;
use crate::import::{LayerWeight, Weight};
use crate::model::{RowLayout, Transformer, host_f32};

/// How the calibration tokens are cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImatrixOptions {
    /// Tokens per chunk (llama-imatrix's `--ctx-size`).
    pub ctx: usize,
    /// At most this many chunks from the start (its `--chunks`).
    pub max_chunks: Option<NonZeroUsize>,
    /// The BOS token, when the vocabulary adds one to a text.
    pub bos: Option<u32>,
}

impl ImatrixOptions {
    /// llama.cpp collects a matmul's input only when it has at least 16 rows.
    pub const MIN_CTX: usize = 16;

    /// The number of chunks `tokens` tokens give.
    pub fn chunk_count(&self, tokens: usize) -> Result<usize, ImatrixError> {
        if self.ctx < Self::MIN_CTX {
            return Err(ImatrixError::ContextTooShort { ctx: self.ctx });
        }
        if tokens < 2 * self.ctx {
            return Err(ImatrixError::TooFewTokens {
                tokens,
                ctx: self.ctx,
            });
        }
        let whole = tokens / self.ctx;
        Ok(self.max_chunks.map_or(whole, |max| whole.min(max.get())))
    }

    fn chunk_input(&self, tokens: &[u32], index: usize) -> Vec<u32> {
        let mut input = tokens[index * self.ctx..(index + 1) * self.ctx].to_vec();
        if let Some(bos) = self.bos {
            input[0] = bos;
        }
        input
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImatrixError {
    #[error(
        "a context of {ctx} tokens is too short: llama.cpp collects activations only from \
         batches of at least {} tokens",
        ImatrixOptions::MIN_CTX
    )]
    ContextTooShort { ctx: usize },
    #[error(
        "the data is only {tokens} tokens long; an importance matrix with a context of {ctx} \
         needs at least {} (two chunks): give more text or a shorter context",
        2 * ctx
    )]
    TooFewTokens { tokens: usize, ctx: usize },
    #[error("token {position} of the data is id {id}, outside the model's vocabulary of {vocab}")]
    TokenOutOfVocabulary {
        position: usize,
        id: u32,
        vocab: usize,
    },
    #[error("the BOS token is id {id}, outside the model's vocabulary of {vocab}")]
    BosOutOfVocabulary { id: u32, vocab: usize },
}

/// One weight's statistics: `sums[j]` is the sum over `count` input rows of
/// the squared activation in column `j`.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationSums {
    pub sums: Vec<f32>,
    pub count: u64,
}

/// The importance matrix of a model over a text.
#[derive(Clone, Debug, PartialEq)]
pub struct ImatrixReport {
    /// GGUF weight name (`blk.N.attn_q.weight`, …) → its statistics.
    pub entries: BTreeMap<String, ActivationSums>,
    pub ctx: usize,
    pub chunks: usize,
    /// Tokens in the stream, used or not.
    pub tokens: usize,
    /// Perplexity over the second half of each chunk.
    pub ppl: f64,
}

/// Runs `model` over the chunks of `tokens`, calling `on_chunk(done, running_ppl)`
/// after each.
pub fn compute_imatrix<B: Backend>(
    model: &Transformer<B>,
    tokens: &[u32],
    options: &ImatrixOptions,
    mut on_chunk: impl FnMut(usize, f64),
) -> Result<ImatrixReport, ImatrixError> {
    let chunk_count = options.chunk_count(tokens.len())?;
    let vocab = model.config.vocab_size;
    let outside = |id: u32| id as usize >= vocab;
    if let Some(id) = options.bos.filter(|&id| outside(id)) {
        return Err(ImatrixError::BosOutOfVocabulary { id, vocab });
    }
    let used = &tokens[..chunk_count * options.ctx];
    if let Some(position) = used.iter().position(|&id| outside(id)) {
        return Err(ImatrixError::TokenOutOfVocabulary {
            position,
            id: tokens[position],
            vocab,
        });
    }

    let device = model.embed_tokens.weight.device();
    let ctx = options.ctx;
    let first = ctx / 2;
    let mut entries: BTreeMap<String, ActivationSums> = BTreeMap::new();
    let mut nll = NllStats::default();
    for index in 0..chunk_count {
        let input = options.chunk_input(tokens, index);
        let ids: Vec<i64> = input.iter().map(|&t| i64::from(t)).collect();
        let batch = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, ctx]), &device);
        let positions: Vec<u32> = (0..ctx as u32).collect();
        let layout = RowLayout {
            rows: 1,
            seq: ctx,
            position_ids: &positions,
            document_ids: &vec![1; ctx],
        };
        let hidden = model.probe_rows(batch, layout, |layer, activations| {
            let heads = activations.heads.flatten::<3>(2, 3);
            let inputs = [
                (
                    &[LayerWeight::Q, LayerWeight::K, LayerWeight::V][..],
                    &activations.attention_input,
                ),
                (&[LayerWeight::O][..], &heads),
                (
                    &[LayerWeight::Gate, LayerWeight::Up][..],
                    &activations.mlp_input,
                ),
                (&[LayerWeight::Down][..], &activations.intermediate),
            ];
            for (weights, x) in inputs {
                let [batch, seq, d] = x.dims();
                let squares =
                    host_f32((x.clone() * x.clone()).reshape([batch * seq, d]).sum_dim(0));
                for &weight in weights {
                    let name = Weight::Layer(layer, weight).gguf_name();
                    let entry = entries.entry(name).or_insert_with(|| ActivationSums {
                        sums: vec![0.0; d],
                        count: 0,
                    });
                    entry
                        .sums
                        .iter_mut()
                        .zip(&squares)
                        .for_each(|(s, q)| *s += q);
                    entry.count += (batch * seq) as u64;
                }
            }
        });
        let logits = model.output_logits(hidden);
        let scored = host_f32(logits.narrow(1, first, ctx - 1 - first));
        for (row, &target) in scored.chunks_exact(vocab).zip(&input[first + 1..]) {
            nll.add(token_nll(row, target as usize));
        }
        on_chunk(index + 1, nll.perplexity());
    }
    Ok(ImatrixReport {
        entries,
        ctx,
        chunks: chunk_count,
        tokens: tokens.len(),
        ppl: nll.perplexity(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};

    fn options(ctx: usize, max: Option<usize>) -> ImatrixOptions {
        ImatrixOptions {
            ctx,
            max_chunks: max.and_then(NonZeroUsize::new),
            bos: Some(1),
        }
    }

    #[test]
    fn needs_two_chunks_and_keeps_whole_ones() {
        assert_eq!(options(16, None).chunk_count(32), Ok(2));
        assert_eq!(options(16, None).chunk_count(63), Ok(3));
        assert_eq!(options(16, Some(2)).chunk_count(100), Ok(2));
        assert_eq!(
            options(16, None).chunk_count(31),
            Err(ImatrixError::TooFewTokens {
                tokens: 31,
                ctx: 16
            })
        );
        assert_eq!(
            options(8, None).chunk_count(100),
            Err(ImatrixError::ContextTooShort { ctx: 8 })
        );
        let msg = ImatrixError::TooFewTokens {
            tokens: 31,
            ctx: 16,
        }
        .to_string();
        assert!(
            msg.contains("31 tokens") && msg.contains("at least 32"),
            "{msg}"
        );
    }

    fn tiny_model() -> Transformer<CpuBackend> {
        <CpuBackend as burn::tensor::backend::Backend>::seed(&Default::default(), 5);
        ModelConfig {
            architecture: Architecture::Llama,
            vocab_size: 40,
            hidden_size: 16,
            intermediate_size: 24,
            num_layers: 2,
            num_heads: 2,
            num_kv_heads: 1,
            head_dim: 8,
            rms_norm_eps: 1e-6,
            rope: RopeConfig {
                theta: 10_000.0,
                scaling: RopeScaling::None,
            },
            max_position_embeddings: 64,
            tie_word_embeddings: true,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            sliding_window: None,
        }
        .init(&Default::default())
        .unwrap()
    }

    #[test]
    fn sums_are_squared_inputs_over_all_chunks() {
        let model = tiny_model();
        let tokens: Vec<u32> = (0..50).map(|i| (i * 7 + 3) % 40).collect();
        let report = compute_imatrix(&model, &tokens, &options(16, None), |_, _| {}).unwrap();
        assert_eq!((report.chunks, report.ctx, report.tokens), (3, 16, 50));
        assert_eq!(report.entries.len(), 2 * 7);
        let q = &report.entries["blk.1.attn_q.weight"];
        assert_eq!((q.sums.len(), q.count), (16, 48));
        assert_eq!(q, &report.entries["blk.1.attn_v.weight"]);
        assert_eq!(report.entries["blk.0.ffn_down.weight"].sums.len(), 24);
        assert_eq!(report.entries["blk.0.attn_output.weight"].sums.len(), 16);

        // Layer 0's q/k/v input is the RMS-normed embedding: with unit norm
        // weights each row's squares sum to d·ms / (ms + eps), just under d (eps
        // 1e-6 against a mean square near 4e-4 for σ = 0.02 embeddings; each
        // row's own mean square varies with its 16 random values).
        let first = &report.entries["blk.0.attn_q.weight"];
        let total: f32 = first.sums.iter().sum();
        let per_row = total / (48.0 * 16.0);
        assert!((0.99..1.0).contains(&per_row), "{total}");
        assert!(report.ppl.is_finite() && report.ppl > 1.0);
    }

    #[test]
    fn out_of_vocabulary_tokens_are_named() {
        let model = tiny_model();
        let mut tokens = vec![3u32; 40];
        tokens[20] = 45;
        let err = compute_imatrix(&model, &tokens, &options(16, None), |_, _| {}).unwrap_err();
        assert_eq!(
            err,
            ImatrixError::TokenOutOfVocabulary {
                position: 20,
                id: 45,
                vocab: 40
            }
        );
    }
}
