//! GGUF files and ggml block formats, in plain Rust with no ML framework: the
//! container (read through a memory map, write with an order-enforcing writer) and
//! the per-type dequantization kernels that match llama.cpp bit for bit.

pub mod blocks;
pub mod dequant;
pub mod ggml_type;
pub mod gguf;
pub mod mix;
pub mod model_quant;
pub mod quant;

pub use dequant::{DequantError, dequantize, dequantize_to_vec};
pub use ggml_type::GgmlType;
pub use quant::{QuantError, inside_range, quantize_chunk, quantize_to_vec, supported_types};
