//! Q4_K and Q5_K: `quantize_row_q{4,5}_K_ref` and, with importance weights,
//! `quantize_row_q{4,5}_K_impl` of `ggml-quants.c`.
//!
//! The two differ only in level width (4 or 5 bits) and search grid. Each of the
//! 8 sub-blocks of 32 gets levels under its own scale and min; those are quantized
//! to 6 bits against the super-block's `d` and `dmin`, and the levels are then
//! recomputed against the scales as stored.

use super::float::round_trip_fp16;
use super::per_block;
use super::qkx_lanes::{groups, make_qkx_quants_each};
use super::round::nearest_int;
use super::scale_fit::{ScaleSearch, make_qp_quants};
use crate::blocks::{BlockQ4K, BlockQ5K, K_SCALE_SIZE, QK_K};

const SUB: usize = 32;
const N_SUB: usize = QK_K / SUB;

/// The weighted paths of both types search the same grid.
const WEIGHTED_SEARCH: ScaleSearch = ScaleSearch {
    rmin: -0.9,
    rdelta: 0.05,
    nstep: 36,
    use_mad: false,
};

/// A super-block's stored scales and the levels recomputed against them.
struct Quantized {
    d: [u8; 2],
    dmin: [u8; 2],
    scales: [u8; K_SCALE_SIZE],
    levels: [u8; QK_K],
}

/// Packs 8 6-bit scales and mins: sub-blocks 0..4 in the low 6 bits of bytes 0..4
/// (scales) and 4..8 (mins); sub-blocks 4..8 in the nibbles of bytes 8..12, their
/// top 2 bits in the top bits of bytes 0..8. Bytes are not masked, as in ggml.
fn pack_scales_mins(ls: &[u8; N_SUB], lm: &[u8; N_SUB]) -> [u8; K_SCALE_SIZE] {
    let mut scales = [0_u8; K_SCALE_SIZE];
    for j in 0..N_SUB {
        if j < 4 {
            scales[j] = ls[j];
            scales[j + 4] = lm[j];
        } else {
            scales[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
            scales[j - 4] |= (ls[j] >> 4) << 6;
            scales[j] |= (lm[j] >> 4) << 6;
        }
    }
    scales
}

/// ggml's `get_scale_min_k4`.
fn scale_min(scales: &[u8; K_SCALE_SIZE], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

/// Stores `d` and `dmin`, then recomputes the levels (in `0..=nmax`) against the
/// stored scales, skipping sub-blocks whose scale is zero.
fn finish(
    x: &[f32; QK_K],
    nmax: i32,
    scales: [u8; K_SCALE_SIZE],
    d: f32,
    dmin: f32,
    levels: &[[u8; SUB]; N_SUB],
) -> Quantized {
    let mut levels: [u8; QK_K] = levels.as_flattened().try_into().expect("QK_K levels");
    let (d_bits, d) = round_trip_fp16(d);
    let (dmin_bits, dmin) = round_trip_fp16(dmin);
    let runs = x
        .as_chunks::<SUB>()
        .0
        .iter()
        .zip(levels.as_chunks_mut::<SUB>().0);
    for (j, (x, levels)) in runs.enumerate() {
        let (sc, m) = scale_min(&scales, j);
        let d = d * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = dmin * f32::from(m);
        for (l, &v) in levels.iter_mut().zip(x) {
            *l = nearest_int((v + dm) / d).clamp(0, nmax) as u8;
        }
    }
    Quantized {
        d: d_bits,
        dmin: dmin_bits,
        scales,
        levels,
    }
}

/// The reference path: weights `rms + |x|` per sub-block, and the sub-block
/// scales and mins scaled linearly to their maxima.
fn reference(x: &[f32; QK_K], nmax: i32, search: &ScaleSearch) -> Quantized {
    let subs = groups::<SUB, N_SUB>(x);
    let weights = subs.map(|x| {
        let mut sum_x2 = 0.0_f32;
        for &v in &x {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        x.map(|v| av_x + v.abs())
    });
    let mut levels = [[0_u8; SUB]; N_SUB];
    let fits = make_qkx_quants_each(nmax, &subs, &weights, &mut levels, search);
    let (sub_scales, mins) = (fits.map(|f| f.0), fits.map(|f| f.1));
    let (mut max_scale, mut max_min) = (0.0_f32, 0.0_f32);
    for j in 0..N_SUB {
        if sub_scales[j] > max_scale {
            max_scale = sub_scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let ls = sub_scales.map(|s| (nearest_int(inv_scale * s) as u8).min(63));
    let lm = mins.map(|m| (nearest_int(inv_min * m) as u8).min(63));
    let scales = pack_scales_mins(&ls, &lm);
    finish(x, nmax, scales, max_scale / 63.0, max_min / 63.0, &levels)
}

/// The weighted path: weights `importance · sqrt(σ² + x²)`, and the sub-block
/// scales and mins fitted with [`make_qp_quants`]. Q5_K clamps their levels to 63
/// and Q4_K does not (they can only exceed it when a fit goes negative).
fn weighted(x: &[f32; QK_K], qw: &[f32; QK_K], nmax: i32, clamp_scales: bool) -> Quantized {
    let mut sum_x2 = 0.0_f32;
    for &v in x {
        sum_x2 += v * v;
    }
    let sigma2 = 2.0 * sum_x2 / QK_K as f32;

    let subs = groups::<SUB, N_SUB>(x);
    let importance = groups::<SUB, N_SUB>(qw);
    let weights: [[f32; SUB]; N_SUB] = std::array::from_fn(|j| {
        std::array::from_fn(|l| importance[j][l] * (sigma2 + subs[j][l] * subs[j][l]).sqrt())
    });
    let mut sw = [0.0_f32; N_SUB];
    for (sw, weights) in sw.iter_mut().zip(&weights) {
        for &w in weights {
            *sw += w;
        }
    }
    let mut levels = [[0_u8; SUB]; N_SUB];
    let fits = make_qkx_quants_each(nmax, &subs, &weights, &mut levels, &WEIGHTED_SEARCH);
    let (sub_scales, mins) = (fits.map(|f| f.0), fits.map(|f| f.1));

    let (mut ls, mut lm) = ([0_u8; N_SUB], [0_u8; N_SUB]);
    let d = make_qp_quants(63, &sub_scales, &mut ls, &sw);
    let dmin = make_qp_quants(63, &mins, &mut lm, &sw);
    if clamp_scales {
        ls = ls.map(|l| l.min(63));
        lm = lm.map(|l| l.min(63));
    }
    finish(x, nmax, pack_scales_mins(&ls, &lm), d, dmin, &levels)
}

fn q4_k(q: Quantized) -> BlockQ4K {
    let mut qs = [0_u8; QK_K / 2];
    // Each 32 bytes hold 64 levels: the first 32 in the low nibbles.
    for (q, l) in qs
        .as_chunks_mut::<32>()
        .0
        .iter_mut()
        .zip(q.levels.as_chunks::<64>().0)
    {
        for (j, q) in q.iter_mut().enumerate() {
            *q = l[j] | (l[j + 32] << 4);
        }
    }
    BlockQ4K {
        d: q.d,
        dmin: q.dmin,
        scales: q.scales,
        qs,
    }
}

fn q5_k(q: Quantized) -> BlockQ5K {
    let mut qs = [0_u8; QK_K / 2];
    let mut qh = [0_u8; QK_K / 8];
    // As Q4_K, with the fifth bit of level `j` of each 64 in bit `2·(run)` (first
    // 32) or `2·(run) + 1` (last 32) of `qh[j]`.
    let runs = qs
        .as_chunks_mut::<32>()
        .0
        .iter_mut()
        .zip(q.levels.as_chunks::<64>().0);
    for (run, (ql, l)) in runs.enumerate() {
        for (j, (ql, qh)) in ql.iter_mut().zip(&mut qh).enumerate() {
            // Branch-free: the fifth bit is a coin flip on real data.
            let (h1, h2) = (u8::from(l[j] > 15), u8::from(l[j + 32] > 15));
            *qh |= (h1 | (h2 << 1)) << (2 * run);
            *ql = (l[j] - 16 * h1) | ((l[j + 32] - 16 * h2) << 4);
        }
    }
    BlockQ5K {
        d: q.d,
        dmin: q.dmin,
        scales: q.scales,
        qh,
        qs,
    }
}

pub(super) fn quantize_q4_k(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    const SEARCH: ScaleSearch = ScaleSearch {
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    per_block::<BlockQ4K, QK_K>(
        x,
        imatrix,
        y,
        |x| q4_k(reference(x, 15, &SEARCH)),
        |x, qw| q4_k(weighted(x, qw, 15, false)),
    );
}

pub(super) fn quantize_q5_k(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    const SEARCH: ScaleSearch = ScaleSearch {
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    per_block::<BlockQ5K, QK_K>(
        x,
        imatrix,
        y,
        |x| q5_k(reference(x, 31, &SEARCH)),
        |x, qw| q5_k(weighted(x, qw, 31, true)),
    );
}
