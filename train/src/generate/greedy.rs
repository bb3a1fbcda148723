//! Greedy decoding: the prompt in one forward pass, then one token at a time,
//! each the argmax of the previous position's logits.

use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use datasets::order::SplitMix64;

use crate::model::{InputError, LogitsFor, Transformer, host_f32};

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced this end-of-generation token (EOS, end of turn).
    EndOfGeneration(u32),
    /// The requested number of tokens was reached.
    MaxTokens,
    /// The sequence filled the model's context (`max_position_embeddings`).
    ContextFull,
}

impl StopReason {
    /// The reason as reports name it.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::EndOfGeneration(_) => "eog",
            StopReason::MaxTokens => "max_tokens",
            StopReason::ContextFull => "context_full",
        }
    }
}

/// What [`generate_greedy`] produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The generated token ids; an end-of-generation token that stopped the
    /// run is not among them but in [`StopReason::EndOfGeneration`].
    pub tokens: Vec<u32>,
    /// The natural log-probability of each chosen token, the stopping one
    /// included: a model's confidence in its answer.
    pub logprobs: Vec<f32>,
    pub stop: StopReason,
    /// The forward pass over the prompt, which yields the first new token.
    pub prompt_time: Duration,
    /// The one-token forward passes that yield every later token.
    pub decode_time: Duration,
    pub decode_steps: usize,
}

/// Generates up to `max_tokens` tokens after `prompt` by always taking the most
/// likely one (the lowest id among equals, as llama.cpp's greedy sampler),
/// stopping early at a token for which `is_eog` holds, or when the sequence
/// fills the model's context. `on_token` sees each new token as it is chosen,
/// the stopping one included.
pub fn generate_greedy<B: Backend>(
    model: &Transformer<B>,
    prompt: &[u32],
    max_tokens: usize,
    is_eog: impl Fn(u32) -> bool,
    on_token: impl FnMut(u32),
) -> Result<Generation, InputError> {
    generate(
        model,
        prompt,
        max_tokens,
        Sampling::Greedy,
        is_eog,
        on_token,
    )
}

/// How the next token is chosen from the model's logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// The most likely token, the lowest id among equals.
    Greedy,
    /// A draw from `softmax(logits / temperature)` cut to the smallest set of
    /// most likely tokens whose probability reaches `top_p` (nucleus sampling),
    /// from a random stream fixed by `seed`.
    Sample {
        temperature: f32,
        top_p: f32,
        seed: u64,
    },
}

/// [`generate_greedy`] with any [`Sampling`].
pub fn generate<B: Backend>(
    model: &Transformer<B>,
    prompt: &[u32],
    max_tokens: usize,
    sampling: Sampling,
    is_eog: impl Fn(u32) -> bool,
    mut on_token: impl FnMut(u32),
) -> Result<Generation, InputError> {
    model.check_input(prompt)?;
    let mut generation = Generation {
        tokens: Vec::new(),
        logprobs: Vec::new(),
        stop: StopReason::MaxTokens,
        prompt_time: Duration::ZERO,
        decode_time: Duration::ZERO,
        decode_steps: 0,
    };
    if max_tokens == 0 {
        return Ok(generation);
    }
    let mut cache = model.new_cache();
    let mut rng = SplitMix64::new(match sampling {
        Sampling::Sample { seed, .. } => seed,
        Sampling::Greedy => 0,
    });
    let mut next_token = |ids: &[u32]| {
        let logits = host_f32(model.forward_with_cache(
            model.token_tensor(ids),
            &mut cache,
            LogitsFor::Last,
        ));
        let chosen = match sampling {
            Sampling::Greedy => argmax(&logits),
            Sampling::Sample {
                temperature, top_p, ..
            } => sample(&logits, temperature, top_p, &mut rng),
        };
        (chosen, log_softmax_at(&logits, chosen as usize))
    };

    let started = Instant::now();
    let (mut token, mut logprob) = next_token(prompt);
    generation.prompt_time = started.elapsed();
    let started = Instant::now();
    // The position `token` takes once it is fed back.
    let mut position = prompt.len();
    loop {
        on_token(token);
        generation.logprobs.push(logprob);
        if is_eog(token) {
            generation.stop = StopReason::EndOfGeneration(token);
            break;
        }
        generation.tokens.push(token);
        if generation.tokens.len() == max_tokens {
            break;
        }
        if position == model.config.max_position_embeddings {
            generation.stop = StopReason::ContextFull;
            break;
        }
        (token, logprob) = next_token(&[token]);
        position += 1;
        generation.decode_steps += 1;
    }
    generation.decode_time = started.elapsed();
    Ok(generation)
}

/// A draw from the nucleus of `softmax(logits / temperature)`.
fn sample(logits: &[f32], temperature: f32, top_p: f32, rng: &mut SplitMix64) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut ranked: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(id, &v)| {
            (
                id as u32,
                (f64::from(v - max) / f64::from(temperature)).exp(),
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: f64 = ranked.iter().map(|&(_, p)| p).sum();
    let mut kept = 0.0;
    let mut nucleus = 0;
    for &(_, p) in &ranked {
        kept += p;
        nucleus += 1;
        if kept >= f64::from(top_p) * total {
            break;
        }
    }
    let draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * kept;
    let mut below = 0.0;
    for &(id, p) in &ranked[..nucleus] {
        below += p;
        if draw < below {
            return id;
        }
    }
    ranked[nucleus - 1].0
}

/// `ln softmax(logits)[index]`, in f64 so that a 150k vocabulary sums exactly enough.
fn log_softmax_at(logits: &[f32], index: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
    (f64::from(logits[index] - max) - sum.ln()) as f32
}

/// The index of the first largest value.
pub(crate) fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_the_tempered_nucleus() {
        let logits = [2.0f32, 1.0, 0.0, -30.0];
        let mut rng = SplitMix64::new(5);
        // A nucleus this small holds only the most likely token.
        assert!((0..50).all(|_| sample(&logits, 1.0, 1e-6, &mut rng) == 0));
        let draws = 20_000;
        let mut counts = [0usize; 4];
        for _ in 0..draws {
            counts[sample(&logits, 2.0, 1.0, &mut rng) as usize] += 1;
        }
        let weights: Vec<f64> = logits.iter().map(|&l| (f64::from(l) / 2.0).exp()).collect();
        let total: f64 = weights.iter().sum();
        for (count, weight) in counts.iter().zip(&weights) {
            let expected = weight / total;
            assert!(
                (*count as f64 / draws as f64 - expected).abs() < 0.015,
                "{counts:?}"
            );
        }
        let same = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..20)
                .map(|_| sample(&logits, 1.0, 0.9, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(same(9), same(9));
    }

    #[test]
    fn log_softmax_is_normalized() {
        let logits = [0.5f32, -1.0, 3.0];
        let total: f64 = (0..3)
            .map(|i| f64::from(log_softmax_at(&logits, i)).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
