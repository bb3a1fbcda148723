//! A model whose planned weights are replaced by their fake-quantized values,
//! with the straight-through estimator wired into the autodiff graph.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use quantize::GgmlType;

use super::round_trip::round_trip;
use crate::error::TrainError;
use crate::import::{LayerWeight, Weight, transpose};
use crate::kernels::straight_through::try_straight_through;
use crate::model::Transformer;

/// The straight-through estimator's backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ste {
    /// The gradient passes to the master weight unchanged.
    Identity,
    /// Zero gradient for a weight its block cannot represent (it was clipped),
    /// so that training does not push it further out.
    Clipped,
}

/// Which weights are fake-quantized, each to the type the export will give it.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeQuantPlan {
    pub tensors: Vec<(Weight, GgmlType)>,
    pub ste: Ste,
    /// Host threads for the quantization kernels.
    pub threads: usize,
}

/// `model` with every weight of `plan` seen as `dequantize(quantize(w))`.
///
/// The forward value is exactly the round trip, `(w − detach(w)) + q`, whose
/// first term is an exact zero; its gradient with respect to `w` is one (or the
/// clip mask), so an optimizer step on the original model updates the
/// full-precision master weights. On Flex under autodiff one op
/// (`kernels::straight_through`) gives the same value and gradient without
/// the two weight-sized intermediate tensors.
pub fn fake_quantized<B: Backend>(
    model: &Transformer<B>,
    plan: &FakeQuantPlan,
) -> Result<Transformer<B>, TrainError> {
    // A lazily initialized parameter's clone would initialize itself apart
    // from the original, and the gradient would never reach the original.
    model.visit(&mut Initialize);
    let mut out = model.clone();
    for &(weight, ty) in &plan.tensors {
        let name = weight.hf_name();
        let fail = |message: &str| TrainError::FakeQuant {
            tensor: name.clone(),
            ty,
            message: message.to_owned(),
        };
        // A GGUF row is one output's weights: an embedding row, or a column of
        // Burn's `[d_in, d_out]` linear weight.
        let (param, transposed) = match weight {
            Weight::TokenEmbedding => (&mut out.embed_tokens.weight, false),
            Weight::Output => match out.lm_head.as_mut() {
                Some(head) => (&mut head.weight, true),
                None => return Err(fail("the model has no separate output head (it is tied)")),
            },
            Weight::Layer(i, kind) => {
                let Some(layer) = out.layers.get_mut(i) else {
                    return Err(fail("the model has no such layer"));
                };
                let Some(linear) = projection(layer, kind) else {
                    return Err(fail("is not a matrix; only 2-D weights are quantized"));
                };
                (&mut linear.weight, true)
            }
            Weight::OutputNorm => {
                return Err(fail("is not a matrix; only 2-D weights are quantized"));
            }
        };
        *param = straight_through(param.clone(), transposed, ty, plan, &name)?;
    }
    Ok(out)
}

struct Initialize;

impl<B: Backend> ModuleVisitor<B> for Initialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        param.val();
    }
}

fn projection<B: Backend>(
    layer: &mut crate::model::DecoderLayer<B>,
    kind: LayerWeight,
) -> Option<&mut Linear<B>> {
    let (attn, mlp) = (&mut layer.self_attn, &mut layer.mlp);
    Some(match kind {
        LayerWeight::Q => &mut attn.q_proj,
        LayerWeight::K => &mut attn.k_proj,
        LayerWeight::V => &mut attn.v_proj,
        LayerWeight::O => &mut attn.o_proj,
        LayerWeight::Gate => &mut mlp.gate_proj,
        LayerWeight::Up => &mut mlp.up_proj,
        LayerWeight::Down => &mut mlp.down_proj,
        _ => return None,
    })
}

fn straight_through<B: Backend>(
    param: Param<Tensor<B, 2>>,
    transposed: bool,
    ty: GgmlType,
    plan: &FakeQuantPlan,
    name: &str,
) -> Result<Param<Tensor<B, 2>>, TrainError> {
    let weight = param.val();
    let [d0, d1] = weight.dims();
    let values = weight
        .clone()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| TrainError::FakeQuant {
            tensor: name.to_owned(),
            ty,
            message: format!("cannot be read as f32: {e:?}"),
        })?;
    // GGUF rows and the weight's own layout, both row-major.
    let (rows, row) = if transposed {
        (transpose(&values, d0, d1), d0)
    } else {
        (values, d1)
    };
    let rounded = round_trip(name, ty, &rows, row, plan.ste == Ste::Clipped, plan.threads)?;
    let (rounded, inside) = if transposed {
        (
            transpose(&rounded.values, d1, d0),
            rounded.inside.map(|inside| transpose(&inside, d1, d0)),
        )
    } else {
        (rounded.values, rounded.inside)
    };
    let out = match try_straight_through(weight, rounded, inside) {
        Ok(out) => out,
        Err((weight, rounded, inside)) => {
            let device = weight.device();
            let tensor = |values: Vec<f32>| {
                Tensor::<B, 2>::from_data(TensorData::new(values, [d0, d1]), &device)
            };
            let zero = weight.clone() - weight.detach();
            let zero = match inside {
                Some(inside) => zero * tensor(inside.into_iter().map(f32::from).collect()),
                None => zero,
            };
            zero + tensor(rounded)
        }
    };
    Ok(param.map(|_| out))
}
