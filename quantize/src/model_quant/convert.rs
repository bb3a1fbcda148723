//! Converting one tensor to its new type: rows are read back to f32 (dequantized
//! if need be) and quantized in small row chunks, spread over threads. Rows are
//! independent in every ggml type, so the bytes do not depend on the split.

use std::path::Path;
use std::sync::Mutex;

use crate::gguf::TensorInfo;
use crate::quant::row_size;
use crate::{GgmlType, dequantize, quantize_chunk};

use super::error::ModelQuantError;

/// Values per chunk of work, llama.cpp's minimum chunk (`32 * 512`).
const CHUNK_VALUES: usize = 32 * 512;

/// One chunk: whole rows of one matrix, and where their bytes go.
struct Chunk<'a> {
    first_row: usize,
    dst: &'a mut [u8],
    imatrix: Option<&'a [f32]>,
}

pub(super) struct Source<'a> {
    pub(super) path: &'a Path,
    pub(super) info: &'a TensorInfo,
    pub(super) data: &'a [u8],
}

/// `source` converted to `target`. `imatrix` holds `ne0` weights per matrix
/// (`ne0 × ne1` slice) of the tensor.
pub(super) fn convert(
    source: &Source<'_>,
    target: GgmlType,
    imatrix: Option<&[f32]>,
    threads: usize,
) -> Result<Vec<u8>, ModelQuantError> {
    let info = source.info;
    let quant_error = |e| ModelQuantError::Quant {
        tensor: info.name.clone(),
        ty: target,
        source: e,
    };
    let n_per_row = info.shape.first().copied().unwrap_or(1) as usize;
    let rows_per_matrix = info.shape.get(1).copied().unwrap_or(1) as usize;
    let n_rows = info.n_elements() as usize / n_per_row.max(1);
    let out_row = row_size(target, n_per_row).map_err(quant_error)?;
    let in_row = info.ggml_type.type_size() * n_per_row / info.ggml_type.block_size();
    let rows_per_chunk = CHUNK_VALUES.div_ceil(n_per_row).max(1);

    let mut out = vec![0u8; n_rows * out_row];
    let mut chunks = Vec::new();
    // `max(1)`: a tensor with no elements has no chunks, but chunk sizes must be nonzero.
    for (m, matrix) in out
        .chunks_mut((rows_per_matrix * out_row).max(1))
        .enumerate()
    {
        let weights = imatrix.and_then(|w| w.get(m * n_per_row..(m + 1) * n_per_row));
        for (c, dst) in matrix.chunks_mut(rows_per_chunk * out_row).enumerate() {
            let first_row = m * rows_per_matrix + c * rows_per_chunk;
            chunks.push(Chunk {
                first_row,
                dst,
                imatrix: weights,
            });
        }
    }

    let threads = threads.clamp(1, chunks.len().max(1));
    let work = Mutex::new(chunks.into_iter());
    let worker = || -> Result<(), ModelQuantError> {
        let mut values = Vec::new();
        loop {
            let next = work
                .lock()
                .expect("no worker panics holding the lock")
                .next();
            let Some(chunk) = next else { return Ok(()) };
            let n = chunk.dst.len() / out_row;
            let src = &source.data[chunk.first_row * in_row..(chunk.first_row + n) * in_row];
            values.resize(n * n_per_row, 0.0);
            dequantize(info.ggml_type, src, &mut values).map_err(|e| ModelQuantError::Dequant {
                path: source.path.to_owned(),
                tensor: info.name.clone(),
                ty: info.ggml_type,
                source: e,
            })?;
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(ModelQuantError::NonFinite {
                    path: source.path.to_owned(),
                    tensor: info.name.clone(),
                    index: (chunk.first_row * n_per_row + i) as u64,
                });
            }
            quantize_chunk(target, &values, n_per_row, chunk.imatrix, chunk.dst)
                .map_err(quant_error)?;
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(worker)).collect();
        let mine = worker();
        helpers
            .into_iter()
            .map(|h| h.join().expect("quantization workers do not panic"))
            .chain([mine])
            .collect::<Result<(), _>>()
    })?;
    Ok(out)
}
