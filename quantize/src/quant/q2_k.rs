//! Q2_K: `quantize_row_q2_K_ref` and, with importance weights,
//! `quantize_row_q2_K_impl` of `ggml-quants.c`.
//!
//! Each of the 16 sub-blocks of 16 gets 2-bit levels under its own scale and min;
//! those are quantized to 4 bits against the super-block's `d` and `dmin`, and the
//! levels are then recomputed against the scales as stored.

use super::float::round_trip_fp16;
use super::per_block;
use super::qkx_lanes::{groups, make_qkx_quants_each};
use super::round::nearest_int;
use super::scale_fit::{ScaleSearch, make_qp_quants};
use crate::blocks::{BlockQ2K, QK_K};

const SUB: usize = 16;
const N_SUB: usize = QK_K / SUB;

/// Packs four 2-bit levels per byte: byte `l` of each 32-byte run holds levels
/// `l`, `l + 32`, `l + 64` and `l + 96` of its 128.
pub(super) fn pack_2_bits(levels: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0; QK_K / 4];
    for (q, l) in qs
        .as_chunks_mut::<32>()
        .0
        .iter_mut()
        .zip(levels.as_chunks::<128>().0)
    {
        for (j, q) in q.iter_mut().enumerate() {
            *q = l[j] | (l[j + 32] << 2) | (l[j + 64] << 4) | (l[j + 96] << 6);
        }
    }
    qs
}

/// Recomputes the levels against the stored 4-bit scales and mins (low and high
/// nibble of `scales[j]`), skipping sub-blocks whose scale is zero.
fn requantize(x: &[f32; QK_K], scales: &[u8; N_SUB], d: f32, dmin: f32, levels: &mut [u8; QK_K]) {
    let runs = x
        .as_chunks::<SUB>()
        .0
        .iter()
        .zip(levels.as_chunks_mut::<SUB>().0);
    for ((x, levels), &sc) in runs.zip(scales) {
        let d = d * f32::from(sc & 0xF);
        if d == 0.0 {
            continue;
        }
        let m = dmin * f32::from(sc >> 4);
        for (l, &v) in levels.iter_mut().zip(x) {
            *l = nearest_int((v + m) / d).clamp(0, 3) as u8;
        }
    }
}

fn reference(x: &[f32; QK_K]) -> BlockQ2K {
    const SEARCH: ScaleSearch = ScaleSearch {
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let subs = groups::<SUB, N_SUB>(x);
    let weights = subs.map(|x| x.map(f32::abs));
    let mut sub_levels = [[0_u8; SUB]; N_SUB];
    let fits = make_qkx_quants_each(3, &subs, &weights, &mut sub_levels, &SEARCH);
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
    let mut levels = flat(&sub_levels);

    let mut scales = [0_u8; N_SUB];
    let (mut d, mut dmin) = (round_trip_fp16(0.0), round_trip_fp16(0.0));
    if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for (s, &v) in scales.iter_mut().zip(&sub_scales) {
            *s = nearest_int(iscale * v) as u8;
        }
        d = round_trip_fp16(max_scale / 15.0);
    }
    if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for (s, &v) in scales.iter_mut().zip(&mins) {
            *s |= (nearest_int(iscale * v) << 4) as u8;
        }
        dmin = round_trip_fp16(max_min / 15.0);
    }
    requantize(x, &scales, d.1, dmin.1, &mut levels);
    BlockQ2K {
        scales,
        qs: pack_2_bits(&levels),
        d: d.0,
        dmin: dmin.0,
    }
}

fn weighted(x: &[f32; QK_K], qw: &[f32; QK_K]) -> BlockQ2K {
    const SEARCH: ScaleSearch = ScaleSearch {
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    };
    let mut sumx2 = 0.0_f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = sumx2 / QK_K as f32;

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
    let mut sub_levels = [[0_u8; SUB]; N_SUB];
    let fits = make_qkx_quants_each(3, &subs, &weights, &mut sub_levels, &SEARCH);
    let (sub_scales, mins) = (fits.map(|f| f.0), fits.map(|f| f.1));
    let mut levels = flat(&sub_levels);

    let mut ls = [0_u8; N_SUB];
    let mut lm = [0_u8; N_SUB];
    let d = round_trip_fp16(make_qp_quants(15, &sub_scales, &mut ls, &sw));
    let dmin = round_trip_fp16(make_qp_quants(15, &mins, &mut lm, &sw));
    let scales = std::array::from_fn(|j| ls[j] | (lm[j] << 4));
    requantize(x, &scales, d.1, dmin.1, &mut levels);
    BlockQ2K {
        scales,
        qs: pack_2_bits(&levels),
        d: d.0,
        dmin: dmin.0,
    }
}

pub(super) fn quantize_q2_k(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    per_block::<BlockQ2K, QK_K>(x, imatrix, y, reference, weighted);
}

fn flat(levels: &[[u8; SUB]; N_SUB]) -> [u8; QK_K] {
    levels.as_flattened().try_into().expect("QK_K levels")
}
