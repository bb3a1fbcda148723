//! Greedy decoding: the prompt in one forward pass, then one token at a time,
//! each the argmax of the previous position's logits.

use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;

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
    let mut next_token = |ids: &[u32]| {
        let logits = host_f32(model.forward_with_cache(
            model.token_tensor(ids),
            &mut cache,
            LogitsFor::Last,
        ));
        let best = argmax(&logits);
        (best, log_softmax_at(&logits, best as usize))
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

/// `ln softmax(logits)[index]`, in f64 so that a 150k vocabulary sums exactly enough.
fn log_softmax_at(logits: &[f32], index: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
    (f64::from(logits[index] - max) - sum.ln()) as f32
}

/// The index of the first largest value.
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}
