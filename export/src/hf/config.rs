//! `config.json` and `generation_config.json` as transformers writes them for
//! the four families, with the `*ForCausalLM` class each needs.

use serde_json::{Value, json};
use train::config::{Architecture, ModelConfig, RopeScaling};

use super::safetensors::Dtype;
use crate::error::ExportError;
use crate::vocab::SpecialIds;

/// transformers' model class for the family.
pub fn causal_lm_class(architecture: Architecture) -> &'static str {
    match architecture {
        Architecture::Llama => "LlamaForCausalLM",
        Architecture::Mistral => "MistralForCausalLM",
        Architecture::Qwen2 => "Qwen2ForCausalLM",
        Architecture::Qwen3 => "Qwen3ForCausalLM",
    }
}

/// An f32 as the decimal that reads back as it (1e-5, not 9.999999747378752e-06),
/// which is how the value was written in the config it most likely came from.
fn short(v: f32) -> Value {
    let shortest: f64 = v.to_string().parse().expect("Rust prints floats it can parse");
    Value::from(shortest)
}

pub fn config_json(
    config: &ModelConfig,
    dtype: Dtype,
    special: &SpecialIds,
) -> Result<Value, ExportError> {
    let arch = config.architecture;
    let unsupported = |reason: String| ExportError::Unsupported {
        what: format!("a {arch} model as a Hugging Face config.json"),
        reason,
    };
    // transformers gives Qwen2 query/key/value biases and nothing else; the other
    // families have one switch for all four attention projections.
    let attention_bias = match arch {
        Architecture::Qwen2 if !config.qkv_bias || config.o_bias => {
            return Err(unsupported(
                "Qwen2 in transformers has query/key/value biases and no output bias".into(),
            ));
        }
        Architecture::Qwen2 => None,
        _ if config.qkv_bias != config.o_bias => {
            return Err(unsupported(format!(
                "transformers' {} has biases on all of q/k/v/o or none; this model has them on {}",
                causal_lm_class(arch),
                if config.qkv_bias { "q/k/v only" } else { "o only" }
            )));
        }
        _ => Some(config.qkv_bias),
    };
    let rope_scaling = match &config.rope.scaling {
        RopeScaling::None => Value::Null,
        RopeScaling::Linear { factor } => json!({"rope_type": "linear", "factor": short(*factor)}),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
            json!({"rope_type": "llama3", "factor": short(*factor),
                   "low_freq_factor": short(*low_freq_factor), "high_freq_factor": short(*high_freq_factor),
                   "original_max_position_embeddings": original_max_position_embeddings})
        }
        RopeScaling::FreqFactors(_) => {
            return Err(unsupported(
                "its RoPE scaling is a GGUF rope_freqs.weight tensor of per-frequency factors, \
                 which config.json's rope_scaling cannot state"
                    .into(),
            ));
        }
    };
    let mut json = json!({
        "architectures": [causal_lm_class(arch)],
        "model_type": arch.name(),
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": short(config.rms_norm_eps as f32),
        "rope_theta": short(config.rope.theta),
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": config.tie_word_embeddings,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": true,
        "torch_dtype": dtype.torch_name(),
    });
    if let Some(bias) = attention_bias {
        json["attention_bias"] = Value::from(bias);
    }
    if matches!(arch, Architecture::Llama | Architecture::Mistral) {
        json["mlp_bias"] = Value::from(config.mlp_bias);
    } else if config.mlp_bias {
        return Err(unsupported("transformers' Qwen models have no MLP biases".into()));
    }
    match arch {
        Architecture::Mistral => json["sliding_window"] = Value::from(config.sliding_window),
        Architecture::Qwen2 | Architecture::Qwen3 => json["use_sliding_window"] = Value::from(false),
        Architecture::Llama => {}
    }
    for (key, id) in [("bos_token_id", special.bos), ("eos_token_id", special.eos), ("pad_token_id", special.pad)] {
        if let Some(id) = id {
            json[key] = Value::from(id);
        }
    }
    Ok(json)
}

/// The ids generation starts and stops with: EOS and, where it differs, end of turn.
pub fn generation_config_json(special: &SpecialIds) -> Value {
    let mut stop: Vec<u32> = special.eos.into_iter().collect();
    if let Some(eot) = special.eot.filter(|id| !stop.contains(id)) {
        stop.push(eot);
    }
    let mut json = json!({"_from_model_config": false});
    if let Some(bos) = special.bos {
        json["bos_token_id"] = Value::from(bos);
    }
    match stop.as_slice() {
        [] => {}
        [one] => json["eos_token_id"] = Value::from(*one),
        many => json["eos_token_id"] = Value::from(many.to_vec()),
    }
    if let Some(pad) = special.pad {
        json["pad_token_id"] = Value::from(pad);
    }
    json
}
