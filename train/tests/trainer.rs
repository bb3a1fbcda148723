//! The training core on a tiny model: SFT learns, gradient accumulation and
//! clipping behave, a resumed run repeats the uninterrupted one, and a
//! non-finite loss stops the run with its last checkpoint intact, or is skipped
//! when the run is told to.

use std::path::Path;
use std::sync::Arc;

use burn::backend::Autodiff;
use datasets::{Documents, LoaderConfig, Order, Shard};
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use train::optim::ScheduleKind;
use train::trainer::{
    CrossEntropy, MakeObjective, NonFinitePolicy, Quiet, Replicas, Topology, TrainConfig,
    TrainData, Trainer, read_metrics, train_replicas,
};
use train::{CpuBackend, TrainError, Transformer};

type B = Autodiff<CpuBackend>;

const VOCAB: usize = 24;

fn tiny_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: VOCAB,
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: 64,
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
}

fn tiny_model(seed: u64) -> Transformer<B> {
    use burn::tensor::backend::Backend;
    B::seed(&Default::default(), seed);
    tiny_config().init(&Default::default()).unwrap()
}

/// A synthetic task no untrained model can do: each document counts up by a
/// stride from a start, modulo the vocabulary (tokens 1..VOCAB), and the loss
/// covers everything after the first two tokens, which fix start and stride.
fn counting_documents(count: usize) -> Arc<Documents> {
    let docs: Vec<(Vec<u32>, Vec<bool>)> = (0..count)
        .map(|i| {
            let start = (i * 5) % (VOCAB - 1);
            let stride = 1 + i % 3;
            let len = 6 + i % 7;
            let tokens = (0..len)
                .map(|k| 1 + ((start + k * stride) % (VOCAB - 1)) as u32)
                .collect();
            let trained = (0..len).map(|k| k >= 2).collect();
            (tokens, trained)
        })
        .collect();
    let views = docs.iter().map(|(t, m)| (t.as_slice(), m.as_slice()));
    Arc::new(Documents::from_tokens(views, "counting").unwrap())
}

fn data(packing: bool, batch_size: usize) -> TrainData {
    TrainData {
        documents: counting_documents(48),
        loader: LoaderConfig {
            batch_size,
            seq_len: 32,
            packing,
            order: Order {
                seed: 7,
                shuffle: true,
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
        lr: 3e-3,
        schedule: ScheduleKind::Cosine { min_lr_ratio: 0.1 },
        warmup_steps: 2,
        checkpoint_every: 3,
        keep_checkpoints: 2,
        ..TrainConfig::default()
    }
}

fn losses(run_dir: &Path) -> Vec<f64> {
    read_metrics(&run_dir.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .map(|m| m.loss)
        .collect()
}

#[test]
fn fine_tuning_learns_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let sft = TrainConfig {
        lr: 1e-2,
        ..config(150)
    };
    let mut trainer = Trainer::start(sft, tiny_model(1), data(true, 4), dir.path()).unwrap();
    let summary = trainer.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    assert_eq!(summary.steps, 150);
    let losses = losses(dir.path());
    let uniform = (VOCAB as f64).ln();
    assert!(
        losses[0] > 0.8 * uniform,
        "an untrained model is near chance: {}",
        losses[0]
    );
    let last = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
    assert!(
        last < 0.35 * uniform,
        "loss after training {last}, chance {uniform}"
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "the last two checkpoints are kept: {kept:?}");
    assert!(kept.contains(&"step-00000150".to_owned()), "{kept:?}");
}

#[test]
fn resumed_run_repeats_the_uninterrupted_one() {
    let whole = tempfile::tempdir().unwrap();
    let mut trainer =
        Trainer::start(config(10), tiny_model(2), data(true, 2), whole.path()).unwrap();
    trainer.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    let expected = losses(whole.path());

    let killed = tempfile::tempdir().unwrap();
    let mut first =
        Trainer::start(config(10), tiny_model(2), data(true, 2), killed.path()).unwrap();
    // Killed after step 5: the checkpoint of step 3 is the newest.
    first.run(&mut CrossEntropy, &mut Quiet, Some(5)).unwrap();
    drop(first);
    let mut resumed = Trainer::<B>::resume(
        config(10),
        data(true, 2),
        killed.path(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(resumed.step(), 3);
    resumed.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    let actual = losses(killed.path());
    assert_eq!(actual.len(), expected.len(), "{actual:?}");
    for (step, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert!((a - e).abs() <= 1e-6, "step {}: {a} vs {e}", step + 1);
    }
}

#[test]
fn resume_refuses_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::start(config(6), tiny_model(3), data(true, 2), dir.path()).unwrap();
    trainer.run(&mut CrossEntropy, &mut Quiet, Some(3)).unwrap();
    let changed = TrainConfig {
        lr: 1e-2,
        ..config(6)
    };
    let err = Trainer::<B>::resume(changed, data(true, 2), dir.path(), &Default::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("other training settings"), "{err}");
    let again = Trainer::start(config(6), tiny_model(3), data(true, 2), dir.path())
        .err()
        .unwrap();
    assert!(
        again
            .to_string()
            .contains("resume it or use a new directory"),
        "{again}"
    );
}

#[test]
fn accumulated_micro_batches_equal_one_large_batch() {
    let one = tempfile::tempdir().unwrap();
    let mut large = Trainer::start(config(4), tiny_model(4), data(false, 4), one.path()).unwrap();
    large.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    let accum = tempfile::tempdir().unwrap();
    let accumulated = TrainConfig {
        grad_accum: 2,
        ..config(4)
    };
    let mut small =
        Trainer::start(accumulated, tiny_model(4), data(false, 2), accum.path()).unwrap();
    small.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    for (a, b) in losses(one.path()).iter().zip(losses(accum.path())) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn clipping_bounds_the_update_and_frozen_weights_stay() {
    let dir = tempfile::tempdir().unwrap();
    let frozen = TrainConfig {
        freeze: vec!["layers.0.*".into()],
        clip_norm: Some(1e-3),
        ..config(3)
    };
    let model = tiny_model(5);
    let before = train::optim::named_tensors(&model);
    let mut trainer = Trainer::start(frozen, model, data(true, 2), dir.path()).unwrap();
    trainer.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    let after = train::optim::named_tensors(trainer.model());
    for (name, tensor) in &before {
        let unchanged = after[name] == *tensor;
        assert_eq!(unchanged, name.starts_with("layers.0."), "{name}");
    }
    let metrics = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    assert!(
        metrics.iter().all(|m| m.grad_norm > 1e-3),
        "the clip is active"
    );

    let typo = TrainConfig {
        freeze: vec!["layer.*".into()],
        ..config(3)
    };
    let err = Trainer::start(
        typo,
        tiny_model(5),
        data(true, 2),
        tempfile::tempdir().unwrap().path(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("'layer.*': it matches no parameter"),
        "{err}"
    );
}

#[test]
fn non_finite_loss_stops_with_the_last_checkpoint_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::start(config(8), tiny_model(6), data(true, 2), dir.path()).unwrap();
    trainer.run(&mut CrossEntropy, &mut Quiet, Some(3)).unwrap();
    let mut poisoned = Poisoned;
    let err = trainer.run(&mut poisoned, &mut Quiet, None).err().unwrap();
    assert!(
        matches!(err, TrainError::NonFinite { step: 4, .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("step 4: the loss is NaN"),
        "{err}"
    );
    let checkpoints: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(checkpoints, ["step-00000003"]);
}

#[test]
fn a_run_told_to_skip_non_finite_steps_takes_no_update_on_them_and_goes_on() {
    let skipping = TrainConfig {
        on_non_finite: NonFinitePolicy::Skip,
        ..config(8)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut trainer =
        Trainer::start(skipping.clone(), tiny_model(6), data(true, 2), dir.path()).unwrap();
    trainer.run(&mut CrossEntropy, &mut Quiet, Some(3)).unwrap();
    let before = train::optim::named_tensors(trainer.model());
    let summary = trainer.run(&mut Poisoned, &mut Quiet, Some(4)).unwrap();
    assert_eq!(summary.steps, 4);
    assert_eq!(
        train::optim::named_tensors(trainer.model()),
        before,
        "a skipped step leaves the weights"
    );
    let summary = trainer.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    assert_eq!(summary.steps, 8);
    assert!(summary.last_loss.is_finite());

    let metrics = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = metrics.iter().map(|m| m.step).collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());
    assert_eq!(metrics[3].skipped.as_deref(), Some("the loss is NaN"));
    assert!(metrics[3].loss.is_nan());
    assert!(metrics.iter().filter(|m| m.skipped.is_some()).count() == 1);

    let resumed_dir = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::start(
        skipping.clone(),
        tiny_model(6),
        data(true, 2),
        resumed_dir.path(),
    )
    .unwrap();
    trainer.run(&mut CrossEntropy, &mut Quiet, Some(3)).unwrap();
    trainer.run(&mut Poisoned, &mut Quiet, Some(4)).unwrap();
    drop(trainer);
    let mut resumed = Trainer::resume(
        skipping,
        data(true, 2),
        resumed_dir.path(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(resumed.step(), 3, "the checkpoint before the skipped step");
    resumed.run(&mut Poisoned, &mut Quiet, Some(4)).unwrap();
    resumed.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    assert_eq!(losses(resumed_dir.path()).len(), 8);
    let (a, b) = (losses(dir.path()), losses(resumed_dir.path()));
    for (step, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(
            (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6,
            "step {}: {a} vs {b}",
            step + 1
        );
    }
}

#[test]
fn a_run_that_keeps_failing_stops_even_when_it_skips_non_finite_steps() {
    let skipping = TrainConfig {
        on_non_finite: NonFinitePolicy::Skip,
        checkpoint_every: 2,
        ..config(30)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::start(skipping, tiny_model(6), data(true, 2), dir.path()).unwrap();
    trainer.run(&mut CrossEntropy, &mut Quiet, Some(2)).unwrap();
    let err = trainer.run(&mut Poisoned, &mut Quiet, None).err().unwrap();
    assert!(
        matches!(
            err,
            TrainError::NonFiniteRepeated {
                step: 12,
                steps: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("step 12: the loss is NaN, the 10th non-finite step in a row"),
        "{err}"
    );
    let checkpoints = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .count();
    assert_eq!(
        checkpoints, 2,
        "the newest checkpoints are kept, skipped steps and all"
    );
}

/// An objective whose loss is NaN, as a diverged run's would be.
struct Poisoned;

impl train::trainer::Objective<B> for Poisoned {
    fn components(&self) -> &'static [&'static str] {
        &["ce"]
    }

    fn loss(
        &mut self,
        model: &Transformer<B>,
        batch: &datasets::Batch,
        rng: &mut datasets::order::SplitMix64,
    ) -> Result<train::trainer::LossSum<B>, TrainError> {
        let mut loss = <CrossEntropy as train::trainer::Objective<B>>::loss(
            &mut CrossEntropy,
            model,
            batch,
            rng,
        )?;
        loss.total = loss.total.mul_scalar(f32::NAN);
        Ok(loss)
    }
}

/// The replicas of `topology` in this process train `data` from the run in
/// `dir` (started here when `start` is given, resumed otherwise).
fn train_on_replicas(
    devices: usize,
    config: TrainConfig,
    data: TrainData,
    dir: &Path,
    start: Option<Transformer<B>>,
) -> Transformer<B> {
    let topology = Topology {
        devices,
        nodes: None,
    };
    let leader = match start {
        Some(model) => Trainer::start(config.clone(), model, data.clone(), dir).unwrap(),
        None => Trainer::resume(config.clone(), data.clone(), dir, &Default::default()).unwrap(),
    };
    let objectives: Vec<MakeObjective<'_, _, CrossEntropy>> = (0..devices)
        .map(|_| Box::new(|_: &_| Ok(CrossEntropy)) as MakeObjective<'_, _, _>)
        .collect();
    let replicas = Replicas::<B, _> {
        topology,
        devices: vec![Default::default(); devices],
        objectives,
        prepare: None,
        config,
        data,
        run_dir: dir,
    };
    let (trainer, _) = train_replicas(replicas, Some(leader), &mut Quiet).unwrap();
    trainer.model().clone()
}

fn assert_close(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: {actual:?} vs {expected:?}"
    );
    for (step, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 1e-5 * e.abs().max(1.0),
            "{what}, step {}: {a} vs {e}",
            step + 1
        );
    }
}

/// One test, because the collective is one per process.
#[test]
fn replicas_with_a_share_of_the_batch_train_as_one_device_with_all_of_it() {
    let steps = 6;
    let whole = tempfile::tempdir().unwrap();
    let mut one =
        Trainer::start(config(steps), tiny_model(5), data(true, 4), whole.path()).unwrap();
    one.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    let expected = losses(whole.path());
    let expected_weights = train::optim::named_tensors(one.model());

    let two = tempfile::tempdir().unwrap();
    let model = train_on_replicas(
        2,
        config(steps),
        data(true, 4),
        two.path(),
        Some(tiny_model(5)),
    );
    assert_close(&losses(two.path()), &expected, "2 replicas of 2 rows");
    for (name, tensor) in train::optim::named_tensors(&model) {
        let want = &expected_weights[&name];
        let worst = tensor
            .values
            .iter()
            .zip(&want.values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-4, "{name}: differs by {worst}");
    }
    let checkpoints: Vec<u64> =
        train::checkpoint::CheckpointDir::new(two.path().join("checkpoints"), 9)
            .list()
            .unwrap()
            .into_iter()
            .map(|(step, _)| step)
            .collect();
    assert_eq!(
        checkpoints,
        [3, 6],
        "the leader alone writes checkpoints, on the run's schedule"
    );

    // Stopped after step 4 on one device; resumed from step 3 on four.
    let resumed = tempfile::tempdir().unwrap();
    let mut first =
        Trainer::start(config(steps), tiny_model(5), data(true, 4), resumed.path()).unwrap();
    first.run(&mut CrossEntropy, &mut Quiet, Some(4)).unwrap();
    drop(first);
    train_on_replicas(4, config(steps), data(true, 4), resumed.path(), None);
    assert_close(
        &losses(resumed.path()),
        &expected,
        "resumed on 4 replicas of 1 row",
    );

    let uneven = tempfile::tempdir().unwrap();
    let leader =
        Trainer::start(config(steps), tiny_model(5), data(true, 2), uneven.path()).unwrap();
    let replicas = Replicas::<B, CrossEntropy> {
        topology: Topology {
            devices: 3,
            nodes: None,
        },
        devices: vec![Default::default(); 3],
        objectives: (0..3)
            .map(|_| Box::new(|_: &_| Ok(CrossEntropy)) as MakeObjective<'_, _, _>)
            .collect(),
        prepare: None,
        config: config(steps),
        data: data(true, 2),
        run_dir: uneven.path(),
    };
    let err = train_replicas(replicas, Some(leader), &mut Quiet)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("a micro-batch of 2 sequences cannot be split over 3 replicas"),
        "{err}"
    );
}

/// bf16 mixed precision learns the task as f32 does, step for step close to
/// it, while the weights and optimizer state it checkpoints stay f32, and a
/// resumed bf16 run repeats the uninterrupted one.
#[test]
fn bf16_mixed_precision_learns_with_f32_master_weights() {
    use train::trainer::Precision;
    let bf16 = |steps| TrainConfig {
        lr: 1e-2,
        precision: Precision::Bf16,
        ..config(steps)
    };
    let f32_run = tempfile::tempdir().unwrap();
    let f32_config = TrainConfig {
        lr: 1e-2,
        ..config(60)
    };
    Trainer::start(f32_config, tiny_model(1), data(true, 4), f32_run.path())
        .unwrap()
        .run(&mut CrossEntropy, &mut Quiet, None)
        .unwrap();
    let bf16_run = tempfile::tempdir().unwrap();
    let mut trainer =
        Trainer::start(bf16(60), tiny_model(1), data(true, 4), bf16_run.path()).unwrap();
    trainer.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    let weight = trainer.model().layers[0].self_attn.q_proj.weight.val();
    assert_eq!(
        weight.dtype(),
        burn::tensor::DType::F32,
        "the master weights stay f32"
    );

    let (full, half) = (losses(f32_run.path()), losses(bf16_run.path()));
    assert!(
        (full[0] - half[0]).abs() < 0.02 * full[0],
        "first step: f32 {} bf16 {}",
        full[0],
        half[0]
    );
    let tail = |l: &[f64]| l[l.len() - 5..].iter().sum::<f64>() / 5.0;
    let uniform = (VOCAB as f64).ln();
    assert!(
        tail(&half) < 0.5 * uniform,
        "bf16 learns: {} against chance {uniform}",
        tail(&half)
    );
    assert!(
        (tail(&half) - tail(&full)).abs() < 0.25 * tail(&full),
        "f32 {} bf16 {}",
        tail(&full),
        tail(&half)
    );

    let killed = tempfile::tempdir().unwrap();
    let mut first = Trainer::start(bf16(10), tiny_model(2), data(true, 2), killed.path()).unwrap();
    first.run(&mut CrossEntropy, &mut Quiet, Some(5)).unwrap();
    drop(first);
    let whole = tempfile::tempdir().unwrap();
    Trainer::start(bf16(10), tiny_model(2), data(true, 2), whole.path())
        .unwrap()
        .run(&mut CrossEntropy, &mut Quiet, None)
        .unwrap();
    let mut resumed =
        Trainer::<B>::resume(bf16(10), data(true, 2), killed.path(), &Default::default()).unwrap();
    resumed.run(&mut CrossEntropy, &mut Quiet, None).unwrap();
    for (step, (a, e)) in losses(killed.path())
        .iter()
        .zip(&losses(whole.path()))
        .enumerate()
    {
        assert!((a - e).abs() <= 1e-6, "step {}: {a} vs {e}", step + 1);
    }
}
