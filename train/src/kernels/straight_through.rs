//! The straight-through estimator as one autodiff op: the forward value is
//! the round trip that the quantization kernels computed, and the backward
//! pass hands the weight the arriving gradient (times the clip mask). The
//! stock-op form, `(w − detach(w)) + q`, makes two weight-sized tensors
//! forward on every step and for every fake-quantized weight.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_flex::Flex;
use rayon::prelude::*;

use super::{flex_autodiff, flex_tensor, from_flex_autodiff, values};

/// Values per rayon task.
const BLOCK: usize = 1 << 16;

#[derive(Debug)]
struct StraightThrough;

impl Backward<Flex, 1> for StraightThrough {
    /// Per value: whether its block could represent it; `None` passes every
    /// gradient.
    type State = Option<Vec<bool>>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let gradient = grads.consume::<Flex>(&ops.node);
        let [Some(node)] = ops.parents else { return };
        let gradient = match ops.state {
            None => gradient,
            Some(inside) => masked(&values(&gradient), &inside, gradient.layout().shape()),
        };
        grads.register::<Flex>(node.id, gradient);
    }
}

/// `gradient · inside`, as the stock form's product with the mask computes it.
fn masked(gradient: &[f32], inside: &[bool], shape: &burn::tensor::Shape) -> burn_flex::FlexTensor {
    let mut out = vec![0.0f32; gradient.len()];
    out.par_chunks_mut(BLOCK)
        .zip(gradient.par_chunks(BLOCK).zip(inside.par_chunks(BLOCK)))
        .for_each(|(out, (gradient, inside))| {
            for (o, (&g, &inside)) in out.iter_mut().zip(gradient.iter().zip(inside)) {
                *o = g * f32::from(u8::from(inside));
            }
        });
    flex_tensor(out, shape.clone())
}

/// A tensor worth `rounded` (the weight's shape, row-major) whose gradient
/// flows to `weight` through the straight-through estimator, when `B` is
/// Flex under autodiff; otherwise the inputs back.
#[allow(clippy::type_complexity)]
pub(crate) fn try_straight_through<B: Backend>(
    weight: Tensor<B, 2>,
    rounded: Vec<f32>,
    inside: Option<Vec<bool>>,
) -> Result<Tensor<B, 2>, (Tensor<B, 2>, Vec<f32>, Option<Vec<bool>>)> {
    let weight = match flex_autodiff(weight) {
        Ok(weight) => weight,
        Err(weight) => return Err((weight, rounded, inside)),
    };
    let output = flex_tensor(rounded, weight.primitive.layout().shape().clone());
    let output = match StraightThrough
        .prepare::<NoCheckpointing>([weight.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(inside, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Ok(from_flex_autodiff(output))
}
