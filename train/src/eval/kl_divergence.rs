//! How far a model's next-token distributions are from a teacher's, as
//! llama-perplexity's `--kl-divergence` mode measures it: over the tokens
//! perplexity scores (the second half of each chunk), per token the KL
//! divergence KL(teacher ‖ model) and whether both put the same token on top.
//!
//! llama-perplexity stores the teacher's log-probabilities as 16-bit integers
//! over the 16 nats below the maximum (`--kl-divergence-base`) and sums only the
//! terms above that; the figures here use that same encoding and the same float
//! arithmetic, so they differ from llama.cpp's only as much as the logits do.

use burn::tensor::backend::Backend;

use super::nll::token_nll;
use super::perplexity::{ChunkScore, PerplexityError, PerplexityOptions, PerplexityReport, Scorer};
use crate::model::Transformer;

/// KL divergence and top-token agreement of a model against a teacher, with
/// the perplexity of each over the same tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct KlReport {
    pub model: PerplexityReport,
    pub teacher: PerplexityReport,
    /// Scored tokens.
    pub count: usize,
    pub kld_mean: f64,
    /// Standard error of the mean; 0 with 10 tokens or fewer, as llama.cpp reports it.
    pub kld_error: f64,
    pub kld_median: f64,
    pub kld_p90: f64,
    pub kld_p95: f64,
    pub kld_p99: f64,
    pub kld_p999: f64,
    pub kld_max: f64,
    pub kld_min: f64,
    /// Fraction of tokens where model and teacher rank the same token first.
    pub same_top: f64,
    pub same_top_error: f64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KlError {
    #[error(transparent)]
    Perplexity(#[from] PerplexityError),
    #[error(
        "the model's vocabulary has {model} tokens and the teacher's {teacher}: KL divergence \
         compares distributions over the same vocabulary"
    )]
    VocabularyMismatch { model: usize, teacher: usize },
}

/// Evaluates `model` and `teacher` on the chunks of `tokens`, calling `on_chunk`
/// with the model's running score after each.
pub fn kl_divergence<B: Backend>(
    model: &Transformer<B>,
    teacher: &Transformer<B>,
    tokens: &[u32],
    options: &PerplexityOptions,
    mut on_chunk: impl FnMut(&ChunkScore),
) -> Result<KlReport, KlError> {
    let (vocab, teacher_vocab) = (model.config.vocab_size, teacher.config.vocab_size);
    if vocab != teacher_vocab {
        return Err(KlError::VocabularyMismatch {
            model: vocab,
            teacher: teacher_vocab,
        });
    }
    let mut model_scorer = Scorer::new(model, tokens, options)?;
    let mut teacher_scorer = Scorer::new(teacher, tokens, options)?;
    let mut kld = Vec::new();
    let mut kld_sums = (0.0f64, 0.0f64);
    let mut same_top = 0usize;
    for index in 0..model_scorer.chunk_count() {
        let (targets, model_logits) = model_scorer.chunk_logits(index);
        let (_, teacher_logits) = teacher_scorer.chunk_logits(index);
        let rows = model_logits
            .chunks_exact(vocab)
            .zip(teacher_logits.chunks_exact(vocab));
        let mut model_nlls = Vec::with_capacity(targets.len());
        let mut teacher_nlls = Vec::with_capacity(targets.len());
        for ((model_row, teacher_row), &target) in rows.zip(&targets) {
            let base = BaseLogProbs::encode(teacher_row);
            let token = token_kld(model_row, &base);
            kld_sums.0 += token.kld;
            kld_sums.1 += token.kld * token.kld;
            kld.push(token.kld as f32);
            same_top += usize::from(token.same_top);
            model_nlls.push(token_nll(model_row, target as usize));
            teacher_nlls.push(token_nll(teacher_row, target as usize));
        }
        on_chunk(&model_scorer.add_chunk(index, &model_nlls));
        teacher_scorer.add_chunk(index, &teacher_nlls);
    }
    let count = kld.len();
    let (kld_mean, kld_error) = mean_and_uncertainty(kld_sums.0, kld_sums.1, count);
    let top = same_top as f64 / count as f64;
    kld.sort_by(f32::total_cmp);
    let half = count / 2;
    let kld_median = if count % 2 == 0 {
        0.5 * (kld[half] + kld[half - 1])
    } else {
        kld[half]
    };
    Ok(KlReport {
        model: model_scorer.finish(),
        teacher: teacher_scorer.finish(),
        count,
        kld_mean,
        kld_error,
        kld_median: f64::from(kld_median),
        kld_p90: percentile(&kld, 0.90),
        kld_p95: percentile(&kld, 0.95),
        kld_p99: percentile(&kld, 0.99),
        kld_p999: percentile(&kld, 0.999),
        kld_max: f64::from(kld[count - 1]),
        kld_min: f64::from(kld[0]),
        same_top: top,
        same_top_error: (top * (1.0 - top) / (count as f64 - 1.0)).sqrt(),
    })
}

/// llama-perplexity's `mean_and_uncertainty`.
fn mean_and_uncertainty(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    let mean = sum / count as f64;
    let variance = sum2 / count as f64 - mean * mean;
    let error = if variance > 0.0 && count > 10 {
        (variance / (count - 1) as f64).sqrt()
    } else {
        0.0
    };
    (mean, error)
}

/// llama-perplexity's interpolated percentile of sorted values, in f32 as it computes it.
fn percentile(sorted: &[f32], fraction: f32) -> f64 {
    let p = fraction * (sorted.len() - 1) as f32;
    let ip = p as usize;
    let p = p - ip as f32;
    let next = sorted[(ip + 1).min(sorted.len() - 1)];
    f64::from((1.0 - p) * sorted[ip] + p * next)
}

/// A teacher's log-probabilities as `--kl-divergence-base` stores them: the
/// logits from the maximum down to 16 below it mapped to 0..=65535, the rest 0.
struct BaseLogProbs {
    scale: f32,
    min_log_prob: f32,
    levels: Vec<u16>,
}

impl BaseLogProbs {
    fn encode(logits: &[f32]) -> BaseLogProbs {
        let max = logits.iter().copied().fold(logits[0], f32::max);
        let min = logits
            .iter()
            .copied()
            .fold(logits[0], f32::min)
            .max(max - 16.0);
        let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
        let log_sum_exp = sum_exp.ln() as f32;
        let scale = (max - min) / 65535.0;
        let levels = if scale != 0.0 {
            let inv_scale = 1.0 / scale;
            logits
                .iter()
                .map(|&l| {
                    if l > min {
                        nearest_int(inv_scale * (l - min)) as u16
                    } else {
                        0
                    }
                })
                .collect()
        } else {
            vec![0; logits.len()]
        };
        BaseLogProbs {
            scale,
            min_log_prob: min - max - log_sum_exp,
            levels,
        }
    }

    fn log_prob(&self, token: usize) -> f32 {
        self.scale * f32::from(self.levels[token]) + self.min_log_prob
    }
}

/// ggml's round-to-nearest-even through the float mantissa.
fn nearest_int(value: f32) -> i32 {
    ((value + 12_582_912.0).to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

struct TokenKld {
    kld: f64,
    same_top: bool,
}

/// llama-perplexity's KL divergence of one token: `Σ p_base · (log p_base − log p)`
/// over the tokens whose stored log-probability is above −16.
fn token_kld(logits: &[f32], base: &BaseLogProbs) -> TokenKld {
    let (mut max, mut imax) = (logits[0], 0);
    for (i, &l) in logits.iter().enumerate().skip(1) {
        if l > max {
            (max, imax) = (l, i);
        }
    }
    let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    let log_norm = max + sum_exp.ln() as f32;
    let mut kld = 0.0f64;
    let (mut imax_base, mut max_base) = (0, 0.0f32);
    for (i, &l) in logits.iter().enumerate() {
        let p_log_base = base.log_prob(i);
        if i == 0 || p_log_base > max_base {
            (max_base, imax_base) = (p_log_base, i);
        }
        if p_log_base > -16.0 {
            kld += f64::from(p_log_base.exp() * (p_log_base - l + log_norm));
        }
    }
    TokenKld {
        kld,
        same_top: imax == imax_base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(
            [0.5, 1.5, 2.4, 2.6, 65534.5].map(nearest_int),
            [0, 2, 2, 3, 65534]
        );
    }

    #[test]
    fn encoded_log_probs_are_within_half_a_level() {
        let logits = [3.0f32, 1.0, -2.0, 0.5, -30.0];
        let base = BaseLogProbs::encode(&logits);
        let sum: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        for (i, &l) in logits.iter().enumerate().take(4) {
            let exact = f64::from(l) - sum.ln();
            assert!((f64::from(base.log_prob(i)) - exact).abs() < 2e-4, "{i}");
        }
        // Below the 16-nat window: stored as the window's floor.
        assert_eq!(base.levels[4], 0);
    }

    #[test]
    fn divergence_is_zero_for_the_same_logits_and_positive_otherwise() {
        let teacher = [2.0f32, 1.0, 0.0, -1.0];
        let same = token_kld(&teacher, &BaseLogProbs::encode(&teacher));
        assert!(same.kld.abs() < 1e-6 && same.same_top, "{}", same.kld);
        let model = [0.0f32, 2.5, 0.0, -1.0];
        let other = token_kld(&model, &BaseLogProbs::encode(&teacher));
        assert!(!other.same_top);
        let p: Vec<f64> = softmax(&teacher);
        let q: Vec<f64> = softmax(&model);
        let exact: f64 = p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum();
        assert!((other.kld - exact).abs() < 1e-4, "{} vs {exact}", other.kld);
    }

    fn softmax(logits: &[f32]) -> Vec<f64> {
        let sum: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        logits.iter().map(|&l| f64::from(l).exp() / sum).collect()
    }

    #[test]
    fn percentiles_interpolate_as_llama_perplexity() {
        let sorted = [0.0f32, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&sorted, 0.5), 2.0);
        assert!((percentile(&sorted, 0.99) - 3.96).abs() < 1e-6);
        assert_eq!(mean_and_uncertainty(6.0, 14.0, 3), (2.0, 0.0));
    }
}
