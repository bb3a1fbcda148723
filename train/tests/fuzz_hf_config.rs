//! Fuzzing of `config.json` as `train::config::hf::from_json` parses it and as
//! `load_hf_dir` builds a model from it: arbitrary text, and a valid config
//! with values anywhere in it replaced by hostile ones (sizes of 2^40, sizes
//! whose products overflow, zeros, negatives, wrong types). A hostile config
//! next to small weights must be refused before anything is allocated from
//! its sizes: the bound below is the weights' size, not the config's.
//!
//! CI runs the default count below (seconds in a debug build); the longer run:
//! `PROPTEST_CASES=20000 cargo nextest run -p train --test fuzz_hf_config`

#[global_allocator]
static METER: testkit::PeakAlloc = testkit::PeakAlloc;

mod common;
mod mutate;

use std::sync::OnceLock;

use mutate::cases;
use mutate::json::json_edit;
use proptest::prelude::*;
use safetensors::tensor::Dtype;
use serde_json::{Value, json};
use train::config::hf::from_json;
use train::{CpuBackend, ImportError, Transformer, load_hf_dir};

/// serde_json keeps a parsed value in a few times its text's length (strings
/// copied, numbers widened to 8 bytes, maps' entries); 16 per byte is ample.
fn parse_bound(text_len: usize) -> usize {
    16 * text_len + (64 << 10)
}

fn parse(text: &str) {
    let (_, peak) = testkit::peak_during(|| from_json(text));
    assert!(
        peak <= parse_bound(text.len()),
        "{peak} bytes to parse {} bytes",
        text.len()
    );
}

/// A Qwen3 config: it reads the most keys (head_dim, q/k norms), and the
/// Llama-3 RoPE block that the edits below can also reach.
fn valid_config() -> Value {
    let mut config = common::hf_config("qwen3");
    config["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0,
        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64});
    config
}

/// The weights for `valid_config`, stored once.
fn weights() -> &'static [u8] {
    static WEIGHTS: OnceLock<Vec<u8>> = OnceLock::new();
    WEIGHTS.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let config = valid_config();
        common::write_hf_dir(
            tmp.path(),
            &config,
            &common::random_weights(&config, 2),
            Dtype::F16,
        );
        load_hf_dir::<CpuBackend>(tmp.path(), &Default::default()).expect("the fixture loads");
        std::fs::read(tmp.path().join("model.safetensors")).unwrap()
    })
}

/// As in fuzz_safetensors: the model is at most twice the F16 weights' bytes,
/// a weight being converted up to three more times; the config adds its
/// parse. Nothing may scale with the sizes the config states.
fn load(config: &str) -> Result<Transformer<CpuBackend>, ImportError> {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), config).unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), weights()).unwrap();
    let (result, peak) =
        testkit::peak_during(|| load_hf_dir::<CpuBackend>(tmp.path(), &Default::default()));
    let bound = 8 * weights().len() + parse_bound(config.len()) + (1 << 20);
    assert!(peak <= bound, "{peak} bytes allocated, bound {bound}");
    result
}

/// Sizes that overflow when the builder multiplies them, or that no file of
/// this size could hold, each with its key.
fn hostile_sizes() -> impl Strategy<Value = Vec<(&'static str, u64)>> {
    let key = prop_oneof![
        Just("vocab_size"),
        Just("hidden_size"),
        Just("intermediate_size"),
        Just("num_hidden_layers"),
        Just("num_attention_heads"),
        Just("num_key_value_heads"),
        Just("head_dim"),
        Just("max_position_embeddings"),
    ];
    let size = prop_oneof![
        (0u32..64).prop_map(|bit| 1u64 << bit),
        mutate::hostile_u64()
    ];
    proptest::collection::vec((key, size), 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases(2048))
    })]

    #[test]
    fn arbitrary_text_is_refused(text in ".{0,200}") {
        parse(&text);
        prop_assert!(from_json(&text).is_err());
    }

    #[test]
    fn edited_configs_parse_or_are_refused(
        edits in proptest::collection::vec(json_edit(), 1..4),
    ) {
        parse(&mutate::json::apply_all(valid_config(), &edits).to_string());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases(512))
    })]

    #[test]
    fn hostile_sizes_are_refused_before_allocating(sizes in hostile_sizes()) {
        let mut config = valid_config();
        for (key, size) in &sizes {
            config[*key] = json!(size);
        }
        let _ = load(&config.to_string());
    }

    #[test]
    fn edited_configs_load_or_are_refused(
        edits in proptest::collection::vec(json_edit(), 1..4),
    ) {
        let _ = load(&mutate::json::apply_all(valid_config(), &edits).to_string());
    }
}

#[test]
fn the_valid_config_loads_within_the_bound() {
    load(&valid_config().to_string()).expect("the fixture loads");
}

#[test]
fn a_hidden_size_of_2_pow_40_is_refused_by_the_weights_shape() {
    let mut config = valid_config();
    config["hidden_size"] = json!(1u64 << 40);
    let err = load(&config.to_string()).unwrap_err().to_string();
    assert!(
        err.contains("model.embed_tokens.weight") && err.contains("1099511627776"),
        "{err}"
    );
}

/// Found by `hostile_sizes_are_refused_before_allocating`: heads × head_dim
/// overflowed while the builder computed the query projection's shape, a
/// panic in debug builds and a wrapped, wrong shape in release ones.
#[test]
fn sizes_whose_product_overflows_are_refused() {
    let mut config = valid_config();
    config["num_attention_heads"] = json!(8);
    config["head_dim"] = json!(2_403_239_936_599_892_338u64);
    let err = load(&config.to_string()).unwrap_err().to_string();
    assert!(
        err.contains("config.json") && err.contains("more weights than"),
        "{err}"
    );
}
