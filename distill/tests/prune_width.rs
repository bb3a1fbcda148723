//! Width pruning: a student that keeps every width is the teacher, one pruned
//! of FFN channels, heads or hidden channels that contribute nothing computes
//! exactly what the teacher does, and activation importance is what its
//! definition says on the calibration tokens.

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, Tolerance};
use datasets::{Batch, Documents, Loader, LoaderConfig, Order, Shard};
use distill::prune::{
    PruneError, Width, WidthPruning, WidthTargets, prune_width, width_importance,
};
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use train::optim::{NamedTensor, load_named, named_tensors};
use train::{CpuBackend, Transformer};

type B = CpuBackend;

const VOCAB: usize = 24;

/// Grouped-query attention (4 heads, 2 key/value heads), an untied head, and
/// biases on `o_proj` and the MLP so that every bias's pruning is exercised.
fn llama() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: VOCAB,
        hidden_size: 32,
        intermediate_size: 40,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: 32,
        tie_word_embeddings: false,
        qkv_bias: false,
        o_bias: true,
        mlp_bias: true,
        sliding_window: None,
    }
}

/// Qwen2's shape: biases on q/k/v, tied embeddings, three query heads per
/// key/value head, and `heads × head_dim` other than the hidden size.
fn qwen2() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Qwen2,
        hidden_size: 24,
        intermediate_size: 36,
        num_heads: 6,
        head_dim: 6,
        tie_word_embeddings: true,
        qkv_bias: true,
        o_bias: false,
        mlp_bias: false,
        ..llama()
    }
}

/// Qwen3's per-head query and key norms, which width pruning leaves as they are.
fn qwen3() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Qwen3,
        qkv_bias: false,
        ..qwen2()
    }
}

fn teacher(config: &ModelConfig) -> Transformer<B> {
    B::seed(&Default::default(), 11);
    config.init(&Default::default()).unwrap()
}

fn tokens() -> Tensor<B, 2, Int> {
    let ids: Vec<i64> = (0..20).map(|i| (i * 5 + 3) % VOCAB as i64).collect();
    Tensor::from_data(TensorData::new(ids, [2, 10]), &Default::default())
}

/// Six documents of 7 tokens packed in rows of 16, the last rows padded.
fn calibration() -> Vec<Batch> {
    let docs: Vec<Vec<u32>> = (0..6u32)
        .map(|d| (0..7).map(|k| 1 + (d * 11 + k * 5) % 23).collect())
        .collect();
    let trained: Vec<Vec<bool>> = docs.iter().map(|d| vec![true; d.len()]).collect();
    let documents = Documents::from_tokens(
        docs.iter()
            .map(Vec::as_slice)
            .zip(trained.iter().map(Vec::as_slice)),
        "calibration",
    )
    .unwrap();
    let config = LoaderConfig {
        batch_size: 2,
        seq_len: 16,
        packing: true,
        order: Order {
            shuffle: false,
            seed: 0,
            shard: Shard::SINGLE,
        },
        pad_token: 0,
        epochs: Some(1),
    };
    Loader::new(Arc::new(documents), config).unwrap().collect()
}

fn prune(teacher: &Transformer<B>, targets: WidthTargets) -> (Transformer<B>, WidthPruning) {
    prune_width(teacher, &calibration(), targets, &Default::default()).unwrap()
}

/// Within 1e-5, relative where the logits are large.
fn assert_same_logits(student: &Transformer<B>, teacher: &Transformer<B>) {
    student
        .forward(tokens())
        .into_data()
        .assert_approx_eq::<f32>(
            &teacher.forward(tokens()).into_data(),
            Tolerance::rel_abs(1e-5, 1e-5),
        );
}

/// `model` with its weights changed by `change`, by parameter name.
fn edited(
    model: Transformer<B>,
    change: impl FnOnce(&mut BTreeMap<String, NamedTensor>),
) -> Transformer<B> {
    let mut tensors = named_tensors(&model);
    change(&mut tensors);
    load_named(model, &tensors, &Default::default()).unwrap()
}

fn zero_rows(tensor: &mut NamedTensor, rows: impl IntoIterator<Item = usize>) {
    let width = tensor.values.len() / tensor.shape[0];
    for row in rows {
        tensor.values[row * width..(row + 1) * width].fill(0.0);
    }
}

fn zero_columns(tensor: &mut NamedTensor, columns: &[usize]) {
    let width = *tensor.shape.last().unwrap();
    for row in tensor.values.chunks_mut(width) {
        for &c in columns {
            row[c] = 0.0;
        }
    }
}

fn all_but(n: usize, dropped: &[usize]) -> Vec<usize> {
    (0..n).filter(|i| !dropped.contains(i)).collect()
}

#[test]
fn keeping_every_width_gives_the_teacher() {
    for config in [llama(), qwen2(), qwen3()] {
        let teacher = teacher(&config);
        let everything = WidthTargets {
            ffn: Some(config.intermediate_size),
            heads: Some(config.num_heads),
            hidden: Some(config.hidden_size),
        };
        for targets in [everything, WidthTargets::default()] {
            let (student, pruning) = prune(&teacher, targets);
            assert_eq!(student.config, teacher.config);
            assert_eq!(pruning.kept.hidden, all_but(config.hidden_size, &[]));
            assert_eq!(pruning.kept.heads, vec![all_but(config.num_heads, &[]); 2]);
            assert_eq!(
                pruning.kept.ffn,
                vec![all_but(config.intermediate_size, &[]); 2]
            );
            assert_same_logits(&student, &teacher);
        }
    }
}

/// A channel whose row of `down_proj` is zero adds nothing to the layer
/// output: its importance is 0 and the student without it is the teacher.
#[test]
fn dead_ffn_channels_are_the_ones_pruned() {
    let dead = [[3, 17, 35], [0, 5, 22]];
    for config in [llama(), qwen2()] {
        let teacher = edited(teacher(&config), |tensors| {
            for (layer, channels) in dead.iter().enumerate() {
                let down = tensors
                    .get_mut(&format!("layers.{layer}.mlp.down_proj.weight"))
                    .unwrap();
                zero_rows(down, channels.iter().copied());
            }
        });
        let ffn = config.intermediate_size - 3;
        let (student, pruning) = prune(
            &teacher,
            WidthTargets {
                ffn: Some(ffn),
                ..WidthTargets::default()
            },
        );
        for (layer, channels) in dead.iter().enumerate() {
            assert_eq!(
                pruning.kept.ffn[layer],
                all_but(config.intermediate_size, channels)
            );
            for &c in channels {
                assert_eq!(pruning.importance.ffn[layer][c], 0.0);
            }
        }
        assert_eq!(student.config.intermediate_size, ffn);
        assert_same_logits(&student, &teacher);
    }
}

/// A head whose rows of `o_proj` are zero adds nothing; with one dead head in
/// each key/value group, those are what the group-wise pruning drops.
#[test]
fn dead_heads_are_the_ones_pruned_within_their_groups() {
    // Llama: groups {0, 1}, {2, 3}; Qwen2: groups {0, 1, 2}, {3, 4, 5}.
    let cases = [
        (llama(), [vec![1, 2], vec![0, 3]]),
        (qwen2(), [vec![1, 5], vec![0, 3]]),
    ];
    for (config, dead) in cases {
        let head_dim = config.head_dim;
        let teacher = edited(teacher(&config), |tensors| {
            for (layer, heads) in dead.iter().enumerate() {
                let o_proj = tensors
                    .get_mut(&format!("layers.{layer}.self_attn.o_proj.weight"))
                    .unwrap();
                zero_rows(
                    o_proj,
                    heads.iter().flat_map(|&h| h * head_dim..(h + 1) * head_dim),
                );
            }
        });
        let heads = config.num_heads - 2;
        let (student, pruning) = prune(
            &teacher,
            WidthTargets {
                heads: Some(heads),
                ..WidthTargets::default()
            },
        );
        for (layer, dropped) in dead.iter().enumerate() {
            assert_eq!(
                pruning.kept.heads[layer],
                all_but(config.num_heads, dropped)
            );
            for &h in dropped {
                assert_eq!(pruning.importance.heads[layer][h], 0.0);
            }
        }
        assert_eq!(
            (student.config.num_heads, student.config.num_kv_heads),
            (heads, 2)
        );
        assert_same_logits(&student, &teacher);
    }
}

/// Hidden channels that are zero in the embedding and that no layer writes
/// stay zero all through the residual stream. The student without them
/// computes the teacher's logits only if every RMSNorm's gamma makes up for
/// the root mean square now taken over fewer channels.
#[test]
fn dead_hidden_channels_are_the_ones_pruned_and_the_norms_make_up_for_them() {
    let dead = [2, 9, 20];
    for config in [llama(), qwen2(), qwen3()] {
        let teacher = edited(teacher(&config), |tensors| {
            // Unit-scale hidden states, as a trained model has, so that the
            // norms' epsilon is negligible beside their mean square.
            let embedding = tensors.get_mut("embed_tokens.weight").unwrap();
            embedding.values.iter_mut().for_each(|v| *v *= 50.0);
            zero_columns(embedding, &dead);
            for (name, tensor) in tensors.iter_mut() {
                let writes_hidden = [
                    "o_proj.weight",
                    "o_proj.bias",
                    "down_proj.weight",
                    "down_proj.bias",
                ]
                .iter()
                .any(|suffix| name.ends_with(suffix));
                if writes_hidden {
                    zero_columns(tensor, &dead);
                }
            }
        });
        let hidden = config.hidden_size - dead.len();
        let (student, pruning) = prune(
            &teacher,
            WidthTargets {
                hidden: Some(hidden),
                ..WidthTargets::default()
            },
        );
        assert_eq!(pruning.kept.hidden, all_but(config.hidden_size, &dead));
        for &c in &dead {
            assert_eq!(pruning.importance.hidden[c], 0.0);
        }
        assert_eq!(student.config.hidden_size, hidden);
        assert_same_logits(&student, &teacher);
    }
}

#[test]
fn a_pruned_student_has_the_asked_shape_and_runs() {
    let config = qwen2();
    let teacher = teacher(&config);
    let targets = WidthTargets {
        ffn: Some(20),
        heads: Some(4),
        hidden: Some(16),
    };
    let (student, pruning) = prune(&teacher, targets);
    let expected = ModelConfig {
        hidden_size: 16,
        intermediate_size: 20,
        num_heads: 4,
        ..config
    };
    assert_eq!(student.config, expected);
    assert_eq!(student.num_params(), expected.parameter_count().unwrap());
    assert_eq!(pruning.kept.hidden.len(), 16);
    for layer in 0..2 {
        assert_eq!(pruning.kept.ffn[layer].len(), 20);
        let heads = &pruning.kept.heads[layer];
        // Two of each group of three, in order, so student head i reads key/value head i / 2.
        assert_eq!(heads.iter().filter(|&&h| h < 3).count(), 2);
        assert!(heads.windows(2).all(|pair| pair[0] < pair[1]), "{heads:?}");
    }
    let shapes: BTreeMap<String, Vec<usize>> = named_tensors(&student)
        .into_iter()
        .map(|(name, t)| (name, t.shape))
        .collect();
    for (name, shape) in [
        ("embed_tokens.weight", vec![VOCAB, 16]),
        ("norm.gamma", vec![16]),
        ("layers.1.input_layernorm.gamma", vec![16]),
        ("layers.1.self_attn.q_proj.weight", vec![16, 24]),
        ("layers.1.self_attn.q_proj.bias", vec![24]),
        ("layers.1.self_attn.k_proj.weight", vec![16, 12]),
        ("layers.1.self_attn.v_proj.bias", vec![12]),
        ("layers.1.self_attn.o_proj.weight", vec![24, 16]),
        ("layers.1.mlp.gate_proj.weight", vec![16, 20]),
        ("layers.1.mlp.up_proj.weight", vec![16, 20]),
        ("layers.1.mlp.down_proj.weight", vec![20, 16]),
    ] {
        assert_eq!(shapes[name], shape, "{name}");
    }
    let logits = student.forward(tokens());
    assert_eq!(logits.dims(), [2, 10, VOCAB]);
    let values: Vec<f32> = logits.into_data().into_vec().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
}

/// The importance against its definition, computed on the host from the
/// layers' activations over the real (non-padding) calibration tokens.
#[test]
fn importance_matches_its_definition() {
    let config = llama();
    let teacher = teacher(&config);
    let batches = calibration();
    assert!(
        batches.iter().any(|b| b.document_ids.contains(&0)),
        "some padding is left out"
    );
    let importance = width_importance(&teacher, &batches).unwrap();
    assert_eq!(importance.tokens, 42);

    let host = |t: Tensor<B, 2>| -> Vec<f32> { t.into_data().into_vec().unwrap() };
    let matrix = |name: &str| named_tensors(&teacher).remove(name).unwrap().values;
    let (hidden, heads, head_dim, ffn) = (32, 4, 8, 40);
    let mut expected_hidden = vec![0.0f64; hidden];
    let mut expected_heads = vec![vec![0.0f64; heads]; 2];
    let mut expected_ffn = vec![vec![0.0f64; ffn]; 2];
    let device = Default::default();
    for batch in &batches {
        let n = batch.rows * batch.seq_len;
        let real: Vec<usize> = (0..n).filter(|&t| batch.document_ids[t] != 0).collect();
        let mut add_norm = |values: &[f32]| {
            for &t in &real {
                for c in 0..hidden {
                    expected_hidden[c] += f64::from(values[t * hidden + c].abs());
                }
            }
        };
        let mut layers = Vec::new();
        let normed = teacher.probe_rows(
            train::trainer::token_tensor(batch, &device),
            train::trainer::layout(batch),
            |_, a| layers.push(a),
        );
        add_norm(&host(normed.reshape([n, hidden])));
        for (layer, a) in layers.into_iter().enumerate() {
            add_norm(&host(a.attention_input.reshape([n, hidden])));
            add_norm(&host(a.mlp_input.reshape([n, hidden])));
            let outputs = host(a.heads.reshape([n, heads * head_dim]));
            let o_proj = matrix(&format!("layers.{layer}.self_attn.o_proj.weight"));
            let intermediate = host(a.intermediate.reshape([n, ffn]));
            let down = matrix(&format!("layers.{layer}.mlp.down_proj.weight"));
            for &t in &real {
                for h in 0..heads {
                    let contribution: f64 = (0..hidden)
                        .map(|c| {
                            let sum: f64 = (h * head_dim..(h + 1) * head_dim)
                                .map(|d| {
                                    f64::from(outputs[t * heads * head_dim + d])
                                        * f64::from(o_proj[d * hidden + c])
                                })
                                .sum();
                            sum * sum
                        })
                        .sum();
                    expected_heads[layer][h] += contribution.sqrt();
                }
                for j in 0..ffn {
                    let row: f64 = (0..hidden)
                        .map(|c| f64::from(down[j * hidden + c]).powi(2))
                        .sum();
                    expected_ffn[layer][j] +=
                        f64::from(intermediate[t * ffn + j].abs()) * row.sqrt();
                }
            }
        }
    }
    let close = |what: &str, actual: &[f64], expected: &[f64]| {
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            let e = e / 42.0;
            assert!(
                (a - e).abs() <= 1e-4 * e.abs().max(1e-3),
                "{what}[{i}]: {a} vs {e}"
            );
        }
    };
    close("hidden", &importance.hidden, &expected_hidden);
    for layer in 0..2 {
        close("heads", &importance.heads[layer], &expected_heads[layer]);
        close("ffn", &importance.ffn[layer], &expected_ffn[layer]);
    }
}

#[test]
fn widths_that_do_not_fit_the_teacher_are_refused() {
    let teacher = teacher(&llama());
    let refused = |targets: WidthTargets| {
        prune_width::<B, B>(&teacher, &calibration(), targets, &Default::default()).unwrap_err()
    };
    let heads = |n| WidthTargets {
        heads: Some(n),
        ..WidthTargets::default()
    };
    let error = refused(heads(3));
    assert_eq!(
        error,
        PruneError::HeadGroups {
            heads: 3,
            kv_heads: 2,
            teacher: 4
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("`heads` to 3")
            && message.contains("multiple of 2")
            && message.contains("teacher's 4"),
        "{message}"
    );

    let error = refused(heads(6));
    assert_eq!(
        error,
        PruneError::WidthRange {
            width: Width::Heads,
            value: 6,
            teacher: 4
        }
    );
    assert_eq!(
        error.to_string(),
        "cannot prune `heads` to 6: the teacher has 4 attention heads per layer, expected 1..=4"
    );
    let error = refused(WidthTargets {
        hidden: Some(33),
        ..WidthTargets::default()
    });
    assert_eq!(
        error.to_string(),
        "cannot prune `hidden` to 33: the teacher has 32 hidden channels, expected 1..=32"
    );
    let error = refused(WidthTargets {
        ffn: Some(0),
        ..WidthTargets::default()
    });
    assert_eq!(
        error.to_string(),
        "cannot prune `ffn` to 0: the teacher has 40 FFN channels per layer, expected 1..=40"
    );

    let no_data = prune_width::<B, B>(&teacher, &[], heads(2), &Default::default()).unwrap_err();
    assert_eq!(no_data, PruneError::NoCalibrationTokens);
}
