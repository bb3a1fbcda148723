//! The model's weights one at a time, as checkpoints store them: row-major f32
//! with projections as `[d_out, d_in]`. Only one weight is copied out of the
//! model at a time, so an export never holds a second copy of the model.

use burn::module::Param;
use burn::nn::{Linear, RmsNorm};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use train::Transformer;
use train::config::ModelConfig;
use train::import::{LayerWeight, Weight, transpose};

use crate::error::ExportError;

/// One weight, row-major.
pub struct WeightData {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Every weight the model has, embeddings first, then layer by layer, then the
/// final norm and the untied head.
pub fn weight_list(config: &ModelConfig) -> Vec<Weight> {
    use LayerWeight::*;
    let mut list = vec![Weight::TokenEmbedding];
    for layer in 0..config.num_layers {
        let mut add = |present: bool, kind| {
            if present {
                list.push(Weight::Layer(layer, kind));
            }
        };
        add(true, AttnNorm);
        add(true, Q);
        add(config.qkv_bias, QBias);
        add(true, K);
        add(config.qkv_bias, KBias);
        add(true, V);
        add(config.qkv_bias, VBias);
        add(true, O);
        add(config.o_bias, OBias);
        add(config.architecture.has_qk_norm(), QNorm);
        add(config.architecture.has_qk_norm(), KNorm);
        add(true, FfnNorm);
        add(true, Gate);
        add(config.mlp_bias, GateBias);
        add(true, Up);
        add(config.mlp_bias, UpBias);
        add(true, Down);
        add(config.mlp_bias, DownBias);
    }
    list.push(Weight::OutputNorm);
    if !config.tie_word_embeddings {
        list.push(Weight::Output);
    }
    list
}

/// The row-major shape `weight` has in a checkpoint of `config`.
pub fn weight_shape(config: &ModelConfig, weight: Weight) -> Vec<usize> {
    use LayerWeight::*;
    let c = config;
    let (hidden, ffn) = (c.hidden_size, c.intermediate_size);
    match weight {
        Weight::TokenEmbedding | Weight::Output => vec![c.vocab_size, hidden],
        Weight::OutputNorm => vec![hidden],
        Weight::Layer(_, kind) => match kind {
            AttnNorm | FfnNorm | OBias | DownBias => vec![hidden],
            Q => vec![c.q_dim(), hidden],
            K | V => vec![c.kv_dim(), hidden],
            O => vec![hidden, c.q_dim()],
            QBias => vec![c.q_dim()],
            KBias | VBias => vec![c.kv_dim()],
            QNorm | KNorm => vec![c.head_dim],
            Gate | Up => vec![ffn, hidden],
            Down => vec![hidden, ffn],
            GateBias | UpBias => vec![ffn],
        },
    }
}

/// Copies one weight out of the model.
pub fn read_weight<B: Backend>(
    model: &Transformer<B>,
    weight: Weight,
) -> Result<WeightData, ExportError> {
    use LayerWeight::*;
    let shape = weight_shape(&model.config, weight);
    let missing = || ExportError::Model {
        tensor: weight.hf_name(),
        message: "the configuration calls for it but the model has none".into(),
    };
    let values = match weight {
        Weight::TokenEmbedding => host(&model.embed_tokens.weight, weight)?,
        Weight::OutputNorm => norm(&model.norm, weight)?,
        Weight::Output => {
            let head = model.lm_head.as_ref().ok_or_else(missing)?;
            projection(head, weight)?
        }
        Weight::Layer(i, kind) => {
            let layer = model.layers.get(i).ok_or_else(missing)?;
            let (attn, mlp) = (&layer.self_attn, &layer.mlp);
            let bias = |linear: &Linear<B>| {
                linear
                    .bias
                    .as_ref()
                    .ok_or_else(missing)
                    .and_then(|b| host(b, weight))
            };
            let head_norm = |n: &Option<RmsNorm<B>>| {
                n.as_ref().ok_or_else(missing).and_then(|n| norm(n, weight))
            };
            match kind {
                AttnNorm => norm(&layer.input_layernorm, weight)?,
                FfnNorm => norm(&layer.post_attention_layernorm, weight)?,
                Q => projection(&attn.q_proj, weight)?,
                K => projection(&attn.k_proj, weight)?,
                V => projection(&attn.v_proj, weight)?,
                O => projection(&attn.o_proj, weight)?,
                QBias => bias(&attn.q_proj)?,
                KBias => bias(&attn.k_proj)?,
                VBias => bias(&attn.v_proj)?,
                OBias => bias(&attn.o_proj)?,
                QNorm => head_norm(&attn.q_norm)?,
                KNorm => head_norm(&attn.k_norm)?,
                Gate => projection(&mlp.gate_proj, weight)?,
                Up => projection(&mlp.up_proj, weight)?,
                Down => projection(&mlp.down_proj, weight)?,
                GateBias => bias(&mlp.gate_proj)?,
                UpBias => bias(&mlp.up_proj)?,
                DownBias => bias(&mlp.down_proj)?,
            }
        }
    };
    let expected: usize = shape.iter().product();
    if values.len() != expected {
        return Err(ExportError::Model {
            tensor: weight.hf_name(),
            message: format!("holds {} values, its shape {shape:?} needs {expected}", values.len()),
        });
    }
    Ok(WeightData { shape, values })
}

fn host<B: Backend, const D: usize>(
    param: &Param<Tensor<B, D>>,
    weight: Weight,
) -> Result<Vec<f32>, ExportError> {
    param
        .val()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| ExportError::Model {
            tensor: weight.hf_name(),
            message: format!("cannot be read back as f32: {e:?}"),
        })
}

fn norm<B: Backend>(norm: &RmsNorm<B>, weight: Weight) -> Result<Vec<f32>, ExportError> {
    host(&norm.gamma, weight)
}

/// Burn's `Linear` holds `[d_in, d_out]`; checkpoints hold `[d_out, d_in]`.
fn projection<B: Backend>(linear: &Linear<B>, weight: Weight) -> Result<Vec<f32>, ExportError> {
    let [d_in, d_out] = linear.weight.val().dims();
    Ok(transpose(&host(&linear.weight, weight)?, d_in, d_out))
}

/// llama.cpp's converter permutation for Llama and Mistral Q/K weights
/// (`LlamaModel.permute`): within each head, checkpoint row `j · d/2 + i`
/// becomes row `2i + j`, so that llama.cpp's adjacent-pair RoPE sees the pairs
/// transformers' rotate-half RoPE rotates.
pub fn interleave_rows(data: &[f32], heads: usize, row_len: usize) -> Vec<f32> {
    let head_dim = data.len() / row_len.max(1) / heads.max(1);
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let src = (h * head_dim + j * half + i) * row_len;
                out.extend_from_slice(&data[src..src + row_len]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_pairs_the_halves_of_each_head() {
        // One head of 4 rows [a, b, c, d]: rotate-half pairs (a, c) and (b, d).
        assert_eq!(interleave_rows(&[0.0, 1.0, 2.0, 3.0], 1, 1), [0.0, 2.0, 1.0, 3.0]);
        let two_heads: Vec<f32> = (0..8).map(|v| v as f32).collect();
        assert_eq!(
            interleave_rows(&two_heads, 2, 1),
            [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]
        );
    }

    #[test]
    fn transpose_handles_ragged_tiles() {
        let (rows, cols) = (33, 70);
        let data: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let t = transpose(&data, rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(t[c * rows + r], data[r * cols + c]);
            }
        }
    }
}
