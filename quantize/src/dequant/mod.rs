//! Dequantization of every ggml tensor type to `f32`, bit-identical to llama.cpp's
//! `dequantize_row_*` (`ggml-quants.c`) and its row converters (`ggml.c`).
//!
//! Each kernel takes whole blocks (`src.len() == n * type_size`,
//! `dst.len() == n * block_size`); [`dequantize`] checks the lengths and picks the
//! kernel. Kernels repeat ggml's float operations in ggml's order, so results match
//! bit for bit, and never fuse a multiply-add (Rust does not contract floats).

mod float;
mod iquants;
mod kquants;
mod legacy;
mod mxfp4;
mod simd;
mod tables;
mod ternary;

use crate::GgmlType;

/// Why a tensor could not be dequantized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error("{src_len} bytes are not a whole number of {ty} blocks ({type_size} bytes per block)")]
    PartialBlock {
        ty: GgmlType,
        src_len: usize,
        type_size: usize,
    },
    #[error(
        "{src_len} bytes of {ty} hold {expected} values, but the output has room for {dst_len}"
    )]
    LengthMismatch {
        ty: GgmlType,
        src_len: usize,
        dst_len: usize,
        expected: usize,
    },
}

type Kernel = fn(&[u8], &mut [f32]);

/// The kernel for `ty`. An exhaustive match, so a type added to [`GgmlType`] does not
/// compile until it has one.
fn kernel(ty: GgmlType) -> Kernel {
    use GgmlType::*;
    match ty {
        F32 => float::dequantize_row_f32,
        F16 => float::dequantize_row_f16,
        Bf16 => float::dequantize_row_bf16,
        F64 => float::dequantize_row_f64,
        I8 => float::dequantize_row_i8,
        I16 => float::dequantize_row_i16,
        I32 => float::dequantize_row_i32,
        I64 => float::dequantize_row_i64,
        Q4_0 => legacy::dequantize_row_q4_0,
        Q4_1 => legacy::dequantize_row_q4_1,
        Q5_0 => legacy::dequantize_row_q5_0,
        Q5_1 => legacy::dequantize_row_q5_1,
        Q8_0 => legacy::dequantize_row_q8_0,
        Q8_1 => legacy::dequantize_row_q8_1,
        Q2K => kquants::dequantize_row_q2_k,
        Q3K => kquants::dequantize_row_q3_k,
        Q4K => kquants::dequantize_row_q4_k,
        Q5K => kquants::dequantize_row_q5_k,
        Q6K => kquants::dequantize_row_q6_k,
        Q8K => kquants::dequantize_row_q8_k,
        Tq1_0 => ternary::dequantize_row_tq1_0,
        Tq2_0 => ternary::dequantize_row_tq2_0,
        Mxfp4 => mxfp4::dequantize_row_mxfp4,
        Iq2Xxs => iquants::dequantize_row_iq2_xxs,
        Iq2Xs => iquants::dequantize_row_iq2_xs,
        Iq2S => iquants::dequantize_row_iq2_s,
        Iq3Xxs => iquants::dequantize_row_iq3_xxs,
        Iq3S => iquants::dequantize_row_iq3_s,
        Iq1S => iquants::dequantize_row_iq1_s,
        Iq1M => iquants::dequantize_row_iq1_m,
        Iq4Nl => iquants::dequantize_row_iq4_nl,
        Iq4Xs => iquants::dequantize_row_iq4_xs,
    }
}

/// Number of blocks in `src_len` bytes of `ty`.
fn whole_blocks(ty: GgmlType, src_len: usize) -> Result<usize, DequantError> {
    let type_size = ty.type_size();
    if !src_len.is_multiple_of(type_size) {
        return Err(DequantError::PartialBlock {
            ty,
            src_len,
            type_size,
        });
    }
    Ok(src_len / type_size)
}

/// Dequantizes `src`, whole blocks of `ty`, into `dst`, which must hold exactly the
/// values those blocks encode.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), DequantError> {
    let expected = whole_blocks(ty, src.len())? * ty.block_size();
    if dst.len() != expected {
        return Err(DequantError::LengthMismatch {
            ty,
            src_len: src.len(),
            dst_len: dst.len(),
            expected,
        });
    }
    kernel(ty)(src, dst);
    Ok(())
}

/// Dequantizes `src`, whole blocks of `ty`, into a new vector.
pub fn dequantize_to_vec(ty: GgmlType, src: &[u8]) -> Result<Vec<f32>, DequantError> {
    let mut dst = vec![0.0; whole_blocks(ty, src.len())? * ty.block_size()];
    kernel(ty)(src, &mut dst);
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_before_any_work() {
        let src = [0_u8; 36];
        assert_eq!(
            dequantize(GgmlType::Q4_0, &src[..35], &mut [0.0; 64]),
            Err(DequantError::PartialBlock {
                ty: GgmlType::Q4_0,
                src_len: 35,
                type_size: 18
            })
        );
        let err = dequantize(GgmlType::Q4_0, &src, &mut [0.0; 63]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "36 bytes of q4_0 hold 64 values, but the output has room for 63"
        );
        assert!(dequantize(GgmlType::Q4_0, &src, &mut [0.0; 64]).is_ok());
        assert_eq!(dequantize_to_vec(GgmlType::Q4_0, &[]), Ok(vec![]));
    }

    #[test]
    fn every_type_fills_its_output() {
        for ty in GgmlType::ALL {
            let src = vec![0_u8; 2 * ty.type_size()];
            let values = dequantize_to_vec(ty, &src).unwrap();
            assert_eq!(values.len(), 2 * ty.block_size(), "{ty}");
        }
    }
}
