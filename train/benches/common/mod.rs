//! The ~50M-parameter Llama-style student the training benches run: vocabulary
//! 49152 (the reference tokenizer's), hidden 512, 8 layers, 8 query / 4
//! key-value heads of 64, SwiGLU 1536, tied embeddings, rows of 256 tokens.

use std::sync::Arc;

use datasets::{Documents, LoaderConfig, Order, Shard};
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};

pub const SEQ: usize = 256;

pub fn model_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 49_152,
        hidden_size: 512,
        intermediate_size: 1536,
        num_layers: 8,
        num_heads: 8,
        num_kv_heads: 4,
        head_dim: 64,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: SEQ,
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
}

/// `name` from the environment when set to a positive number, else `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

/// `count` documents of exactly one row each, random tokens (a fixed LCG),
/// every token trained: the same work per step as the PyTorch side's batches.
pub fn documents(count: usize, vocab: usize) -> Arc<Documents> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        1 + ((state >> 33) % (vocab as u64 - 1)) as u32
    };
    let docs: Vec<(Vec<u32>, Vec<bool>)> = (0..count)
        .map(|_| ((0..SEQ).map(|_| next()).collect(), vec![true; SEQ]))
        .collect();
    Arc::new(
        Documents::from_tokens(
            docs.iter().map(|(t, m)| (t.as_slice(), m.as_slice())),
            "bench",
        )
        .expect("valid documents"),
    )
}

/// Batches of `rows` documents in order, one document per row.
pub fn loader(rows: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: rows,
        seq_len: SEQ,
        packing: false,
        order: Order {
            shuffle: false,
            seed: 0,
            shard: Shard::SINGLE,
        },
        pad_token: 0,
        epochs: None,
    }
}

/// Sizes rayon's global pool, which every CPU kernel computes with.
pub fn threads() -> usize {
    let threads = env("RAYON_NUM_THREADS", 2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("the global pool is built once, before any work");
    threads
}
