//! The decoder-only transformer shared by the Llama, Mistral, Qwen2 and Qwen3 families.

mod attention;
mod decoder_layer;
mod kv_cache;
mod mlp;
mod probe;
mod rope;
mod rows;
mod sequence;
mod transformer;

use burn::module::Initializer;

pub use attention::Attention;
pub use decoder_layer::DecoderLayer;
pub use kv_cache::KvCache;
pub use mlp::Mlp;
pub use probe::LayerActivations;
pub use rope::RopeTables;
pub use rows::RowLayout;
pub use sequence::InputError;
pub(crate) use sequence::host_f32;
pub use transformer::{LogitsFor, Transformer};

/// Random weights as transformers initializes these families (`initializer_range`).
const INITIALIZER: Initializer = Initializer::Normal {
    mean: 0.0,
    std: 0.02,
};
