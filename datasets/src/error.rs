//! The crate's error type. Every message names the file (or other origin) and
//! the key, template or token at fault, and what was expected there.

use std::path::PathBuf;

use crate::source::Location;

/// Errors from reading tokenizers, chat templates and datasets.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A teacher cache (manifest or shard) that is not what decant writes.
    #[error("{}: {message}", path.display())]
    LogitCache { path: PathBuf, message: String },

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

    #[error("{pattern}: {reason}")]
    NoDataFiles { pattern: String, reason: String },

    #[error(
        "{}: unknown data file type (expected .jsonl, .ndjson or .json for JSON Lines, \
         .parquet, or .arrow, .ipc, .feather for Arrow IPC)",
        path.display()
    )]
    UnknownFileType { path: PathBuf },

    #[error("{origin}: {message}")]
    Decode { origin: String, message: String },

    #[error("invalid JSON: {message}")]
    Json { message: String },

    #[error("expected a JSON object on each line (JSON Lines), found {found}")]
    NotAnObject { found: &'static str },

    /// `format` names the record format and the fields it reads.
    #[error("missing field '{field}' (record format {format}); the record has {found}")]
    MissingField {
        field: String,
        format: String,
        found: String,
    },

    #[error("no record format fits: tried {tried}; the record has {found}")]
    UnknownRecord { tried: String, found: String },

    #[error("field '{field}': expected {expected}, found {found}")]
    FieldType {
        field: String,
        expected: &'static str,
        found: String,
    },

    /// Any error about one record, with where the record is. The message
    /// holds the inner one, so it is no `source`: a report that prints the
    /// chain would repeat it.
    #[error("{location}: {error}")]
    At {
        location: Location,
        error: Box<DatasetError>,
    },

    #[error("a chat record needs the model's chat template, and the model has none")]
    NoChatTemplate,

    #[error("the conversation has no assistant message: nothing to train on")]
    NoAssistantTurn,

    #[error(
        "chat template from {origin} is not incremental: rendering the first {messages} \
         message(s){suffix} does not begin with the rendering of the messages before, \
         so the assistant tokens cannot be located"
    )]
    TemplateNotIncremental {
        origin: String,
        messages: usize,
        suffix: &'static str,
    },

    #[error(
        "example is {length} tokens, longer than the maximum length {max_length} \
         (truncation = error; choose left, right or drop to accept such examples)"
    )]
    TooLong { length: usize, max_length: usize },

    #[error("{origin}: no examples")]
    EmptyDataset { origin: String },

    #[error("{origin}: all {examples} examples were dropped ({reasons})")]
    AllDropped {
        origin: String,
        examples: u64,
        reasons: String,
    },

    #[error("invalid {what}: {message}")]
    InvalidConfig { what: &'static str, message: String },

    #[error(
        "the loader state was saved for other data or another loader configuration \
         (fingerprint {saved:016x}, this loader's is {current:016x}): resume with the same \
         data, tokenizer, seed, ranks, batch size, sequence length and packing"
    )]
    ResumeMismatch { saved: u64, current: u64 },
}

impl DatasetError {
    pub(crate) fn at(self, location: &Location) -> Self {
        DatasetError::At {
            location: location.clone(),
            error: Box::new(self),
        }
    }
}

pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
