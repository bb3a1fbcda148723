//! The crate's error type. Every message names the file (or other origin) and
//! the key, template or token at fault, and what was expected there.

use std::path::PathBuf;

/// Errors from reading tokenizers and chat templates.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{origin}: missing `{key}` (expected {expected})")]
    MissingKey {
        origin: String,
        key: &'static str,
        expected: &'static str,
    },

    #[error("{origin}: `{key}`: expected {expected}, found {found}")]
    InvalidKey {
        origin: String,
        key: &'static str,
        expected: String,
        found: String,
    },

    #[error(
        "{origin}: tokenizer.ggml.model = {model:?} is not supported \
         (expected \"gpt2\" for byte-level BPE or \"llama\" for SentencePiece)"
    )]
    UnknownTokenizerModel { origin: String, model: String },

    #[error(
        "{origin}: tokenizer.ggml.pre = {pre:?} is not a pre-tokenizer decant implements \
         (expected one of: {known})"
    )]
    UnknownPreTokenizer {
        origin: String,
        pre: String,
        known: String,
    },

    #[error("{}: {message}", path.display())]
    HfTokenizer { path: PathBuf, message: String },

    #[error("chat template from {origin} does not parse: {message}")]
    TemplateSyntax { origin: String, message: String },

    #[error("chat template from {origin} failed to render: {message}")]
    TemplateRender { origin: String, message: String },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
