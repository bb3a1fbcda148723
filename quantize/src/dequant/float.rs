//! Plain element types, converted one value at a time as ggml converts them.

/// `ggml_compute_fp16_to_fp32`: exact for every finite value and infinity, and it
/// turns NaNs into the same bits as ggml's because it is the same float arithmetic.
/// Unlike a lookup table or `half`'s runtime-dispatched conversion, it is
/// branch-free integer and float code that vectorises at baseline SSE2.
#[inline(always)]
pub(crate) fn fp16_to_f32(bits: u16) -> f32 {
    let w = u32::from(bits) << 16;
    let sign = w & 0x8000_0000;
    let two_w = w.wrapping_add(w);

    // Normal numbers: move the exponent and mantissa into place, then rebias by
    // multiplying with 2^-112; infinities and NaNs keep an all-ones exponent.
    let exp_offset = 0xE0_u32 << 23;
    let exp_scale = f32::from_bits(0x0780_0000);
    let normalized = f32::from_bits((two_w >> 4) + exp_offset) * exp_scale;

    // Subnormals: put the mantissa under the exponent of 0.5 and subtract 0.5.
    let magic_mask = 126_u32 << 23;
    let denormalized = f32::from_bits((two_w >> 17) | magic_mask) - 0.5;

    let denormalized_cutoff = 1_u32 << 27;
    let magnitude = if two_w < denormalized_cutoff {
        denormalized.to_bits()
    } else {
        normalized.to_bits()
    };
    f32::from_bits(sign | magnitude)
}

/// A little-endian half-precision field of a block.
#[inline(always)]
pub(crate) fn f16_le(bytes: [u8; 2]) -> f32 {
    fp16_to_f32(u16::from_le_bytes(bytes))
}

pub fn dequantize_row_f32(src: &[u8], dst: &mut [f32]) {
    for (y, x) in dst.iter_mut().zip(src.as_chunks().0) {
        *y = f32::from_le_bytes(*x);
    }
}

pub fn dequantize_row_f16(src: &[u8], dst: &mut [f32]) {
    for (y, x) in dst.iter_mut().zip(src.as_chunks().0) {
        *y = f16_le(*x);
    }
}

/// bf16 is the top half of an f32, so widening is exact for every value, NaNs included.
pub fn dequantize_row_bf16(src: &[u8], dst: &mut [f32]) {
    for (y, x) in dst.iter_mut().zip(src.as_chunks().0) {
        *y = f32::from_bits(u32::from(u16::from_le_bytes(*x)) << 16);
    }
}

/// Rounds to nearest even, as C's `(float)` of a `double` does.
pub fn dequantize_row_f64(src: &[u8], dst: &mut [f32]) {
    for (y, x) in dst.iter_mut().zip(src.as_chunks().0) {
        *y = f64::from_le_bytes(*x) as f32;
    }
}

pub fn dequantize_row_i8(src: &[u8], dst: &mut [f32]) {
    for (y, &x) in dst.iter_mut().zip(src) {
        *y = f32::from(x as i8);
    }
}

pub fn dequantize_row_i16(src: &[u8], dst: &mut [f32]) {
    for (y, x) in dst.iter_mut().zip(src.as_chunks().0) {
        *y = f32::from(i16::from_le_bytes(*x));
    }
}

/// Integers are converted by value, rounding to nearest even above 2^24 as C's
/// `(float)` does.
pub fn dequantize_row_i32(src: &[u8], dst: &mut [f32]) {
    for (y, x) in dst.iter_mut().zip(src.as_chunks().0) {
        *y = i32::from_le_bytes(*x) as f32;
    }
}

pub fn dequantize_row_i64(src: &[u8], dst: &mut [f32]) {
    for (y, x) in dst.iter_mut().zip(src.as_chunks().0) {
        *y = i64::from_le_bytes(*x) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every half-precision value, NaNs aside, against `half`'s IEEE conversion.
    #[test]
    fn fp16_conversion_is_exact() {
        for bits in 0..=u16::MAX {
            let reference = half::f16::from_bits(bits).to_f32();
            let ours = fp16_to_f32(bits);
            if reference.is_nan() {
                assert!(ours.is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(ours.to_bits(), reference.to_bits(), "{bits:#06x}");
            }
        }
    }
}
