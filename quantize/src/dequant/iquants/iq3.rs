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
        let mut q = [[0_i8; 8]; QK_K / 8];
        let mut dl = [0.0; QK_K / 16];
        // 64 grid indices, then one word per 32 values: four 7-bit sign codes under
        // a 4-bit scale.
        let (indices, words) = b.qs.split_at(QK_K / 4);
        let (index_runs, words) = (indices.as_chunks::<8>().0, words.as_chunks::<4>().0);
        let (q_runs, dl_runs) = (q.as_chunks_mut::<4>().0, dl.as_chunks_mut::<2>().0);
        let packed = index_runs.iter().zip(words);
        for ((q, dl), (indices, &word)) in q_runs.iter_mut().zip(dl_runs).zip(packed) {
            let word = u32::from_le_bytes(word);
            *dl = [half_odd_scale(d, word >> 28, 0.5); 2];
            for (l, (q, pairs)) in q.iter_mut().zip(indices.as_chunks::<2>().0).enumerate() {
                let grid = pair(
                    IQ3XXS_GRID[usize::from(pairs[0])],
                    IQ3XXS_GRID[usize::from(pairs[1])],
                );
                *q = signed(grid, sign_code(word >> (7 * l)));
            }
        }
        mul_runs(&q, &dl, y);
    }
}

pub fn dequantize_row_iq3_s(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq3S::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        let mut q = [[0_i8; 8]; QK_K / 8];
        // Per 32 values: 8 index bytes, whose 9th bits are the bits of one `qh` byte,
        // and 4 sign bytes.
        let (index_runs, sign_runs) = (b.qs.as_chunks::<8>().0, b.signs.as_chunks::<4>().0);
        let packed = index_runs.iter().zip(sign_runs).zip(&b.qh);
        for (q, ((indices, signs), &qh)) in q.as_chunks_mut::<4>().0.iter_mut().zip(packed) {
            let index = |i: usize| usize::from(indices[i]) | usize::from((qh >> i) & 1) << 8;
            for (l, (q, &signs)) in q.iter_mut().zip(signs).enumerate() {
                let grid = pair(IQ3S_GRID[index(2 * l)], IQ3S_GRID[index(2 * l + 1)]);
                *q = signed(grid, signs);
            }
        }
        // One 4-bit scale per 32 values: `d * (1 + 2s)`, the odd factor an integer.
        let dl = std::array::from_fn(|k| d * f32::from(1 + 2 * nibble(&b.scales, k / 2)));
        mul_runs(&q, &dl, y);
    }
}
