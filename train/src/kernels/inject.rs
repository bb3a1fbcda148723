//! An autodiff op worth a loss that a kernel computed outside the graph,
//! together with its gradients with respect to the op's inputs: the backward
//! pass hands each input its gradient, times the gradient arriving at the
//! loss (the trainer's division by the step's trained tokens).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::{AdTensor, flex_tensor, values};

#[derive(Debug)]
struct Inject;

impl<const N: usize> Backward<Flex, N> for Inject {
    /// Each input's gradient, in the inputs' order.
    type State = Vec<FlexTensor>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let upstream = grads.consume::<Flex>(&ops.node);
        let scale = values(&upstream)[0];
        for (parent, mut gradient) in ops.parents.into_iter().zip(ops.state) {
            let Some(node) = parent else { continue };
            if scale != 1.0 {
                gradient = scaled(gradient, scale);
            }
            grads.register::<Flex>(node.id, gradient);
        }
    }
}

/// `gradient · scale`, in place when nothing else holds it (not generic, so
/// that it is compiled, optimized, with this crate).
fn scaled(mut gradient: FlexTensor, scale: f32) -> FlexTensor {
    match gradient.try_storage_mut::<f32>() {
        Some(values) => {
            values
                .par_chunks_mut(1 << 16)
                .for_each(|chunk| chunk.iter_mut().for_each(|v| *v *= scale));
            gradient
        }
        None => {
            let scaled: Vec<f32> = values(&gradient).iter().map(|v| v * scale).collect();
            flex_tensor(scaled, gradient.layout().shape().clone())
        }
    }
}

/// A `[1]` tensor worth `value`, whose gradient with respect to `inputs[i]`
/// is `gradients[i]` (each of its input's shape).
pub(crate) fn inject<const N: usize>(
    value: f32,
    inputs: [&AdTensor; N],
    gradients: [FlexTensor; N],
) -> AdTensor {
    let output = flex_tensor(vec![value], [1]);
    match Inject
        .prepare::<NoCheckpointing>(inputs.map(|input| input.node.clone()))
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(gradients.into(), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}
