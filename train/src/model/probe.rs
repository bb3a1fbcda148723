//! The forward pass over training rows with what each decoder layer computes
//! inside handed out: the activations that width pruning ranks hidden
//! channels, attention heads and FFN channels by, and the inputs of every
//! matrix product that an importance matrix sums.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::rows::RowLayout;
use super::transformer::Transformer;

/// One decoder layer's inner activations over a `[rows, seq]` batch.
#[derive(Clone, Debug)]
pub struct LayerActivations<B: Backend> {
    /// The input norm's output, which attention reads: `[rows, seq, hidden]`.
    pub attention_input: Tensor<B, 3>,
    /// Each query head's attention output before `o_proj`:
    /// `[rows, seq, heads, head_dim]`.
    pub heads: Tensor<B, 4>,
    /// The post-attention norm's output, which the MLP reads: `[rows, seq, hidden]`.
    pub mlp_input: Tensor<B, 3>,
    /// `silu(gate_proj(x)) · up_proj(x)`, which `down_proj` reads: `[rows, seq, ffn]`.
    pub intermediate: Tensor<B, 3>,
}

impl<B: Backend> Transformer<B> {
    /// [`Self::hidden_states_rows`], handing `observe(i, activations)` what
    /// decoder layer `i` computed inside. Returns the final norm's output,
    /// `[rows, seq, hidden]`.
    pub fn probe_rows(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: RowLayout<'_>,
        mut observe: impl FnMut(usize, LayerActivations<B>),
    ) -> Tensor<B, 3> {
        let (rope, mask) = self.row_attention(&tokens, layout);
        let [rows, seq] = tokens.dims();
        let mut cache = self.new_cache();
        let mut x = self.embed_tokens.forward(tokens);
        // The layer's own forward keeps no intermediate alive, so that Flex may
        // update its tensors in place; this one keeps them for `observe`.
        for (i, (layer, layer_cache)) in self.layers.iter().zip(cache.extend(seq)).enumerate() {
            let attn = &layer.self_attn;
            let attention_input = super::normalize(&layer.input_layernorm, x.clone());
            let heads = attn.attend(attention_input.clone(), &rope, mask.clone(), layer_cache);
            x = x + super::project(&attn.o_proj, heads.clone());
            let mlp_input = super::normalize(&layer.post_attention_layernorm, x.clone());
            let intermediate = layer.mlp.intermediate(mlp_input.clone());
            x = x + super::project(&layer.mlp.down_proj, intermediate.clone());
            let heads = heads.reshape([rows, seq, attn.num_heads, attn.head_dim]);
            observe(
                i,
                LayerActivations {
                    attention_input,
                    heads,
                    mlp_input,
                    intermediate,
                },
            );
        }
        super::normalize(&self.norm, x)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::silu;
    use burn::tensor::{TensorData, Tolerance};

    use super::*;
    use crate::CpuBackend;
    use crate::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};

    type B = CpuBackend;

    /// Packed rows with padding and a sliding window: the probe's path through
    /// the layers is the plain one, and each activation is what the layer's
    /// parts compute from the previous one.
    #[test]
    fn the_probe_computes_what_the_forward_pass_does() {
        let model = ModelConfig {
            architecture: Architecture::Qwen3,
            vocab_size: 30,
            hidden_size: 16,
            intermediate_size: 20,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 6,
            rms_norm_eps: 1e-5,
            rope: RopeConfig {
                theta: 10_000.0,
                scaling: RopeScaling::None,
            },
            max_position_embeddings: 32,
            tie_word_embeddings: false,
            qkv_bias: true,
            o_bias: false,
            mlp_bias: false,
            sliding_window: Some(3),
        }
        .init::<B>(&Default::default())
        .unwrap();
        let ids = [3i64, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0];
        let layout = RowLayout {
            rows: 2,
            seq: 6,
            position_ids: &[0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 0],
            document_ids: &[1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 0, 0],
        };
        let tokens = || {
            Tensor::<B, 2, Int>::from_data(
                TensorData::new(ids.to_vec(), [2, 6]),
                &Default::default(),
            )
        };
        let mut seen = Vec::new();
        let probed = model.probe_rows(tokens(), layout, |i, a| seen.push((i, a)));
        let plain = model.hidden_states_rows(tokens(), layout);
        probed
            .into_data()
            .assert_approx_eq::<f32>(&plain.into_data(), Tolerance::absolute(1e-6));

        assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1]);
        let (_, first) = &seen[0];
        assert_eq!(first.heads.dims(), [2, 6, 4, 6]);
        let layer = &model.layers[0];
        let embedded = model.embed_tokens.forward(tokens());
        first.attention_input.to_data().assert_approx_eq::<f32>(
            &layer.input_layernorm.forward(embedded.clone()).into_data(),
            Tolerance::absolute(1e-6),
        );
        let attended = embedded
            + layer
                .self_attn
                .o_proj
                .forward(first.heads.clone().reshape([2, 6, 24]));
        first.mlp_input.to_data().assert_approx_eq::<f32>(
            &layer
                .post_attention_layernorm
                .forward(attended.clone())
                .into_data(),
            Tolerance::absolute(1e-6),
        );
        let mlp = &layer.mlp;
        let (x, gate) = (first.mlp_input.clone(), &mlp.gate_proj);
        first.intermediate.to_data().assert_approx_eq::<f32>(
            &(silu(gate.forward(x.clone())) * mlp.up_proj.forward(x)).into_data(),
            Tolerance::absolute(1e-6),
        );
        let (_, second) = &seen[1];
        let transformed = attended + mlp.down_proj.forward(first.intermediate.clone());
        second.attention_input.to_data().assert_approx_eq::<f32>(
            &model.layers[1]
                .input_layernorm
                .forward(transformed)
                .into_data(),
            Tolerance::absolute(1e-6),
        );
    }
}
