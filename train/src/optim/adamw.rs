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
        let grad = if self.grad_scale == 1.0 {
            grad
        } else {
            grad.mul_scalar(self.grad_scale)
        };
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.optimizer.config;
        let t = self.optimizer.steps as i32;
        let moments = match self.optimizer.moments.remove(&name) {
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
        // torch.optim.AdamW: decay first, then the bias-corrected Adam step.
        let decay = if D > 1 { weight_decay } else { 0.0 };
        let weight = if decay == 0.0 {
            weight
        } else {
            weight.mul_scalar(1.0 - self.lr * decay)
        };
        let bias1 = 1.0 - beta1.powi(t);
        let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        let denom = moments
            .exp_avg_sq
            .clone()
            .sqrt()
            .div_scalar(bias2_sqrt)
            .add_scalar(eps);
        let step = moments
            .exp_avg
            .clone()
            .div(denom)
            .mul_scalar(self.lr / bias1);
        let updated = (weight - step).reshape(dims);
        self.optimizer.moments.insert(name, moments);
        let updated = Tensor::from_inner(updated).require_grad();
        Param::from_mapped_value(id, updated, mapper)
    }
}
