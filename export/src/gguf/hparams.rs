//! The `{arch}.*` keys llama.cpp's loader reads, as `convert_hf_to_gguf.py`
//! writes them for the Llama, Mistral, Qwen2 and Qwen3 families.

use quantize::gguf::Value;
use train::config::{Architecture, ModelConfig, RopeScaling};

/// `general.architecture`: llama.cpp runs Mistral checkpoints as `llama`.
pub fn gguf_arch(architecture: Architecture) -> &'static str {
    match architecture {
        Architecture::Llama | Architecture::Mistral => "llama",
        Architecture::Qwen2 => "qwen2",
        Architecture::Qwen3 => "qwen3",
    }
}

/// The hyper-parameter entries before `general.file_type`, and those after it.
pub fn arch_entries(config: &ModelConfig) -> (Vec<(String, Value)>, Vec<(String, Value)>) {
    let arch = gguf_arch(config.architecture);
    let key = |name: &str| format!("{arch}.{name}");
    let u32_of = |n: usize| Value::U32(n as u32);
    let mut head = vec![
        (key("block_count"), u32_of(config.num_layers)),
        (key("context_length"), u32_of(config.max_position_embeddings)),
        (key("embedding_length"), u32_of(config.hidden_size)),
        (key("feed_forward_length"), u32_of(config.intermediate_size)),
        (key("attention.head_count"), u32_of(config.num_heads)),
        (key("attention.head_count_kv"), u32_of(config.num_kv_heads)),
        (key("rope.freq_base"), Value::F32(config.rope.theta)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(config.rms_norm_eps as f32)),
    ];
    if config.head_dim * config.num_heads != config.hidden_size {
        head.push((key("attention.key_length"), u32_of(config.head_dim)));
        head.push((key("attention.value_length"), u32_of(config.head_dim)));
    }
    let mut tail = vec![
        (key("vocab_size"), u32_of(config.vocab_size)),
        (key("rope.dimension_count"), u32_of(config.head_dim)),
    ];
    if let RopeScaling::Linear { factor } = config.rope.scaling {
        tail.push((key("rope.scaling.type"), "linear".into()));
        tail.push((key("rope.scaling.factor"), Value::F32(factor)));
    }
    (head, tail)
}
