//! Rotary position embeddings in the rotate-half (NeoX) layout.
//!
//! The angles are computed on the host the way ggml's CPU RoPE computes them —
//! `theta_i = p · base^(-2i/d)` by repeated f32 multiplication, divided by the
//! per-frequency factor, times the linear scale — so that decant's logits stay
//! within float noise of llama.cpp's at long positions too.

use std::ops::Range;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::config::RopeConfig;

/// Cosines and sines for a run of positions, laid out to multiply `[batch, heads,
/// positions, head_dim]` flattened to `[batch · heads, positions · head_dim]`:
/// one row of `positions · head_dim`, each position's cosines repeated for both
/// halves, its sines negated for the first half. Packed training rows, whose
/// documents restart their positions, get one such row per batch row instead.
///
/// That layout keeps Flex on its fast paths: a contiguous tensor times a row
/// shared by every outer index is one SIMD pass, where the `[.., positions,
/// head_dim / 2]` halves broadcast per position would be walked element by
/// element, about a tenth of a prompt's processing time.
#[derive(Clone, Debug)]
pub struct RopeTables<B: Backend> {
    /// `[rows, positions · head_dim]`, `rows` 1 (shared) or the batch size.
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
}

impl<B: Backend> RopeTables<B> {
    /// Tables for the positions `positions`, shared by every row of a batch.
    pub fn new(
        rope: &RopeConfig,
        head_dim: usize,
        positions: Range<usize>,
        device: &B::Device,
    ) -> Self {
        let count = positions.len();
        Self::from_positions(rope, head_dim, positions, [1, count], device)
    }

    /// Tables for `[rows, seq]` explicit positions, row-major: each row of a
    /// batch gets its own (a packed row restarts at 0 for every document).
    pub fn per_row(
        rope: &RopeConfig,
        head_dim: usize,
        positions: &[u32],
        [rows, seq]: [usize; 2],
        device: &B::Device,
    ) -> Self {
        assert_eq!(positions.len(), rows * seq, "one position per token");
        let positions = positions.iter().map(|&p| p as usize);
        Self::from_positions(rope, head_dim, positions, [rows, seq], device)
    }

    fn from_positions(
        rope: &RopeConfig,
        head_dim: usize,
        positions: impl Iterator<Item = usize>,
        [rows, seq]: [usize; 2],
        device: &B::Device,
    ) -> Self {
        let half = head_dim / 2;
        let theta_scale = rope.theta.powf(-2.0 / head_dim as f32);
        let freq_scale = rope.scaling.freq_scale();
        let factors = rope.scaling.freq_factors(rope.theta, head_dim);
        let mut cos = Vec::with_capacity(rows * seq * head_dim);
        let mut sin = Vec::with_capacity(rows * seq * head_dim);
        let (mut cos_half, mut sin_half) = (vec![0.0; half], vec![0.0; half]);
        for p in positions {
            let mut theta = p as f32;
            for i in 0..half {
                let factor = factors.as_ref().map_or(1.0, |f| f[i]);
                let angle = freq_scale * (theta / factor);
                (cos_half[i], sin_half[i]) = (angle.cos(), angle.sin());
                theta *= theta_scale;
            }
            cos.extend_from_slice(&cos_half);
            cos.extend_from_slice(&cos_half);
            sin.extend(sin_half.iter().map(|s| -s));
            sin.extend_from_slice(&sin_half);
        }
        let table =
            |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [rows, seq * head_dim]), device);
        Self {
            cos: table(cos),
            sin: table(sin),
        }
    }

    /// Rotates `x`, `[batch, heads, positions, head_dim]`: each dimension `i` of the
    /// first half is paired with dimension `i + head_dim / 2`, as
    /// `x · cos + swap_halves(x) · (−sin, sin)` — bit for bit
    /// `(x₁ cos − x₂ sin, x₂ cos + x₁ sin)`, since negation is exact.
    /// The cosine and signed sine tables, `[rows, positions · head_dim]`.
    pub(crate) fn tables(&self) -> (&Tensor<B, 2>, &Tensor<B, 2>) {
        (&self.cos, &self.sin)
    }

    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let dims @ [batch, heads, positions, head_dim] = x.dims();
        let half = head_dim / 2;
        let rows = [batch * heads, positions * head_dim];
        // Flattening copies a transposed view to contiguous memory: once, here,
        // instead of in the attention kernel.
        let x = x.reshape(rows).reshape(dims);
        let swapped = Tensor::cat(
            vec![
                x.clone().narrow(3, half, half),
                x.clone().narrow(3, 0, half),
            ],
            3,
        );
        // The tables are f32; a bf16 step rotates in bf16.
        let dtype = x.dtype();
        let (cos, sin) = (self.cos.clone().cast(dtype), self.sin.clone().cast(dtype));
        let rotated = if cos.dims()[0] == 1 {
            x.reshape(rows) * cos + swapped.reshape(rows) * sin
        } else {
            let per_row = [batch, heads, positions * head_dim];
            let table = |t: &Tensor<B, 2>| t.clone().unsqueeze_dim::<3>(1);
            let rotated = x.reshape(per_row) * table(&cos) + swapped.reshape(per_row) * table(&sin);
            rotated.reshape(rows)
        };
        rotated.reshape(dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::config::RopeScaling;

    fn rotate(rope: &RopeConfig, x: &[f32], positions: Range<usize>) -> Vec<f32> {
        let dims = [1, 1, positions.len(), x.len() / positions.len()];
        let tables = RopeTables::<CpuBackend>::new(rope, dims[3], positions, &Default::default());
        let x = Tensor::from_data(TensorData::new(x.to_vec(), dims), &Default::default());
        tables.apply(x).into_data().to_vec().unwrap()
    }

    #[test]
    fn rotates_pairs_split_across_halves() {
        let rope = RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        };
        // head_dim 4: frequencies 1 and 1/100; the pairs are (x0, x2) and (x1, x3).
        let x = [1.0, 2.0, 3.0, 4.0];
        let out = rotate(&rope, &x, 3..4);
        let (a0, a1) = (3.0f32, 3.0f32 / 100.0);
        let expected = [
            a0.cos() - 3.0 * a0.sin(),
            2.0 * a1.cos() - 4.0 * a1.sin(),
            3.0 * a0.cos() + a0.sin(),
            4.0 * a1.cos() + 2.0 * a1.sin(),
        ];
        for (o, e) in out.iter().zip(expected) {
            assert!((o - e).abs() < 1e-6, "{out:?} vs {expected:?}");
        }
        assert_eq!(rotate(&rope, &x, 0..1), x, "position 0 is the identity");
    }

    #[test]
    fn scaling_divides_angles() {
        let x = [1.0, 0.0, 0.0, 0.0];
        let linear = RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::Linear { factor: 4.0 },
        };
        let factors = RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::FreqFactors(vec![4.0, 4.0]),
        };
        let plain = RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        };
        let at_one = rotate(&plain, &x, 1..2);
        let at_four_linear = rotate(&linear, &x, 4..5);
        let at_four_factors = rotate(&factors, &x, 4..5);
        for ((p, l), f) in at_one.iter().zip(&at_four_linear).zip(&at_four_factors) {
            assert!((p - l).abs() < 1e-6 && (p - f).abs() < 1e-6);
        }
    }
}
