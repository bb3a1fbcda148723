//! Hugging Face directories of each family: loading, the logits against a plain
//! reimplementation of transformers' forward pass, storage variants and errors.

mod common;

use common::*;
use safetensors::tensor::Dtype;
use serde_json::json;
use train::{CpuBackend, ImportError, load_hf_dir, load_model};

const BATCH: [[u32; 7]; 2] = [[1, 5, 9, 33, 2, 63, 17], [40, 40, 3, 0, 12, 7, 21]];

fn batch() -> Vec<Vec<u32>> {
    BATCH.iter().map(|s| s.to_vec()).collect()
}

#[test]
fn every_family_matches_the_transformers_forward() {
    let tmp = tempfile::tempdir().unwrap();
    for (seed, family) in ["llama", "mistral", "qwen2", "qwen3"]
        .into_iter()
        .enumerate()
    {
        let config = hf_config(family);
        let weights = random_weights(&config, seed as u64);
        let dir = tmp.path().join(family);
        write_hf_dir(&dir, &config, &weights, Dtype::F32);

        let model = load_hf_dir::<CpuBackend>(&dir, &Default::default()).unwrap();
        assert_eq!(model.config.architecture.name(), family);
        let got = run(&model, &batch());
        let expected: Vec<_> = BATCH
            .iter()
            .map(|s| reference_logits(&config, &weights, s))
            .collect();
        let diff = max_abs_diff(&got, &expected);
        assert!(diff < 1e-4, "{family}: max abs diff {diff}");
    }
}

#[test]
fn half_precision_and_shards_load_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let config = hf_config("qwen2");
    let weights = random_weights(&config, 7);
    let single = tmp.path().join("f32");
    write_hf_dir(&single, &config, &weights, Dtype::F32);
    let expected = run(
        &load_model::<CpuBackend>(&single, &Default::default()).unwrap(),
        &batch(),
    );

    for dtype in [Dtype::F16, Dtype::BF16] {
        let dir = tmp.path().join(format!("{dtype:?}"));
        write_hf_dir(&dir, &config, &weights, dtype);
        let got = run(
            &load_hf_dir::<CpuBackend>(&dir, &Default::default()).unwrap(),
            &batch(),
        );
        assert_eq!(max_abs_diff(&got, &expected), 0.0, "{dtype:?}");
    }

    // Two shards split between layers, as save_pretrained does, plus their index.
    let sharded = tmp.path().join("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    std::fs::write(sharded.join("config.json"), config.to_string()).unwrap();
    let shard_of = |name: &str| {
        if name.starts_with("model.layers.1.") || name.starts_with("model.norm") {
            "model-00002-of-00002.safetensors"
        } else {
            "model-00001-of-00002.safetensors"
        }
    };
    let mut weight_map = serde_json::Map::new();
    for file in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        let part: Weights = weights
            .iter()
            .filter(|(name, _)| shard_of(name) == file)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for name in part.keys() {
            weight_map.insert(name.clone(), json!(file));
        }
        write_safetensors(&sharded.join(file), &part, Dtype::BF16);
    }
    let index = json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let got = run(
        &load_hf_dir::<CpuBackend>(&sharded, &Default::default()).unwrap(),
        &batch(),
    );
    assert_eq!(max_abs_diff(&got, &expected), 0.0, "sharded");
}

fn load_error(config: &serde_json::Value, weights: &Weights) -> String {
    let tmp = tempfile::tempdir().unwrap();
    write_hf_dir(tmp.path(), config, weights, Dtype::F32);
    let err = load_hf_dir::<CpuBackend>(tmp.path(), &Default::default()).unwrap_err();
    err.to_string()
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let config = hf_config("llama");
    let weights = random_weights(&config, 3);

    let mut missing = weights.clone();
    missing.remove("model.layers.1.mlp.up_proj.weight");
    let err = load_error(&config, &missing);
    assert!(
        err.contains("'model.layers.1.mlp.up_proj.weight' is missing"),
        "{err}"
    );

    let mut misshapen = weights.clone();
    let (shape, _) = misshapen
        .get_mut("model.layers.0.self_attn.k_proj.weight")
        .unwrap();
    *shape = vec![HIDDEN, 16];
    let err = load_error(&config, &misshapen);
    assert!(
        err.contains(
            "'model.layers.0.self_attn.k_proj.weight' has shape [32, 16], expected [16, 32]"
        ),
        "{err}"
    );
}

#[test]
fn unsupported_configurations_are_named() {
    let weights = random_weights(&hf_config("llama"), 3);
    let mut config = hf_config("llama");
    config["model_type"] = json!("gemma3");
    let err = load_error(&config, &weights);
    assert!(
        err.contains("config.json") && err.contains("'gemma3'"),
        "{err}"
    );

    let mut config = hf_config("qwen2");
    config["use_sliding_window"] = json!(true);
    let err = load_error(&config, &weights);
    assert!(err.contains("use_sliding_window"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let err = load_model::<CpuBackend>(tmp.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, ImportError::NotAModel { .. }), "{err}");
}
