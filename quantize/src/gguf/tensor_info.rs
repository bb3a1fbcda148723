//! Tensor infos: name, shape, type and where the data lies.

use crate::GgmlType;

use super::MAX_DIMS;
use super::error::Problem;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `shape[0]` (`ne[0]`) is the contiguous one, so a
    /// `[rows, cols]` matrix is stored as `[cols, rows]`.
    pub shape: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Start of the data, relative to the start of the file's data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Exact for infos read from a file or given to the writer, which reject shapes
    /// whose counts overflow; saturates for hand-built ones.
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().fold(1u64, |n, &d| n.saturating_mul(d))
    }

    /// Bytes of data. Exact for infos read from a file or given to the writer; see
    /// [`TensorInfo::n_elements`].
    pub fn n_bytes(&self) -> u64 {
        let blocks = self.n_elements() / self.ggml_type.block_size() as u64;
        blocks.saturating_mul(self.ggml_type.type_size() as u64)
    }
}

/// Checks a shape against the rules llama.cpp's loader applies and returns the
/// tensor's size in bytes.
pub(super) fn checked_n_bytes(
    name: &str,
    shape: &[u64],
    ggml_type: GgmlType,
) -> Result<u64, Problem> {
    if shape.len() > MAX_DIMS {
        return Err(Problem::TooManyDims { name: name.to_owned(), n_dims: shape.len() as u64 });
    }
    let i64_max = i64::MAX as u64;
    if let Some((axis, &value)) = shape.iter().enumerate().find(|&(_, &d)| d > i64_max) {
        return Err(Problem::NegativeDim { name: name.to_owned(), axis, value });
    }
    let n_elements = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= i64_max)
        .ok_or_else(|| Problem::ElementCountOverflow {
            name: name.to_owned(),
            shape: shape.to_vec(),
        })?;
    // A scalar (no dimensions) is one row of one element, as in ggml.
    let row = shape.first().copied().unwrap_or(1);
    let block = ggml_type.block_size();
    if !row.is_multiple_of(block as u64) {
        return Err(Problem::NotWholeBlocks { name: name.to_owned(), ggml_type, row, block });
    }
    ggml_type.bytes_for(n_elements).ok_or_else(|| Problem::ByteSizeOverflow {
        name: name.to_owned(),
        shape: shape.to_vec(),
        ggml_type,
    })
}
