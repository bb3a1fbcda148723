//! The i-quants: `dequantize_row_iq*` of `ggml-quants.c`, same arithmetic in the
//! same order.
//!
//! The grid types (IQ2_*, IQ3_*) first unpack a block into signed integer values
//! and one scale per run of 16, then multiply in the shared float stage; IQ1_* add
//! a fractional shift before scaling and so stay in floats throughout.

mod iq1;
mod iq2;
mod iq3;
mod iq4;

pub use iq1::{dequantize_row_iq1_m, dequantize_row_iq1_s};
pub use iq2::{dequantize_row_iq2_s, dequantize_row_iq2_xs, dequantize_row_iq2_xxs};
pub use iq3::{dequantize_row_iq3_s, dequantize_row_iq3_xxs};
pub use iq4::{dequantize_row_iq4_nl, dequantize_row_iq4_xs};

use super::simd;
use super::tables::{KMASK_IQ2XS, KSIGNS_IQ2XS};
use crate::blocks::QK_K;

/// Eight grid magnitudes with bit `j` of `signs` negating value `j`.
///
/// ggml computes `db * grid[j] * (±1.0)`; negating the integer before the multiply
/// gives the same bits, because rounding is symmetric in sign. Zeros agree too, as
/// grid magnitudes are never 0: `-g * ±0.0` and `(g * ±0.0) * -1.0` are both `∓0.0`.
#[inline(always)]
fn signed(grid: [u8; 8], signs: u8) -> [i8; 8] {
    std::array::from_fn(|j| {
        // Grid magnitudes are at most 62, so they fit an `i8`.
        let magnitude = grid[j] as i8;
        if signs & KMASK_IQ2XS[j] != 0 {
            -magnitude
        } else {
            magnitude
        }
    })
}

/// The sign byte of a 7-bit sign code: the low 7 bits of `bits`.
#[inline(always)]
fn sign_code(bits: u32) -> u8 {
    KSIGNS_IQ2XS[(bits & 127) as usize]
}

/// Scale `k` of a run of two 4-bit scales per byte, low nibble first.
#[inline(always)]
fn nibble(bytes: &[u8], k: usize) -> u8 {
    (bytes[k / 2] >> (4 * (k % 2))) & 0x0F
}

/// `d * (0.5 + s) * step`: the sub-block scale of IQ2_* (`step` 1/4) and IQ3_XXS
/// (`step` 1/2), in ggml's operation order.
#[inline(always)]
fn half_odd_scale(d: f32, s: u32, step: f32) -> f32 {
    d * (0.5 + s as f32) * step
}

/// `y = q * dl[k]` for each run `k` of 16 values.
#[inline(always)]
fn mul_runs(q: &[[i8; 8]; QK_K / 8], dl: &[f32; QK_K / 16], y: &mut [f32; QK_K]) {
    let runs = q.as_flattened().as_chunks::<16>().0;
    for ((y, q), &d) in y.as_chunks_mut::<16>().0.iter_mut().zip(runs).zip(dl) {
        simd::mul(q, d, y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `signed` then the float stage, against ggml's `db * grid * -1.0`, for every
    /// magnitude and scales of every kind.
    #[test]
    #[expect(clippy::neg_multiply, reason = "spelled as ggml computes it")]
    fn negating_before_the_multiply_is_exact() {
        let scales = [0.37, -1.3e-3, 7.1e-15, 1.0e-40, -1.4e-45, 3.9e37, 0.0, -0.0];
        for g in 1..=62_u8 {
            let [q, ..] = signed([g; 8], 0xFF);
            for d in scales {
                let ggml = d * f32::from(g) * -1.0;
                assert_eq!((f32::from(q) * d).to_bits(), ggml.to_bits(), "{g} * {d:e}");
            }
        }
    }
}
