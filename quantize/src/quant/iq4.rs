//! IQ4_NL and IQ4_XS: `quantize_iq4_nl` and `quantize_iq4_xs` of
//! `ggml-quants.c`, both built on `quantize_row_iq4_nl_impl`.
//!
//! ggml_quantize_chunk uses the same path with and without importance weights
//! (the weights default to `x²`), always with 7 extra scale candidates each side;
//! the `_ref` functions, with none, are not what it calls.

use super::float::fp32_to_fp16;
use super::per_block;
use super::round::nearest_int;
use super::scale_fit::{GROUP_MAX_EPS, signed_absmax};
use crate::blocks::{BlockIq4Nl, BlockIq4Xs, QK_K, QK4_NL};

/// ggml's `kvalues_iq4nl`, the 16 levels a 4-bit code stands for.
const KVALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Extra candidate scales tried each side of the first guess.
const NTRY: i32 = 7;

const SUB: usize = 32;

/// ggml's `best_index_int8`: the code of the level nearest `x`, the upper one on
/// ties.
fn best_index(x: f32) -> u8 {
    let level = |i: usize| f32::from(KVALUES[i]);
    if x <= level(0) {
        return 0;
    }
    if x >= level(15) {
        return 15;
    }
    let (mut ml, mut mu) = (0, 15);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < level(mav) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - level(mu - 1) < level(mu) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// The weights of the fit: importance times `sqrt(σ² + x²)`, or `x²` without
/// importance weights.
fn weights(x: &[f32; SUB], qw: Option<&[f32; SUB]>, sigma2: f32) -> [f32; SUB] {
    match qw {
        Some(qw) => std::array::from_fn(|j| qw[j] * (sigma2 + x[j] * x[j]).sqrt()),
        None => x.map(|v| v * v),
    }
}

/// Twice the mean square of `x`, the σ² of the weights.
fn sigma2(x: &[f32]) -> f32 {
    let mut sum = 0.0_f32;
    for &v in x {
        sum += v * v;
    }
    sum * (2.0 / x.len() as f32)
}

/// The scale of one block of 32: the weighted least-squares scale for the levels
/// the best of `2·NTRY + 1` candidate scales picks, or 0 for an all-zero block.
fn fit_scale(x: &[f32; SUB], weights: &[f32; SUB]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let sums = |id: f32| {
        let (mut sumqx, mut sumq2) = (0.0_f32, 0.0_f32);
        for (&v, &w) in x.iter().zip(weights) {
            let q = f32::from(KVALUES[usize::from(best_index(id * v))]);
            sumqx += w * q * v;
            sumq2 += w * q * q;
        }
        (sumqx, sumq2)
    };
    let first = -max / f32::from(KVALUES[0]);
    let (sumqx, sumq2) = sums(1.0 / first);
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        let id = (itry + i32::from(KVALUES[0])) as f32 / max;
        let (sumqx, sumq2) = sums(id);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Codes of 32 values at inverse scale `id`: value `j` in the low nibble of byte
/// `j`, value `j + 16` in its high nibble.
fn codes(x: &[f32; SUB], id: f32) -> [u8; SUB / 2] {
    std::array::from_fn(|j| best_index(id * x[j]) | (best_index(id * x[j + 16]) << 4))
}

fn iq4_nl_block(x: &[f32; QK4_NL], qw: Option<&[f32; QK4_NL]>) -> BlockIq4Nl {
    let d = fit_scale(x, &weights(x, qw, sigma2(x)));
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    BlockIq4Nl {
        d: fp32_to_fp16(d).to_le_bytes(),
        qs: codes(x, id),
    }
}

pub(super) fn quantize_iq4_nl(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    per_block::<BlockIq4Nl, QK4_NL>(
        x,
        imatrix,
        y,
        |x| iq4_nl_block(x, None),
        |x, qw| iq4_nl_block(x, Some(qw)),
    );
}

/// IQ4_NL's fit per block of 32, then the block scales quantized to 6 bits
/// (offset by 32) against the super-block's `d`, and the codes recomputed against
/// the scales as stored.
fn iq4_xs_block(x: &[f32; QK_K], qw: Option<&[f32; QK_K]>) -> BlockIq4Xs {
    let sigma2 = sigma2(x);
    let mut scales = [0.0_f32; QK_K / SUB];
    for (ib, (x, s)) in x.as_chunks::<SUB>().0.iter().zip(&mut scales).enumerate() {
        let qw = qw.map(|qw| &qw.as_chunks::<SUB>().0[ib]);
        *s = fit_scale(x, &weights(x, qw, sigma2));
    }

    let d = -signed_absmax(&scales).0 / 32.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut block = BlockIq4Xs {
        d: fp32_to_fp16(d).to_le_bytes(),
        scales_h: [0; 2],
        scales_l: [0; QK_K / 64],
        qs: [0; QK_K / 2],
    };
    let mut scales_h = 0_u16;
    let runs = x
        .as_chunks::<SUB>()
        .0
        .iter()
        .zip(block.qs.as_chunks_mut::<16>().0);
    for (ib, ((x, qs), &s)) in runs.zip(&scales).enumerate() {
        let l = nearest_int(id * s).clamp(-32, 31);
        let dl = d * l as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        *qs = codes(x, idl);
        let l = (l + 32) as u8;
        block.scales_l[ib / 2] |= (l & 0xF) << (4 * (ib % 2));
        scales_h |= u16::from(l >> 4) << (2 * (ib % 8));
    }
    block.scales_h = scales_h.to_le_bytes();
    block
}

pub(super) fn quantize_iq4_xs(x: &[f32], imatrix: Option<&[f32]>, y: &mut [u8]) {
    per_block::<BlockIq4Xs, QK_K>(
        x,
        imatrix,
        y,
        |x| iq4_xs_block(x, None),
        |x, qw| iq4_xs_block(x, Some(qw)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GgmlType, dequantize_to_vec};

    /// The table must be the dequantizer's: codes 0..16 under a scale of 1.
    #[test]
    fn levels_match_the_dequantizer() {
        let mut block = vec![0x00, 0x3C]; // d = 1.0
        block.extend((0..16).map(|c| c | (c << 4)));
        let values = dequantize_to_vec(GgmlType::Iq4Nl, &block).unwrap();
        let expected: Vec<f32> = KVALUES.iter().map(|&v| f32::from(v)).collect();
        assert_eq!(values[..16], expected[..]);
        assert_eq!(values[16..], expected[..]);
    }

    #[test]
    fn best_index_takes_the_nearest_level() {
        assert_eq!(best_index(-200.0), 0);
        assert_eq!(best_index(200.0), 15);
        assert_eq!(best_index(0.0), 8);
        assert_eq!(best_index(-4.4), 8);
        assert_eq!(best_index(-4.6), 7);
        assert_eq!(best_index(-4.5), 8);
        assert_eq!(best_index(100.0), 14);
        assert_eq!(best_index(101.5), 15);
    }
}
