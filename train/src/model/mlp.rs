//! The SwiGLU feed-forward block.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;

use super::{INITIALIZER, project};
use crate::config::ModelConfig;

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub gate_proj: Linear<B>,
    pub up_proj: Linear<B>,
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    pub fn init(config: &ModelConfig, device: &B::Device) -> Self {
        let (hidden, ffn, bias) = (
            config.hidden_size,
            config.intermediate_size,
            config.mlp_bias,
        );
        let linear = |d_in, d_out| {
            LinearConfig::new(d_in, d_out)
                .with_bias(bias)
                .with_initializer(INITIALIZER)
                .init(device)
        };
        Self {
            gate_proj: linear(hidden, ffn),
            up_proj: linear(hidden, ffn),
            down_proj: linear(ffn, hidden),
        }
    }

    /// `[batch, seq, hidden]` → `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        project(&self.down_proj, self.intermediate(x))
    }

    /// What `down_proj` reads, `silu(gate_proj(x)) · up_proj(x)`: `[batch, seq, ffn]`.
    pub(super) fn intermediate(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let (gate, up) = (
            project(&self.gate_proj, x.clone()),
            project(&self.up_proj, x),
        );
        crate::kernels::swiglu::try_swiglu(gate, up).unwrap_or_else(|(gate, up)| silu(gate) * up)
    }
}
