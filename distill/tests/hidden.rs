//! Hidden-state alignment: its value and gradients against a direct f64
//! implementation of the definitions (with and without the learned
//! projection), the student-to-teacher layer maps, and online distillation
//! that aligns a narrower student through a projection it trains, checkpoints
//! and resumes with.

use std::sync::Arc;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use datasets::order::SplitMix64;
use datasets::{Documents, LoaderConfig, Order, Shard};
use distill::{Divergence, HiddenAlignment, HiddenError, HiddenLoss, OnlineDistillation};
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
use train::trainer::{Quiet, TrainConfig, TrainData, Trainer, read_metrics};
use train::{CpuBackend, Transformer};

type B = Autodiff<CpuBackend>;

const N: usize = 4;

fn values(seed: u64, len: usize) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| (rng.next_u64() as f64 / u64::MAX as f64 - 0.5) * 4.0).collect()
}

fn tensor(values: &[f64], shape: [usize; 2]) -> Tensor<B, 2> {
    let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// The definition, position by position: `student` `[layers][N × width]`
/// through `projection` (`[width, teacher width]`, row-major) if any.
fn reference(loss: HiddenLoss, weight: f64, student: &[Vec<f64>], teacher: &[Vec<f64>], projection: Option<(&[f64], usize)>) -> f64 {
    let tw = teacher[0].len() / N;
    let mut total = 0.0;
    for (s, t) in student.iter().zip(teacher) {
        let sw = s.len() / N;
        for row in 0..N {
            let s_row = &s[row * sw..(row + 1) * sw];
            let mapped: Vec<f64> = match projection {
                Some((p, out)) => (0..out).map(|j| (0..sw).map(|i| s_row[i] * p[i * out + j]).sum()).collect(),
                None => s_row.to_vec(),
            };
            let t_row = &t[row * tw..(row + 1) * tw];
            let dot: f64 = mapped.iter().zip(t_row).map(|(a, b)| a * b).sum();
            let ss: f64 = mapped.iter().map(|a| a * a).sum();
            let tt: f64 = t_row.iter().map(|b| b * b).sum();
            total += match loss {
                HiddenLoss::Mse => mapped.iter().zip(t_row).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / tt,
                HiddenLoss::Cosine => 1.0 - dot / (ss.sqrt() * tt.sqrt()),
            };
        }
    }
    weight * total / student.len() as f64
}

fn projection(p: &[f64], sw: usize, tw: usize) -> Linear<B> {
    let mut linear = LinearConfig::new(sw, tw).with_bias(false).init(&Default::default());
    linear.weight = Param::from_tensor(tensor(p, [sw, tw]));
    linear
}

fn check(loss: HiddenLoss, sw: usize, tw: usize) {
    let layers = 2;
    let student: Vec<Vec<f64>> = (0..layers).map(|l| values(10 + l, N * sw)).collect();
    let teacher: Vec<Vec<f64>> = (0..layers).map(|l| values(20 + l, N * tw)).collect();
    let p = (sw != tw).then(|| values(30, sw * tw));
    let alignment = HiddenAlignment { loss, weight: 0.7, teacher_layers: None };
    let value_of = |student: &[Vec<f64>], p: Option<&Vec<f64>>| {
        reference(loss, 0.7, student, &teacher, p.map(|p| (p.as_slice(), tw)))
    };

    let inputs: Vec<Tensor<B, 2>> = student.iter().map(|s| tensor(s, [N, sw]).require_grad()).collect();
    let linear = p.as_ref().map(|p| projection(p, sw, tw));
    let targets = teacher.iter().map(|t| tensor(t, [N, tw])).collect();
    let total = alignment.sum(inputs.clone(), targets, linear.as_ref()).unwrap();
    let value = total.clone().into_scalar().elem::<f64>();
    let expected = value_of(&student, p.as_ref());
    assert!((value - expected).abs() < 1e-4 * expected.abs() + 1e-6, "{loss:?}: {value} vs {expected}");

    let grads = total.backward();
    let h = 1e-4;
    for (layer, input) in inputs.iter().enumerate() {
        let grad = input.grad(&grads).unwrap().into_data().convert::<f32>().into_vec::<f32>().unwrap();
        for index in (0..N * sw).step_by(3) {
            let shifted = |delta: f64| {
                let mut moved = student.clone();
                moved[layer][index] += delta;
                value_of(&moved, p.as_ref())
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            let exact = f64::from(grad[index]);
            assert!((numeric - exact).abs() <= 1e-3 + 1e-2 * numeric.abs(), "{loss:?} d/ds[{layer}][{index}]: {exact} vs {numeric}");
        }
    }
    if let (Some(p), Some(linear)) = (&p, &linear) {
        let grad = linear.weight.grad(&grads).unwrap().into_data().convert::<f32>().into_vec::<f32>().unwrap();
        for index in (0..sw * tw).step_by(5) {
            let shifted = |delta: f64| {
                let mut moved = p.clone();
                moved[index] += delta;
                value_of(&student, Some(&moved))
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            let exact = f64::from(grad[index]);
            assert!((numeric - exact).abs() <= 1e-3 + 1e-2 * numeric.abs(), "{loss:?} d/dP[{index}]: {exact} vs {numeric}");
        }
    }
}

#[test]
fn mse_matches_its_definition_in_value_and_gradient() {
    check(HiddenLoss::Mse, 6, 6);
    check(HiddenLoss::Mse, 4, 7);
}

#[test]
fn cosine_matches_its_definition_in_value_and_gradient() {
    check(HiddenLoss::Cosine, 6, 6);
    check(HiddenLoss::Cosine, 4, 7);
}

#[test]
fn student_layers_map_to_teacher_layers() {
    let spread = HiddenAlignment { loss: HiddenLoss::Mse, weight: 1.0, teacher_layers: None };
    assert_eq!(spread.layer_map(3, 30).unwrap(), [9, 19, 29]);
    assert_eq!(spread.layer_map(4, 4).unwrap(), [0, 1, 2, 3]);
    assert_eq!(spread.layer_map(4, 6).unwrap(), [1, 2, 4, 5]);
    let kept = HiddenAlignment { teacher_layers: Some(vec![0, 4, 7]), ..spread.clone() };
    assert_eq!(kept.layer_map(3, 8).unwrap(), [0, 4, 7]);
    assert_eq!(
        kept.layer_map(2, 8).unwrap_err().to_string(),
        "hidden-state alignment maps 3 student layers, the student has 2"
    );
    assert_eq!(
        kept.layer_map(3, 6).unwrap_err(),
        HiddenError::NoSuchLayer { layer: 7, layers: 6 }
    );
    let zero = HiddenAlignment { weight: 0.0, ..spread };
    assert_eq!(
        zero.layer_map(2, 2).unwrap_err().to_string(),
        "hidden-state alignment weight must be a positive number, not 0"
    );
}

#[test]
fn different_widths_without_a_projection_are_refused() {
    let alignment = HiddenAlignment { loss: HiddenLoss::Cosine, weight: 1.0, teacher_layers: None };
    let err = alignment
        .sum(vec![tensor(&values(1, N * 3), [N, 3])], vec![tensor(&values(2, N * 5), [N, 5])], None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the student's hidden width is 3 and the teacher's 5: hidden-state alignment between \
         different widths needs the student's projection to the teacher's width"
    );
}

fn model(seed: u64, hidden: usize, layers: usize) -> Transformer<B> {
    B::seed(&Default::default(), seed);
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 20,
        hidden_size: hidden,
        intermediate_size: 48,
        num_layers: layers,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope: RopeConfig { theta: 10_000.0, scaling: RopeScaling::None },
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
            (tokens, vec![true; 8])
        })
        .collect();
    let documents =
        Documents::from_tokens(docs.iter().map(|(t, m)| (t.as_slice(), m.as_slice())), "hidden").unwrap();
    TrainData {
        documents: Arc::new(documents),
        loader: LoaderConfig {
            batch_size: 4,
            seq_len: 16,
            packing: true,
            order: Order { shuffle: true, seed: 3, shard: Shard::SINGLE },
            pad_token: 0,
            epochs: None,
        },
    }
}

/// A student of half the teacher's width and depth learns its projection and
/// its states towards the teacher's; a run killed after a checkpoint resumes
/// with the projection and repeats the uninterrupted run's losses.
#[test]
fn a_narrower_student_aligns_through_its_projection_and_resumes() {
    let teacher = model(1, 32, 4).valid();
    let objective = || {
        OnlineDistillation::<B>::new(teacher.clone(), Divergence::ForwardKl, 1.0, 0.5)
            .unwrap()
            .with_hidden(HiddenAlignment { loss: HiddenLoss::Mse, weight: 1.0, teacher_layers: None })
    };
    let student = || model(2, 16, 2).with_hidden_projection(32, None);
    let config = |steps| TrainConfig { steps, lr: 5e-3, checkpoint_every: 5, ..TrainConfig::default() };

    let whole = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::start(config(30), student(), data(), whole.path()).unwrap();
    let before = trainer.model().hidden_projection.as_ref().unwrap().weight.val().into_data();
    trainer.run(&mut objective(), &mut Quiet, None).unwrap();
    let after = trainer.model().hidden_projection.as_ref().unwrap().weight.val().into_data();
    assert_ne!(before, after, "the projection is trained");
    let metrics = read_metrics(&whole.path().join("metrics.jsonl")).unwrap();
    let (first, last) = (metrics[0].components["hidden"], metrics[29].components["hidden"]);
    assert!(last < 0.7 * first, "hidden-state alignment {first} → {last}");

    let killed = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::start(config(30), student(), data(), killed.path()).unwrap();
    trainer.run(&mut objective(), &mut Quiet, Some(10)).unwrap();
    let mut resumed = Trainer::<B>::resume(config(30), data(), killed.path(), &Default::default()).unwrap();
    assert!(resumed.model().hidden_projection.is_some(), "the checkpoint holds the projection");
    resumed.run(&mut objective(), &mut Quiet, None).unwrap();
    let again = read_metrics(&killed.path().join("metrics.jsonl")).unwrap();
    for (a, b) in metrics.iter().zip(&again).skip(10) {
        assert!((a.loss - b.loss).abs() <= 1e-6 * a.loss.abs(), "step {}: {} vs {}", a.step, a.loss, b.loss);
    }
}
