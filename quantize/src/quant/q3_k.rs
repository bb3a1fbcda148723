//! Q3_K: `quantize_row_q3_K_ref` and, with importance weights,
//! `quantize_row_q3_K_impl` of `ggml-quants.c`.
//!
//! Each of the 16 sub-blocks of 16 gets symmetric 3-bit levels under its own
//! scale; the scales are quantized to 6 bits against the super-block's `d`, and
//! the levels are recomputed against the scales as stored.

use super::float::round_trip_fp16;
use super::per_block;
use super::q2_k::pack_2_bits;
use super::round::nearest_int;
use super::scale_fit::{make_q3_quants, make_qx_quants, signed_absmax};
use crate::blocks::{BlockQ3K, K_SCALE_SIZE, QK_K};

const SUB: usize = 16;
const N_SUB: usize = QK_K / SUB;

/// Packs 16 6-bit scales: low nibbles in bytes 0..8 (sub-block `j + 8` in the high
/// nibble of byte `j`), the top 2 bits of sub-block `j` at bit `2·(j / 4)` of byte
/// `8 + j % 4`.
fn pack_scales(levels: impl Iterator<Item = i32>) -> [u8; K_SCALE_SIZE] {
    let mut scales = [0_u8; K_SCALE_SIZE];
    for (j, l) in levels.enumerate() {
        if j < 8 {
            scales[j] = (l & 0xF) as u8;
        } else {
            scales[j - 8] |= ((l & 0xF) << 4) as u8;
        }
        scales[j % 4 + 8] |= ((l >> 4) << (2 * (j / 4))) as u8;
    }
    scales
}

/// Sub-block `j`'s signed scale as stored: 6 bits less 32.
fn scale(scales: &[u8; K_SCALE_SIZE], j: usize) -> i8 {
    let low = if j < 8 {
        scales[j] & 0xF
    } else {
        scales[j - 8] >> 4
    };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i8 - 32
}

/// Recomputes the levels against the stored scales, skipping zero ones, then
/// packs them: 2 low bits in `qs`, and in `hmask` the set high bit of levels 4..8
/// (bit `j / 32` of byte `j % 32` for level `j`).
fn finish(x: &[f32; QK_K], scales: [u8; K_SCALE_SIZE], d: f32, mut levels: [i8; QK_K]) -> BlockQ3K {
    let (d_bits, d_stored) = round_trip_fp16(d);
    let runs = x
        .as_chunks::<SUB>()
        .0
        .iter()
        .zip(levels.as_chunks_mut::<SUB>().0);
    for (j, (x, levels)) in runs.enumerate() {
        let d = d_stored * f32::from(scale(&scales, j));
        if d == 0.0 {
            continue;
        }
        for (l, &v) in levels.iter_mut().zip(x) {
            *l = (nearest_int(v / d).clamp(-4, 3) + 4) as i8;
        }
    }

    let mut hmask = [0_u8; QK_K / 8];
    let mut low = [0_u8; QK_K];
    let runs = levels
        .as_chunks::<32>()
        .0
        .iter()
        .zip(low.as_chunks_mut::<32>().0);
    for (run, (levels, low)) in runs.enumerate() {
        for ((&l, low), hmask) in levels.iter().zip(low).zip(&mut hmask) {
            // Branch-free: the high bit is a coin flip on real data.
            let high = u8::from(l > 3);
            *hmask |= high << run;
            *low = l as u8 - 4 * high;
        }
    }
    BlockQ3K {
        hmask,
        qs: pack_2_bits(&low),
        scales,
        d: d_bits,
    }
}

fn reference(x: &[f32; QK_K]) -> BlockQ3K {
    let mut levels = [0_i8; QK_K];
    let mut sub_scales = [0.0_f32; N_SUB];
    let runs = x
        .as_chunks::<SUB>()
        .0
        .iter()
        .zip(levels.as_chunks_mut::<SUB>().0);
    for ((x, levels), s) in runs.zip(&mut sub_scales) {
        *s = make_q3_quants(4, x, levels);
    }

    let max_scale = signed_absmax(&sub_scales).0;
    if max_scale == 0.0 {
        return finish(x, [0; K_SCALE_SIZE], 0.0, levels);
    }
    let iscale = -32.0 / max_scale;
    // ggml keeps each scale level in an `int8_t` before clamping it.
    let scales = pack_scales(
        sub_scales
            .iter()
            .map(|&s| i32::from(nearest_int(iscale * s) as i8).clamp(-32, 31) + 32),
    );
    finish(x, scales, 1.0 / iscale, levels)
}

fn weighted(x: &[f32; QK_K], qw: &[f32; QK_K]) -> BlockQ3K {
    let mut sumx2 = 0.0_f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = 2.0 * sumx2 / QK_K as f32;

    let mut levels = [0_i8; QK_K];
    let mut sub_scales = [0.0_f32; N_SUB];
    let mut sw = [0.0_f32; N_SUB];
    let runs = x.as_chunks::<SUB>().0.iter().zip(qw.as_chunks::<SUB>().0);
    let runs = runs
        .zip(levels.as_chunks_mut::<SUB>().0)
        .zip(sub_scales.iter_mut().zip(&mut sw));
    for (((x, qw), levels), (s, sw)) in runs {
        let weights: [f32; SUB] = std::array::from_fn(|l| qw[l] * (sigma2 + x[l] * x[l]).sqrt());
        for &w in &weights {
            *sw += w;
        }
        *s = make_qx_quants(4, x, levels, Some(&weights));
    }

    let mut scale_levels = [0_i8; N_SUB];
    let d = make_qx_quants(32, &sub_scales, &mut scale_levels, Some(&sw));
    let scales = pack_scales(scale_levels.iter().map(|&l| i32::from(l)));
    finish(x, scales, d, levels)
}

pub(super) fn quantize_q3_k(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    per_block::<BlockQ3K, QK_K>(x, imatrix, y, reference, weighted);
}
