//! The key/value cache and greedy decoding on tiny random checkpoints of each
//! family: cached forward passes against the full one, and where generation stops.

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use common::{hf_config, random_weights, write_hf_dir};
use safetensors::tensor::Dtype;
use train::generate::{StopReason, generate_greedy};
use train::model::{InputError, KvCache, LogitsFor};
use train::{CpuBackend, Transformer, load_hf_dir};

type B = CpuBackend;

const TOKENS: [u32; 11] = [1, 5, 9, 33, 2, 63, 17, 40, 40, 3, 12];

fn tiny_model(family: &str, seed: u64) -> Transformer<B> {
    let tmp = tempfile::tempdir().unwrap();
    let config = hf_config(family);
    write_hf_dir(
        tmp.path(),
        &config,
        &random_weights(&config, seed),
        Dtype::F32,
    );
    load_hf_dir(tmp.path(), &Default::default()).unwrap()
}

fn input(batch: &[&[u32]]) -> Tensor<B, 2, Int> {
    let ids: Vec<i64> = batch
        .iter()
        .flat_map(|s| s.iter().map(|&t| i64::from(t)))
        .collect();
    Tensor::from_data(
        TensorData::new(ids, [batch.len(), batch[0].len()]),
        &Default::default(),
    )
}

fn values(t: Tensor<B, 3>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs `seqs` through the cache in chunks of the given lengths, returning the
/// logits of every position, `[batch, seq, vocab]` flattened.
fn chunked(model: &Transformer<B>, seqs: &[&[u32]], chunks: &[usize]) -> Vec<f32> {
    let vocab = model.config.vocab_size;
    let mut cache: KvCache<B> = model.new_cache();
    let mut per_seq = vec![Vec::new(); seqs.len()];
    let mut start = 0;
    for &len in chunks {
        let chunk: Vec<&[u32]> = seqs.iter().map(|s| &s[start..start + len]).collect();
        let logits = values(model.forward_with_cache(input(&chunk), &mut cache, LogitsFor::All));
        for (b, out) in per_seq.iter_mut().enumerate() {
            out.extend_from_slice(&logits[b * len * vocab..(b + 1) * len * vocab]);
        }
        start += len;
        assert_eq!(cache.len(), start);
    }
    per_seq.concat()
}

#[test]
fn cached_passes_match_the_full_forward_in_every_family() {
    let reversed: Vec<u32> = TOKENS.iter().rev().copied().collect();
    let seqs: [&[u32]; 2] = [&TOKENS, &reversed];
    // A prompt, single tokens, then a chunk again: the Mistral checkpoint's window
    // of 4 is crossed both inside a chunk and across the cache.
    let chunks = [4, 1, 1, 3, 1, 1];
    for (seed, family) in ["llama", "mistral", "qwen2", "qwen3"]
        .into_iter()
        .enumerate()
    {
        let model = tiny_model(family, seed as u64);
        let full = values(model.forward(input(&seqs)));
        let cached = chunked(&model, &seqs, &chunks);
        let diff = max_abs_diff(&full, &cached);
        assert!(diff < 1e-5, "{family}: max abs diff {diff}");
    }
}

#[test]
fn last_position_logits_are_the_last_row() {
    let model = tiny_model("qwen2", 3);
    let vocab = model.config.vocab_size;
    let all = values(model.forward(input(&[&TOKENS])));
    let mut cache = model.new_cache();
    let last = model.forward_with_cache(input(&[&TOKENS]), &mut cache, LogitsFor::Last);
    assert_eq!(last.dims(), [1, 1, vocab]);
    // The output head then multiplies one row instead of many: float noise only.
    let diff = max_abs_diff(&values(last), &all[(TOKENS.len() - 1) * vocab..]);
    assert!(diff < 1e-5, "max abs diff {diff}");
}

/// The tokens the model generates after `TOKENS` when nothing stops it.
fn unstopped(model: &Transformer<B>, n: usize) -> Vec<u32> {
    let generation = generate_greedy(model, &TOKENS, n, |_| false, |_| {}).unwrap();
    assert_eq!(generation.stop, StopReason::MaxTokens);
    assert_eq!(generation.tokens.len(), n);
    assert_eq!(
        generation.decode_steps,
        n - 1,
        "the prompt pass yields the first token"
    );
    generation.tokens
}

#[test]
fn greedy_decoding_takes_the_argmax_of_each_full_forward() {
    let model = tiny_model("llama", 11);
    let generated = unstopped(&model, 6);
    let vocab = model.config.vocab_size;
    let mut sequence = TOKENS.to_vec();
    for &token in &generated {
        let logits = values(model.forward(input(&[&sequence])));
        let last = &logits[(sequence.len() - 1) * vocab..];
        let best = (0..vocab).fold(0, |best, i| if last[i] > last[best] { i } else { best });
        assert_eq!(token as usize, best);
        sequence.push(token);
    }
}

#[test]
fn generation_stops_at_an_end_of_generation_token() {
    let model = tiny_model("qwen3", 5);
    let generated = unstopped(&model, 12);
    // The first token not generated before it, so that it stops exactly there.
    let stop_at = (1..generated.len())
        .find(|&i| !generated[..i].contains(&generated[i]))
        .expect("the model generates more than one distinct token");
    let eog = generated[stop_at];
    let mut seen = Vec::new();
    let generation =
        generate_greedy(&model, &TOKENS, 12, |id| id == eog, |id| seen.push(id)).unwrap();
    assert_eq!(generation.stop, StopReason::EndOfGeneration(eog));
    assert_eq!(generation.tokens, generated[..stop_at]);
    assert_eq!(generation.decode_steps, stop_at);
    assert_eq!(
        seen,
        generated[..=stop_at],
        "the callback sees the stopping token too"
    );
}

#[test]
fn generation_stops_at_max_tokens_and_at_the_context_end() {
    let model = tiny_model("mistral", 2);
    let generated = unstopped(&model, 5);
    let none = generate_greedy(&model, &TOKENS, 0, |_| false, |_| {}).unwrap();
    assert_eq!((none.tokens.len(), none.stop), (0, StopReason::MaxTokens));

    let mut short = model.clone();
    short.config.max_position_embeddings = TOKENS.len() + 3;
    let generation = generate_greedy(&short, &TOKENS, 10, |_| false, |_| {}).unwrap();
    assert_eq!(generation.stop, StopReason::ContextFull);
    // The last position's logits still give one token past the context.
    assert_eq!(generation.tokens, generated[..4]);
}

#[test]
fn bad_inputs_are_refused() {
    let model = tiny_model("llama", 1);
    let run = |prompt: &[u32]| generate_greedy(&model, prompt, 4, |_| false, |_| {}).unwrap_err();
    assert_eq!(run(&[]), InputError::Empty);
    assert_eq!(
        run(&[1, 2, 64]),
        InputError::OutOfVocabulary {
            index: 2,
            id: 64,
            vocab_size: 64
        }
    );
    let long = vec![1; model.config.max_position_embeddings + 1];
    assert_eq!(
        run(&long),
        InputError::TooLong {
            tokens: long.len(),
            context: long.len() - 1
        }
    );
}
