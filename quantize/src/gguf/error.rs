//! Errors of the GGUF reader and writer.

use std::io;
use std::path::{Path, PathBuf};

use crate::GgmlType;

use super::MAX_DIMS;
use super::value::ValueType;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },

    /// A file (or buffer) that is not a well-formed GGUF file.
    #[error("{}: {problem}", path.display())]
    Malformed { path: PathBuf, problem: Problem },

    /// Content handed to the writer that cannot go into a well-formed GGUF file,
    /// or tensor data supplied out of order or with the wrong length.
    #[error("cannot write GGUF: {0}")]
    Invalid(Problem),
}

impl GgufError {
    pub(super) fn io(path: &Path, source: io::Error) -> GgufError {
        GgufError::Io { path: path.to_owned(), source }
    }

    pub(super) fn malformed(path: &Path, problem: Problem) -> GgufError {
        GgufError::Malformed { path: path.to_owned(), problem }
    }

    /// What is wrong with the content, for errors that are not I/O failures.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            GgufError::Io { .. } => None,
            GgufError::Malformed { problem, .. } | GgufError::Invalid(problem) => Some(problem),
        }
    }
}

/// One specific way GGUF content is wrong. Reader and writer share the rules, so
/// they share the descriptions.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("not a GGUF file: it starts with {found:02x?}, not the magic \"GGUF\"")]
    BadMagic { found: Vec<u8> },

    #[error(
        "big-endian GGUF file (the version field reads {raw:#010x}); only little-endian files are supported"
    )]
    BigEndian { raw: u32 },

    #[error("GGUF version {version} is not supported; only versions 2 and 3 are{}",
        if *.version == 1 { " (v1 files predate 64-bit counts: reconvert the model)" } else { "" })]
    UnsupportedVersion { version: u32 },

    #[error(
        "truncated {place}: {needed} bytes needed at offset {offset}, but the file is {file_len} bytes"
    )]
    Truncated { place: String, offset: u64, needed: u64, file_len: u64 },

    #[error(
        "{place} claims {count} {items}, more than the {remaining} bytes left in the file can hold"
    )]
    CountTooLarge { place: String, count: u64, items: &'static str, remaining: u64 },

    #[error("{place}: string of {len} bytes is longer than the {remaining} bytes left in the file")]
    StringTooLong { place: String, len: u64, remaining: u64 },

    #[error("{place} is not valid UTF-8")]
    InvalidUtf8 { place: String },

    #[error("metadata key #{index} is empty")]
    EmptyKey { index: u64 },

    #[error("duplicate metadata key '{key}'")]
    DuplicateKey { key: String },

    #[error("duplicate tensor name '{name}'")]
    DuplicateTensor { name: String },

    #[error("metadata key '{key}' has unknown value type id {id}")]
    UnknownValueType { key: String, id: u32 },

    #[error("metadata key '{key}' nests arrays more than {max} levels deep")]
    NestingTooDeep { key: String, max: usize },

    #[error("general.alignment must be a u32, but it is a {found}")]
    AlignmentType { found: ValueType },

    #[error("general.alignment {value} is not a nonzero power of two")]
    BadAlignment { value: u32 },

    #[error("tensor '{name}' has {n_dims} dimensions; ggml allows at most {MAX_DIMS}")]
    TooManyDims { name: String, n_dims: u64 },

    #[error("tensor '{name}' dimension {axis} is {value}, negative as the i64 ggml stores")]
    NegativeDim { name: String, axis: usize, value: u64 },

    #[error("tensor '{name}' of shape {shape:?} has more elements than an i64 can count")]
    ElementCountOverflow { name: String, shape: Vec<u64> },

    #[error("tensor '{name}' has unknown ggml type id {id}")]
    UnknownTensorType { name: String, id: u32 },

    #[error(
        "tensor '{name}' of type {ggml_type} has rows of {row} elements, not a multiple of the block size {block}"
    )]
    NotWholeBlocks { name: String, ggml_type: GgmlType, row: u64, block: usize },

    #[error(
        "tensor '{name}' of shape {shape:?} and type {ggml_type} has more bytes than a u64 can count"
    )]
    ByteSizeOverflow { name: String, shape: Vec<u64>, ggml_type: GgmlType },

    #[error("tensor '{name}' data offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedOffset { name: String, offset: u64, alignment: u64 },

    #[error(
        "tensor '{name}' data [offset {start}, {len} bytes) runs past the end of the file ({file_len} bytes)"
    )]
    DataOutOfBounds { name: String, start: u64, len: u64, file_len: u64 },

    #[error(
        "tensors '{first}' [offset {first_start}, {first_len} bytes) and '{second}' [offset {second_start}, {second_len} bytes) overlap"
    )]
    Overlap {
        first: String,
        first_start: u64,
        first_len: u64,
        second: String,
        second_start: u64,
        second_len: u64,
    },

    #[error(
        "the tensor data section starts at offset {offset}, past the end of the file ({file_len} bytes)"
    )]
    DataStartPastEnd { offset: u64, file_len: u64 },

    #[error("tensor name '{name}' is {len} bytes; llama.cpp accepts at most {max}")]
    NameTooLong { name: String, len: usize, max: usize },

    #[error("tensor data out of order: expected '{expected}' next, got '{got}'")]
    TensorOutOfOrder { expected: String, got: String },

    #[error("tensor data for '{got}' given after every declared tensor was written")]
    NoTensorLeft { got: String },

    #[error("tensor '{name}' needs {expected} bytes of data, but {got} were given")]
    TensorLength { name: String, expected: u64, got: u64 },

    #[error("tensor '{name}' is unfinished: {written} of its {expected} bytes were written")]
    TensorUnfinished { name: String, written: u64, expected: u64 },

    #[error("the data section would exceed u64 bytes at tensor '{name}'")]
    DataSectionOverflow { name: String },

    #[error("tensor '{name}' was declared but its data was never written")]
    TensorMissing { name: String },

    #[error("an earlier write to this file failed, so it was abandoned")]
    Abandoned,
}
