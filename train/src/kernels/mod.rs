//! decant's own CPU kernels under Burn, where a training step's time goes
//! (`benches/step_phases.rs`): the output head's chunked loss with its
//! gradients computed in place and handed to the autodiff graph, causal
//! attention with rotary positions and grouped heads, RMSNorm, SwiGLU's gate,
//! AdamW's update in one pass, and QAT's straight-through estimator. They run
//! when the backend is Flex under autodiff, the default CPU training backend
//! (attention, RMSNorm and SwiGLU also on plain Flex, forward only, for
//! teachers, evaluation and prefill);
//! on every other backend the callers keep their stock-op path, which the
//! tests compare the kernels with.
//!
//! They compute in f32: a tensor of another dtype (bf16 mixed precision)
//! keeps the stock path.
//!
//! The model code stays generic over the backend: [`flex_autodiff`] tells at
//! run time whether a tensor is Flex's under autodiff and hands over its
//! primitive, with no bound added to the generic code.

pub(crate) mod adamw;
pub(crate) mod attention;
mod gemm;
pub(crate) mod head;
mod inject;
pub(crate) mod norm;
mod simd;
pub(crate) mod straight_through;
pub(crate) mod swiglu;

use std::any::Any;

use burn::backend::Autodiff;
use burn::tensor::backend::{Backend, BackendTypes};
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_flex::{Flex, FlexTensor};

/// The backend the kernels run on.
pub(crate) type Ad = Autodiff<Flex>;

/// A tensor of [`Ad`] as its autodiff primitive: the Flex tensor with its
/// node in the graph.
pub(crate) type AdTensor = <Ad as BackendTypes>::FloatTensorPrimitive;

/// `tensor`'s autodiff primitive when `B` is [`Ad`], else `tensor` back.
pub(crate) fn flex_autodiff<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> Result<AdTensor, Tensor<B, D>> {
    if !is_flex_autodiff::<B>() || tensor.dtype() != DType::F32 {
        return Err(tensor);
    }
    let primitive: Box<dyn Any> = match tensor.into_primitive() {
        TensorPrimitive::Float(primitive) => Box::new(primitive),
        TensorPrimitive::QFloat(_) => unreachable!("the kernels' callers pass float tensors"),
    };
    Ok(*primitive
        .downcast::<AdTensor>()
        .expect("B is Autodiff<Flex>"))
}

/// The tensor of backend `B` (which must be [`Ad`]) for an autodiff primitive.
pub(crate) fn from_flex_autodiff<B: Backend, const D: usize>(tensor: AdTensor) -> Tensor<B, D> {
    let primitive: Box<dyn Any> = Box::new(tensor);
    let primitive = primitive
        .downcast::<B::FloatTensorPrimitive>()
        .unwrap_or_else(|_| panic!("from_flex_autodiff is called only when B is Autodiff<Flex>"));
    Tensor::from_primitive(TensorPrimitive::Float(*primitive))
}

/// `tensor`'s Flex tensor when `B` is Flex (a cheap clone of its storage handle).
pub(crate) fn flex_inner<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> Option<FlexTensor> {
    if !is_flex::<B>() || tensor.dtype() != DType::F32 {
        return None;
    }
    let primitive: Box<dyn Any> = match tensor.clone().into_primitive() {
        TensorPrimitive::Float(primitive) => Box::new(primitive),
        TensorPrimitive::QFloat(_) => return None,
    };
    primitive.downcast::<FlexTensor>().ok().map(|t| *t)
}

/// The tensor of backend `B` (which must be Flex) for a Flex tensor.
pub(crate) fn flex_outer<B: Backend, const D: usize>(tensor: FlexTensor) -> Tensor<B, D> {
    let primitive: Box<dyn Any> = Box::new(tensor);
    let primitive = primitive
        .downcast::<B::FloatTensorPrimitive>()
        .unwrap_or_else(|_| panic!("flex_outer is called only when B is Flex"));
    Tensor::from_primitive(TensorPrimitive::Float(*primitive))
}

/// A tensor of backend `B` (which must be [`Ad`]) holding `tensor`'s values,
/// outside any graph.
pub(crate) fn constant<B: Backend, const D: usize>(tensor: FlexTensor) -> Tensor<B, D> {
    let inner = Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(tensor));
    let tensor = flex_autodiff(Tensor::<Ad, D>::from_inner(inner))
        .unwrap_or_else(|_| unreachable!("an Ad tensor"));
    from_flex_autodiff(tensor)
}

pub(crate) fn is_flex<B: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<Flex>()
}

pub(crate) fn is_flex_autodiff<B: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<Ad>()
}

/// `tensor`'s values, contiguous, as f32.
fn values(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(values) => std::borrow::Cow::Borrowed(values),
        None => std::borrow::Cow::Owned(
            tensor
                .to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
                .to_vec(),
        ),
    }
}

/// A Flex tensor of `shape` holding `values` (no copy).
fn flex_tensor(values: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(burn::tensor::TensorData::new(values, shape.into()))
}
