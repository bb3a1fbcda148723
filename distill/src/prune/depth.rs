//! Depth pruning. A layer's importance is its Block Influence (ShortGPT):
//! one minus the mean cosine similarity between the residual stream entering
//! and leaving it over real calibration tokens. A layer that barely turns the
//! hidden states is the one whose removal changes them least, so the student
//! keeps the most influential layers, in their original order.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use datasets::Batch;
use serde::{Deserialize, Serialize};
use train::config::ModelConfig;
use train::optim::NamedTensor;
use train::trainer::{layout, token_tensor};
use train::{Transformer, optim};

use super::{PruneError, layer_of};

/// Block Influence of every layer, measured over `tokens` calibration tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerImportance {
    pub influence: Vec<f64>,
    pub tokens: u64,
}

/// Runs `model` over `batches` and measures each layer's Block Influence.
pub fn layer_importance<B: Backend>(
    model: &Transformer<B>,
    batches: &[Batch],
) -> Result<LayerImportance, PruneError> {
    let layers = model.layers.len();
    let mut sums = vec![0.0f64; layers];
    let mut tokens = 0u64;
    let device = model.embed_tokens.weight.device();
    for batch in batches {
        let real: Vec<bool> = batch.document_ids.iter().map(|&d| d != 0).collect();
        tokens += real.iter().filter(|&&r| r).count() as u64;
        let mut previous: Option<Tensor<B, 3>> = None;
        model.hidden_states_rows_observed(
            token_tensor(batch, &device),
            layout(batch),
            |i, x| {
                if let Some(input) = previous.replace(x.clone()) {
                    let cosines = cosine_per_token(input, x.clone());
                    sums[i - 1] += cosines
                        .iter()
                        .zip(&real)
                        .filter(|(_, r)| **r)
                        .map(|(&c, _)| 1.0 - f64::from(c))
                        .sum::<f64>();
                }
            },
        );
    }
    if tokens == 0 {
        return Err(PruneError::NoCalibrationTokens);
    }
    Ok(LayerImportance {
        influence: sums.into_iter().map(|s| s / tokens as f64).collect(),
        tokens,
    })
}

/// Cosine similarity along the hidden dimension for each of `[rows, seq]`.
fn cosine_per_token<B: Backend>(a: Tensor<B, 3>, b: Tensor<B, 3>) -> Vec<f32> {
    let dot = (a.clone() * b.clone()).sum_dim(2);
    let norms = (a.powi_scalar(2).sum_dim(2) * b.powi_scalar(2).sum_dim(2)).sqrt();
    let cosine = dot / norms.clamp_min(1e-12);
    cosine
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("converted to f32")
}

/// The `keep` most influential layers, in increasing order; ties go to the
/// earlier layer.
pub fn most_important(importance: &LayerImportance, keep: usize) -> Result<Vec<usize>, PruneError> {
    let layers = importance.influence.len();
    if keep == 0 || keep > layers {
        return Err(PruneError::KeepCount { keep, layers });
    }
    let mut ranked: Vec<usize> = (0..layers).collect();
    ranked.sort_by(|&a, &b| {
        importance.influence[b]
            .total_cmp(&importance.influence[a])
            .then(a.cmp(&b))
    });
    let mut kept = ranked[..keep].to_vec();
    kept.sort_unstable();
    Ok(kept)
}

/// The student of `teacher`'s `layers` (strictly increasing), with every other
/// weight (embeddings, final norm, head) copied, on `device` of backend `S`.
pub fn keep_layers<B: Backend, S: Backend>(
    teacher: &Transformer<B>,
    layers: &[usize],
    device: &S::Device,
) -> Result<Transformer<S>, PruneError> {
    let total = teacher.layers.len();
    if layers.is_empty() {
        return Err(PruneError::KeepCount { keep: 0, layers: total });
    }
    if let Some(&layer) = layers.iter().find(|&&l| l >= total) {
        return Err(PruneError::NoSuchLayer { layer, layers: total });
    }
    if let Some(pair) = layers.windows(2).find(|pair| pair[0] >= pair[1]) {
        return Err(PruneError::Unordered(pair[0], pair[1]));
    }
    let renumbered: BTreeMap<usize, usize> =
        layers.iter().enumerate().map(|(new, &old)| (old, new)).collect();
    let tensors: BTreeMap<String, NamedTensor> = optim::named_tensors(teacher)
        .into_iter()
        .filter_map(|(name, tensor)| match layer_of(&name) {
            Some((old, rest)) => renumbered
                .get(&old)
                .map(|new| (format!("layers.{new}.{rest}"), tensor)),
            None => Some((name, tensor)),
        })
        .collect();
    let config = ModelConfig {
        num_layers: layers.len(),
        ..teacher.config.clone()
    };
    let student = config
        .init::<S>(device)
        .expect("a config with fewer layers of a valid model is valid");
    Ok(optim::load_named(student, &tensors, device)
        .expect("every weight of the student comes from the teacher with its shape"))
}
