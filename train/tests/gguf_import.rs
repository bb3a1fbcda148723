//! GGUF files written as llama.cpp's converter writes them (Q/K rows permuted for
//! `llama`, Llama-3 scaling as a `rope_freqs` tensor, ggml dimension order), loaded
//! and checked against transformers' forward pass on the original checkpoint.

mod common;

use std::path::Path;

use common::*;
use quantize::GgmlType;
use quantize::gguf::{GgufWriter, Value};
use serde_json::Value as Json;
use train::{CpuBackend, load_gguf};

const TOKENS: [u32; 9] = [3, 14, 15, 9, 26, 5, 35, 8, 9];

/// llama.cpp's name for a transformers tensor (`gguf-py` tensor_mapping).
fn gguf_name(hf: &str) -> String {
    let global = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = global.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, rest) = rest.split_once('.').unwrap();
    let parts = [
        ("input_layernorm.", "attn_norm."),
        ("self_attn.q_proj.", "attn_q."),
        ("self_attn.k_proj.", "attn_k."),
        ("self_attn.v_proj.", "attn_v."),
        ("self_attn.o_proj.", "attn_output."),
        ("self_attn.q_norm.", "attn_q_norm."),
        ("self_attn.k_norm.", "attn_k_norm."),
        ("post_attention_layernorm.", "ffn_norm."),
        ("mlp.gate_proj.", "ffn_gate."),
        ("mlp.up_proj.", "ffn_up."),
        ("mlp.down_proj.", "ffn_down."),
    ];
    let (h, g) = parts.iter().find(|(h, _)| rest.starts_with(h)).unwrap();
    format!("blk.{layer}.{g}{}", &rest[h.len()..])
}

/// `LlamaModel.permute` of llama.cpp's converter.
fn permute(data: &[f32], heads: usize, row_len: usize) -> Vec<f32> {
    let head_dim = data.len() / row_len / heads;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..heads {
        for i in 0..head_dim / 2 {
            for j in 0..2 {
                let src = (h * head_dim + j * head_dim / 2 + i) * row_len;
                out.extend_from_slice(&data[src..src + row_len]);
            }
        }
    }
    out
}

struct GgufModel {
    metadata: Vec<(String, Value)>,
    /// Name, ggml shape, type and values.
    tensors: Vec<(String, Vec<u64>, GgmlType, Vec<f32>)>,
}

/// What llama.cpp's converter would write for a transformers checkpoint; 2-D
/// weights in F16 (the test values are exact in it), the rest in F32.
fn convert(config: &Json, weights: &Weights) -> GgufModel {
    let arch = config["model_type"].as_str().unwrap();
    let int = |k: &str| config[k].as_u64().unwrap() as u32;
    let head_dim = config["head_dim"]
        .as_u64()
        .map_or(HIDDEN / HEADS, |d| d as usize);
    let key = |k: &str| format!("{arch}.{k}");
    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), arch.into()),
        (key("vocab_size"), int("vocab_size").into()),
        (key("context_length"), int("max_position_embeddings").into()),
        (key("embedding_length"), int("hidden_size").into()),
        (key("block_count"), int("num_hidden_layers").into()),
        (key("feed_forward_length"), int("intermediate_size").into()),
        (
            key("attention.head_count"),
            int("num_attention_heads").into(),
        ),
        (
            key("attention.head_count_kv"),
            int("num_key_value_heads").into(),
        ),
        (
            key("rope.freq_base"),
            (config["rope_theta"].as_f64().unwrap() as f32).into(),
        ),
        (key("rope.dimension_count"), (head_dim as u32).into()),
        (
            key("attention.layer_norm_rms_epsilon"),
            (config["rms_norm_eps"].as_f64().unwrap() as f32).into(),
        ),
    ];
    if config["head_dim"].is_u64() {
        metadata.push((key("attention.key_length"), (head_dim as u32).into()));
        metadata.push((key("attention.value_length"), (head_dim as u32).into()));
    }
    let mut tensors = vec![];
    if !config["rope_scaling"].is_null() {
        // The converter's `rope_freqs`: how much each frequency is divided by.
        let base = inv_freq(&json_without_scaling(config), head_dim);
        let scaled = inv_freq(config, head_dim);
        let factors = base
            .iter()
            .zip(&scaled)
            .map(|(b, s)| (b / s) as f32)
            .collect();
        tensors.push((
            "rope_freqs.weight".into(),
            vec![(head_dim / 2) as u64],
            GgmlType::F32,
            factors,
        ));
    }
    for (name, (shape, data)) in weights {
        let data = if arch == "llama" && name.ends_with("q_proj.weight") {
            permute(data, HEADS, HIDDEN)
        } else if arch == "llama" && name.ends_with("k_proj.weight") {
            permute(data, KV_HEADS, HIDDEN)
        } else {
            data.clone()
        };
        let ggml_shape = shape.iter().rev().map(|&d| d as u64).collect();
        let ty = if shape.len() == 2 {
            GgmlType::F16
        } else {
            GgmlType::F32
        };
        tensors.push((gguf_name(name), ggml_shape, ty, data));
    }
    GgufModel { metadata, tensors }
}

fn json_without_scaling(config: &Json) -> Json {
    let mut plain = config.clone();
    plain["rope_scaling"] = Json::Null;
    plain
}

fn write_gguf(path: &Path, model: &GgufModel) {
    let mut writer = GgufWriter::new();
    for (k, v) in &model.metadata {
        writer.metadata(k.clone(), v.clone()).unwrap();
    }
    let mut infos = writer.finish_metadata();
    for (name, shape, ty, _) in &model.tensors {
        infos.tensor_info(name.clone(), shape, *ty).unwrap();
    }
    let mut data = infos.write_file(path).unwrap();
    for (name, _, ty, values) in &model.tensors {
        let bytes: Vec<u8> = match ty {
            GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            GgmlType::F16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            other => panic!("no encoder for {other:?}"),
        };
        data.write_tensor(name, &bytes).unwrap();
    }
    data.finish().unwrap();
}

#[test]
fn converted_checkpoints_match_the_transformers_forward() {
    let tmp = tempfile::tempdir().unwrap();
    for (seed, family) in ["llama", "qwen2", "qwen3"].into_iter().enumerate() {
        let config = hf_config(family);
        let weights = random_weights(&config, 100 + seed as u64);
        let path = tmp.path().join(format!("{family}.gguf"));
        write_gguf(&path, &convert(&config, &weights));

        let model = load_gguf::<CpuBackend>(&path, &Default::default()).unwrap();
        let got = run(&model, &[TOKENS.to_vec()]);
        let expected = [reference_logits(&config, &weights, &TOKENS)];
        let diff = max_abs_diff(&got, &expected);
        assert!(diff < 1e-4, "{family}: max abs diff {diff}");
    }
}

fn load_error(model: &GgufModel) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.gguf");
    write_gguf(&path, model);
    let err = load_gguf::<CpuBackend>(&path, &Default::default()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("model.gguf"), "{message}");
    message
}

#[test]
fn bad_metadata_and_tensors_are_named() {
    let config = hf_config("qwen2");
    let weights = random_weights(&config, 1);

    let mut model = convert(&config, &weights);
    model.metadata.retain(|(k, _)| k != "qwen2.block_count");
    assert!(load_error(&model).contains("'qwen2.block_count' is missing"));

    let mut model = convert(&config, &weights);
    model.metadata[0].1 = "gemma2".into();
    assert!(load_error(&model).contains("unsupported architecture 'gemma2'"));

    let mut model = convert(&config, &weights);
    model
        .metadata
        .push(("qwen2.rope.scaling.type".into(), "yarn".into()));
    let err = load_error(&model);
    assert!(
        err.contains("qwen2.rope.scaling.type") && err.contains("yarn"),
        "{err}"
    );

    let mut model = convert(&config, &weights);
    model
        .tensors
        .retain(|(name, ..)| name != "blk.1.ffn_down.weight");
    assert!(load_error(&model).contains("'blk.1.ffn_down.weight' is missing"));

    let mut model = convert(&config, &weights);
    let norm = model
        .tensors
        .iter_mut()
        .find(|t| t.0 == "output_norm.weight")
        .unwrap();
    norm.1 = vec![16];
    norm.3.truncate(16);
    let err = load_error(&model);
    assert!(
        err.contains("'output_norm.weight' has shape [16], expected [32]"),
        "{err}"
    );
}
