//! Errors of mix parsing and per-tensor type choice.

use std::path::PathBuf;

use crate::GgmlType;

use super::ftype::Mix;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("unknown quantization type '{name}'; valid types: {valid}")]
    UnknownMix { name: String, valid: String },

    #[error("{}: metadata key '{key}' is missing or of the wrong type", path.display())]
    MissingKey { path: PathBuf, key: String },

    #[error(
        "tensor '{tensor}' has no layer number 'blk.N.' with N below the model's {n_layer} layers"
    )]
    BadLayer { tensor: String, n_layer: u32 },

    #[error(
        "tensor '{tensor}' becomes {ty} in {mix}, which is useless without an importance matrix: \
         pass one with --imatrix"
    )]
    NeedsImatrix {
        tensor: String,
        ty: GgmlType,
        mix: Mix,
    },
}
