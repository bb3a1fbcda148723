//! Perplexity over a token stream, as llama.cpp's `llama-perplexity` computes it.
//!
//! The stream is cut into whole chunks of `ctx` tokens, each evaluated on its own
//! from position 0. Only the second half of a chunk is scored: the logits at
//! positions `ctx/2 .. ctx-1` predict the tokens after them, so every scored
//! token sees at least `ctx/2` tokens of context and the figure does not depend
//! on how the text happens to start. When the vocabulary adds BOS, each chunk's
//! first token is replaced by BOS (not shifted), as the model saw text in training.

use std::num::NonZeroUsize;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::nll::{NllStats, token_nll};
use crate::model::{Transformer, host_f32};

/// How a token stream is split and scored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerplexityOptions {
    /// Tokens per chunk (llama-perplexity's `--ctx-size`).
    pub ctx: usize,
    /// Evaluate at most this many chunks from the start (its `--chunks`).
    pub max_chunks: Option<NonZeroUsize>,
    /// The BOS token, when the vocabulary adds one to a text.
    pub bos: Option<u32>,
}

impl PerplexityOptions {
    /// The smallest context that scores a token: position 1 predicting position 2.
    pub const MIN_CTX: usize = 3;

    /// The number of chunks a stream of `tokens` tokens gives.
    pub fn chunk_count(&self, tokens: usize) -> Result<usize, PerplexityError> {
        if self.ctx < Self::MIN_CTX {
            return Err(PerplexityError::ContextTooShort { ctx: self.ctx });
        }
        let whole = tokens / self.ctx;
        if whole == 0 {
            return Err(PerplexityError::TooFewTokens {
                tokens,
                ctx: self.ctx,
            });
        }
        Ok(self.max_chunks.map_or(whole, |max| whole.min(max.get())))
    }

    /// Chunk `index` as the model reads it.
    fn chunk_input(&self, tokens: &[u32], index: usize) -> Vec<u32> {
        let mut input = tokens[index * self.ctx..(index + 1) * self.ctx].to_vec();
        if let Some(bos) = self.bos {
            input[0] = bos;
        }
        input
    }

    /// The first position whose logits are scored.
    fn first_scored(&self) -> usize {
        self.ctx / 2
    }
}

/// One evaluated chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkScore {
    /// 0-based.
    pub index: usize,
    /// Mean NLL of the chunk's scored tokens.
    pub nll_mean: f64,
    /// Perplexity over this chunk and all before it, as llama-perplexity prints it.
    pub running_ppl: f64,
}

/// The perplexity of a stream and how it was measured.
#[derive(Clone, Debug, PartialEq)]
pub struct PerplexityReport {
    pub ctx: usize,
    /// Tokens in the stream, evaluated or not.
    pub tokens: usize,
    pub chunks: Vec<ChunkScore>,
    /// Tokens whose NLL counts: `ctx - 1 - ctx/2` per chunk.
    pub scored: usize,
    pub nll_mean: f64,
    /// `exp(nll_mean)`.
    pub ppl: f64,
    /// llama-perplexity's `±` estimate; `None` with too few scored tokens.
    pub ppl_error: Option<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PerplexityError {
    #[error(
        "a context of {ctx} tokens scores none; perplexity needs a context of at least {}",
        PerplexityOptions::MIN_CTX
    )]
    ContextTooShort { ctx: usize },
    #[error(
        "the data is only {tokens} tokens long, less than one chunk of {ctx}; \
         give more text or a shorter context"
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

/// Evaluates `model` on the chunks of `tokens`, calling `on_chunk` after each.
pub fn perplexity<B: Backend>(
    model: &Transformer<B>,
    tokens: &[u32],
    options: &PerplexityOptions,
    mut on_chunk: impl FnMut(&ChunkScore),
) -> Result<PerplexityReport, PerplexityError> {
    let mut scorer = Scorer::new(model, tokens, options)?;
    let vocab = model.config.vocab_size;
    for index in 0..scorer.chunk_count() {
        let (targets, logits) = scorer.chunk_logits(index);
        let nlls: Vec<f64> = logits
            .chunks_exact(vocab)
            .zip(&targets)
            .map(|(row, &target)| token_nll(row, target as usize))
            .collect();
        on_chunk(&scorer.add_chunk(index, &nlls));
    }
    Ok(scorer.finish())
}

/// One model's pass over a checked token stream, chunk by chunk: the logits
/// that score each chunk, and the NLL statistics of the chunks scored so far.
pub(super) struct Scorer<'a, B: Backend> {
    model: &'a Transformer<B>,
    tokens: &'a [u32],
    options: &'a PerplexityOptions,
    chunk_count: usize,
    stats: NllStats,
    chunks: Vec<ChunkScore>,
}

impl<'a, B: Backend> Scorer<'a, B> {
    /// Checks that the chunks `tokens` gives are ones `model` can read.
    pub fn new(
        model: &'a Transformer<B>,
        tokens: &'a [u32],
        options: &'a PerplexityOptions,
    ) -> Result<Self, PerplexityError> {
        let chunk_count = options.chunk_count(tokens.len())?;
        let vocab = model.config.vocab_size;
        let outside = |id: u32| id as usize >= vocab;
        if let Some(id) = options.bos.filter(|&id| outside(id)) {
            return Err(PerplexityError::BosOutOfVocabulary { id, vocab });
        }
        if let Some(position) = tokens[..chunk_count * options.ctx]
            .iter()
            .position(|&id| outside(id))
        {
            return Err(PerplexityError::TokenOutOfVocabulary {
                position,
                id: tokens[position],
                vocab,
            });
        }
        Ok(Scorer {
            model,
            tokens,
            options,
            chunk_count,
            stats: NllStats::default(),
            chunks: Vec::with_capacity(chunk_count),
        })
    }

    pub fn chunk_count(&self) -> usize {
        self.chunk_count
    }

    /// Chunk `index`'s scored tokens and the logits that predict them, row-major
    /// `[tokens, vocab]`.
    pub fn chunk_logits(&self, index: usize) -> (Vec<u32>, Vec<f32>) {
        let (ctx, first) = (self.options.ctx, self.options.first_scored());
        let input = self.options.chunk_input(self.tokens, index);
        let ids: Vec<i64> = input.iter().map(|&t| i64::from(t)).collect();
        let device = self.model.embed_tokens.weight.device();
        let logits = self
            .model
            .forward(Tensor::<B, 2, Int>::from_data(
                TensorData::new(ids, [1, ctx]),
                &device,
            ))
            .narrow(1, first, ctx - 1 - first);
        (input[first + 1..].to_vec(), host_f32(logits))
    }

    /// Adds chunk `index`'s NLLs, one per scored token.
    pub fn add_chunk(&mut self, index: usize, nlls: &[f64]) -> ChunkScore {
        let mut chunk = NllStats::default();
        for &nll in nlls {
            chunk.add(nll);
            self.stats.add(nll);
        }
        let score = ChunkScore {
            index,
            nll_mean: chunk.mean(),
            running_ppl: self.stats.perplexity(),
        };
        self.chunks.push(score.clone());
        score
    }

    pub fn finish(self) -> PerplexityReport {
        PerplexityReport {
            ctx: self.options.ctx,
            tokens: self.tokens.len(),
            chunks: self.chunks,
            scored: self.stats.count(),
            nll_mean: self.stats.mean(),
            ppl: self.stats.perplexity(),
            ppl_error: self.stats.perplexity_error(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};

    fn options(ctx: usize, bos: Option<u32>) -> PerplexityOptions {
        PerplexityOptions {
            ctx,
            max_chunks: None,
            bos,
        }
    }

    #[test]
    fn chunks_are_whole_and_capped() {
        let o = options(8, None);
        assert_eq!(o.chunk_count(8), Ok(1));
        assert_eq!(o.chunk_count(23), Ok(2));
        let capped = PerplexityOptions {
            max_chunks: NonZeroUsize::new(1),
            ..o.clone()
        };
        assert_eq!(capped.chunk_count(40), Ok(1));
        assert_eq!(
            o.chunk_count(7),
            Err(PerplexityError::TooFewTokens { tokens: 7, ctx: 8 })
        );
        assert_eq!(
            options(2, None).chunk_count(100),
            Err(PerplexityError::ContextTooShort { ctx: 2 })
        );
    }

    #[test]
    fn bos_replaces_the_first_token_of_every_chunk() {
        let tokens: Vec<u32> = (10..22).collect();
        assert_eq!(options(4, None).chunk_input(&tokens, 1), [14, 15, 16, 17]);
        assert_eq!(options(4, Some(1)).chunk_input(&tokens, 0), [1, 11, 12, 13]);
        assert_eq!(options(4, Some(1)).chunk_input(&tokens, 2), [1, 19, 20, 21]);
    }

    fn tiny_model() -> Transformer<CpuBackend> {
        ModelConfig {
            architecture: Architecture::Llama,
            vocab_size: 40,
            hidden_size: 16,
            intermediate_size: 24,
            num_layers: 1,
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

    /// The NLLs of one chunk straight from the model's logits.
    fn chunk_nlls(model: &Transformer<CpuBackend>, input: &[u32], first: usize) -> Vec<f64> {
        let ids: Vec<i64> = input.iter().map(|&t| i64::from(t)).collect();
        let shape = [1, input.len()];
        let logits: Vec<f32> = model
            .forward(Tensor::from_data(
                TensorData::new(ids, shape),
                &Default::default(),
            ))
            .into_data()
            .to_vec()
            .unwrap();
        let vocab = model.config.vocab_size;
        (first..input.len() - 1)
            .map(|p| token_nll(&logits[p * vocab..(p + 1) * vocab], input[p + 1] as usize))
            .collect()
    }

    #[test]
    fn scores_the_second_half_of_each_chunk() {
        let model = tiny_model();
        let tokens: Vec<u32> = (0..21).map(|i| (i * 7 + 3) % 40).collect();
        let options = options(10, Some(1));
        let mut seen = Vec::new();
        let report = perplexity(&model, &tokens, &options, |c| seen.push(c.index)).unwrap();
        assert_eq!(seen, [0, 1]);
        assert_eq!((report.tokens, report.scored), (21, 8));

        let nlls: Vec<Vec<f64>> = (0..2)
            .map(|c| chunk_nlls(&model, &options.chunk_input(&tokens, c), 5))
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        for (chunk, expected) in report.chunks.iter().zip(&nlls) {
            assert!((chunk.nll_mean - mean(expected)).abs() < 1e-9);
        }
        let all = nlls.concat();
        assert!((report.ppl - mean(&all).exp()).abs() < 1e-9);
        assert!((report.chunks[0].running_ppl - mean(&nlls[0]).exp()).abs() < 1e-9);
        assert_eq!(report.chunks[1].running_ppl, report.ppl);
        assert!(report.ppl_error.is_some_and(|e| e > 0.0));
    }

    #[test]
    fn out_of_vocabulary_ids_are_named() {
        let model = tiny_model();
        let mut tokens = vec![3u32; 12];
        tokens[5] = 40;
        let err = perplexity(&model, &tokens, &options(4, Some(1)), |_| {}).unwrap_err();
        assert_eq!(
            err,
            PerplexityError::TokenOutOfVocabulary {
                position: 5,
                id: 40,
                vocab: 40
            }
        );
    }
}
