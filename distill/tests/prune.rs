//! Depth pruning: a student of chosen layers computes exactly what the teacher
//! does without the others, and Block Influence ranks a layer that does nothing
//! last.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, Tolerance};
use datasets::{Batch, Documents, Loader, LoaderConfig, Order, Shard};
use distill::prune::{PruneError, keep_layers, layer_importance, most_important};
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use train::{CpuBackend, Transformer};

type B = CpuBackend;

fn teacher(layers: usize) -> Transformer<B> {
    B::seed(&Default::default(), 7);
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 24,
        hidden_size: 32,
        intermediate_size: 40,
        num_layers: layers,
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
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
    .init(&Default::default())
    .unwrap()
}

fn tokens() -> Tensor<B, 2, Int> {
    let ids: Vec<i64> = (0..20).map(|i| (i * 5 + 3) % 24).collect();
    Tensor::from_data(TensorData::new(ids, [2, 10]), &Default::default())
}

fn calibration() -> Vec<Batch> {
    let docs: Vec<Vec<u32>> = (0..6u32)
        .map(|d| (0..7).map(|k| 1 + (d * 11 + k * 5) % 23).collect())
        .collect();
    let trained: Vec<Vec<bool>> = docs.iter().map(|d| vec![true; d.len()]).collect();
    let documents = Documents::from_tokens(
        docs.iter().map(Vec::as_slice).zip(trained.iter().map(Vec::as_slice)),
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

#[test]
fn the_student_is_the_teacher_without_the_dropped_layers() {
    let teacher = teacher(4);
    let student: Transformer<B> = keep_layers(&teacher, &[0, 2, 3], &Default::default()).unwrap();
    assert_eq!(student.config.num_layers, 3);

    let mut direct = teacher.clone();
    direct.layers.remove(1);
    direct.config.num_layers = 3;
    student
        .forward(tokens())
        .into_data()
        .assert_approx_eq::<f32>(&direct.forward(tokens()).into_data(), Tolerance::absolute(1e-6));
}

/// A layer whose attention and MLP outputs are zero passes the residual stream
/// through unchanged: its Block Influence is 0 and it is the first to go.
#[test]
fn a_layer_that_changes_nothing_has_no_influence_and_is_dropped() {
    let mut teacher = teacher(4);
    let zero = |p: &Param<Tensor<B, 2>>| Param::from_tensor(p.val().zeros_like());
    let layer = &mut teacher.layers[2];
    layer.self_attn.o_proj.weight = zero(&layer.self_attn.o_proj.weight);
    layer.mlp.down_proj.weight = zero(&layer.mlp.down_proj.weight);

    let importance = layer_importance(&teacher, &calibration()).unwrap();
    assert_eq!(importance.tokens, 42);
    assert_eq!(importance.influence.len(), 4);
    assert!(importance.influence[2].abs() < 1e-6, "{:?}", importance.influence);
    for (i, influence) in importance.influence.iter().enumerate() {
        if i != 2 {
            assert!(*influence > 1e-4, "layer {i}: {influence}");
        }
    }
    assert_eq!(most_important(&importance, 3).unwrap(), [0, 1, 3]);
    assert_eq!(most_important(&importance, 4).unwrap(), [0, 1, 2, 3]);
}

/// Block Influence against a direct computation: the hidden states entering and
/// leaving each layer from teachers cut after it.
#[test]
fn influence_matches_a_direct_computation() {
    let teacher = teacher(3);
    let batches = calibration();
    let importance = layer_importance(&teacher, &batches).unwrap();
    let device = Default::default();
    let residual_after = |n: usize, batch: &Batch| -> Vec<f32> {
        let mut cut = teacher.clone();
        cut.layers.truncate(n);
        cut.config.num_layers = n;
        let mut last = Vec::new();
        cut.hidden_states_rows_observed(
            train::trainer::token_tensor(batch, &device),
            train::trainer::layout(batch),
            |i, x| {
                if i == n {
                    last = x.to_data().into_vec().unwrap();
                }
            },
        );
        last
    };
    for layer in 0..3 {
        let (mut sum, mut count) = (0.0f64, 0usize);
        for batch in &batches {
            let (before, after) = (residual_after(layer, batch), residual_after(layer + 1, batch));
            for (t, &doc) in batch.document_ids.iter().enumerate() {
                if doc == 0 {
                    continue;
                }
                let a = &before[t * 32..(t + 1) * 32];
                let b = &after[t * 32..(t + 1) * 32];
                let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum();
                let na: f64 = a.iter().map(|x| f64::from(x * x)).sum::<f64>().sqrt();
                let nb: f64 = b.iter().map(|x| f64::from(x * x)).sum::<f64>().sqrt();
                sum += 1.0 - dot / (na * nb);
                count += 1;
            }
        }
        let direct = sum / count as f64;
        assert!(
            (importance.influence[layer] - direct).abs() < 1e-5,
            "layer {layer}: {} vs {direct}",
            importance.influence[layer]
        );
    }
}

#[test]
fn bad_layer_lists_are_refused() {
    let teacher = teacher(3);
    let keep = |layers: &[usize]| keep_layers::<B, B>(&teacher, layers, &Default::default()).err();
    assert_eq!(keep(&[0, 3]), Some(PruneError::NoSuchLayer { layer: 3, layers: 3 }));
    assert_eq!(keep(&[2, 1]), Some(PruneError::Unordered(2, 1)));
    assert_eq!(keep(&[]), Some(PruneError::KeepCount { keep: 0, layers: 3 }));
    let err = keep(&[0, 3]).unwrap().to_string();
    assert!(err.contains("layer 3 does not exist: the teacher has layers 0..3"), "{err}");
    let importance = layer_importance(&teacher, &calibration()).unwrap();
    assert_eq!(
        most_important(&importance, 4),
        Err(PruneError::KeepCount { keep: 4, layers: 3 })
    );
    assert_eq!(layer_importance(&teacher, &[]), Err(PruneError::NoCalibrationTokens));
}

#[test]
fn the_student_has_the_teacher_parameters_less_the_dropped_layers() {
    let teacher = teacher(2);
    let student: Transformer<B> = keep_layers(&teacher, &[1], &Default::default()).unwrap();
    assert_eq!(student.num_params(), teacher.num_params() - teacher.layers[0].num_params());
}
