//! llama.cpp's quantization mixes: which ggml type each tensor of a model gets
//! when `llama-quantize` writes a `q4_k_m`, `q8_0`, … file. [`plan`] walks a
//! model's tensors in llama.cpp's output order and applies its rules: which
//! tensors are quantized at all, the extra bits for the output, `attn_v` and
//! `ffn_down` layers, and the fallbacks for rows a type's blocks cannot hold.
//!
//! ```
//! use quantize::GgmlType;
//! use quantize::gguf::TensorInfo;
//! use quantize::mix::{Mix, MixOptions, ModelParams, plan};
//!
//! let params = ModelParams { arch: "llama".into(), n_layer: 1, n_head: 9, n_head_kv: 3, n_expert: 0 };
//! let info = |name: &str, shape: &[u64]| TensorInfo {
//!     name: name.into(), shape: shape.to_vec(), ggml_type: GgmlType::F32, offset: 0,
//! };
//! let tensors = [info("token_embd.weight", &[576, 49152]), info("blk.0.ffn_down.weight", &[1536, 576])];
//! let plan = plan(&tensors, &params, &MixOptions::new("q4_k_m".parse()?))?;
//! let types: Vec<GgmlType> = plan.tensors.iter().map(|t| t.target).collect();
//! // 576-wide embeddings fit no K-quant block; the only ffn_down gets extra bits.
//! assert_eq!(types, [GgmlType::Q8_0, GgmlType::Q6K]);
//! # Ok::<(), quantize::mix::MixError>(())
//! ```

mod error;
mod ftype;
mod hparams;
mod plan;
mod rules;
mod tensor_kind;

pub use error::MixError;
pub use ftype::Mix;
pub use hparams::ModelParams;
pub use plan::{MixOptions, Plan, PlannedTensor, llama_order, plan};
pub use tensor_kind::{is_token_embd, n_dims};
