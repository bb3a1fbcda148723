//! One pre-norm decoder layer: attention and SwiGLU, each behind an RMSNorm and
//! added back to the residual stream.

use burn::module::Module;
use burn::nn::{RmsNorm, RmsNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

use super::attention::Attention;
use super::kv_cache::LayerCache;
use super::mlp::Mlp;
use super::normalize;
use super::rope::RopeTables;
use crate::config::ModelConfig;

#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub input_layernorm: RmsNorm<B>,
    pub self_attn: Attention<B>,
    pub post_attention_layernorm: RmsNorm<B>,
    pub mlp: Mlp<B>,
}

impl<B: Backend> DecoderLayer<B> {
    pub fn init(config: &ModelConfig, device: &B::Device) -> Self {
        let norm = || {
            RmsNormConfig::new(config.hidden_size)
                .with_epsilon(config.rms_norm_eps)
                .init(device)
        };
        Self {
            input_layernorm: norm(),
            self_attn: Attention::init(config, device),
            post_attention_layernorm: norm(),
            mlp: Mlp::init(config, device),
        }
    }

    /// See [`Attention::forward`] for the arguments.
    pub(super) fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: Option<Tensor<B, 4, Bool>>,
        cache: &mut LayerCache<B>,
    ) -> Tensor<B, 3> {
        let attended = self.self_attn.forward(
            normalize(&self.input_layernorm, x.clone()),
            rope,
            mask,
            cache,
        );
        let x = x + attended;
        let transformed = self
            .mlp
            .forward(normalize(&self.post_attention_layernorm, x.clone()));
        x + transformed
    }
}
