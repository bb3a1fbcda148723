//! One AdamW update of a parameter in one pass over its weight, gradient and
//! moments, where Burn's ops make a dozen passes and as many tensors. The
//! moments are updated in place and the new weight is written over the
//! gradient, when nothing else holds them. Each value goes through the f32
//! operations of the stock path, in its order, so the two give the same bits.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::simd::vectorized;
use super::{flex_inner, flex_outer, flex_tensor, values};

/// The scalars of one update, as the stock path rounds them to f32.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamWStep {
    pub grad_scale: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// `1 − lr · weight decay`, or 1 with no decay.
    pub decay: f64,
    /// `1 − beta2^t`, square-rooted.
    pub bias2_sqrt: f64,
    /// `lr / (1 − beta1^t)`.
    pub step_size: f64,
}

/// The updated weight, first and second moments of a flat parameter, when
/// `B` is Flex; otherwise the arguments back, for Burn's ops.
#[allow(clippy::type_complexity)]
pub(crate) fn adamw<B: Backend>(
    weight: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    moments: Option<(Tensor<B, 1>, Tensor<B, 1>)>,
    step: AdamWStep,
) -> Result<
    [Tensor<B, 1>; 3],
    (
        Tensor<B, 1>,
        Tensor<B, 1>,
        Option<(Tensor<B, 1>, Tensor<B, 1>)>,
    ),
> {
    let Some(w) = flex_inner(&weight) else {
        return Err((weight, grad, moments));
    };
    drop(weight);
    let n = w.layout().num_elements();
    let owned = |tensor: Tensor<B, 1>| {
        let flex = flex_inner(&tensor).expect("on the weight's backend");
        drop(tensor);
        writable(flex)
    };
    let mut g = owned(grad);
    let fresh = moments.is_none();
    let (mut m, mut v) = match moments {
        Some((m, v)) => (owned(m), owned(v)),
        None => (
            flex_tensor(vec![0.0; n], [n]),
            flex_tensor(vec![0.0; n], [n]),
        ),
    };
    update(&mut g, &mut m, &mut v, &values(&w), fresh, step);
    Ok([flex_outer(g), flex_outer(m), flex_outer(v)])
}

/// `tensor`, contiguous and the only holder of its buffer.
fn writable(mut tensor: FlexTensor) -> FlexTensor {
    let n = tensor.layout().num_elements();
    let contiguous = tensor.layout().contiguous_offsets() == Some((0, n));
    if contiguous
        && tensor
            .try_storage_mut::<f32>()
            .is_some_and(|s| s.len() == n)
    {
        return tensor;
    }
    flex_tensor(values(&tensor).into_owned(), [n])
}

/// The update proper, on host buffers (not generic, so that it is compiled,
/// optimized, with this crate, whatever crate instantiates [`adamw`]).
fn update(
    g: &mut FlexTensor,
    m: &mut FlexTensor,
    v: &mut FlexTensor,
    w: &[f32],
    fresh: bool,
    step: AdamWStep,
) {
    let f = |x: f64| x as f32;
    let (scale, beta1, one_m_beta1, beta2, one_m_beta2) = (
        f(step.grad_scale),
        f(step.beta1),
        f(1.0 - step.beta1),
        f(step.beta2),
        f(1.0 - step.beta2),
    );
    let (eps, decay, bias2_sqrt, step_size) = (
        f(step.eps),
        f(step.decay),
        f(step.bias2_sqrt),
        f(step.step_size),
    );
    let unique = "made unique by `writable`";
    let g = g.try_storage_mut::<f32>().expect(unique);
    let m = m.try_storage_mut::<f32>().expect(unique);
    let v = v.try_storage_mut::<f32>().expect(unique);
    const BLOCK: usize = 1 << 16;
    // Branch-free loops, so that they vectorize: multiplying by a scale or a
    // decay of exactly 1 changes no bit, and a fresh run's moments are not
    // read at all (0·β + x would turn −0 into +0).
    let block = |g: &mut [f32], m: &mut [f32], v: &mut [f32], w: &[f32]| {
        for (((g, m), v), w) in g.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(w) {
            let grad = *g * scale;
            let (m_i, v_i) = if fresh {
                (grad * one_m_beta1, grad * grad * one_m_beta2)
            } else {
                (
                    *m * beta1 + grad * one_m_beta1,
                    *v * beta2 + grad * grad * one_m_beta2,
                )
            };
            *m = m_i;
            *v = v_i;
            let denom = v_i.sqrt() / bias2_sqrt + eps;
            *g = *w * decay - m_i / denom * step_size;
        }
    };
    g.par_chunks_mut(BLOCK)
        .zip(m.par_chunks_mut(BLOCK))
        .zip(v.par_chunks_mut(BLOCK))
        .zip(w.par_chunks(BLOCK))
        .for_each(|(((g, m), v), w)| vectorized(|| block(g, m, v, w)));
}
