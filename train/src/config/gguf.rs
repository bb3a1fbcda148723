//! GGUF metadata → [`ModelConfig`], reading the keys llama.cpp's loader reads
//! (`llama_model::load_hparams`) with its defaults.
//!
//! A GGUF file says some things only through which tensors it holds: an untied
//! output head is an `output.weight`, biases are `*.bias` tensors, and Llama-3
//! RoPE scaling is the `rope_freqs.weight` tensor. Those are read here too, so
//! that the configuration is complete before any weight is loaded.

use quantize::GgmlType;
use quantize::gguf::{GgufFile, Value};

use super::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use crate::error::ModelError;

/// The GGUF tensor that holds Llama-3 RoPE frequency factors.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

/// Reads the configuration of a model stored in `file`.
pub fn from_gguf(file: &GgufFile) -> Result<ModelConfig, ModelError> {
    let arch_name = str_key(file, "general.architecture")?;
    let architecture = match arch_name {
        "llama" => Architecture::Llama,
        "qwen2" => Architecture::Qwen2,
        "qwen3" => Architecture::Qwen3,
        // llama.cpp converts Mistral checkpoints to `llama`; no GGUF says `mistral`.
        other => return Err(ModelError::UnsupportedArchitecture(other.to_string())),
    };
    let key = |suffix: &str| format!("{arch_name}.{suffix}");

    let hidden_size = usize_key(file, &key("embedding_length"))?;
    let num_heads = usize_key(file, &key("attention.head_count"))?;
    let num_kv_heads = optional_usize(file, &key("attention.head_count_kv"))?.unwrap_or(num_heads);
    let head_dim = optional_usize(file, &key("attention.key_length"))?
        .unwrap_or(hidden_size / num_heads.max(1));
    let value_length = optional_usize(file, &key("attention.value_length"))?.unwrap_or(head_dim);
    if value_length != head_dim {
        return Err(ModelError::Unsupported {
            option: key("attention.value_length"),
            value: format!("{value_length} (differs from key_length {head_dim})"),
        });
    }
    let rope_dims = optional_usize(file, &key("rope.dimension_count"))?.unwrap_or(head_dim);
    if rope_dims != head_dim {
        return Err(ModelError::Unsupported {
            option: key("rope.dimension_count"),
            value: format!("{rope_dims} (partial rotary embedding of head_dim {head_dim})"),
        });
    }

    let theta = optional_f64(file, &key("rope.freq_base"))?.unwrap_or(10_000.0) as f32;
    let scaling = rope_scaling(file, arch_name)?;

    let has = |name: &str| file.tensor(name).is_some();
    let config = ModelConfig {
        architecture,
        vocab_size: vocab_size(file, arch_name)?,
        hidden_size,
        intermediate_size: usize_key(file, &key("feed_forward_length"))?,
        num_layers: usize_key(file, &key("block_count"))?,
        num_heads,
        num_kv_heads,
        head_dim,
        rms_norm_eps: f64_key(file, &key("attention.layer_norm_rms_epsilon"))?,
        rope: RopeConfig { theta, scaling },
        max_position_embeddings: usize_key(file, &key("context_length"))?,
        tie_word_embeddings: !has("output.weight"),
        qkv_bias: has("blk.0.attn_q.bias"),
        o_bias: has("blk.0.attn_output.bias"),
        mlp_bias: has("blk.0.ffn_up.bias"),
        sliding_window: None,
    };
    config.validate()?;
    Ok(config)
}

fn rope_scaling(file: &GgufFile, arch: &str) -> Result<RopeScaling, ModelError> {
    let type_key = format!("{arch}.rope.scaling.type");
    let factor_key = format!("{arch}.rope.scaling.factor");
    let kind = match file.get(&type_key) {
        Some(v) => v
            .as_str()
            .ok_or_else(|| wrong_type(&type_key, "a string"))?,
        None => "none",
    };
    let factor = match optional_f64(file, &factor_key)? {
        Some(f) => Some(f),
        // The key older converters wrote for linear scaling.
        None => optional_f64(file, &format!("{arch}.rope.scale_linear"))?,
    };
    let scaling = match kind {
        "none" => None,
        "linear" => factor
            .filter(|&f| f != 0.0 && f != 1.0)
            .map(|f| RopeScaling::Linear { factor: f as f32 }),
        other => {
            return Err(ModelError::Unsupported {
                option: type_key,
                value: other.to_string(),
            });
        }
    };
    let freq_factors = rope_freq_factors(file)?;
    match (scaling, freq_factors) {
        (Some(_), Some(_)) => Err(ModelError::Unsupported {
            option: type_key,
            value: format!("{kind} together with a {ROPE_FREQS} tensor"),
        }),
        (Some(s), None) => Ok(s),
        (None, Some(f)) => Ok(RopeScaling::FreqFactors(f)),
        (None, None) => Ok(RopeScaling::None),
    }
}

fn rope_freq_factors(file: &GgufFile) -> Result<Option<Vec<f32>>, ModelError> {
    let Some(info) = file.tensor(ROPE_FREQS) else {
        return Ok(None);
    };
    if info.ggml_type != GgmlType::F32 || info.shape.len() != 1 {
        return Err(ModelError::Unsupported {
            option: ROPE_FREQS.into(),
            value: format!("{} tensor of shape {:?}", info.ggml_type.name(), info.shape),
        });
    }
    let factors = file
        .tensor_data(info)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Some(factors))
}

/// `{arch}.vocab_size` is optional; llama.cpp counts the tokenizer's tokens instead.
fn vocab_size(file: &GgufFile, arch: &str) -> Result<usize, ModelError> {
    if let Some(n) = optional_usize(file, &format!("{arch}.vocab_size"))? {
        return Ok(n);
    }
    const TOKENS: &str = "tokenizer.ggml.tokens";
    let tokens = file
        .get(TOKENS)
        .ok_or_else(|| ModelError::MissingKey(format!("{arch}.vocab_size")))?;
    tokens
        .as_array()
        .map(|a| a.len())
        .ok_or_else(|| wrong_type(TOKENS, "an array"))
}

fn wrong_type(key: &str, expected: &'static str) -> ModelError {
    ModelError::WrongType {
        key: key.to_string(),
        expected,
    }
}

fn required<'a>(file: &'a GgufFile, key: &str) -> Result<&'a Value, ModelError> {
    file.get(key)
        .ok_or_else(|| ModelError::MissingKey(key.to_string()))
}

fn str_key<'a>(file: &'a GgufFile, key: &str) -> Result<&'a str, ModelError> {
    required(file, key)?
        .as_str()
        .ok_or_else(|| wrong_type(key, "a string"))
}

fn optional_usize(file: &GgufFile, key: &str) -> Result<Option<usize>, ModelError> {
    file.get(key)
        .map(|v| {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| wrong_type(key, "a non-negative integer"))
        })
        .transpose()
}

fn usize_key(file: &GgufFile, key: &str) -> Result<usize, ModelError> {
    optional_usize(file, key)?.ok_or_else(|| ModelError::MissingKey(key.to_string()))
}

fn optional_f64(file: &GgufFile, key: &str) -> Result<Option<f64>, ModelError> {
    file.get(key)
        .map(|v| v.as_f64().ok_or_else(|| wrong_type(key, "a float")))
        .transpose()
}

fn f64_key(file: &GgufFile, key: &str) -> Result<f64, ModelError> {
    optional_f64(file, key)?.ok_or_else(|| ModelError::MissingKey(key.to_string()))
}
