//! Errors of whole-model quantization and of reading importance matrices.

use std::io;
use std::path::PathBuf;

use crate::gguf::GgufError;
use crate::mix::MixError;
use crate::{DequantError, GgmlType, QuantError};

#[derive(Debug, thiserror::Error)]
pub enum ModelQuantError {
    #[error(transparent)]
    Gguf(#[from] GgufError),

    #[error(transparent)]
    Mix(#[from] MixError),

    #[error(transparent)]
    Imatrix(#[from] ImatrixError),

    #[error("{}: tensor '{tensor}' holds a non-finite value (NaN or infinity) at element {index}", path.display())]
    NonFinite {
        path: PathBuf,
        tensor: String,
        index: u64,
    },

    #[error(
        "the importance matrix has {len} weights for tensor '{tensor}', which needs {expected} \
         (one per column and matrix): it was computed for another model"
    )]
    ImatrixSize {
        tensor: String,
        len: usize,
        expected: u64,
    },

    #[error(
        "the importance matrix has no weights for tensor '{tensor}', which {ty} cannot do without"
    )]
    ImatrixMissing { tensor: String, ty: GgmlType },

    #[error("{}: cannot read tensor '{tensor}' ({ty}): {source}", path.display())]
    Dequant {
        path: PathBuf,
        tensor: String,
        ty: GgmlType,
        source: DequantError,
    },

    #[error("cannot quantize tensor '{tensor}' to {ty}: {source}")]
    Quant {
        tensor: String,
        ty: GgmlType,
        source: QuantError,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ImatrixError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },

    #[error("importance matrix: {0}")]
    Gguf(#[from] GgufError),

    #[error("{}: not a usable importance matrix: {problem}", path.display())]
    Malformed { path: PathBuf, problem: String },

    #[error("{}: the importance matrix entry '{entry}' holds a non-finite value", path.display())]
    NonFinite { path: PathBuf, entry: String },
}
