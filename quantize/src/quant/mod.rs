//! Quantization of `f32` rows to ggml tensor types, byte-identical to llama.cpp's
//! `ggml_quantize_chunk` (`ggml.c`) and the kernels it calls in `ggml-quants.c`.
//!
//! Without importance weights ggml_quantize_chunk takes each type's reference
//! path (`quantize_row_*_ref`); with them the weighted one (`quantize_row_*_impl`),
//! except for F32, F16, BF16 and Q8_0, which ignore them. IQ4_NL and IQ4_XS have a
//! single path for both, and it is not their `_ref` function.
//!
//! Kernels repeat ggml's float operations in ggml's order, and fuse no multiply-add:
//! llama.cpp builds `ggml-quants.c` into libggml-base, which gets no `-march`
//! flags even when `GGML_NATIVE` is on (those go to ggml-cpu only), so on x86-64
//! it is baseline SSE2 and GCC has no FMA to contract into; the reference
//! library's disassembly has none, and the `fma-traps` goldens fail if the legacy
//! expressions are fused. (An aarch64 build, where FMA is baseline, may contract
//! and differ in rare last bits.) Float-to-integer casts follow x86 as well:
//! see `round::c_cast`.

mod clip;
mod float;
mod iq4;
mod legacy;
mod q2_k;
mod q3_k;
mod q4_k_q5_k;
mod q6_k;
mod qkx_lanes;
mod round;
mod scale_fit;

pub use clip::{CLIP_RANGE_TYPES, inside_range};

use crate::GgmlType;
use crate::blocks::Block;

/// Why a chunk could not be quantized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    #[error(
        "quantizing to {ty} is not supported; the types are {}",
        supported_names()
    )]
    Unsupported { ty: GgmlType },
    #[error("rows of {n_per_row} values are not a whole number of {ty} blocks of {block_size}")]
    RowNotWholeBlocks {
        ty: GgmlType,
        n_per_row: usize,
        block_size: usize,
    },
    #[error("{src_len} values are not a whole number of rows of {n_per_row}")]
    PartialRow { src_len: usize, n_per_row: usize },
    #[error("the importance matrix has {len} weights, but rows have {n_per_row} values")]
    ImatrixLength { len: usize, n_per_row: usize },
    #[error("{nrows} rows of {ty} need {needed} bytes, but the output has room for {dst_len}")]
    OutputTooSmall {
        ty: GgmlType,
        nrows: usize,
        needed: usize,
        dst_len: usize,
    },
    #[error(
        "{ty} has no clip range; inside_range takes q4_0, q4_1, q5_0, q5_1, q8_0, \
         q4_K, q5_K and q6_K"
    )]
    NoClipRange { ty: GgmlType },
    #[error("{nrows} rows of {ty} take {needed} bytes, but the quantized data has {len}")]
    QuantizedLength {
        ty: GgmlType,
        nrows: usize,
        needed: usize,
        len: usize,
    },
}

/// Quantizes one row, given the importance weights of its columns when there are
/// any, into exactly that row's bytes.
type RowKernel = fn(&[f32], Option<&[f32]>, &mut [u8]);

/// The kernel for `ty`, for the types decant writes.
fn kernel(ty: GgmlType) -> Option<RowKernel> {
    use GgmlType::*;
    Some(match ty {
        F32 => float::quantize_f32,
        F16 => float::quantize_f16,
        Bf16 => float::quantize_bf16,
        Q4_0 => legacy::quantize_q4_0,
        Q4_1 => legacy::quantize_q4_1,
        Q5_0 => legacy::quantize_q5_0,
        Q5_1 => legacy::quantize_q5_1,
        Q8_0 => legacy::quantize_q8_0,
        Q2K => q2_k::quantize_q2_k,
        Q3K => q3_k::quantize_q3_k,
        Q4K => q4_k_q5_k::quantize_q4_k,
        Q5K => q4_k_q5_k::quantize_q5_k,
        Q6K => q6_k::quantize_q6_k,
        Iq4Nl => iq4::quantize_iq4_nl,
        Iq4Xs => iq4::quantize_iq4_xs,
        Q8_1 | Q8K | Iq2Xxs | Iq2Xs | Iq3Xxs | Iq1S | Iq3S | Iq2S | I8 | I16 | I32 | I64 | F64
        | Iq1M | Tq1_0 | Tq2_0 | Mxfp4 => return None,
    })
}

/// The types [`quantize_chunk`] writes.
pub fn supported_types() -> impl Iterator<Item = GgmlType> {
    GgmlType::ALL.into_iter().filter(|&ty| kernel(ty).is_some())
}

fn supported_names() -> String {
    let names: Vec<&str> = supported_types().map(GgmlType::name).collect();
    names.join(", ")
}

/// Bytes of one quantized row of `n_per_row` values.
pub fn row_size(ty: GgmlType, n_per_row: usize) -> Result<usize, QuantError> {
    let block_size = ty.block_size();
    if n_per_row == 0 || !n_per_row.is_multiple_of(block_size) {
        return Err(QuantError::RowNotWholeBlocks {
            ty,
            n_per_row,
            block_size,
        });
    }
    Ok(n_per_row / block_size * ty.type_size())
}

/// Quantizes `src`, rows of `n_per_row` values, to `ty` at the start of `dst`, and
/// returns the number of bytes written, as ggml's `ggml_quantize_chunk` does.
///
/// `imatrix` holds one importance weight per column (per value of a row), as
/// llama.cpp's importance matrix does for each tensor; the types that use one then
/// fit their scales to the weighted error.
pub fn quantize_chunk(
    ty: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<usize, QuantError> {
    let kernel = kernel(ty).ok_or(QuantError::Unsupported { ty })?;
    let row_bytes = row_size(ty, n_per_row)?;
    if !src.len().is_multiple_of(n_per_row) {
        return Err(QuantError::PartialRow {
            src_len: src.len(),
            n_per_row,
        });
    }
    if let Some(weights) = imatrix
        && weights.len() != n_per_row
    {
        return Err(QuantError::ImatrixLength {
            len: weights.len(),
            n_per_row,
        });
    }
    let nrows = src.len() / n_per_row;
    let needed = nrows * row_bytes;
    let Some(dst) = dst.get_mut(..needed) else {
        return Err(QuantError::OutputTooSmall {
            ty,
            nrows,
            needed,
            dst_len: dst.len(),
        });
    };
    for (x, y) in src
        .chunks_exact(n_per_row)
        .zip(dst.chunks_exact_mut(row_bytes))
    {
        kernel(x, imatrix, y);
    }
    Ok(needed)
}

/// Quantizes `src`, rows of `n_per_row` values, to `ty` in a new vector.
pub fn quantize_to_vec(
    ty: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
) -> Result<Vec<u8>, QuantError> {
    let row_bytes = row_size(ty, n_per_row)?;
    let mut dst = vec![0; src.len() / n_per_row * row_bytes];
    quantize_chunk(ty, src, n_per_row, imatrix, &mut dst)?;
    Ok(dst)
}

/// Quantizes a row block by block, with `reference` or, given importance weights,
/// with `weighted` and the weights of the block's columns.
fn per_block<B: Block, const N: usize>(
    x: &[f32],
    imatrix: Option<&[f32]>,
    y: &mut [u8],
    reference: impl Fn(&[f32; N]) -> B,
    weighted: impl Fn(&[f32; N], &[f32; N]) -> B,
) {
    let blocks = blocks_mut::<B>(y).iter_mut().zip(x.as_chunks::<N>().0);
    match imatrix {
        None => blocks.for_each(|(b, x)| *b = reference(x)),
        Some(qw) => {
            for ((b, x), qw) in blocks.zip(qw.as_chunks::<N>().0) {
                *b = weighted(x, qw);
            }
        }
    }
}

/// Views `bytes` as blocks to write, the mutable twin of [`Block::slice_from_bytes`].
///
/// # Panics
///
/// When `bytes` is not a whole number of blocks.
fn blocks_mut<B: Block>(bytes: &mut [u8]) -> &mut [B] {
    const { assert!(align_of::<B>() == 1) };
    let size = size_of::<B>();
    assert!(
        bytes.len().is_multiple_of(size),
        "{} bytes are not a whole number of {} blocks",
        bytes.len(),
        B::TYPE
    );
    // SAFETY: `Block`'s contract makes any `size` bytes a valid, alignment-1 `B`
    // with no padding, so every value written through the view is plain bytes; the
    // length is a multiple of `size`, and the exclusive borrow is carried over.
    unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), bytes.len() / size) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked_before_any_work() {
        let src = [0.5_f32; 64];
        let mut dst = [0_u8; 36];
        assert_eq!(
            quantize_chunk(GgmlType::Q4_0, &src, 32, None, &mut dst),
            Ok(36)
        );
        assert_eq!(
            quantize_chunk(GgmlType::Q4K, &src, 64, None, &mut dst),
            Err(QuantError::RowNotWholeBlocks {
                ty: GgmlType::Q4K,
                n_per_row: 64,
                block_size: 256
            })
        );
        assert_eq!(
            quantize_chunk(GgmlType::Q4_0, &src[..48], 32, None, &mut dst),
            Err(QuantError::PartialRow {
                src_len: 48,
                n_per_row: 32
            })
        );
        assert_eq!(
            quantize_chunk(GgmlType::Q4_0, &src, 32, Some(&[1.0; 64]), &mut dst),
            Err(QuantError::ImatrixLength {
                len: 64,
                n_per_row: 32
            })
        );
        let err = quantize_chunk(GgmlType::Q4_0, &src, 32, None, &mut dst[..35]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 rows of q4_0 need 36 bytes, but the output has room for 35"
        );
        assert!(quantize_to_vec(GgmlType::Q4_0, &src, 0, None).is_err());
        assert_eq!(quantize_to_vec(GgmlType::Q4_0, &[], 32, None), Ok(vec![]));
    }

    #[test]
    fn unsupported_types_are_named() {
        let err = quantize_to_vec(GgmlType::Iq2Xxs, &[0.0; 256], 256, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "quantizing to iq2_xxs is not supported; the types are f32, f16, q4_0, q4_1, \
             q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs, bf16"
        );
    }

    #[test]
    fn bytes_beyond_the_chunk_are_left_alone() {
        let mut dst = [0xAA_u8; 40];
        assert_eq!(
            quantize_chunk(GgmlType::Q8_0, &[1.0; 32], 32, None, &mut dst),
            Ok(34)
        );
        assert_eq!(dst[34..], [0xAA; 6]);
    }
}
