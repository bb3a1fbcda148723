//! Whole-model quantization as `llama_model_quantize` does it: read a GGUF model,
//! choose each tensor's type with a [`crate::mix`], convert the tensors (quantized
//! inputs are dequantized first), and write a GGUF file whose bytes equal
//! llama.cpp's: the same metadata (plus `general.quantization_version` and
//! `general.file_type`, and the `quantize.imatrix.*` keys with an importance
//! matrix), the tensors in llama.cpp's order, each converted exactly as
//! `ggml_quantize_chunk` converts it.
//!
//! The input is memory-mapped and the output written tensor by tensor, so only
//! one converted tensor is in memory at a time; each tensor's rows are spread
//! over the requested threads.

mod convert;
mod error;
mod imatrix;
mod imatrix_writer;
mod job;
mod metadata;

pub use error::{ImatrixError, ModelQuantError};
pub use imatrix::Imatrix;
pub use imatrix_writer::{ImatrixEntry, ImatrixMeta, write_imatrix};
pub use job::{Progress, Quantization, Report};
