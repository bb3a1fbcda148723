//! Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1: `dequantize_row_q*` of `ggml-quants.c`.
//!
//! A block's first 16 values come from the low nibbles of `qs` (and the low half of
//! `qh`), the last 16 from the high nibbles. Quants are unpacked to bytes first and
//! then scaled by [`simd`].

use super::float::f16_le;
use super::simd;
use crate::blocks::{
    Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK4_0, QK4_1, QK5_0,
    QK5_1, QK8_0, QK8_1,
};

/// Low nibbles, then high nibbles.
#[inline(always)]
pub(super) fn nibbles(qs: &[u8; 16]) -> [[u8; 16]; 2] {
    let mut q = [[0; 16]; 2];
    let [lo, hi] = &mut q;
    for ((lo, hi), &qs) in lo.iter_mut().zip(hi).zip(qs) {
        *lo = qs & 0x0F;
        *hi = qs >> 4;
    }
    q
}

/// Nibbles with their fifth bit from `qh`: bit `j` of the little-endian `u32` for
/// value `j`, that is bit `j % 8` of byte `j / 8`. Testing each lane against a
/// one-bit mask, rather than shifting by `j`, keeps this in vector registers.
#[inline(always)]
fn five_bits(qs: &[u8; 16], qh: [u8; 4]) -> [[u8; 16]; 2] {
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let mut q = nibbles(qs);
    let [lo, hi] = &mut q;
    for (j, ((lo, hi), &bit)) in lo.iter_mut().zip(hi).zip(&BIT).enumerate() {
        let fifth = |byte: u8| if byte & bit != 0 { 0x10 } else { 0 };
        *lo |= fifth(qh[j / 8]);
        *hi |= fifth(qh[2 + j / 8]);
    }
    q
}

pub fn dequantize_row_q4_0(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ4_0::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK4_0>().0) {
        let d = f16_le(b.d);
        for (y, q) in y.as_chunks_mut().0.iter_mut().zip(&nibbles(&b.qs)) {
            simd::mul(&simd::signed(q, 8), d, y);
        }
    }
}

pub fn dequantize_row_q4_1(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ4_1::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK4_1>().0) {
        let (d, m) = (f16_le(b.d), f16_le(b.m));
        for (y, q) in y.as_chunks_mut().0.iter_mut().zip(&nibbles(&b.qs)) {
            simd::mul_add(q, d, m, y);
        }
    }
}

pub fn dequantize_row_q5_0(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ5_0::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK5_0>().0) {
        let d = f16_le(b.d);
        for (y, q) in y.as_chunks_mut().0.iter_mut().zip(&five_bits(&b.qs, b.qh)) {
            simd::mul(&simd::signed(q, 16), d, y);
        }
    }
}

pub fn dequantize_row_q5_1(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ5_1::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK5_1>().0) {
        let (d, m) = (f16_le(b.d), f16_le(b.m));
        for (y, q) in y.as_chunks_mut().0.iter_mut().zip(&five_bits(&b.qs, b.qh)) {
            simd::mul_add(q, d, m, y);
        }
    }
}

#[inline(always)]
fn q8(qs: &[u8; 32], d: f32, y: &mut [f32; 32]) {
    for (y, q) in y.as_chunks_mut().0.iter_mut().zip(qs.as_chunks::<16>().0) {
        simd::mul(&simd::signed(q, 0), d, y);
    }
}

pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ8_0::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK8_0>().0) {
        q8(&b.qs, f16_le(b.d), y);
    }
}

/// ggml has no Q8_1 dequantizer (the type only feeds dot products); this is the
/// Q8_0 formula, since `s` is derived data.
pub fn dequantize_row_q8_1(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ8_1::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK8_1>().0) {
        q8(&b.qs, f16_le(b.d), y);
    }
}
