//! Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0: `quantize_row_q*_ref` and, with importance
//! weights, `quantize_row_q*_impl` of `ggml-quants.c`.
//!
//! The reference paths scale each block by its extreme value and round; the
//! weighted ones fit the block's scale (and min) with the K-quant searches,
//! weighting each value by its importance times `sqrt(σ² + x²)`, σ² being the
//! row's mean square.

use super::float::fp32_to_fp16;
use super::round::c_cast;
use super::scale_fit::{ScaleSearch, make_qkx_quants, make_qx_quants, signed_absmax};
use super::{blocks_mut, per_block};
use crate::blocks::{
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, QK4_0, QK4_1, QK5_0, QK5_1, QK8_0,
};

/// Every legacy type has 32 values per block.
const QK: usize = 32;
const _: () = assert!(QK == QK4_0 && QK == QK4_1 && QK == QK5_0 && QK == QK5_1 && QK == QK8_0);

/// The search the weighted Q4_1 and Q5_1 paths give `make_qkx3_quants`.
const WEIGHTED_SEARCH: ScaleSearch = ScaleSearch {
    rmin: -0.9,
    rdelta: 0.05,
    nstep: 36,
    use_mad: false,
};

/// C's `(int8_t)` cast of a float, widened back to `i32` for ggml's `MIN`.
#[inline(always)]
fn c_cast_i8(x: f32) -> i32 {
    i32::from(c_cast(x) as i8)
}

#[inline(always)]
fn min_max(x: &[f32; QK]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[inline(always)]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Level `j` in the low nibble of byte `j`, level `j + 16` in its high nibble.
/// Like ggml, this does not mask the low level: Q5 callers pass nibbles.
#[inline(always)]
fn pack_nibbles(levels: &[u8; QK]) -> [u8; QK / 2] {
    std::array::from_fn(|j| levels[j] | (levels[j + 16] << 4))
}

#[inline(always)]
fn low_nibbles(levels: &[u8; QK]) -> [u8; QK] {
    levels.map(|l| l & 0x0F)
}

/// The fifth bit of level `j` as bit `j`.
#[inline(always)]
fn high_bits(levels: &[u8; QK]) -> [u8; 4] {
    let mut qh = 0_u32;
    for (j, &l) in levels.iter().enumerate() {
        qh |= u32::from((l & 0x10) >> 4) << j;
    }
    qh.to_le_bytes()
}

/// The row's mean square, the σ² of the weighted paths (and only they need it).
fn row_sigma2(x: &[f32], imatrix: Option<&[f32]>) -> f32 {
    if imatrix.is_none() {
        return 0.0;
    }
    let mut sum_x2 = 0.0_f32;
    for &v in x {
        sum_x2 += v * v;
    }
    sum_x2 / x.len() as f32
}

fn importance(x: &[f32; QK], qw: &[f32; QK], sigma2: f32) -> [f32; QK] {
    std::array::from_fn(|j| qw[j] * (sigma2 + x[j] * x[j]).sqrt())
}

fn q4_0_reference(x: &[f32; QK]) -> BlockQ4_0 {
    let d = signed_absmax(x).0 / -8.0;
    let id = inverse(d);
    let levels = x.map(|v| c_cast_i8(v * id + 8.5).min(15) as u8);
    BlockQ4_0 {
        d: fp32_to_fp16(d).to_le_bytes(),
        qs: pack_nibbles(&levels),
    }
}

fn q4_0_weighted(x: &[f32; QK], qw: &[f32; QK], sigma2: f32) -> BlockQ4_0 {
    let mut levels = [0_i8; QK];
    let d = make_qx_quants(8, x, &mut levels, Some(&importance(x, qw, sigma2)));
    BlockQ4_0 {
        d: fp32_to_fp16(d).to_le_bytes(),
        qs: pack_nibbles(&levels.map(|l| l as u8)),
    }
}

pub(super) fn quantize_q4_0(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    let sigma2 = row_sigma2(x, imatrix);
    per_block(x, imatrix, y, q4_0_reference, |x, qw| {
        q4_0_weighted(x, qw, sigma2)
    });
}

fn q4_1_reference(x: &[f32; QK]) -> BlockQ4_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let levels = x.map(|v| c_cast_i8((v - min) * id + 0.5).min(15) as u8);
    BlockQ4_1 {
        d: fp32_to_fp16(d).to_le_bytes(),
        m: fp32_to_fp16(min).to_le_bytes(),
        qs: pack_nibbles(&levels),
    }
}

fn q4_1_weighted(x: &[f32; QK], qw: &[f32; QK], sigma2: f32) -> BlockQ4_1 {
    let mut levels = [0_u8; QK];
    let weights = importance(x, qw, sigma2);
    let (d, offset) = make_qkx_quants(15, x, &weights, &mut levels, &WEIGHTED_SEARCH);
    BlockQ4_1 {
        d: fp32_to_fp16(d).to_le_bytes(),
        m: fp32_to_fp16(-offset).to_le_bytes(),
        qs: pack_nibbles(&levels),
    }
}

pub(super) fn quantize_q4_1(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    let sigma2 = row_sigma2(x, imatrix);
    per_block(x, imatrix, y, q4_1_reference, |x, qw| {
        q4_1_weighted(x, qw, sigma2)
    });
}

fn q5_0_reference(x: &[f32; QK]) -> BlockQ5_0 {
    let d = signed_absmax(x).0 / -16.0;
    let id = inverse(d);
    let levels = x.map(|v| c_cast_i8(v * id + 16.5).min(31) as u8);
    BlockQ5_0 {
        d: fp32_to_fp16(d).to_le_bytes(),
        qh: high_bits(&levels),
        qs: pack_nibbles(&low_nibbles(&levels)),
    }
}

fn q5_0_weighted(x: &[f32; QK], qw: &[f32; QK], sigma2: f32) -> BlockQ5_0 {
    let mut levels = [0_i8; QK];
    let d = make_qx_quants(16, x, &mut levels, Some(&importance(x, qw, sigma2)));
    let levels = levels.map(|l| l as u8);
    BlockQ5_0 {
        d: fp32_to_fp16(d).to_le_bytes(),
        qh: high_bits(&levels),
        qs: pack_nibbles(&low_nibbles(&levels)),
    }
}

pub(super) fn quantize_q5_0(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    let sigma2 = row_sigma2(x, imatrix);
    per_block(x, imatrix, y, q5_0_reference, |x, qw| {
        q5_0_weighted(x, qw, sigma2)
    });
}

fn q5_1_reference(x: &[f32; QK]) -> BlockQ5_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    // No clamp to 31 here, unlike Q4_1's to 15: ggml has none.
    let levels = x.map(|v| c_cast((v - min) * id + 0.5) as u8);
    BlockQ5_1 {
        d: fp32_to_fp16(d).to_le_bytes(),
        m: fp32_to_fp16(min).to_le_bytes(),
        qh: high_bits(&levels),
        qs: pack_nibbles(&low_nibbles(&levels)),
    }
}

fn q5_1_weighted(x: &[f32; QK], qw: &[f32; QK], sigma2: f32) -> BlockQ5_1 {
    let mut levels = [0_u8; QK];
    let weights = importance(x, qw, sigma2);
    let (d, offset) = make_qkx_quants(31, x, &weights, &mut levels, &WEIGHTED_SEARCH);
    BlockQ5_1 {
        d: fp32_to_fp16(d).to_le_bytes(),
        m: fp32_to_fp16(-offset).to_le_bytes(),
        qh: high_bits(&levels),
        qs: pack_nibbles(&low_nibbles(&levels)),
    }
}

pub(super) fn quantize_q5_1(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    let sigma2 = row_sigma2(x, imatrix);
    per_block(x, imatrix, y, q5_1_reference, |x, qw| {
        q5_1_weighted(x, qw, sigma2)
    });
}

/// Q8_0 has no weighted path: ggml ignores the importance weights.
pub(super) fn quantize_q8_0(x: &[f32], _imatrix: Option<&[f32]>, y: &mut [u8]) {
    for (b, x) in blocks_mut::<BlockQ8_0>(y)
        .iter_mut()
        .zip(x.as_chunks::<QK>().0)
    {
        let mut amax = 0.0_f32;
        for &v in x {
            let a = v.abs();
            amax = if amax > a { amax } else { a };
        }
        let d = amax / 127.0;
        let id = inverse(d);
        *b = BlockQ8_0 {
            d: fp32_to_fp16(d).to_le_bytes(),
            qs: x.map(|v| c_cast((v * id).round()) as u8),
        };
    }
}
