//! Errors of export. Each names the file, key, token or tensor at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Names its file itself.
    #[error(transparent)]
    Gguf(#[from] quantize::gguf::GgufError),
    #[error(transparent)]
    Mix(#[from] quantize::mix::MixError),
    #[error("cannot convert tensor '{tensor}' to {ty}: {source}")]
    Quant {
        tensor: String,
        ty: quantize::GgmlType,
        source: quantize::QuantError,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{origin}: {message}")]
    Tokenizer { origin: String, message: String },
    #[error(
        "{origin}: the pre-tokenizer is not one llama.cpp knows (sha256 of the ids of its check \
         text: {hash}); decant converts smollm, llama-bpe (Llama 3), qwen2 and gpt-2 tokenizers"
    )]
    UnknownPreTokenizer { origin: String, hash: String },
    #[error(
        "{origin}: tokenizer.ggml.pre '{pre}' has no tokenizer.json equivalent in decant; \
         it writes smollm, llama-bpe, qwen2 and gpt-2"
    )]
    UnsupportedPre { origin: String, pre: String },
    #[error("cannot export {what}: {reason}")]
    Unsupported { what: String, reason: String },
    #[error(
        "{}: already exists; a Hugging Face directory is never written over, choose a new --out or remove it",
        path.display()
    )]
    OutputExists { path: PathBuf },
    #[error("model tensor '{tensor}': {message}")]
    Model { tensor: String, message: String },
}

impl ExportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ExportError {
        ExportError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn tokenizer(origin: impl Into<String>, message: impl Into<String>) -> ExportError {
        ExportError::Tokenizer {
            origin: origin.into(),
            message: message.into(),
        }
    }
}
