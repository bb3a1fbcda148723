//! The model's forward pass with the input of every layer matmul handed to an
//! observer: the same operations as [`Transformer::forward`] in the same order
//! (a test holds the logits equal), without a key/value cache.

use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Int, Tensor};

use crate::import::LayerWeight;
use crate::model::{Attention, DecoderLayer, RopeTables, Transformer};

/// `[batch, seq, vocab]` logits of `tokens`, `[batch, seq]` from position 0;
/// `observe(layer, weights, input)` sees each matmul input `[batch, seq, d_in]`
/// once, with every weight that multiplies it (q, k and v share one input,
/// gate and up another).
pub(super) fn observed_forward<B: Backend>(
    model: &Transformer<B>,
    tokens: Tensor<B, 2, Int>,
    observe: &mut impl FnMut(usize, &[LayerWeight], &Tensor<B, 3>),
) -> Tensor<B, 3> {
    let device = tokens.device();
    let seq = tokens.dims()[1];
    let config = &model.config;
    let rope = RopeTables::new(&config.rope, config.head_dim, 0..seq, &device);
    let mask = model.window_mask(0, seq, &device);
    let mut x = model.embed_tokens.forward(tokens);
    for (index, layer) in model.layers.iter().enumerate() {
        x = layer_forward(layer, x, &rope, mask.clone(), &mut |w, t| {
            observe(index, w, t)
        });
    }
    let x = model.norm.forward(x);
    match &model.lm_head {
        Some(head) => head.forward(x),
        None => {
            let [batch, seq, hidden] = x.dims();
            let embedding = model.embed_tokens.weight.val();
            x.reshape([batch * seq, hidden])
                .matmul(embedding.transpose())
                .reshape([batch, seq, config.vocab_size])
        }
    }
}

fn layer_forward<B: Backend>(
    layer: &DecoderLayer<B>,
    x: Tensor<B, 3>,
    rope: &RopeTables<B>,
    mask: Option<Tensor<B, 4, burn::tensor::Bool>>,
    observe: &mut impl FnMut(&[LayerWeight], &Tensor<B, 3>),
) -> Tensor<B, 3> {
    let attended = attention_forward(
        &layer.self_attn,
        layer.input_layernorm.forward(x.clone()),
        rope,
        mask,
        observe,
    );
    let x = x + attended;
    let h = layer.post_attention_layernorm.forward(x.clone());
    observe(&[LayerWeight::Gate, LayerWeight::Up], &h);
    let mlp = &layer.mlp;
    let gated = silu(mlp.gate_proj.forward(h.clone())) * mlp.up_proj.forward(h);
    observe(&[LayerWeight::Down], &gated);
    x + mlp.down_proj.forward(gated)
}

fn attention_forward<B: Backend>(
    attn: &Attention<B>,
    x: Tensor<B, 3>,
    rope: &RopeTables<B>,
    mask: Option<Tensor<B, 4, burn::tensor::Bool>>,
    observe: &mut impl FnMut(&[LayerWeight], &Tensor<B, 3>),
) -> Tensor<B, 3> {
    observe(&[LayerWeight::Q, LayerWeight::K, LayerWeight::V], &x);
    let [batch, seq, _] = x.dims();
    let heads = |t: Tensor<B, 3>, n| t.reshape([batch, seq, n, attn.head_dim]);
    let q = heads(attn.q_proj.forward(x.clone()), attn.num_heads);
    let k = heads(attn.k_proj.forward(x.clone()), attn.num_kv_heads);
    let v = heads(attn.v_proj.forward(x), attn.num_kv_heads);
    let (q, k) = match (&attn.q_norm, &attn.k_norm) {
        (Some(q_norm), Some(k_norm)) => (q_norm.forward(q), k_norm.forward(k)),
        _ => (q, k),
    };
    let q = rope.apply(q.swap_dims(1, 2));
    let k = attn.share_kv_heads(rope.apply(k.swap_dims(1, 2)));
    let v = attn.share_kv_heads(v.swap_dims(1, 2));
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    let out = attention(q, k, v, mask, None, options)
        .swap_dims(1, 2)
        .reshape([batch, seq, attn.num_heads * attn.head_dim]);
    observe(&[LayerWeight::O], &out);
    attn.o_proj.forward(out)
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;
    use crate::CpuBackend;
    use crate::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};

    fn config(architecture: Architecture, tied: bool, window: Option<usize>) -> ModelConfig {
        ModelConfig {
            architecture,
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
            tie_word_embeddings: tied,
            qkv_bias: architecture != Architecture::Llama,
            o_bias: false,
            mlp_bias: false,
            sliding_window: window,
        }
    }

    #[test]
    fn logits_equal_the_model_forward_and_every_matmul_is_seen() {
        let device = Default::default();
        for config in [
            config(Architecture::Llama, true, None),
            config(Architecture::Qwen3, false, Some(3)),
            config(Architecture::Qwen2, true, None),
        ] {
            let model = config.init::<CpuBackend>(&device).unwrap();
            let ids = TensorData::new(vec![1i64, 2, 3, 4, 5, 49, 0, 7, 7, 1], [2, 5]);
            let tokens = Tensor::<CpuBackend, 2, Int>::from_data(ids, &device);
            let mut seen = Vec::new();
            let observed = observed_forward(&model, tokens.clone(), &mut |layer, weights, x| {
                seen.push((layer, weights.to_vec(), x.dims()));
            });
            let plain: Vec<f32> = model.forward(tokens).into_data().to_vec().unwrap();
            let observed: Vec<f32> = observed.into_data().to_vec().unwrap();
            assert_eq!(plain, observed, "{:?}", config.architecture);
            use LayerWeight::*;
            let per_layer = |l| {
                [
                    (l, vec![Q, K, V], [2, 5, 16]),
                    (l, vec![O], [2, 5, 32]),
                    (l, vec![Gate, Up], [2, 5, 16]),
                    (l, vec![Down], [2, 5, 24]),
                ]
            };
            assert_eq!(seen, [per_layer(0), per_layer(1)].concat());
        }
    }
}
