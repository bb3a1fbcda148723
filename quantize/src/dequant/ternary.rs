//! TQ1_0 and TQ2_0: `dequantize_row_tq*_0` of `ggml-quants.c`.

use super::float::f16_le;
use super::simd;
use crate::blocks::{Block, BlockTq1_0, BlockTq2_0, QK_K};

/// Multiplying a packed byte by 3^n (wrapping) brings base-3 digit `n` to the top;
/// `* 3 >> 8` then reads it off.
const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// The digit of `packed` that multiplying by `pow3` brings to the top, minus one.
#[inline(always)]
fn trit(packed: u8, pow3: u8) -> i8 {
    let q = packed.wrapping_mul(pow3);
    let digit = (u16::from(q) * 3) >> 8;
    digit as i8 - 1
}

/// Digit `n` of every byte of `packed`, for each `n` in turn.
#[inline(always)]
fn unpack_trits<const N: usize>(packed: &[u8; N], pow3: &[u8], t: &mut [i8]) {
    for (&pow3, t) in pow3.iter().zip(t.as_chunks_mut::<N>().0) {
        for (t, &q) in t.iter_mut().zip(packed) {
            *t = trit(q, pow3);
        }
    }
}

#[inline(always)]
fn scale(t: &[i8; QK_K], d: f32, y: &mut [f32; QK_K]) {
    for (y, t) in y.as_chunks_mut().0.iter_mut().zip(t.as_chunks::<16>().0) {
        simd::mul(t, d, y);
    }
}

pub fn dequantize_row_tq1_0(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockTq1_0::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        // 32 bytes of five trits, 16 bytes of five trits, then 4 bytes of four trits.
        let mut t = [0_i8; QK_K];
        let (qs32, qs16) = b.qs.split_first_chunk::<32>().expect("48 bytes");
        let qs16: &[u8; 16] = qs16.try_into().expect("48 bytes");
        let (t32, rest) = t.split_at_mut(32 * 5);
        let (t16, t4) = rest.split_at_mut(16 * 5);
        unpack_trits(qs32, &POW3, t32);
        unpack_trits(qs16, &POW3, t16);
        unpack_trits(&b.qh, &POW3[..4], t4);
        scale(&t, f16_le(b.d), y);
    }
}

pub fn dequantize_row_tq2_0(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockTq2_0::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        // Each 32 bytes hold 128 values: bit pair `p` of every byte, for each `p`.
        let mut t = [0_i8; QK_K];
        for (t, qs) in t
            .as_chunks_mut::<128>()
            .0
            .iter_mut()
            .zip(b.qs.as_chunks::<32>().0)
        {
            for (shift, t) in (0..8).step_by(2).zip(t.as_chunks_mut::<32>().0) {
                for (t, &q) in t.iter_mut().zip(qs) {
                    *t = ((q >> shift) & 3) as i8 - 1;
                }
            }
        }
        scale(&t, f16_le(b.d), y);
    }
}
