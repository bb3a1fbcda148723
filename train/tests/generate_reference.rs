//! Greedy generation of the reference teacher against llama.cpp's, and its
//! key/value cache against the full forward pass.
//!
//! The golden comes from `tools/goldens/generate_llamacpp.py`: llama.cpp on the
//! F32-dequantized model with an F32 KV cache, taking the argmax of each
//! position's logits, for chat prompts rendered and tokenized as llama.cpp does.

use std::path::PathBuf;

use burn::tensor::{Int, Tensor, TensorData};
use datasets::Tokenizer;
use quantize::gguf::GgufFile;
use serde_json::Value as Json;
use train::generate::{StopReason, generate_greedy};
use train::model::LogitsFor;
use train::{CpuBackend, Transformer, load_gguf};

type B = CpuBackend;

fn reference_model() -> PathBuf {
    let path = match std::env::var_os("DECANT_REFERENCE_MODEL") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/decant/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    assert!(
        path.is_file(),
        "reference model {} is missing: run tools/fetch-reference-model.sh \
         (or set DECANT_REFERENCE_MODEL)",
        path.display()
    );
    path
}

fn golden() -> Json {
    serde_json::from_str(include_str!("goldens/smollm2_generate_llamacpp.json")).unwrap()
}

fn ids(value: &Json) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

fn input(ids: &[u32]) -> Tensor<B, 2, Int> {
    let data = TensorData::new(ids.iter().map(|&t| i64::from(t)).collect(), [1, ids.len()]);
    Tensor::from_data(data, &Default::default())
}

fn load() -> Transformer<B> {
    load_gguf(&reference_model(), &Default::default()).unwrap()
}

#[test]
fn greedy_generation_matches_llama_cpp() {
    let path = reference_model();
    let tokenizer = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let model = load();
    let golden = golden();
    let max_tokens = golden["max_tokens"].as_u64().unwrap() as usize;
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for case in cases {
        let prompt = ids(&case["prompt_tokens"]);
        let generation = generate_greedy(
            &model,
            &prompt,
            max_tokens,
            |id| tokenizer.is_eog(id),
            |_| {},
        )
        .unwrap();
        let expected_stop = match case["stop"].as_str().unwrap() {
            "eog" => StopReason::EndOfGeneration(case["stop_token"].as_u64().unwrap() as u32),
            _ => StopReason::MaxTokens,
        };
        let name = &case["prompt"];
        assert_eq!(generation.tokens, ids(&case["tokens"]), "{name}");
        assert_eq!(generation.stop, expected_stop, "{name}");
        assert_eq!(
            tokenizer.decode(&generation.tokens, false).unwrap(),
            case["text"],
            "{name}"
        );
    }
}

#[test]
fn cached_steps_match_the_full_forward() {
    let model = load();
    let vocab = model.config.vocab_size;
    let golden = golden();
    let case = &golden["cases"][0];
    let sequence = [ids(&case["prompt_tokens"]), ids(&case["tokens"])].concat();
    let (prompt, steps) = (sequence.len() - 6, 6);
    let full: Vec<f32> = model
        .forward(input(&sequence))
        .into_data()
        .to_vec()
        .unwrap();

    let mut cache = model.new_cache();
    let mut cached: Vec<f32> = model
        .forward_with_cache(input(&sequence[..prompt]), &mut cache, LogitsFor::All)
        .into_data()
        .to_vec()
        .unwrap();
    for &token in &sequence[prompt..prompt + steps] {
        let step = model.forward_with_cache(input(&[token]), &mut cache, LogitsFor::All);
        cached.extend(step.into_data().to_vec::<f32>().unwrap());
    }
    assert_eq!(cached.len(), sequence.len() * vocab);
    let diff = full
        .iter()
        .zip(&cached)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    eprintln!(
        "max |cached - full| over {} positions: {diff:e}",
        sequence.len()
    );
    assert!(diff <= 1e-4, "max abs logit difference {diff}");
}
