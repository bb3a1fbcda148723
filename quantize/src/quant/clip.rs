//! Which weights a quantized tensor represents by rounding and which it clips:
//! the mask of the clipped straight-through estimator in quantization-aware
//! training.

use std::mem::offset_of;
use std::ops::Range;

use super::{QuantError, row_size};
use crate::GgmlType;
use crate::blocks::{
    BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0,
};
use crate::dequantize;

/// The types [`inside_range`] knows the grids of.
pub const CLIP_RANGE_TYPES: [GgmlType; 8] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// Where a block keeps its quants, and the bytes that set every quant to its lowest
/// and to its highest code.
struct Codes {
    quants: Range<usize>,
    lowest: u8,
    highest: u8,
    /// Values that share one scale (and min): a block, or a K-quant sub-block.
    group: usize,
    /// Steps between the lowest and the highest code.
    steps: f32,
}

fn codes(ty: GgmlType) -> Option<Codes> {
    use GgmlType::*;
    let all = |quants, group, bits: i32| Codes {
        quants,
        lowest: 0x00,
        highest: 0xFF,
        group,
        steps: (2f32).powi(bits) - 1.0,
    };
    Some(match ty {
        Q4_0 => all(offset_of!(BlockQ4_0, qs)..size_of::<BlockQ4_0>(), 32, 4),
        Q4_1 => all(offset_of!(BlockQ4_1, qs)..size_of::<BlockQ4_1>(), 32, 4),
        // `qh` then `qs`: the fifth bits and the nibbles.
        Q5_0 => all(offset_of!(BlockQ5_0, qh)..size_of::<BlockQ5_0>(), 32, 5),
        Q5_1 => all(offset_of!(BlockQ5_1, qh)..size_of::<BlockQ5_1>(), 32, 5),
        // -127, not -128: ggml's Q8_0 is symmetric and never writes -128, so counting
        // it would make the range lopsided by a step it cannot produce.
        Q8_0 => Codes {
            quants: offset_of!(BlockQ8_0, qs)..size_of::<BlockQ8_0>(),
            lowest: (-127_i8) as u8,
            highest: 127,
            group: 32,
            steps: 254.0,
        },
        Q4K => all(offset_of!(BlockQ4K, qs)..size_of::<BlockQ4K>(), 32, 4),
        Q5K => all(offset_of!(BlockQ5K, qh)..size_of::<BlockQ5K>(), 32, 5),
        // `ql` then `qh`, before the scales.
        Q6K => all(0..offset_of!(BlockQ6K, scales), 16, 6),
        _ => return None,
    })
}

/// For each value of `src`, whether its block (or K-quant sub-block) of
/// `quantized` represents it by rounding: true within half a step of the block's
/// grid, false where the grid's outermost level clipped it.
///
/// This is the mask of the clipped straight-through estimator in
/// quantization-aware training, which passes the gradient of weights that were
/// rounded and zeroes it for those that saturated, since moving those does not
/// move their quantized value.
///
/// `quantized` is what [`quantize_chunk`](super::quantize_chunk) wrote for `src`,
/// rows of `n_per_row` values; the ranges come from its stored scales alone, so
/// either quantization path (with importance weights or not) will do. Its ends are
/// the lowest and highest codes dequantized by the kernel itself against the block's
/// stored scales, so they are exactly values the block can hold. The half step
/// of slack keeps a block's own extreme inside when its f16 scale rounded down; a
/// group whose scale collapsed to zero holds only its one value, and every
/// other value of it counts as clipped.
/// Q8_0's lowest code is taken as -127, the lowest its quantizer writes. A block
/// whose scales dequantize to NaN holds nothing inside.
///
/// Supports Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K.
pub fn inside_range(
    ty: GgmlType,
    src: &[f32],
    n_per_row: usize,
    quantized: &[u8],
) -> Result<Vec<bool>, QuantError> {
    let codes = codes(ty).ok_or(QuantError::NoClipRange { ty })?;
    let row_bytes = row_size(ty, n_per_row)?;
    if !src.len().is_multiple_of(n_per_row) {
        return Err(QuantError::PartialRow {
            src_len: src.len(),
            n_per_row,
        });
    }
    let nrows = src.len() / n_per_row;
    let needed = nrows * row_bytes;
    if quantized.len() != needed {
        return Err(QuantError::QuantizedLength {
            ty,
            nrows,
            needed,
            len: quantized.len(),
        });
    }

    let (block_size, type_size) = (ty.block_size(), ty.type_size());
    // Each block twice, all lowest codes then all highest, dequantized together.
    let mut pair = vec![0_u8; 2 * type_size];
    let mut ends = vec![0.0_f32; 2 * block_size];
    let mut inside = Vec::with_capacity(src.len());
    for (block, x) in quantized
        .chunks_exact(type_size)
        .zip(src.chunks_exact(block_size))
    {
        let (low, high) = pair.split_at_mut(type_size);
        for (copy, fill) in [(low, codes.lowest), (high, codes.highest)] {
            copy.copy_from_slice(block);
            copy[codes.quants.clone()].fill(fill);
        }
        dequantize(ty, &pair, &mut ends).expect("two whole blocks fill twice a block's values");
        let (low, high) = ends.split_at(block_size);
        let groups = x.chunks_exact(codes.group).enumerate();
        for (g, x) in groups {
            // A negative scale puts the lowest code at the top.
            let (a, b) = (low[g * codes.group], high[g * codes.group]);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let half_step = (hi - lo) / codes.steps / 2.0;
            let (lo, hi) = (lo - half_step, hi + half_step);
            inside.extend(x.iter().map(|&v| lo <= v && v <= hi));
        }
    }
    Ok(inside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{dequantize_to_vec, quantize_to_vec};

    const TYPES: [GgmlType; 8] = CLIP_RANGE_TYPES;
    const N: usize = 512;

    /// Uniform in [-1, 1), from splitmix64.
    fn uniform(state: &mut u64) -> f32 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1 << 23) as f32 - 1.0
    }

    /// Rows of the shapes weights take, and the degenerate ones.
    fn rows() -> Vec<f32> {
        let mut s = 7;
        let mut rows = Vec::new();
        rows.extend((0..N).map(|_| uniform(&mut s)));
        rows.extend((0..N).map(|i| uniform(&mut s) * if i % 37 == 0 { 20.0 } else { 0.05 }));
        rows.extend([0.0; N]);
        rows.extend([0.3; N]);
        rows.extend([-2.0; N]);
        rows.extend((0..N).map(|_| 0.55 * uniform(&mut s) - 0.45));
        rows.extend((0..N).map(|_| 1e-3 * uniform(&mut s)));
        rows
    }

    fn quantize(ty: GgmlType, src: &[f32], n: usize) -> Vec<u8> {
        quantize_to_vec(ty, src, n, None).unwrap()
    }

    /// The mask for `src` against its own quantization.
    fn mask(ty: GgmlType, src: &[f32], n: usize) -> Vec<bool> {
        inside_range(ty, src, n, &quantize(ty, src, n)).unwrap()
    }

    #[test]
    fn clip_dequantized_values_are_inside() {
        let src = rows();
        for ty in TYPES {
            let q = quantize(ty, &src, N);
            let deq = dequantize_to_vec(ty, &q).unwrap();
            let inside = inside_range(ty, &deq, N, &q).unwrap();
            assert_eq!(inside.len(), src.len(), "{ty}");
            assert!(inside.iter().all(|&i| i), "{ty}");
            // An all-zero row holds exactly zero, so its zeros are inside too.
            let zeros = &inside_range(ty, &src, N, &q).unwrap()[2 * N..3 * N];
            assert!(zeros.iter().all(|&i| i), "{ty}");
        }
    }

    /// The legacy types with `d = max / -nmax`, `max` the value of largest
    /// magnitude (first on ties), map `max` to the code `-nmax` and have one level
    /// fewer on the other side: values beyond `(nmax - 1) / nmax · |max|` of the
    /// opposite sign are clipped, whichever sign `max` has.
    #[test]
    fn clip_symmetric_legacy_types_clip_the_side_opposite_their_extreme() {
        for (ty, nmax) in [(GgmlType::Q4_0, 8.0), (GgmlType::Q5_0, 16.0)] {
            for sign in [1.0, -1.0] {
                // d = ∓1 exactly: the range is nmax on the extreme's side, nmax - 1
                // on the other.
                let mut x = [0.0_f32; 32];
                x[..5].copy_from_slice(&[nmax, -nmax, 1.0 - nmax, 0.4 - nmax, 0.25]);
                let x = x.map(|v| sign * v);
                assert_eq!(
                    mask(ty, &x, 32)[..5],
                    [true, false, true, false, true],
                    "{ty} {sign}"
                );
            }
        }
        // Q8_0 is symmetric, -127..=127: the opposite extreme is kept.
        let mut x = [0.0_f32; 32];
        x[..3].copy_from_slice(&[127.0, -127.0, -126.6]);
        assert!(mask(GgmlType::Q8_0, &x, 32).iter().all(|&i| i));
    }

    /// With `d = amax / 127` rounded to f16, the block's extreme itself lies past
    /// the grid when the rounding went down, here by about 1e-4 of a step: it
    /// was rounded, not clipped. Past half a step it is clipped.
    #[test]
    fn clip_rounding_the_scale_to_f16_keeps_the_extreme_inside() {
        let mut x = [0.5_f32; 32];
        x[0] = 1.0;
        x[1] = -1.0;
        let q = quantize(GgmlType::Q8_0, &x, 32);
        let d = half::f16::from_le_bytes([q[0], q[1]]).to_f32();
        assert!(127.0 * d < 1.0);
        let inside = inside_range(GgmlType::Q8_0, &x, 32, &q).unwrap();
        assert_eq!(inside[..3], [true, true, true]);
        let (a, b) = (127.6 * d, -127.4 * d);
        x[2] = a;
        x[3] = b;
        assert_eq!(inside_range(GgmlType::Q8_0, &x, 32, &q).unwrap()[..4], [true, true, false, true]);
    }

    /// Q4_1 and Q5_1 span the block's min to max, so they clip only by rounding
    /// `d` and `m` to f16; a constant block has `d = 0` and holds `m` alone.
    #[test]
    fn clip_offset_legacy_types_clip_only_by_scale_rounding() {
        for ty in [GgmlType::Q4_1, GgmlType::Q5_1] {
            let x: [f32; 32] = std::array::from_fn(|i| (i % 16) as f32 - 3.0);
            assert!(mask(ty, &x, 32).iter().all(|&i| i), "{ty}");
            assert!(mask(ty, &[0.3; 32], 32).iter().all(|&i| !i), "{ty}");
        }
    }

    /// K-quant sub-block scales are 6 or 8 bits relative to the largest in the
    /// super-block: beside an outlier sub-block, small ones round to scale 0,
    /// hold only zero, and every other value of theirs counts as clipped.
    #[test]
    fn clip_k_quant_sub_blocks_beside_an_outlier_collapse() {
        let x: [f32; 256] = std::array::from_fn(|i| {
            let small = 0.01 * (1 + i % 5) as f32 * if i % 2 == 0 { 1.0 } else { -1.0 };
            if i < 32 { 400.0 * small } else { small }
        });
        for ty in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K] {
            let q = quantize(ty, &x, 256);
            let deq = dequantize_to_vec(ty, &q).unwrap();
            assert!(deq[32..].iter().all(|&v| v == 0.0), "{ty}");
            let inside = inside_range(ty, &x, 256, &q).unwrap();
            assert!(inside[32..].iter().all(|&i| !i), "{ty}");
            let kept = inside[..32].iter().filter(|&&i| i).count();
            assert!(kept >= 24, "{ty}: {kept} of the outliers inside");
        }
    }

    #[test]
    fn clip_values_far_outside_are_reported() {
        let src = rows();
        for ty in TYPES {
            let q = quantize(ty, &src, N);
            let mut moved = src.clone();
            let mut far_out = Vec::new();
            for (r, row) in moved.chunks_exact_mut(N).enumerate() {
                let far = 10.0 * row.iter().fold(0.0_f32, |m, v| m.max(v.abs())) + 1.0;
                let (i, j) = (r * 31 % N, (r * 97 + 200) % N);
                (row[i], row[j]) = (far, -far);
                far_out.extend([r * N + i, r * N + j]);
            }
            let inside = inside_range(ty, &moved, N, &q).unwrap();
            for k in far_out {
                assert!(!inside[k], "{ty} value {k}");
            }
        }
    }

    #[test]
    fn clip_shapes_and_types_are_checked() {
        let src = [0.25_f32; 512];
        let q = quantize(GgmlType::Q4K, &src, 256);
        assert_eq!(
            inside_range(GgmlType::Q4K, &src, 256, &q[..q.len() - 1]),
            Err(QuantError::QuantizedLength {
                ty: GgmlType::Q4K,
                nrows: 2,
                needed: 288,
                len: 287
            })
        );
        assert!(inside_range(GgmlType::Q4K, &src, 256, &[q.clone(), q.clone()].concat()).is_err());
        assert_eq!(
            inside_range(GgmlType::Q4K, &src, 128, &q),
            Err(QuantError::RowNotWholeBlocks {
                ty: GgmlType::Q4K,
                n_per_row: 128,
                block_size: 256
            })
        );
        assert!(inside_range(GgmlType::Q4K, &src, 0, &q).is_err());
        assert_eq!(
            inside_range(GgmlType::Q4K, &src[..300], 256, &q),
            Err(QuantError::PartialRow {
                src_len: 300,
                n_per_row: 256
            })
        );
        let err = inside_range(GgmlType::Q2K, &src, 256, &q).unwrap_err();
        assert_eq!(err, QuantError::NoClipRange { ty: GgmlType::Q2K });
        assert!(err.to_string().contains("q5_K and q6_K"), "{err}");
        assert_eq!(inside_range(GgmlType::Q4_0, &[], 32, &[]), Ok(vec![]));
    }
}
