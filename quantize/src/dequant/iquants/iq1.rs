//! IQ1_S and IQ1_M: 8 values per grid index, each `dl * (grid + delta)` with grid
//! values in {-1, 0, 1} and a shift of ±1/8 per group.

use crate::blocks::{Block, BlockIq1M, BlockIq1S, QK_K};
use crate::dequant::float::{f16_le, fp16_to_f32};
use crate::dequant::tables::{IQ1M_DELTA, IQ1S_DELTA, IQ1S_GRID};

/// `y = dl * (grid + delta)` over one grid entry, in ggml's order: the sum is exact,
/// the product rounds once.
#[inline(always)]
fn shifted(grid: u64, delta: f32, dl: f32, y: &mut [f32; 8]) {
    for (y, g) in y.iter_mut().zip(grid.to_le_bytes()) {
        *y = dl * (f32::from(g as i8) + delta);
    }
}

/// `d * (2s + 1)` for a 3-bit scale `s`, the odd factor an integer.
#[inline(always)]
fn odd_scale(d: f32, s: u16) -> f32 {
    d * f32::from(2 * (s & 7) + 1)
}

/// The shift of a group: `delta` itself, or negated when its sign bit is set.
#[inline(always)]
fn signed_delta(delta: f32, negative: bool) -> f32 {
    if negative { -delta } else { delta }
}

pub fn dequantize_row_iq1_s(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq1S::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        let d = f16_le(b.d);
        let words = b.qh.as_chunks::<2>().0;
        for (r, y) in y.as_chunks_mut::<32>().0.iter_mut().enumerate() {
            // Per 32 values, one word: the four groups' 3-bit index tops, a 3-bit
            // scale and the sign of the shift in the top bit.
            let word = u16::from_le_bytes(words[r]);
            let dl = odd_scale(d, word >> 12);
            let delta = signed_delta(IQ1S_DELTA, word & 0x8000 != 0);
            for (l, y) in y.as_chunks_mut::<8>().0.iter_mut().enumerate() {
                let high = (word >> (3 * l)) & 7;
                let index = usize::from(b.qs[4 * r + l]) | usize::from(high) << 8;
                shifted(IQ1S_GRID[index], delta, dl, y);
            }
        }
    }
}

pub fn dequantize_row_iq1_m(src: &[u8], dst: &mut [f32]) {
    let blocks = BlockIq1M::slice_from_bytes(src);
    for (b, y) in blocks.iter().zip(dst.as_chunks_mut::<QK_K>().0) {
        // Four words of four 3-bit scales each; their top nibbles, first word lowest,
        // are the bits of the f16 super-block scale.
        let words = b.scales.as_chunks::<2>().0;
        let sc: [u16; 4] = std::array::from_fn(|k| u16::from_le_bytes(words[k]));
        let bits =
            (sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000);
        let d = fp16_to_f32(bits);
        // Per 32 values: four index bytes, and two `qh` bytes whose nibbles give each
        // group of 8 its index's top 3 bits and the sign of its shift. ggml's
        // dequantizer spells the shift `IQ1S_DELTA`; the two constants are equal.
        let runs = y.as_chunks_mut::<32>().0.iter_mut().enumerate();
        let packed = b.qs.as_chunks::<4>().0.iter().zip(b.qh.as_chunks::<2>().0);
        for ((r, y), (low, &[h0, h1])) in runs.zip(packed) {
            let word = sc[r / 2] >> (6 * (r % 2));
            let dl = [odd_scale(d, word), odd_scale(d, word >> 3)];
            let high = [h0 & 0x0F, h0 >> 4, h1 & 0x0F, h1 >> 4];
            for (l, y) in y.as_chunks_mut::<8>().0.iter_mut().enumerate() {
                let index = usize::from(low[l]) | usize::from(high[l] & 7) << 8;
                let delta = signed_delta(IQ1M_DELTA, high[l] & 8 != 0);
                shifted(IQ1S_GRID[index], delta, dl[l / 2], y);
            }
        }
    }
}
