//! The GGUF container, versions 2 and 3 (little-endian): [`GgufFile`] reads a file
//! through a memory map, checking every size and offset against the file before
//! trusting it; [`GgufWriter`] writes version 3, byte for byte as gguf-py's
//! `GGUFWriter` does, with tensor data streamed in declaration order.
//!
//! Layout: magic `GGUF`, version (u32), tensor count (u64), metadata count (u64),
//! metadata entries, tensor infos, zero padding to the alignment, then each
//! tensor's data padded to the alignment. Versions 2 and 3 share this layout
//! (3 only added big-endian files, which are refused here).
//!
//! ```
//! use quantize::GgmlType;
//! use quantize::gguf::{GgufFile, GgufWriter, Value};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.gguf");
//! let mut w = GgufWriter::new();
//! w.metadata("general.architecture", "llama")?.metadata("llama.block_count", 1u32)?;
//! let mut infos = w.finish_metadata();
//! infos.tensor_info("output_norm.weight", &[4], GgmlType::F32)?;
//! let mut data = infos.write_file(&path)?;
//! data.write_tensor("output_norm.weight", &[0; 16])?;
//! data.finish()?;
//!
//! let file = GgufFile::open(&path)?;
//! assert_eq!(file.get("general.architecture").and_then(Value::as_str), Some("llama"));
//! let norm = file.tensor("output_norm.weight").expect("declared above");
//! assert_eq!(file.tensor_data(norm), [0; 16]);
//! # Ok(())
//! # }
//! ```

mod cursor;
mod decode;
mod encode;
mod error;
mod file;
mod named;
mod parse;
mod rewrite;
mod sink;
mod tensor_info;
mod value;
mod writer;

pub use error::{GgufError, Problem};
pub use file::GgufFile;
pub use rewrite::set_metadata;
pub use sink::{AtomicFile, Sink};
pub use tensor_info::TensorInfo;
pub use value::{Array, Value, ValueType};
pub use writer::{GgufWriter, TensorDataWriter, TensorInfoWriter, TensorStream};

pub const MAGIC: &[u8; 4] = b"GGUF";

/// The metadata key that sets the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Data alignment of a file that has no `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;

/// Longest tensor name llama.cpp loads (`GGML_MAX_NAME` less the NUL).
pub const MAX_TENSOR_NAME_LEN: usize = 63;

/// Deepest nesting of arrays the reader accepts. gguf-py writes arrays of arrays
/// (llama.cpp reads none); real files nest at most a level or two.
pub const MAX_ARRAY_DEPTH: usize = 16;
