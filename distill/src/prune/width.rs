//! Width pruning (Minitron): the student keeps the teacher's layers but fewer
//! FFN channels, attention heads and hidden channels, those with the largest
//! activation importance on calibration data, and their weights as they are.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use datasets::Batch;
use serde::{Deserialize, Serialize};
use train::config::ModelConfig;
use train::optim::NamedTensor;
use train::{Transformer, optim};

use super::activation::{WidthImportance, width_importance};
use super::{PruneError, Width, layer_of};

/// The widths the student is pruned to; `None` keeps the teacher's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WidthTargets {
    /// FFN channels per layer (`intermediate_size`).
    pub ffn: Option<usize>,
    /// Query heads per layer; a multiple of the key/value heads, which all stay.
    pub heads: Option<usize>,
    /// The hidden size, the embedding's width.
    pub hidden: Option<usize>,
}

/// What the student kept of the teacher, as teacher indices in increasing
/// order. Student channel or head `i` is the teacher's `kept[i]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptWidths {
    /// Hidden channels, the same in every layer.
    pub hidden: Vec<usize>,
    /// Per layer, FFN channels.
    pub ffn: Vec<Vec<usize>>,
    /// Per layer, query heads: the same number from each key/value group, so
    /// that student head `i` reads key/value head `i / (heads / kv_heads)`.
    pub heads: Vec<Vec<usize>>,
}

/// A width-pruned student's record: what it kept and the importance it was
/// ranked by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WidthPruning {
    pub kept: KeptWidths,
    pub importance: WidthImportance,
}

/// The student of `teacher` pruned to `targets`, ranked by activation
/// importance over `batches`, on `device` of backend `S`.
pub fn prune_width<B: Backend, S: Backend>(
    teacher: &Transformer<B>,
    batches: &[Batch],
    targets: WidthTargets,
    device: &S::Device,
) -> Result<(Transformer<S>, WidthPruning), PruneError> {
    let config = &teacher.config;
    // A bad target fails before the calibration pass, not after it.
    let [ffn, heads, hidden] = check(targets, config)?;
    let importance = width_importance(teacher, batches)?;
    let group = config.num_heads / config.num_kv_heads;
    let kept = KeptWidths {
        hidden: most_important(&importance.hidden, hidden),
        ffn: importance
            .ffn
            .iter()
            .map(|layer| most_important(layer, ffn))
            .collect(),
        heads: importance
            .heads
            .iter()
            .map(|layer| {
                layer
                    .chunks(group)
                    .enumerate()
                    .flat_map(|(g, scores)| {
                        let kept = most_important(scores, heads / config.num_kv_heads);
                        kept.into_iter().map(move |h| g * group + h)
                    })
                    .collect()
            })
            .collect(),
    };
    let student = keep_widths(teacher, &kept, device)?;
    Ok((student, WidthPruning { kept, importance }))
}

/// The target widths, each the teacher's where absent, once they fit the
/// teacher: `[ffn, heads, hidden]`.
fn check(targets: WidthTargets, config: &ModelConfig) -> Result<[usize; 3], PruneError> {
    let widths = [
        (Width::Ffn, targets.ffn, config.intermediate_size),
        (Width::Heads, targets.heads, config.num_heads),
        (Width::Hidden, targets.hidden, config.hidden_size),
    ];
    let mut checked = [0; 3];
    for (slot, (width, target, teacher)) in checked.iter_mut().zip(widths) {
        let value = target.unwrap_or(teacher);
        if value == 0 || value > teacher {
            return Err(PruneError::WidthRange {
                width,
                value,
                teacher,
            });
        }
        *slot = value;
    }
    let [_, heads, _] = checked;
    if !heads.is_multiple_of(config.num_kv_heads) {
        return Err(PruneError::HeadGroups {
            heads,
            kv_heads: config.num_kv_heads,
            teacher: config.num_heads,
        });
    }
    Ok(checked)
}

/// The indices of the `keep` largest `scores`, in increasing order; ties go
/// to the earlier index.
fn most_important(scores: &[f64], keep: usize) -> Vec<usize> {
    let mut ranked: Vec<usize> = (0..scores.len()).collect();
    ranked.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept = ranked[..keep].to_vec();
    kept.sort_unstable();
    kept
}

/// The student of `teacher` with only the `kept` widths, on `device`.
fn keep_widths<B: Backend, S: Backend>(
    teacher: &Transformer<B>,
    kept: &KeptWidths,
    device: &S::Device,
) -> Result<Transformer<S>, PruneError> {
    let config = ModelConfig {
        hidden_size: kept.hidden.len(),
        intermediate_size: kept.ffn[0].len(),
        num_heads: kept.heads[0].len(),
        ..teacher.config.clone()
    };
    let head_dim = config.head_dim;
    let head_columns: Vec<Vec<usize>> = kept
        .heads
        .iter()
        .map(|heads| {
            heads
                .iter()
                .flat_map(|&h| h * head_dim..(h + 1) * head_dim)
                .collect()
        })
        .collect();
    // RMSNorm divides by the root mean square over all hidden channels. With
    // the dropped channels at zero, the mean square over the kept ones is
    // `teacher / student` times that over all, so each kept output would
    // shrink by sqrt(student / teacher): gamma grows by the inverse. Exact
    // but for the norm's epsilon.
    let gamma_scale = (teacher.config.hidden_size as f64 / config.hidden_size as f64).sqrt() as f32;
    let hidden = Some(kept.hidden.as_slice());
    let tensors = optim::named_tensors(teacher)
        .into_iter()
        .map(|(name, tensor)| {
            let pruned = match layer_of(&name) {
                None => match name.as_str() {
                    "embed_tokens.weight" => select(&tensor, None, hidden),
                    "lm_head.weight" => select(&tensor, hidden, None),
                    "norm.gamma" => scaled(select(&tensor, hidden, None), gamma_scale),
                    _ => return Err(PruneError::UnknownParameter(name)),
                },
                Some((layer, rest)) => {
                    let ffn = Some(kept.ffn[layer].as_slice());
                    let heads = Some(head_columns[layer].as_slice());
                    match rest {
                        "input_layernorm.gamma" | "post_attention_layernorm.gamma" => {
                            scaled(select(&tensor, hidden, None), gamma_scale)
                        }
                        "self_attn.q_proj.weight" => select(&tensor, hidden, heads),
                        "self_attn.q_proj.bias" => select(&tensor, heads, None),
                        "self_attn.k_proj.weight" | "self_attn.v_proj.weight" => {
                            select(&tensor, hidden, None)
                        }
                        "self_attn.o_proj.weight" => select(&tensor, heads, hidden),
                        "self_attn.o_proj.bias" | "mlp.down_proj.bias" => {
                            select(&tensor, hidden, None)
                        }
                        "mlp.gate_proj.weight" | "mlp.up_proj.weight" => {
                            select(&tensor, hidden, ffn)
                        }
                        "mlp.gate_proj.bias" | "mlp.up_proj.bias" => select(&tensor, ffn, None),
                        "mlp.down_proj.weight" => select(&tensor, ffn, hidden),
                        // Key/value heads all stay and head_dim is unchanged.
                        "self_attn.k_proj.bias"
                        | "self_attn.v_proj.bias"
                        | "self_attn.q_norm.gamma"
                        | "self_attn.k_norm.gamma" => tensor,
                        _ => return Err(PruneError::UnknownParameter(name)),
                    }
                }
            };
            Ok((name, pruned))
        })
        .collect::<Result<BTreeMap<String, NamedTensor>, PruneError>>()?;
    let student = config
        .init::<S>(device)
        .expect("narrower widths of a valid model that keep the head groups are valid");
    Ok(optim::load_named(student, &tensors, device)
        .expect("every weight of the student comes from the teacher's, cut to the kept widths"))
}

/// `tensor` (1-D or row-major 2-D) with only the `rows` (of a 1-D tensor:
/// elements) and `columns` given; `None` keeps all.
fn select(tensor: &NamedTensor, rows: Option<&[usize]>, columns: Option<&[usize]>) -> NamedTensor {
    let (height, width) = match tensor.shape[..] {
        [n] => (n, 1),
        [height, width] => (height, width),
        _ => unreachable!("the model's parameters are vectors and matrices"),
    };
    let all_rows: Vec<usize> = (0..height).collect();
    let all_columns: Vec<usize> = (0..width).collect();
    let rows = rows.unwrap_or(&all_rows);
    let columns = columns.unwrap_or(&all_columns);
    let values = rows
        .iter()
        .flat_map(|&r| columns.iter().map(move |&c| tensor.values[r * width + c]))
        .collect();
    let shape = if tensor.shape.len() == 1 {
        vec![rows.len()]
    } else {
        vec![rows.len(), columns.len()]
    };
    NamedTensor { shape, values }
}

fn scaled(mut tensor: NamedTensor, factor: f32) -> NamedTensor {
    for value in &mut tensor.values {
        *value *= factor;
    }
    tensor
}
