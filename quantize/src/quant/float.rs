//! F32, F16 and BF16 rows, and the half-precision conversions every block scale
//! goes through.

use half::f16;

/// ggml's `ggml_compute_fp32_to_fp16`: round to nearest even, done in float
/// arithmetic; overflow gives infinity and NaNs become the quiet NaN `0x7E00`.
#[inline]
pub(super) fn fp32_to_fp16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
    // Scaling up and back down keeps the magnitude, unless it is beyond the half
    // range: then the first product overflows to infinity.
    let base = (f.abs() * scale_to_inf) * scale_to_zero;

    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let bias = (shl1_w & 0xFF00_0000).max(0x7100_0000);

    // Adding a power of two at the value's exponent less 10 bits rounds the
    // mantissa to half precision; the exponent and mantissa are then read off.
    let bits = (f32::from_bits((bias >> 1) + 0x0780_0000) + base).to_bits();
    let exp_bits = (bits >> 13) & 0x7C00;
    let mantissa_bits = bits & 0x0FFF;
    let nonsign = if shl1_w > 0xFF00_0000 {
        0x7E00
    } else {
        exp_bits + mantissa_bits
    };
    ((sign >> 16) | nonsign) as u16
}

/// Rounds `x` to half precision, as stored, and back to the `f32` that ggml
/// computes with when a kernel reads back a scale it has just stored (widening is
/// exact, as ggml's is).
#[inline]
pub(super) fn round_trip_fp16(x: f32) -> ([u8; 2], f32) {
    let bits = fp32_to_fp16(x);
    (bits.to_le_bytes(), f16::from_bits(bits).to_f32())
}

/// ggml's `ggml_compute_fp32_to_bf16`: round to nearest even, NaNs made quiet.
#[inline]
fn fp32_to_bf16(f: f32) -> u16 {
    let i = f.to_bits();
    if i & 0x7FFF_FFFF > 0x7F80_0000 {
        return ((i >> 16) | 64) as u16;
    }
    ((i + (0x7FFF + ((i >> 16) & 1))) >> 16) as u16
}

pub(super) fn quantize_f32(x: &[f32], _imatrix: Option<&[f32]>, y: &mut [u8]) {
    for (y, x) in y.as_chunks_mut().0.iter_mut().zip(x) {
        *y = x.to_le_bytes();
    }
}

pub(super) fn quantize_f16(x: &[f32], _imatrix: Option<&[f32]>, y: &mut [u8]) {
    for (y, &x) in y.as_chunks_mut().0.iter_mut().zip(x) {
        *y = fp32_to_fp16(x).to_le_bytes();
    }
}

pub(super) fn quantize_bf16(x: &[f32], _imatrix: Option<&[f32]>, y: &mut [u8]) {
    for (y, &x) in y.as_chunks_mut().0.iter_mut().zip(x) {
        *y = fp32_to_bf16(x).to_le_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every half-precision value and every midpoint between neighbours (ties
    /// included, both ways), against `half`'s IEEE conversion.
    #[test]
    fn fp16_rounding_is_ieee() {
        for bits in 0..0x7BFF_u16 {
            let here = f16::from_bits(bits).to_f32();
            let next = f16::from_bits(bits + 1).to_f32();
            let mid = here + (next - here) / 2.0;
            for x in [
                here,
                mid,
                f32::from_bits(mid.to_bits() - 1),
                f32::from_bits(mid.to_bits() + 1),
            ] {
                for x in [x, -x] {
                    assert_eq!(fp32_to_fp16(x), f16::from_f32(x).to_bits(), "{x:e}");
                }
            }
        }
        assert_eq!(
            fp32_to_fp16(f32::from_bits(65520_f32.to_bits() - 1)),
            0x7BFF
        );
        assert_eq!(fp32_to_fp16(65520.0), 0x7C00);
        assert_eq!(fp32_to_fp16(1e6), 0x7C00);
        assert_eq!(fp32_to_fp16(f32::NEG_INFINITY), 0xFC00);
        assert_eq!(fp32_to_fp16(f32::NAN), 0x7E00);
        assert_eq!(fp32_to_fp16(-f32::NAN), 0xFE00);
    }

    #[test]
    fn bf16_rounds_to_nearest_even_and_quiets_nans() {
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3F80_8000)), 0x3F80);
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3F81_8000)), 0x3F82);
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3F80_8001)), 0x3F81);
        assert_eq!(fp32_to_bf16(f32::from_bits(0x7F80_0001)), 0x7FC0);
        assert_eq!(fp32_to_bf16(f32::MAX), 0x7F80);
    }
}
