//! Export to GGUF with full metadata and to Hugging Face directories, with a
//! model card and, beside a GGUF file, an Ollama Modelfile.
//!
//! Both writers copy one weight at a time out of the model and stream it to a
//! temporary file (or directory) that is synced and renamed into place only when
//! complete, so an interrupted export leaves nothing at the target path.

mod atomic_dir;
pub mod error;
pub mod gguf;
pub mod hf;
pub mod lineage;
mod model_card;
pub mod modelfile;
pub mod vocab;
pub mod weights;

use std::io::Write;
use std::path::{Path, PathBuf};

use quantize::gguf::{AtomicFile, Sink};

pub use error::ExportError;
pub use gguf::{GgufReport, export_gguf, planned_types};
pub use hf::{Dtype, HfOptions, HfReport, export_hf_dir};
pub use lineage::{DatasetRef, EvalResult, ExportMetadata, ModelRef};
pub use model_card::model_card;
pub use modelfile::{ChatFormat, OllamaChat, ollama_chat};
pub use vocab::Vocabulary;

/// Writes `<gguf stem>.Modelfile` beside a GGUF export (a plain `Modelfile`
/// would clash between two exports in one directory).
pub fn write_modelfile(
    gguf: &Path,
    chat_template: Option<&str>,
) -> Result<(PathBuf, Option<ChatFormat>), ExportError> {
    let name = gguf.file_name().unwrap_or_default().to_string_lossy();
    let (text, format) = modelfile::modelfile(&name, chat_template);
    let path = gguf.with_extension("Modelfile");
    let mut file = AtomicFile::create(&path).map_err(|e| ExportError::io(&path, e))?;
    file.write_all(text.as_bytes()).map_err(|e| ExportError::io(&path, e))?;
    let path = file.complete().map_err(|e| ExportError::io(&path, e))?;
    Ok((path, format))
}
