//! Online distillation through the training core: the student's divergence to
//! the teacher falls, and alpha = 1 is plain cross-entropy.

use std::sync::Arc;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use datasets::{Documents, LoaderConfig, Order, Shard};
use distill::{Divergence, OnlineDistillation};
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use train::trainer::{CrossEntropy, Quiet, TrainConfig, TrainData, Trainer, read_metrics};
use train::{CpuBackend, Transformer};

type B = Autodiff<CpuBackend>;

fn model(seed: u64) -> Transformer<B> {
    B::seed(&Default::default(), seed);
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 20,
        hidden_size: 32,
        intermediate_size: 48,
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
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
    .init(&Default::default())
    .unwrap()
}

fn data() -> TrainData {
    let docs: Vec<(Vec<u32>, Vec<bool>)> = (0..24u32)
        .map(|i| {
            let tokens: Vec<u32> = (0..8).map(|k| 1 + (i * 7 + k * 3) % 19).collect();
            let trained = vec![true; tokens.len()];
            (tokens, trained)
        })
        .collect();
    let documents = Documents::from_tokens(
        docs.iter().map(|(t, m)| (t.as_slice(), m.as_slice())),
        "online",
    )
    .unwrap();
    TrainData {
        documents: Arc::new(documents),
        loader: LoaderConfig {
            batch_size: 4,
            seq_len: 16,
            packing: true,
            order: Order {
                shuffle: true,
                seed: 3,
                shard: Shard::SINGLE,
            },
            pad_token: 0,
            epochs: None,
        },
    }
}

fn config(steps: u64) -> TrainConfig {
    TrainConfig {
        steps,
        lr: 5e-3,
        checkpoint_every: steps,
        ..TrainConfig::default()
    }
}

#[test]
fn the_student_moves_towards_the_teacher() {
    let teacher = model(1).valid();
    let dir = tempfile::tempdir().unwrap();
    let mut objective =
        OnlineDistillation::<B>::new(teacher, Divergence::ForwardKl, 2.0, 0.0).unwrap();
    let mut trainer = Trainer::start(config(40), model(2), data(), dir.path()).unwrap();
    trainer.run(&mut objective, &mut Quiet, None).unwrap();
    let metrics = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    let (first, last) = (metrics[0].components["kd"], metrics[39].components["kd"]);
    assert!(
        last < 0.3 * first,
        "divergence to the teacher {first} → {last}"
    );
}

#[test]
fn alpha_one_is_cross_entropy() {
    let teacher = model(1).valid();
    let runs = [true, false].map(|distill| {
        let dir = tempfile::tempdir().unwrap();
        let mut trainer = Trainer::start(config(2), model(2), data(), dir.path()).unwrap();
        if distill {
            let mut objective =
                OnlineDistillation::<B>::new(teacher.clone(), Divergence::ReverseKl, 1.0, 1.0)
                    .unwrap();
            trainer.run(&mut objective, &mut Quiet, None).unwrap();
        } else {
            trainer.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
        }
        read_metrics(&dir.path().join("metrics.jsonl")).unwrap()
    });
    for (kd, ce) in runs[0].iter().zip(&runs[1]) {
        assert!(
            (kd.loss - ce.loss).abs() < 1e-6,
            "{} vs {}",
            kd.loss,
            ce.loss
        );
    }
}

#[test]
fn alpha_outside_the_unit_interval_is_refused() {
    let err = OnlineDistillation::<B>::new(model(1).valid(), Divergence::ForwardKl, 1.0, 1.5)
        .err()
        .unwrap();
    assert_eq!(err.to_string(), "alpha must lie in [0, 1], not 1.5");
}

/// Minitron's premise: a student pruned from a trained teacher and distilled
/// ends better than a random one of the same shape given the same steps.
#[test]
fn a_pruned_student_beats_a_random_one_of_the_same_shape() {
    let dir = tempfile::tempdir().unwrap();
    let mut teacher_run = Trainer::start(config(60), model(1), data(), &dir.path().join("teacher")).unwrap();
    teacher_run.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    let teacher = teacher_run.model().clone();

    let pruned: Transformer<B> =
        distill::prune::keep_layers(&teacher, &[1], &Default::default()).unwrap();
    B::seed(&Default::default(), 9);
    let random = pruned.config.init::<B>(&Default::default()).unwrap();
    let [pruned_loss, random_loss] = [("pruned", pruned), ("random", random)].map(|(name, student)| {
        let mut objective =
            OnlineDistillation::<B>::new(teacher.valid(), Divergence::ForwardKl, 1.0, 0.5).unwrap();
        let run = dir.path().join(name);
        let mut trainer = Trainer::start(config(15), student, data(), &run).unwrap();
        trainer.run(&mut objective, &mut Quiet, None).unwrap();
        let metrics = read_metrics(&run.join("metrics.jsonl")).unwrap();
        metrics[10..].iter().map(|m| m.loss).sum::<f64>() / 5.0
    });
    assert!(
        pruned_loss < 0.8 * random_loss,
        "pruned {pruned_loss} vs random {random_loss}"
    );
}

/// λ = 0 is plain online distillation; λ = 1 trains on the student's own
/// samples, the same ones on a rerun (the step's random stream fixes them).
#[test]
fn on_policy_batches_are_the_students_samples_and_repeat() {
    use distill::{OnPolicyConfig, OnPolicyDistillation};
    let teacher = model(1).valid();
    let run = |lambda: f64| {
        let dir = tempfile::tempdir().unwrap();
        let online = OnlineDistillation::<B>::new(teacher.clone(), Divergence::ForwardKl, 1.0, 0.5).unwrap();
        let sampling = OnPolicyConfig { lambda, max_new_tokens: 6, temperature: 1.0, end_of_generation: vec![0] };
        let mut objective = OnPolicyDistillation::new(online, sampling).unwrap();
        let mut trainer = Trainer::start(config(8), model(2), data(), dir.path()).unwrap();
        trainer.run(&mut objective, &mut Quiet, None).unwrap();
        read_metrics(&dir.path().join("metrics.jsonl")).unwrap()
    };
    let plain = {
        let dir = tempfile::tempdir().unwrap();
        let mut objective = OnlineDistillation::<B>::new(teacher.clone(), Divergence::ForwardKl, 1.0, 0.5).unwrap();
        let mut trainer = Trainer::start(config(8), model(2), data(), dir.path()).unwrap();
        trainer.run(&mut objective, &mut Quiet, None).unwrap();
        read_metrics(&dir.path().join("metrics.jsonl")).unwrap()
    };
    for (a, b) in run(0.0).iter().zip(&plain) {
        assert!((a.loss - b.loss).abs() < 1e-9, "{} vs {}", a.loss, b.loss);
    }
    let (first, second) = (run(1.0), run(1.0));
    assert_eq!(first.len(), 8);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.loss, b.loss);
        assert!(!a.components.contains_key("ce"), "no label loss on the student's own answers");
    }
    assert!(first.iter().zip(&plain).any(|(a, b)| (a.loss - b.loss).abs() > 1e-6));
}
