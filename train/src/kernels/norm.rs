//! RMSNorm, `y = x / sqrt(mean(x²) + ε) · γ` over the last dimension, as one
//! autodiff op: one pass forward (keeping each row's reciprocal RMS), one
//! pass backward, where Burn's ops make five tensors forward and a dozen
//! backward.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::simd::{self, vectorized};
use super::{
    AdTensor, flex_autodiff, flex_inner, flex_outer, flex_tensor, from_flex_autodiff,
    is_flex_autodiff, values,
};

#[derive(Clone, Debug)]
struct Saved {
    x: FlexTensor,
    gamma: FlexTensor,
    /// Each row's `1 / sqrt(mean(x²) + ε)`.
    inverse: Vec<f32>,
}

#[derive(Debug)]
struct RmsNorm;

/// Rows of at least this many values per rayon task.
const ROWS_PER_TASK: usize = 16;

impl Backward<Flex, 2> for RmsNorm {
    type State = Box<Saved>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let saved = ops.state;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, dy) = (values(&saved.x), values(&saved.gamma), values(&dy));
        let width = gamma.len();
        let mut dx = vec![0.0f32; x.len()];
        let d_gamma = dx
            .par_chunks_mut(width * ROWS_PER_TASK)
            .zip(x.par_chunks(width * ROWS_PER_TASK))
            .zip(dy.par_chunks(width * ROWS_PER_TASK))
            .zip(saved.inverse.par_chunks(ROWS_PER_TASK))
            .map(|(((dx, x), dy), inverse)| {
                vectorized(|| {
                    let mut d_gamma = vec![0.0f32; width];
                    for (((dx, x), dy), &inv) in dx
                        .chunks_mut(width)
                        .zip(x.chunks(width))
                        .zip(dy.chunks(width))
                        .zip(inverse)
                    {
                        let dot = simd::sum_of_products3(x, dy, &gamma);
                        let k = inv * inv * inv * dot / width as f32;
                        for (((dx, x), dy), (g, dg)) in dx
                            .iter_mut()
                            .zip(x)
                            .zip(dy)
                            .zip(gamma.iter().zip(d_gamma.iter_mut()))
                        {
                            *dx = inv * (dy * g) - x * k;
                            *dg += dy * x * inv;
                        }
                    }
                    d_gamma
                })
            })
            .reduce(
                || vec![0.0f32; width],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        let [node_x, node_gamma] = ops.parents;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex_tensor(dx, saved.x.layout().shape().clone()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex_tensor(d_gamma, [width]));
        }
    }
}

/// `y` and each row's reciprocal RMS.
fn forward(xs: &[f32], g: &[f32], epsilon: f64) -> (Vec<f32>, Vec<f32>) {
    let width = g.len();
    let mut y = vec![0.0f32; xs.len()];
    let mut inverse = vec![0.0f32; xs.len() / width];
    let epsilon = epsilon as f32;
    y.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(xs.par_chunks(width * ROWS_PER_TASK))
        .zip(inverse.par_chunks_mut(ROWS_PER_TASK))
        .for_each(|((y, x), inverse)| {
            vectorized(|| {
                for ((y, x), inv) in y
                    .chunks_mut(width)
                    .zip(x.chunks(width))
                    .zip(inverse.iter_mut())
                {
                    let squares = simd::sum_of_squares(x);
                    *inv = 1.0 / (squares / width as f32 + epsilon).sqrt();
                    for ((y, x), g) in y.iter_mut().zip(x).zip(g.iter()) {
                        *y = x * *inv * g;
                    }
                }
            })
        });
    (y, inverse)
}

fn rms_norm(x: &AdTensor, gamma: &AdTensor, epsilon: f64) -> AdTensor {
    let (y, inverse) = forward(&values(&x.primitive), &values(&gamma.primitive), epsilon);
    let y = flex_tensor(y, x.primitive.layout().shape().clone());
    match RmsNorm
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                x: x.primitive.clone(),
                gamma: gamma.primitive.clone(),
                inverse,
            };
            prep.finish(Box::new(saved), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// RMSNorm of `x` over its last dimension with `gamma`, when `B` is Flex
/// (under autodiff or not); otherwise `x` back.
pub(crate) fn try_rms_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    epsilon: f64,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if x.dtype() != DType::F32 || gamma.dtype() != DType::F32 {
        return Err(x);
    }
    if is_flex_autodiff::<B>() {
        let x = flex_autodiff(x).unwrap_or_else(|_| unreachable!("B is Ad"));
        let gamma = flex_autodiff(gamma).unwrap_or_else(|_| unreachable!("B is Ad"));
        return Ok(from_flex_autodiff(rms_norm(&x, &gamma, epsilon)));
    }
    let (Some(xs), Some(g)) = (flex_inner(&x), flex_inner(&gamma)) else {
        return Err(x);
    };
    let (y, _) = forward(&values(&xs), &values(&g), epsilon);
    Ok(flex_outer(flex_tensor(y, xs.layout().shape().clone())))
}
