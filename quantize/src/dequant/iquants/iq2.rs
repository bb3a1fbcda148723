//! IQ2_XXS, IQ2_XS and IQ2_S: 8 values per grid index, magnitudes in {8, 25, 43}.

use super::{half_odd_scale, mul_runs, nibble, sign_code, signed};
use crate::blocks::{Block, BlockIq2S, BlockIq2Xs, BlockIq2Xxs, QK_K};
use crate::dequant::float::f16_le;
use crate::dequant::tables::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID};

pub fn dequantize_row_iq2_xxs(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq2Xxs::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        let mut q = [[0_i8; 8]; QK_K / 8];
        let mut dl = [0.0; QK_K / 16];
        // Each 8 bytes cover 32 values: four grid indices, then a word holding four
        // 7-bit sign codes under a 4-bit scale.
        let (q_runs, dl_runs) = (q.as_chunks_mut::<4>().0, dl.as_chunks_mut::<2>().0);
        let packed = b.qs.as_chunks::<8>().0;
        for ((q, dl), run) in q_runs.iter_mut().zip(dl_runs).zip(packed) {
            let [i0, i1, i2, i3, word @ ..] = *run;
            let word = u32::from_le_bytes(word);
            *dl = [half_odd_scale(d, word >> 28, 0.25); 2];
            for (l, (q, index)) in q.iter_mut().zip([i0, i1, i2, i3]).enumerate() {
                *q = signed(
                    IQ2XXS_GRID[usize::from(index)].to_le_bytes(),
                    sign_code(word >> (7 * l)),
                );
            }
        }
        mul_runs(&q, &dl, y);
    }
}

pub fn dequantize_row_iq2_xs(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq2Xs::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        // One word per 8 values: a 9-bit grid index under a 7-bit sign code.
        let mut q = [[0_i8; 8]; QK_K / 8];
        for (q, &word) in q.iter_mut().zip(b.qs.as_chunks::<2>().0) {
            let word = u16::from_le_bytes(word);
            let grid = IQ2XS_GRID[usize::from(word & 511)].to_le_bytes();
            *q = signed(grid, sign_code(u32::from(word >> 9)));
        }
        let dl = std::array::from_fn(|k| half_odd_scale(d, nibble(&b.scales, k).into(), 0.25));
        mul_runs(&q, &dl, y);
    }
}

pub fn dequantize_row_iq2_s(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq2S::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        // Per 32 values: the low bytes of four 10-bit grid indices, four plain sign
        // bytes, and one `qh` byte with the indices' top bits, two each.
        let (low, signs) = b.qs.split_at(QK_K / 8);
        let (low, signs) = (low.as_chunks::<4>().0, signs.as_chunks::<4>().0);
        let mut q = [[0_i8; 8]; QK_K / 8];
        let packed = low.iter().zip(signs).zip(&b.qh);
        for (q, ((low, signs), &qh)) in q.as_chunks_mut::<4>().0.iter_mut().zip(packed) {
            for (l, q) in q.iter_mut().enumerate() {
                let index = usize::from(low[l]) | usize::from((qh >> (2 * l)) & 3) << 8;
                *q = signed(IQ2S_GRID[index].to_le_bytes(), signs[l]);
            }
        }
        let dl = std::array::from_fn(|k| half_odd_scale(d, nibble(&b.scales, k).into(), 0.25));
        mul_runs(&q, &dl, y);
    }
}
