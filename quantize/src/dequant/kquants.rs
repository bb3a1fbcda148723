//! Q2_K … Q6_K and Q8_K: `dequantize_row_q*_K` of `ggml-quants.c`, same arithmetic in
//! the same order. Quants are unpacked to bytes in output order, then scaled per
//! sub-block of 16 by [`simd`].

use super::float::f16_le;
use super::legacy::nibbles;
use super::simd;
use crate::blocks::{
    Block, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, K_SCALE_SIZE, QK_K,
};

/// ggml's `get_scale_min_k4`: scale and min of sub-block `j` from the 12 bytes holding
/// eight 6-bit pairs (low bits of 0..3 in bytes 0..7, the rest split across bytes 8..11
/// and the top bits of 0..7).
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q3_K's sixteen 6-bit scales, unpacked as ggml does through three `u32` words.
#[inline(always)]
fn q3k_scales(packed: &[u8; K_SCALE_SIZE]) -> [u8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let (words, _) = packed.as_chunks::<4>();
    let word = |i: usize| u32::from_le_bytes(words[i]);
    let (a0, a1, tmp) = (word(0), word(1), word(2));
    let words = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut scales = [0; 16];
    for (s, w) in scales.as_chunks_mut::<4>().0.iter_mut().zip(words) {
        *s = w.to_le_bytes();
    }
    scales
}

/// `y = dl[g] * q - ml[g]` for sub-blocks `g` of 16 values.
#[inline(always)]
fn mul_sub(q: &[u8; QK_K], dl: &[f32], ml: &[f32], y: &mut [f32; QK_K]) {
    let groups = y.as_chunks_mut().0.iter_mut().zip(q.as_chunks::<16>().0);
    for ((y, q), (&d, &m)) in groups.zip(dl.iter().zip(ml)) {
        simd::mul_sub(q, d, m, y);
    }
}

/// `y = dl[g] * q` for sub-blocks `g` of 16 values.
#[inline(always)]
fn mul(q: &[i8; QK_K], dl: &[f32; 16], y: &mut [f32; QK_K]) {
    let groups = y.as_chunks_mut().0.iter_mut().zip(q.as_chunks::<16>().0);
    for ((y, q), &d) in groups.zip(dl) {
        simd::mul(q, d, y);
    }
}

/// Q2_K and Q3_K store 2-bit fields as two halves of 128 values: 32 bytes each, whose
/// bit pair `p` holds values `32 * p..32 * p + 32` of the half.
#[inline(always)]
fn two_bit_fields(qs: &[u8; QK_K / 4]) -> [u8; QK_K] {
    let mut q = [0; QK_K];
    for (q, qs) in q
        .as_chunks_mut::<128>()
        .0
        .iter_mut()
        .zip(qs.as_chunks::<32>().0)
    {
        for (shift, q) in (0..8).step_by(2).zip(q.as_chunks_mut::<32>().0) {
            for (q, &qs) in q.iter_mut().zip(qs) {
                *q = (qs >> shift) & 3;
            }
        }
    }
    q
}

pub fn dequantize_row_q2_k(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ2K::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        let min = f16_le(b.dmin);
        let (mut dl, mut ml) = ([0.0; 16], [0.0; 16]);
        for ((dl, ml), &sc) in dl.iter_mut().zip(&mut ml).zip(&b.scales) {
            *dl = d * f32::from(sc & 0x0F);
            *ml = min * f32::from(sc >> 4);
        }
        mul_sub(&two_bit_fields(&b.qs), &dl, &ml, y);
    }
}

pub fn dequantize_row_q3_k(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ3K::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d_all = f16_le(b.d);
        let mut dl = [0.0; 16];
        for (dl, sc) in dl.iter_mut().zip(q3k_scales(&b.scales)) {
            *dl = d_all * (i32::from(sc) - 32) as f32;
        }
        let low = two_bit_fields(&b.qs);
        // The high bits: bit plane `p` of the 32 `hmask` bytes belongs to values
        // `32 * p..32 * p + 32`. A set bit means no offset: q is stored as q + 4.
        let mut q = [0_i8; QK_K];
        let planes = q
            .as_chunks_mut::<32>()
            .0
            .iter_mut()
            .zip(low.as_chunks::<32>().0);
        for (plane, (q, low)) in planes.enumerate() {
            for ((q, &low), &h) in q.iter_mut().zip(low).zip(&b.hmask) {
                let offset = if h & (1 << plane) != 0 { 0 } else { 4 };
                *q = low as i8 - offset;
            }
        }
        mul(&q, &dl, y);
    }
}

/// Q4_K and Q5_K: `(d, m)` of sub-block `j`, the super-block scales times its own.
#[inline(always)]
fn k4_scale(d: f32, min: f32, scales: &[u8; K_SCALE_SIZE], j: usize) -> (f32, f32) {
    let (sc, m) = scale_min_k4(j, scales);
    (d * f32::from(sc), min * f32::from(m))
}

pub fn dequantize_row_q4_k(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ4K::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let (d, min) = (f16_le(b.d), f16_le(b.dmin));
        // Each 32 bytes hold sub-blocks 2j (low nibbles) and 2j + 1 (high nibbles).
        let pairs = y
            .as_chunks_mut::<64>()
            .0
            .iter_mut()
            .zip(b.qs.as_chunks::<32>().0);
        for (j, (y, qs)) in pairs.enumerate() {
            let (d1, m1) = k4_scale(d, min, &b.scales, 2 * j);
            let (d2, m2) = k4_scale(d, min, &b.scales, 2 * j + 1);
            let (y1, y2) = y.split_at_mut(32);
            let halves = qs.as_chunks::<16>().0.iter();
            for ((qs, y1), y2) in halves.zip(y1.as_chunks_mut().0).zip(y2.as_chunks_mut().0) {
                let [lo, hi] = nibbles(qs);
                simd::mul_sub(&lo, d1, m1, y1);
                simd::mul_sub(&hi, d2, m2, y2);
            }
        }
    }
}

pub fn dequantize_row_q5_k(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ5K::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let (d, min) = (f16_le(b.d), f16_le(b.dmin));
        // As Q4_K, plus a fifth bit for sub-block `s` from bit plane `s` of `qh`.
        let mut q = [0; QK_K];
        let pairs = q
            .as_chunks_mut::<64>()
            .0
            .iter_mut()
            .zip(b.qs.as_chunks::<32>().0);
        for (j, (q, qs)) in pairs.enumerate() {
            let (lo, hi) = q.split_at_mut(32);
            for (((lo, hi), &qs), &qh) in lo.iter_mut().zip(hi).zip(qs).zip(&b.qh) {
                *lo = (qs & 0x0F) | (((qh >> (2 * j)) & 1) << 4);
                *hi = (qs >> 4) | (((qh >> (2 * j + 1)) & 1) << 4);
            }
        }
        let (mut dl, mut ml) = ([0.0; 16], [0.0; 16]);
        let halves = dl
            .as_chunks_mut::<2>()
            .0
            .iter_mut()
            .zip(ml.as_chunks_mut::<2>().0);
        for (j, (dl, ml)) in halves.enumerate() {
            let (d, m) = k4_scale(d, min, &b.scales, j);
            (*dl, *ml) = ([d; 2], [m; 2]);
        }
        mul_sub(&q, &dl, &ml, y);
    }
}

pub fn dequantize_row_q6_k(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ6K::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        let mut dl = [0.0; 16];
        for (dl, &sc) in dl.iter_mut().zip(&b.scales) {
            *dl = d * f32::from(sc as i8);
        }
        // Each half of 128 values takes 64 `ql` bytes and 32 `qh` bytes; quarter `k`
        // holds the low (k < 2) or high nibbles of `ql[32 * (k % 2)..]` under bit
        // pair `k` of `qh`.
        let mut q = [0_i8; QK_K];
        let halves = q.as_chunks_mut::<128>().0.iter_mut();
        for ((q, ql), qh) in halves
            .zip(b.ql.as_chunks::<64>().0)
            .zip(b.qh.as_chunks::<32>().0)
        {
            let ql = ql.as_chunks::<32>().0;
            for (k, q) in q.as_chunks_mut::<32>().0.iter_mut().enumerate() {
                let (lshift, hshift) = (4 * (k / 2), 2 * k);
                for ((q, &ql), &qh) in q.iter_mut().zip(&ql[k % 2]).zip(qh) {
                    let bits = ((ql >> lshift) & 0x0F) | (((qh >> hshift) & 3) << 4);
                    *q = bits as i8 - 32;
                }
            }
        }
        mul(&q, &dl, y);
    }
}

/// Q8_K's scale is a plain `f32`. ggml does not register this dequantizer in its type
/// traits (the type only feeds dot products) but defines it; this matches it.
pub fn dequantize_row_q8_k(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockQ8K::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f32::from_le_bytes(b.d);
        for (y, q) in y.as_chunks_mut().0.iter_mut().zip(b.qs.as_chunks::<16>().0) {
            simd::mul(&simd::signed(q, 0), d, y);
        }
    }
}
