//! MXFP4: `dequantize_row_mxfp4` of `ggml-quants.c`.

use super::legacy::nibbles;
use super::simd;
use crate::blocks::{Block, BlockMxfp4, QK_MXFP4};

/// The E2M1 code points, doubled to be integers (ggml's `kvalues_mxfp4`); the scale
/// is halved to compensate.
const KVALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `ggml_e8m0_to_fp32_half`: `2^(e - 128)`, built from bits. The two smallest
/// exponents land in the subnormal range; e = 255 gives 2^127 rather than NaN, as in
/// ggml.
#[inline(always)]
fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000_u32 << e
    } else {
        u32::from(e - 1) << 23
    };
    f32::from_bits(bits)
}

pub fn dequantize_row_mxfp4(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockMxfp4::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_MXFP4>().0) {
        let d = e8m0_to_f32_half(b.e);
        for (y, q) in y.as_chunks_mut().0.iter_mut().zip(&nibbles(&b.qs)) {
            let mut v = [0; 16];
            for (v, &q) in v.iter_mut().zip(q) {
                *v = KVALUES[usize::from(q)];
            }
            simd::mul(&v, d, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e8m0_half_is_two_to_the_e_minus_128() {
        for e in 0..=u8::MAX {
            let expected = 2f64.powi(i32::from(e) - 128) as f32;
            assert_eq!(e8m0_to_f32_half(e), expected, "e = {e}");
        }
    }
}
