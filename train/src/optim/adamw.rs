//! AdamW with decoupled weight decay (Loshchilov & Hutter), step for step as
//! `torch.optim.AdamW` computes it, with no decay on one-dimensional parameters
//! (norm scales and biases) as transformers' Trainer groups them.
//!
//! Decant keeps its own rather than Burn's: the moments are held by parameter
//! name, so that a checkpoint stores them next to the weights in safetensors and a
//! resumed run continues bit for bit, and the global-norm clipping factor and the
//! decay exemption need hooks Burn's optimizer does not have.

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::params::NamedTensor;
use crate::error::TrainError;
use crate::kernels::{self, adamw::AdamWStep};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults but for the decay, which is transformers' usual 0.01.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// One parameter's first and second moments.
struct Moments<B: Backend> {
    exp_avg: Tensor<B, 1>,
    exp_avg_sq: Tensor<B, 1>,
}

pub struct AdamW<B: AutodiffBackend> {
    config: AdamWConfig,
    /// Optimizer steps taken, for the bias corrections.
    steps: u64,
    moments: BTreeMap<String, Moments<B::InnerBackend>>,
}

/// The optimizer's state as host tensors, for a checkpoint: each parameter's
/// `exp_avg` and `exp_avg_sq` flattened, and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWState {
    pub steps: u64,
    pub moments: BTreeMap<String, (NamedTensor, NamedTensor)>,
}

impl<B: AutodiffBackend> AdamW<B> {
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            steps: 0,
            moments: BTreeMap::new(),
        }
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update of every parameter that has a gradient in `grads`, each
    /// gradient multiplied by `grad_scale` first (the clipping factor).
    pub fn step<M: AutodiffModule<B>>(
        &mut self,
        module: M,
        grads: GradientsParams,
        lr: f64,
        grad_scale: f64,
    ) -> M {
        self.steps += 1;
        let mut mapper = Update {
            optimizer: self,
            grads,
            lr,
            grad_scale,
            path: Vec::new(),
        };
        module.map(&mut mapper)
    }

    pub fn state(&self) -> AdamWState {
        let host = |t: &Tensor<B::InnerBackend, 1>| NamedTensor {
            shape: t.dims().to_vec(),
            values: t.to_data().convert::<f32>().into_vec().expect("f32"),
        };
        AdamWState {
            steps: self.steps,
            moments: self
                .moments
                .iter()
                .map(|(name, m)| (name.clone(), (host(&m.exp_avg), host(&m.exp_avg_sq))))
                .collect(),
        }
    }

    pub fn load_state(
        config: AdamWConfig,
        state: &AdamWState,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        let device_tensor = |name: &str, t: &NamedTensor| {
            if t.shape != [t.values.len()] {
                return Err(TrainError::ParameterShape {
                    name: name.to_owned(),
                    expected: vec![t.values.len()],
                    actual: t.shape.clone(),
                });
            }
            let data = TensorData::new(t.values.clone(), t.shape.clone());
            Ok(Tensor::<B, 1>::from_data(data, device).inner())
        };
        let moments = state
            .moments
            .iter()
            .map(|(name, (avg, avg_sq))| {
                Ok((
                    name.clone(),
                    Moments {
                        exp_avg: device_tensor(name, avg)?,
                        exp_avg_sq: device_tensor(name, avg_sq)?,
                    },
                ))
            })
            .collect::<Result<_, TrainError>>()?;
        Ok(Self {
            config,
            steps: state.steps,
            moments,
        })
    }
}

struct Update<'a, B: AutodiffBackend> {
    optimizer: &'a mut AdamW<B>,
    grads: GradientsParams,
    lr: f64,
    grad_scale: f64,
    path: Vec<String>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Update<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let name = self.path.join(".");
        let dims = tensor.dims();
        let weight = tensor.inner().reshape([-1]);
        let grad = grad.reshape([-1]);
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.optimizer.config;
        let t = self.optimizer.steps as i32;
        // torch.optim.AdamW: decay first, then the bias-corrected Adam step.
        let decay = if D > 1 { weight_decay } else { 0.0 };
        let step = AdamWStep {
            grad_scale: self.grad_scale,
            beta1,
            beta2,
            eps,
            decay: 1.0 - self.lr * decay,
            bias2_sqrt: (1.0 - beta2.powi(t)).sqrt(),
            step_size: self.lr / (1.0 - beta1.powi(t)),
        };
        let previous = self
            .optimizer
            .moments
            .remove(&name)
            .map(|m| (m.exp_avg, m.exp_avg_sq));
        let (updated, moments) = match kernels::adamw::adamw(weight, grad, previous, step) {
            Ok([updated, exp_avg, exp_avg_sq]) => (
                updated,
                Moments {
                    exp_avg,
                    exp_avg_sq,
                },
            ),
            Err((weight, grad, previous)) => {
                let previous = previous.map(|(exp_avg, exp_avg_sq)| Moments {
                    exp_avg,
                    exp_avg_sq,
                });
                stock_update(weight, grad, previous, step)
            }
        };
        self.optimizer.moments.insert(name, moments);
        let updated = Tensor::from_inner(updated.reshape(dims)).require_grad();
        Param::from_mapped_value(id, updated, mapper)
    }
}

/// The update of [`kernels::adamw`] in Burn's ops, for any backend.
fn stock_update<B: Backend>(
    weight: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    previous: Option<Moments<B>>,
    step: AdamWStep,
) -> (Tensor<B, 1>, Moments<B>) {
    let AdamWStep {
        grad_scale,
        beta1,
        beta2,
        eps,
        decay,
        bias2_sqrt,
        step_size,
    } = step;
    let grad = if grad_scale == 1.0 {
        grad
    } else {
        grad.mul_scalar(grad_scale)
    };
    let moments = match previous {
        Some(m) => Moments {
            exp_avg: m.exp_avg.mul_scalar(beta1) + grad.clone().mul_scalar(1.0 - beta1),
            exp_avg_sq: m.exp_avg_sq.mul_scalar(beta2)
                + grad.clone().powi_scalar(2).mul_scalar(1.0 - beta2),
        },
        None => Moments {
            exp_avg: grad.clone().mul_scalar(1.0 - beta1),
            exp_avg_sq: grad.powi_scalar(2).mul_scalar(1.0 - beta2),
        },
    };
    let weight = if decay == 1.0 {
        weight
    } else {
        weight.mul_scalar(decay)
    };
    let denom = moments
        .exp_avg_sq
        .clone()
        .sqrt()
        .div_scalar(bias2_sqrt)
        .add_scalar(eps);
    let step = moments.exp_avg.clone().div(denom).mul_scalar(step_size);
    (weight - step, moments)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::*;
    use crate::CpuBackend;

    type F = CpuBackend;

    /// The one-pass kernel gives the stock ops' bits: fresh and carried
    /// moments, with and without decay and gradient scaling.
    #[test]
    fn the_kernel_update_is_the_stock_update_bit_for_bit() {
        let device = Default::default();
        let random = |seed: u64| {
            F::seed(&device, seed);
            Tensor::<F, 1>::random([10_007], Distribution::Normal(0.0, 1.0), &device)
        };
        let (weight, grad) = (random(1), random(2));
        let moments = Moments {
            exp_avg: random(3).mul_scalar(0.1),
            exp_avg_sq: random(4).powi_scalar(2).mul_scalar(0.01),
        };
        for (t, decay, grad_scale, carried) in [
            (1, 0.0, 1.0, false),
            (7, 0.01, 0.37, true),
            (3, 0.1, 1.0, true),
        ] {
            let (beta1, beta2, lr) = (0.9f64, 0.999f64, 3e-4);
            let step = AdamWStep {
                grad_scale,
                beta1,
                beta2,
                eps: 1e-8,
                decay: 1.0 - lr * decay,
                bias2_sqrt: (1.0 - beta2.powi(t)).sqrt(),
                step_size: lr / (1.0 - beta1.powi(t)),
            };
            let previous = carried.then(|| Moments {
                exp_avg: moments.exp_avg.clone(),
                exp_avg_sq: moments.exp_avg_sq.clone(),
            });
            let fused = kernels::adamw::adamw(
                weight.clone(),
                grad.clone(),
                previous
                    .as_ref()
                    .map(|m| (m.exp_avg.clone(), m.exp_avg_sq.clone())),
                step,
            )
            .unwrap_or_else(|_| panic!("Flex has the kernel"));
            let (updated, stock) = stock_update(weight.clone(), grad.clone(), previous, step);
            for (kernel, stock) in fused
                .into_iter()
                .zip([updated, stock.exp_avg, stock.exp_avg_sq])
            {
                assert_eq!(
                    kernel.into_data().to_vec::<f32>().unwrap(),
                    stock.into_data().to_vec::<f32>().unwrap()
                );
            }
        }
    }
}
