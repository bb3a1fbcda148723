//! IQ3_XXS and IQ3_S: 4 values per grid index, two indices under one sign byte.

use super::{half_odd_scale, mul_runs, nibble, sign_code, signed};
use crate::blocks::{Block, BlockIq3S, BlockIq3Xxs, QK_K};
use crate::dequant::float::f16_le;
use crate::dequant::tables::{IQ3S_GRID, IQ3XXS_GRID};

/// The eight bytes of two 4-value grid entries, first then second.
#[inline(always)]
fn pair(first: u32, second: u32) -> [u8; 8] {
    (u64::from(first) | u64::from(second) << 32).to_le_bytes()
}

pub fn dequantize_row_iq3_xxs(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq3Xxs::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        // 64 grid indices, then one word per 32 values: four 7-bit sign codes under
        // a 4-bit scale.
        let (indices, words) = b.qs.split_at(QK_K / 4);
        let words = words.as_chunks::<4>().0;
        let word = |r: usize| u32::from_le_bytes(words[r]);
        let q = std::array::from_fn(|g| {
            let grid = pair(
                IQ3XXS_GRID[usize::from(indices[2 * g])],
                IQ3XXS_GRID[usize::from(indices[2 * g + 1])],
            );
            signed(grid, sign_code(word(g / 4) >> (7 * (g % 4))))
        });
        let dl = std::array::from_fn(|k| half_odd_scale(d, word(k / 2) >> 28, 0.5));
        mul_runs(&q, &dl, y);
    }
}

pub fn dequantize_row_iq3_s(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq3S::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        // Bit `i % 8` of `qh[i / 8]` is the 9th bit of index `i`.
        let index =
            |i: usize| usize::from(b.qs[i]) | usize::from((b.qh[i / 8] >> (i % 8)) & 1) << 8;
        let q = std::array::from_fn(|g| {
            let grid = pair(IQ3S_GRID[index(2 * g)], IQ3S_GRID[index(2 * g + 1)]);
            signed(grid, b.signs[g])
        });
        // One 4-bit scale per 32 values: `d * (1 + 2s)`, the odd factor an integer.
        let dl = std::array::from_fn(|k| d * f32::from(1 + 2 * nibble(&b.scales, k / 2)));
        mul_runs(&q, &dl, y);
    }
}
