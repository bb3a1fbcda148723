//! Hugging Face `config.json` → [`ModelConfig`].
//!
//! Only the keys the decoder depends on are read; the many others transformers
//! writes are ignored. Defaults are those of transformers' config classes for
//! the four families (they agree on every key read here).

use serde::Deserialize;

use super::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use crate::error::ModelError;

#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f64,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    rope_theta: Option<f32>,
    rope_scaling: Option<HfRope>,
    /// transformers ≥ 5 gathers `rope_theta` and `rope_scaling` here.
    rope_parameters: Option<HfRope>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    sliding_window: Option<usize>,
    #[serde(default)]
    use_sliding_window: bool,
    #[serde(default = "default_act")]
    hidden_act: String,
}

fn default_max_positions() -> usize {
    2048
}

fn default_act() -> String {
    "silu".into()
}

#[derive(Debug, Deserialize)]
struct HfRope {
    /// Older configs call it `type`.
    #[serde(alias = "type")]
    rope_type: Option<String>,
    rope_theta: Option<f32>,
    factor: Option<f32>,
    low_freq_factor: Option<f32>,
    high_freq_factor: Option<f32>,
    original_max_position_embeddings: Option<usize>,
}

impl HfRope {
    fn field<T>(&self, value: Option<T>, name: &str) -> Result<T, ModelError> {
        value.ok_or_else(|| ModelError::MissingKey(format!("rope_scaling.{name}")))
    }

    fn scaling(&self) -> Result<RopeScaling, ModelError> {
        match self.rope_type.as_deref().unwrap_or("default") {
            "default" => Ok(RopeScaling::None),
            "linear" => Ok(RopeScaling::Linear {
                factor: self.field(self.factor, "factor")?,
            }),
            "llama3" => Ok(RopeScaling::Llama3 {
                factor: self.field(self.factor, "factor")?,
                low_freq_factor: self.field(self.low_freq_factor, "low_freq_factor")?,
                high_freq_factor: self.field(self.high_freq_factor, "high_freq_factor")?,
                original_max_position_embeddings: self.field(
                    self.original_max_position_embeddings,
                    "original_max_position_embeddings",
                )?,
            }),
            other => Err(ModelError::Unsupported {
                option: "rope_scaling.rope_type".into(),
                value: other.into(),
            }),
        }
    }
}

/// Parses the text of a `config.json`.
pub fn from_json(text: &str) -> Result<ModelConfig, HfConfigError> {
    let raw: HfConfig = serde_json::from_str(text)?;
    Ok(convert(raw)?)
}

/// Either the JSON did not have the expected fields, or their values are unsupported.
#[derive(Debug, thiserror::Error)]
pub enum HfConfigError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Model(#[from] ModelError),
}

fn convert(raw: HfConfig) -> Result<ModelConfig, ModelError> {
    let architecture: Architecture = raw.model_type.parse()?;
    if raw.hidden_act != "silu" {
        return Err(ModelError::Unsupported {
            option: "hidden_act".into(),
            value: raw.hidden_act,
        });
    }
    let rope_source = raw.rope_parameters.as_ref().or(raw.rope_scaling.as_ref());
    let theta = rope_source
        .and_then(|r| r.rope_theta)
        .or(raw.rope_theta)
        .unwrap_or(10_000.0);
    let scaling = match rope_source {
        Some(rope) => rope.scaling()?,
        None => RopeScaling::None,
    };
    let sliding_window = match architecture {
        Architecture::Mistral => raw.sliding_window,
        // Qwen's window applies only to some layers (`max_window_layers`) and no
        // released checkpoint enables it.
        Architecture::Qwen2 | Architecture::Qwen3 if raw.use_sliding_window => {
            return Err(ModelError::Unsupported {
                option: "use_sliding_window".into(),
                value: "true".into(),
            });
        }
        _ => None,
    };
    let config = ModelConfig {
        architecture,
        vocab_size: raw.vocab_size,
        hidden_size: raw.hidden_size,
        intermediate_size: raw.intermediate_size,
        num_layers: raw.num_hidden_layers,
        num_heads: raw.num_attention_heads,
        num_kv_heads: raw.num_key_value_heads.unwrap_or(raw.num_attention_heads),
        head_dim: raw
            .head_dim
            .unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1)),
        rms_norm_eps: raw.rms_norm_eps,
        rope: RopeConfig { theta, scaling },
        max_position_embeddings: raw.max_position_embeddings,
        tie_word_embeddings: raw.tie_word_embeddings,
        // Qwen2 always has query/key/value biases and no `attention_bias` key.
        qkv_bias: architecture == Architecture::Qwen2 || raw.attention_bias,
        o_bias: architecture != Architecture::Qwen2 && raw.attention_bias,
        mlp_bias: raw.mlp_bias,
        sliding_window,
    };
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = r#"{
        "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
        "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 576,
        "initializer_range": 0.041666666666666664, "intermediate_size": 1536,
        "is_llama_config": true, "max_position_embeddings": 8192, "mlp_bias": false,
        "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30,
        "num_key_value_heads": 3, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_interleaved": false, "rope_scaling": null, "rope_theta": 100000,
        "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.42.3",
        "use_cache": true, "vocab_size": 49152
    }"#;

    #[test]
    fn smollm2_config() {
        assert_eq!(
            from_json(SMOLLM2).unwrap(),
            crate::config::tests::smollm2_135m()
        );
    }

    #[test]
    fn llama3_rope_scaling() {
        let json = r#"{"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
            "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "rms_norm_eps": 1e-5, "max_position_embeddings": 131072,
            "rope_theta": 500000.0, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
            "rope_type": "llama3"}}"#;
        let c = from_json(json).unwrap();
        assert_eq!(c.rope.theta, 500_000.0);
        assert_eq!(
            c.rope.scaling,
            RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192
            }
        );
        assert!(!c.tie_word_embeddings);
        assert_eq!(c.head_dim, 128);
    }

    #[test]
    fn qwen_families() {
        let qwen2 = r#"{"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
            "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
            "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "sliding_window": 32768, "use_sliding_window": false, "tie_word_embeddings": true,
            "max_position_embeddings": 32768}"#;
        let c = from_json(qwen2).unwrap();
        assert!(c.qkv_bias && !c.o_bias && c.sliding_window.is_none());
        let qwen3 = r#"{"model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024,
            "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
            "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-6,
            "attention_bias": false, "rope_parameters": {"rope_type": "default",
            "rope_theta": 1000000.0}, "max_position_embeddings": 40960}"#;
        let c = from_json(qwen3).unwrap();
        assert_eq!((c.head_dim, c.q_dim(), c.rope.theta), (128, 2048, 1e6));
        assert!(!c.qkv_bias && c.architecture.has_qk_norm());
    }

    #[test]
    fn mistral_keeps_its_window() {
        let json = r#"{"model_type": "mistral", "vocab_size": 32000, "hidden_size": 4096,
            "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "rms_norm_eps": 1e-5, "sliding_window": 4096,
            "max_position_embeddings": 32768}"#;
        assert_eq!(from_json(json).unwrap().sliding_window, Some(4096));
    }

    #[test]
    fn unsupported_options_are_named() {
        let edit = |from: &str, to: &str| SMOLLM2.replace(from, to);
        let err = from_json(&edit(
            r#""model_type": "llama""#,
            r#""model_type": "gemma2""#,
        ));
        assert!(err.unwrap_err().to_string().contains("'gemma2'"));
        let yarn = r#""rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#;
        let err = from_json(&edit(r#""rope_scaling": null"#, yarn))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rope_scaling.rope_type") && err.contains("yarn"),
            "{err}"
        );
        let err = from_json(&edit(r#""hidden_act": "silu""#, r#""hidden_act": "gelu""#));
        let err = err.unwrap_err().to_string();
        assert!(err.contains("hidden_act") && err.contains("gelu"), "{err}");
        let err = from_json(r#"{"model_type": "llama"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field"), "{err}");
    }
}
