//! Mixed precision: each step computes on a bf16 copy of the f32 master
//! weights, and its gradients are brought back to f32 for the optimizer.

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Tensor};

use super::config::Precision;
use crate::error::TrainError;
use crate::model::Transformer;

/// The dtype a step computes in.
pub(super) fn dtype(precision: Precision) -> DType {
    match precision {
        Precision::F32 => DType::F32,
        Precision::Bf16 => DType::BF16,
    }
}

/// Refuses a precision the backend cannot compute in, before any step.
pub(super) fn check<B: Backend>(
    precision: Precision,
    device: &B::Device,
) -> Result<(), TrainError> {
    let dtype = dtype(precision);
    if dtype != DType::F32 && !B::supports_dtype(device, dtype) {
        return Err(TrainError::Config(format!(
            "this backend cannot compute in {precision:?} (dtype {dtype:?}); train in f32"
        )));
    }
    Ok(())
}

/// A copy of `model` in `dtype` whose parameters are leaves of their own
/// with the master's parameter ids, so that its gradients find the master's
/// parameters.
pub(super) fn working_copy<B: AutodiffBackend>(
    model: &Transformer<B>,
    dtype: DType,
) -> Transformer<B> {
    struct Cast(DType);
    impl<B: AutodiffBackend> ModuleMapper<B> for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            let require_grad = tensor.is_require_grad();
            let mut cast = Tensor::from_inner(tensor.inner().cast(self.0));
            if require_grad {
                cast = cast.require_grad();
            }
            Param::from_mapped_value(id, cast, mapper)
        }
    }
    burn::module::Module::map(model.clone(), &mut Cast(dtype))
}

/// `grads` of `model`'s parameters, each cast to f32.
pub(super) fn f32_gradients<B: AutodiffBackend>(
    model: &Transformer<B>,
    mut grads: GradientsParams,
) -> GradientsParams {
    struct ToF32<'a>(&'a mut GradientsParams);
    impl<B: AutodiffBackend> ModuleVisitor<B> for ToF32<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grad) = self.0.remove::<B::InnerBackend, D>(param.id) {
                self.0
                    .register::<B::InnerBackend, D>(param.id, grad.cast(DType::F32));
            }
        }
    }
    burn::module::Module::visit(model, &mut ToF32(&mut grads));
    grads
}
