//! The decoder-only transformer: embedding, decoder layers, final norm, output head.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Distribution, Int, Tensor, TensorData};

use super::INITIALIZER;
use super::decoder_layer::DecoderLayer;
use super::kv_cache::KvCache;
use super::rope::RopeTables;
use crate::config::ModelConfig;
use crate::error::ModelError;

/// A Llama-family language model. Field names follow the Hugging Face modules.
#[derive(Module, Debug)]
pub struct Transformer<B: Backend> {
    pub embed_tokens: Embedding<B>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
    /// `None` when the output head is tied to `embed_tokens`.
    pub lm_head: Option<Linear<B>>,
    /// Distillation's learned map from this model's hidden width to its
    /// teacher's, for hidden-state alignment between models of different
    /// widths: trained and checkpointed with the model, never part of it when
    /// exported or run.
    pub hidden_projection: Option<Linear<B>>,
    #[module(skip)]
    pub config: ModelConfig,
}

impl ModelConfig {
    /// A model with random weights (normal, σ = 0.02) and unit norms.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Transformer<B>, ModelError> {
        self.validate()?;
        Ok(Transformer {
            embed_tokens: EmbeddingConfig::new(self.vocab_size, self.hidden_size)
                .with_initializer(INITIALIZER)
                .init(device),
            layers: (0..self.num_layers)
                .map(|_| DecoderLayer::init(self, device))
                .collect(),
            norm: RmsNormConfig::new(self.hidden_size)
                .with_epsilon(self.rms_norm_eps)
                .init(device),
            lm_head: (!self.tie_word_embeddings).then(|| {
                LinearConfig::new(self.hidden_size, self.vocab_size)
                    .with_bias(false)
                    .with_initializer(INITIALIZER)
                    .init(device)
            }),
            hidden_projection: None,
            config: self.clone(),
        })
    }
}

/// Which positions a cached forward pass computes logits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsFor {
    All,
    /// Only the last new position: all that greedy decoding reads. It spares the
    /// output head's product for every other position, a fifth of the work per
    /// token of a 135M model with a 49k vocabulary.
    Last,
}

impl<B: Backend> Transformer<B> {
    /// Next-token logits for every position: token ids `[batch, seq]` →
    /// `[batch, seq, vocab]`. Each sequence starts at position 0.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let mut cache = self.new_cache();
        self.forward_with_cache(tokens, &mut cache, LogitsFor::All)
    }

    /// An empty key/value cache for [`Self::forward_with_cache`].
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.layers.len())
    }

    /// Next-token logits for `tokens`, `[batch, seq]`, which continue the sequences
    /// in `cache` (at positions `cache.len()..`), reading their earlier positions
    /// from the cache and adding the new ones to it. Returns `[batch, seq, vocab]`,
    /// or `[batch, 1, vocab]` for [`LogitsFor::Last`]. The batch size must be the
    /// one the cache was first filled with.
    pub fn forward_with_cache(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
        logits_for: LogitsFor,
    ) -> Tensor<B, 3> {
        let device = tokens.device();
        let seq = tokens.dims()[1];
        let start = cache.len();
        let rope = RopeTables::new(
            &self.config.rope,
            self.config.head_dim,
            start..start + seq,
            &device,
        );
        let mask = self.window_mask(start, seq, &device);
        let mut x = self.layers_forward(tokens, &rope, mask, cache);
        if logits_for == LogitsFor::Last {
            x = x.narrow(1, seq - 1, 1);
        }
        self.output_logits(super::normalize(&self.norm, x))
    }

    /// The residual stream after the last decoder layer, before the final norm.
    pub(super) fn layers_forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        rope: &RopeTables<B>,
        mask: Option<Tensor<B, 4, Bool>>,
        cache: &mut KvCache<B>,
    ) -> Tensor<B, 3> {
        self.layers_forward_observed(tokens, rope, mask, cache, &mut |_, _| {})
    }

    /// [`Self::layers_forward`], handing `observe` the input of each layer and
    /// then the last layer's output.
    pub(super) fn layers_forward_observed(
        &self,
        tokens: Tensor<B, 2, Int>,
        rope: &RopeTables<B>,
        mask: Option<Tensor<B, 4, Bool>>,
        cache: &mut KvCache<B>,
        observe: &mut impl FnMut(usize, &Tensor<B, 3>),
    ) -> Tensor<B, 3> {
        let seq = tokens.dims()[1];
        let mut x = self.embed_tokens.forward(tokens);
        for (i, (layer, layer_cache)) in self.layers.iter().zip(cache.extend(seq)).enumerate() {
            observe(i, &x);
            x = layer.forward(x, rope, mask.clone(), layer_cache);
        }
        observe(self.layers.len(), &x);
        x
    }

    /// This model with a hidden-state projection to `width` channels (see
    /// [`Transformer::hidden_projection`]), `weight` `[hidden, width]` given or
    /// drawn now (normal, variance 1 / hidden, so that states keep their
    /// scale): a lazily drawn one would take its values whenever it is first
    /// read, and a resumed run would not repeat them.
    pub fn with_hidden_projection(mut self, width: usize, weight: Option<Tensor<B, 2>>) -> Self {
        let device = self.embed_tokens.weight.device();
        let hidden = self.config.hidden_size;
        let weight = weight.unwrap_or_else(|| {
            let std = 1.0 / (hidden as f64).sqrt();
            Tensor::random([hidden, width], Distribution::Normal(0.0, std), &device)
        });
        let mut projection = LinearConfig::new(hidden, width)
            .with_bias(false)
            .init(&device);
        projection.weight = burn::module::Param::from_tensor(weight);
        self.hidden_projection = Some(projection);
        self
    }

    /// The output head on final-norm hidden states: `[batch, seq, hidden]` →
    /// `[batch, seq, vocab]`.
    pub fn output_logits(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lm_head {
            Some(head) => head.forward(x),
            None => {
                // A 2-D product reads the transposed embedding in place; a batched
                // one would first copy it to contiguous memory.
                let [batch, seq, hidden] = x.dims();
                let embedding = self.embed_tokens.weight.val();
                let logits = x
                    .reshape([batch * seq, hidden])
                    .matmul(embedding.transpose());
                logits.reshape([batch, seq, self.config.vocab_size])
            }
        }
    }

    /// The sliding-window part of the attention mask for `seq` queries at positions
    /// `start..` over keys at `0..start + seq`, `[1, 1, seq, start + seq]`, when the
    /// window is shorter than that (the causal part is the kernel's).
    pub(crate) fn window_mask(
        &self,
        start: usize,
        seq: usize,
        device: &B::Device,
    ) -> Option<Tensor<B, 4, Bool>> {
        let keys = start + seq;
        let window = self.config.sliding_window.filter(|&w| w < keys)?;
        let hidden: Vec<bool> = (start..keys)
            .flat_map(|q| (0..keys).map(move |k| k + window <= q))
            .collect();
        Some(Tensor::from_data(
            TensorData::new(hidden, [1, 1, seq, keys]),
            device,
        ))
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;

    use super::*;
    use crate::CpuBackend;
    use crate::config::{Architecture, RopeConfig, RopeScaling};

    #[test]
    fn random_model_runs_and_differentiates() {
        type B = Autodiff<CpuBackend>;
        let config = ModelConfig {
            architecture: Architecture::Qwen3,
            vocab_size: 50,
            hidden_size: 16,
            intermediate_size: 24,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 8,
            rms_norm_eps: 1e-6,
            rope: RopeConfig {
                theta: 10_000.0,
                scaling: RopeScaling::None,
            },
            max_position_embeddings: 64,
            tie_word_embeddings: true,
            qkv_bias: true,
            o_bias: false,
            mlp_bias: false,
            sliding_window: Some(3),
        };
        let device = Default::default();
        let model = config.init::<B>(&device).unwrap();
        let tokens = TensorData::new(vec![1i64, 2, 3, 4, 5, 49, 0, 7, 7, 1], [2, 5]);
        let logits = model.forward(Tensor::from_data(tokens, &device));
        assert_eq!(logits.dims(), [2, 5, 50]);
        let grads = logits.powi_scalar(2).mean().backward();
        let layer = &model.layers[1];
        for grad in [
            model.embed_tokens.weight.grad(&grads),
            layer.self_attn.k_proj.weight.grad(&grads),
            layer.mlp.down_proj.weight.grad(&grads),
        ] {
            let grad = grad.expect("parameter has a gradient");
            assert!(grad.abs().sum().into_scalar() > 0.0);
        }
        let q_norm = layer.self_attn.q_norm.as_ref().expect("qwen3 has q_norm");
        assert!(q_norm.gamma.grad(&grads).is_some());
    }
}
