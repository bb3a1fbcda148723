//! IQ4_NL and IQ4_XS: 4-bit codes mapped through the non-linear `kvalues_iq4nl`.

use super::nibble;
use crate::blocks::{Block, BlockIq4Nl, BlockIq4Xs, QK_K, QK4_NL};
use crate::dequant::float::f16_le;
use crate::dequant::tables::KVALUES_IQ4NL;

/// `kvalues_iq4nl` widened to `f32` (exactly) once, so that each value costs one
/// table load and one multiply; a byte lookup widened per value is four times slower.
const LEVELS: [f32; 16] = {
    let mut levels = [0.0; 16];
    let mut i = 0;
    while i < levels.len() {
        levels[i] = KVALUES_IQ4NL[i] as f32;
        i += 1;
    }
    levels
};

/// `y = d * kvalues_iq4nl[code]` for 32 values, whose codes are the low nibbles of
/// `qs` and then the high ones.
#[inline(always)]
fn nonlinear(qs: &[u8; 16], d: f32, y: &mut [f32; 32]) {
    let (lo, hi) = y.split_at_mut(16);
    for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(qs) {
        *lo = LEVELS[usize::from(q & 0x0F)] * d;
        *hi = LEVELS[usize::from(q >> 4)] * d;
    }
}

pub fn dequantize_row_iq4_nl(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq4Nl::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK4_NL>().0) {
        nonlinear(&b.qs, f16_le(b.d), y);
    }
}

pub fn dequantize_row_iq4_xs(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq4Xs::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        let scales_h = u16::from_le_bytes(b.scales_h);
        let qs = b.qs.as_chunks::<16>().0;
        for (r, (y, qs)) in y.as_chunks_mut::<32>().0.iter_mut().zip(qs).enumerate() {
            // A 6-bit scale stored with an offset of 32: low 4 bits from `scales_l`,
            // high 2 from `scales_h`.
            let ls = nibble(&b.scales_l, r) | (((scales_h >> (2 * r)) & 3) as u8) << 4;
            nonlinear(qs, d * f32::from(i16::from(ls) - 32), y);
        }
    }
}
