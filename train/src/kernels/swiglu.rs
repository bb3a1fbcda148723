//! SwiGLU's gate, `silu(gate) · up`, as one autodiff op: one pass forward,
//! one pass backward (from the saved inputs), where Burn's ops make three
//! tensors forward and seven backward.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::simd::{exp, vectorized};
use super::{
    AdTensor, flex_autodiff, flex_inner, flex_outer, flex_tensor, from_flex_autodiff,
    is_flex_autodiff, values,
};

/// Values per rayon task.
const BLOCK: usize = 1 << 14;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[derive(Clone, Debug)]
struct Saved {
    gate: FlexTensor,
    up: FlexTensor,
}

#[derive(Debug)]
struct SwiGlu;

impl Backward<Flex, 2> for SwiGlu {
    type State = Box<Saved>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let saved = ops.state;
        let dh = grads.consume::<Flex>(&ops.node);
        let (gate, up, dh) = (values(&saved.gate), values(&saved.up), values(&dh));
        let mut d_gate = vec![0.0f32; gate.len()];
        let mut d_up = vec![0.0f32; gate.len()];
        d_gate
            .par_chunks_mut(BLOCK)
            .zip(d_up.par_chunks_mut(BLOCK))
            .zip(
                gate.par_chunks(BLOCK)
                    .zip(up.par_chunks(BLOCK))
                    .zip(dh.par_chunks(BLOCK)),
            )
            .for_each(|((d_gate, d_up), ((gate, up), dh))| {
                vectorized(|| {
                    for ((d_gate, d_up), ((g, u), dh)) in d_gate
                        .iter_mut()
                        .zip(d_up.iter_mut())
                        .zip(gate.iter().zip(up).zip(dh))
                    {
                        let s = sigmoid(*g);
                        *d_gate = dh * u * (s * (1.0 + g * (1.0 - s)));
                        *d_up = dh * (g * s);
                    }
                })
            });
        let shape = saved.gate.layout().shape().clone();
        let [node_gate, node_up] = ops.parents;
        if let Some(node) = node_gate {
            grads.register::<Flex>(node.id, flex_tensor(d_gate, shape.clone()));
        }
        if let Some(node) = node_up {
            grads.register::<Flex>(node.id, flex_tensor(d_up, shape));
        }
    }
}

fn forward(g: &[f32], u: &[f32]) -> Vec<f32> {
    let mut h = vec![0.0f32; g.len()];
    h.par_chunks_mut(BLOCK)
        .zip(g.par_chunks(BLOCK).zip(u.par_chunks(BLOCK)))
        .for_each(|(h, (g, u))| {
            vectorized(|| {
                for (h, (g, u)) in h.iter_mut().zip(g.iter().zip(u)) {
                    *h = g * sigmoid(*g) * u;
                }
            })
        });
    h
}

fn swiglu(gate: &AdTensor, up: &AdTensor) -> AdTensor {
    let h = forward(&values(&gate.primitive), &values(&up.primitive));
    let h = flex_tensor(h, gate.primitive.layout().shape().clone());
    match SwiGlu
        .prepare::<NoCheckpointing>([gate.node.clone(), up.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                gate: gate.primitive.clone(),
                up: up.primitive.clone(),
            };
            prep.finish(Box::new(saved), h)
        }
        OpsKind::UnTracked(prep) => prep.finish(h),
    }
}

/// `silu(gate) · up` when `B` is Flex (under autodiff or not); otherwise
/// the inputs back.
#[allow(clippy::type_complexity)]
pub(crate) fn try_swiglu<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
    if gate.dtype() != DType::F32 || up.dtype() != DType::F32 {
        return Err((gate, up));
    }
    if is_flex_autodiff::<B>() {
        let gate = flex_autodiff(gate).unwrap_or_else(|_| unreachable!("B is Ad"));
        let up = flex_autodiff(up).unwrap_or_else(|_| unreachable!("B is Ad"));
        return Ok(from_flex_autodiff(swiglu(&gate, &up)));
    }
    let (Some(g), Some(u)) = (flex_inner(&gate), flex_inner(&up)) else {
        return Err((gate, up));
    };
    let h = forward(&values(&g), &values(&u));
    Ok(flex_outer(flex_tensor(h, g.layout().shape().clone())))
}
