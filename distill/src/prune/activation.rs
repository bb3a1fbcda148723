//! Activation importance for width pruning (Minitron): how much each hidden
//! channel, attention head and FFN channel carries over real calibration
//! tokens. A unit whose output is small on the data the student will see is
//! the one whose removal changes the layer outputs least.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use datasets::Batch;
use serde::{Deserialize, Serialize};
use train::Transformer;
use train::trainer::{layout, token_tensor};

use super::PruneError;

/// Means over `tokens` real calibration tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WidthImportance {
    /// Per hidden channel: summed over every RMSNorm of the model (each
    /// layer's two, then the final one), the mean |output| of that channel.
    pub hidden: Vec<f64>,
    /// Per layer, per query head: the mean L2 norm of the head's contribution
    /// to the layer output, its attention output through its rows of `o_proj`.
    pub heads: Vec<Vec<f64>>,
    /// Per layer, per FFN channel: the mean |silu(gate)·up| times the L2 norm
    /// of the channel's row of `down_proj`.
    pub ffn: Vec<Vec<f64>>,
    pub tokens: u64,
}

/// Runs `model` over `batches` and measures the importance of its widths.
pub fn width_importance<B: Backend>(
    model: &Transformer<B>,
    batches: &[Batch],
) -> Result<WidthImportance, PruneError> {
    let config = &model.config;
    let layers = model.layers.len();
    let device = model.embed_tokens.weight.device();
    let mut hidden = vec![0.0f64; config.hidden_size];
    let mut heads = vec![vec![0.0f64; config.num_heads]; layers];
    let mut ffn = vec![vec![0.0f64; config.intermediate_size]; layers];
    let mut tokens = 0u64;
    // `o_proj` as one `[head_dim, hidden]` block of rows per head.
    let head_outputs: Vec<Tensor<B, 3>> = model
        .layers
        .iter()
        .map(|layer| {
            let weight = layer.self_attn.o_proj.weight.val();
            weight.reshape([config.num_heads, config.head_dim, config.hidden_size])
        })
        .collect();
    for batch in batches {
        let real: Vec<f32> = batch
            .document_ids
            .iter()
            .map(|&d| if d == 0 { 0.0 } else { 1.0 })
            .collect();
        tokens += real.iter().filter(|&&r| r > 0.0).count() as u64;
        let real = Tensor::<B, 2>::from_data(
            TensorData::new(real, [1, batch.rows * batch.seq_len]),
            &device,
        );
        let normed = model.probe_rows(token_tensor(batch, &device), layout(batch), |i, a| {
            add(&mut hidden, &real_sum(&real, flat(a.attention_input.abs())));
            add(&mut hidden, &real_sum(&real, flat(a.mlp_input.abs())));
            add(&mut ffn[i], &real_sum(&real, flat(a.intermediate.abs())));
            add(
                &mut heads[i],
                &real_sum(&real, head_contributions(a.heads, &head_outputs[i])),
            );
        });
        add(&mut hidden, &real_sum(&real, flat(normed.abs())));
    }
    if tokens == 0 {
        return Err(PruneError::NoCalibrationTokens);
    }
    for (sums, layer) in ffn.iter_mut().zip(&model.layers) {
        let weight = layer.mlp.down_proj.weight.val();
        let row_norms = host(
            weight
                .powi_scalar(2)
                .sum_dim(1)
                .sqrt()
                .reshape([1, config.intermediate_size]),
        );
        for (sum, norm) in sums.iter_mut().zip(row_norms) {
            *sum *= f64::from(norm);
        }
    }
    let mean =
        |sums: Vec<f64>| -> Vec<f64> { sums.into_iter().map(|s| s / tokens as f64).collect() };
    Ok(WidthImportance {
        hidden: mean(hidden),
        heads: heads.into_iter().map(mean).collect(),
        ffn: ffn.into_iter().map(mean).collect(),
        tokens,
    })
}

/// `[rows, seq, heads, head_dim]` attention outputs and `[heads, head_dim,
/// hidden]` output rows → `[rows · seq, heads]`, the L2 norm of each head's
/// contribution to each token's layer output.
fn head_contributions<B: Backend>(heads: Tensor<B, 4>, outputs: &Tensor<B, 3>) -> Tensor<B, 2> {
    let [rows, seq, num_heads, head_dim] = heads.dims();
    let per_head = heads
        .reshape([rows * seq, num_heads, head_dim])
        .swap_dims(0, 1);
    let contributions = per_head.matmul(outputs.clone());
    let norms = contributions.powi_scalar(2).sum_dim(2).sqrt();
    norms.reshape([num_heads, rows * seq]).transpose()
}

fn flat<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 2> {
    let [rows, seq, width] = x.dims();
    x.reshape([rows * seq, width])
}

/// The sum over real tokens (`real`, `[1, tokens]`, 1 or 0) of each column
/// of `x`, `[tokens, width]`.
fn real_sum<B: Backend>(real: &Tensor<B, 2>, x: Tensor<B, 2>) -> Vec<f32> {
    host(real.clone().matmul(x))
}

fn host<B: Backend>(x: Tensor<B, 2>) -> Vec<f32> {
    x.into_data()
        .convert::<f32>()
        .into_vec()
        .expect("converted to f32")
}

fn add(sums: &mut [f64], values: &[f32]) {
    for (sum, &value) in sums.iter_mut().zip(values) {
        *sum += f64::from(value);
    }
}
