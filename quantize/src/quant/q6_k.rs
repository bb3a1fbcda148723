//! Q6_K: `quantize_row_q6_K_ref` and, with importance weights,
//! `quantize_row_q6_K_impl` of `ggml-quants.c`, which differ only in the weights
//! of the sub-block fits (`x²`, or the importance weights alone).
//!
//! Each of the 16 sub-blocks of 16 gets symmetric 6-bit levels under its own
//! scale; the scales are quantized to signed bytes against the super-block's `d`,
//! and the levels are recomputed against the scales as stored.

use super::float::round_trip_fp16;
use super::per_block;
use super::round::nearest_int;
use super::scale_fit::{GROUP_MAX_EPS, make_qx_quants, signed_absmax};
use crate::blocks::{BlockQ6K, QK_K};

const SUB: usize = 16;
const N_SUB: usize = QK_K / SUB;

fn quantize_block(x: &[f32; QK_K], qw: Option<&[f32; QK_K]>) -> BlockQ6K {
    let mut levels = [0_i8; QK_K];
    let mut sub_scales = [0.0_f32; N_SUB];
    let runs = x
        .as_chunks::<SUB>()
        .0
        .iter()
        .zip(levels.as_chunks_mut::<SUB>().0);
    for (ib, ((x, levels), s)) in runs.zip(&mut sub_scales).enumerate() {
        let weights = qw.map(|qw| &qw.as_chunks::<SUB>().0[ib]);
        *s = make_qx_quants(32, x, levels, weights);
    }

    let (max_scale, max_abs_scale) = signed_absmax(&sub_scales);
    if max_abs_scale < GROUP_MAX_EPS {
        return BlockQ6K {
            ql: [0; QK_K / 2],
            qh: [0; QK_K / 4],
            scales: [0; N_SUB],
            d: [0; 2],
        };
    }

    let iscale = -128.0 / max_scale;
    let (d_bits, d) = round_trip_fp16(1.0 / iscale);
    let scales = sub_scales.map(|s| nearest_int(iscale * s).min(127) as i8);
    let runs = x
        .as_chunks::<SUB>()
        .0
        .iter()
        .zip(levels.as_chunks_mut::<SUB>().0);
    for ((x, levels), &sc) in runs.zip(&scales) {
        let d = d * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        for (l, &v) in levels.iter_mut().zip(x) {
            *l = (nearest_int(v / d).clamp(-32, 31) + 32) as i8;
        }
    }

    // Per 128 levels: the low nibbles of levels l and l + 64 share `ql[l]`, those of
    // l + 32 and l + 96 share `ql[l + 32]`; the four top-2-bit pairs share `qh[l]`.
    let levels = levels.map(|l| l as u8);
    let mut ql = [0_u8; QK_K / 2];
    let mut qh = [0_u8; QK_K / 4];
    let runs = levels.as_chunks::<128>().0.iter();
    let runs = runs
        .zip(ql.as_chunks_mut::<64>().0)
        .zip(qh.as_chunks_mut::<32>().0);
    for ((l, ql), qh) in runs {
        for j in 0..32 {
            let (q1, q2, q3, q4) = (l[j], l[j + 32], l[j + 64], l[j + 96]);
            ql[j] = (q1 & 0xF) | ((q3 & 0xF) << 4);
            ql[j + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
            qh[j] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    BlockQ6K {
        ql,
        qh,
        scales: scales.map(|s| s as u8),
        d: d_bits,
    }
}

pub(super) fn quantize_q6_k(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    per_block::<BlockQ6K, QK_K>(
        x,
        imatrix,
        y,
        |x| quantize_block(x, None),
        |x, qw| quantize_block(x, Some(qw)),
    );
}
