//! IQ2_XXS, IQ2_XS and IQ2_S: 8 values per grid index, magnitudes in {8, 25, 43}.

use super::{half_odd_scale, mul_runs, nibble, sign_code, signed};
use crate::blocks::{Block, BlockIq2S, BlockIq2Xs, BlockIq2Xxs, QK_K};
use crate::dequant::float::f16_le;
use crate::dequant::tables::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID};

pub fn dequantize_row_iq2_xxs(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq2Xxs::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        // Each 8 bytes cover 32 values: four grid indices, then a word holding four
        // 7-bit sign codes under a 4-bit scale.
        let runs: [([u8; 4], u32); QK_K / 32] = std::array::from_fn(|r| {
            let [i0, i1, i2, i3, word @ ..] = b.qs.as_chunks::<8>().0[r];
            ([i0, i1, i2, i3], u32::from_le_bytes(word))
        });
        let q = std::array::from_fn(|g| {
            let ((indices, word), l) = (runs[g / 4], g % 4);
            signed(
                IQ2XXS_GRID[usize::from(indices[l])].to_le_bytes(),
                sign_code(word >> (7 * l)),
            )
        });
        let dl = std::array::from_fn(|k| half_odd_scale(d, runs[k / 2].1 >> 28, 0.25));
        mul_runs(&q, &dl, y);
    }
}

pub fn dequantize_row_iq2_xs(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq2Xs::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        // One word per 8 values: a 9-bit grid index under a 7-bit sign code.
        let words = b.qs.as_chunks::<2>().0;
        let q = std::array::from_fn(|g| {
            let word = u16::from_le_bytes(words[g]);
            signed(
                IQ2XS_GRID[usize::from(word & 511)].to_le_bytes(),
                sign_code(u32::from(word >> 9)),
            )
        });
        let dl = std::array::from_fn(|k| half_odd_scale(d, nibble(&b.scales, k).into(), 0.25));
        mul_runs(&q, &dl, y);
    }
}

pub fn dequantize_row_iq2_s(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq2S::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        // Plain sign bytes rather than codes; the 10-bit index's top bits come two
        // per group from `qh`.
        let (low, signs) = b.qs.split_at(QK_K / 8);
        let q = std::array::from_fn(|g| {
            let high = (b.qh[g / 4] >> (2 * (g % 4))) & 3;
            let index = usize::from(low[g]) | usize::from(high) << 8;
            signed(IQ2S_GRID[index].to_le_bytes(), signs[g])
        });
        let dl = std::array::from_fn(|k| half_odd_scale(d, nibble(&b.scales, k).into(), 0.25));
        mul_runs(&q, &dl, y);
    }
}
