//! Tail samples in a teacher cache: as many as a position's rest mass earns,
//! drawn where the teacher's tail puts its mass, and making the cached
//! forward-KL gradient the whole vocabulary's in expectation, which the top-k
//! buckets alone do not.

use burn::backend::Autodiff;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use datasets::logit_cache::{Decoded, codec};
use datasets::order::SplitMix64;
use distill::Divergence;
use distill::cached::cached_divergence;
use distill::teacher_cache::top_k;
use train::CpuBackend;

type B = Autodiff<CpuBackend>;
const VOCAB: usize = 40;
const K: usize = 5;

fn logits(seed: u64, rows: usize, scale: f64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..rows * VOCAB)
        .map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * scale) as f32)
        .collect()
}

fn record(teacher: &[f32], tail: usize, seed: u64) -> Decoded {
    let topk = top_k(teacher, K, tail, seed);
    Decoded {
        ids: topk.ids,
        probs: topk.logprobs.iter().map(|l| l.exp()).collect(),
        rest: topk.rest,
        tail: topk.tail,
    }
}

#[test]
fn tail_samples_are_drawn_as_often_as_the_teacher_tail_says() {
    let teacher = logits(1, 1, 6.0);
    let draws = 4000u64;
    let tail = 16;
    let samples = codec::tail_count(record(&teacher, 0, 0).rest, tail);
    assert!(samples > 1, "{samples} samples");
    let mut counts = vec![0.0f64; VOCAB];
    for seed in 0..draws {
        let record = record(&teacher, tail, seed);
        assert_eq!(record.tail.len(), samples);
        for &id in &record.tail {
            assert!(
                !record.ids.contains(&id),
                "tail sample {id} is in the top-k"
            );
            counts[id as usize] += 1.0;
        }
    }
    assert_eq!(
        record(&teacher, tail, 7),
        record(&teacher, tail, 7),
        "a seed gives the same draws"
    );

    let log_sum = teacher
        .iter()
        .map(|&l| f64::from(l).exp())
        .sum::<f64>()
        .ln();
    let top = record(&teacher, 0, 0).ids;
    let rest: f64 = (0..VOCAB)
        .filter(|id| !top.contains(&(*id as u32)))
        .map(|id| (f64::from(teacher[id]) - log_sum).exp())
        .sum();
    for (id, &count) in counts.iter().enumerate() {
        let expected = if top.contains(&(id as u32)) {
            0.0
        } else {
            (f64::from(teacher[id]) - log_sum).exp() / rest
        };
        let share = count / (draws as f64 * samples as f64);
        assert!(
            (share - expected).abs() < 0.005,
            "id {id}: drawn {share:.4} of the time, its tail share is {expected:.4}"
        );
    }
}

/// d/d(student logits) of the cached divergence for records drawn with `seed`.
fn cached_gradient(
    student: &[f32],
    teacher: &[f32],
    rows: usize,
    tail: usize,
    seed: u64,
) -> Vec<f32> {
    let records: Vec<Decoded> = teacher
        .chunks_exact(VOCAB)
        .enumerate()
        .map(|(row, t)| record(t, tail, seed * rows as u64 + row as u64))
        .collect();
    divergence_and_gradient(student, &records).1
}

fn divergence_and_gradient(student: &[f32], records: &[Decoded]) -> (f32, Vec<f32>) {
    let logits = Tensor::<B, 2>::from_data(
        TensorData::new(student.to_vec(), [records.len(), VOCAB]),
        &Default::default(),
    )
    .require_grad();
    let loss = cached_divergence(Divergence::ForwardKl, logits.clone(), records, K).unwrap();
    let value = loss.clone().into_scalar().elem::<f32>();
    let grads = loss.backward();
    (value, logits.grad(&grads).unwrap().into_data().into_vec().unwrap())
}

/// Rows with different numbers of samples share one padded gather; each row
/// must come out as it would alone.
#[test]
fn records_with_different_sample_counts_score_as_they_would_alone() {
    let rows = 4;
    let student = logits(5, rows, 4.0);
    let records: Vec<Decoded> = [0.5, 3.0, 6.0, 9.0]
        .iter()
        .enumerate()
        .map(|(row, &scale)| record(&logits(6 + row as u64, 1, scale), 24, row as u64))
        .collect();
    let counts: Vec<usize> = records.iter().map(|r| r.tail.len()).collect();
    assert!(counts.windows(2).any(|c| c[0] != c[1]), "sample counts {counts:?}");
    let (together, gradient) = divergence_and_gradient(&student, &records);
    let mut alone = 0.0;
    for (row, record) in records.iter().enumerate() {
        let rows = row * VOCAB..(row + 1) * VOCAB;
        let (value, row_gradient) = divergence_and_gradient(&student[rows.clone()], std::slice::from_ref(record));
        alone += value;
        assert!(
            largest_difference(&gradient[rows], &row_gradient) < 1e-6,
            "row {row} ({} samples): its gradient changes in the batch",
            record.tail.len()
        );
    }
    assert!((together - alone).abs() < 1e-5 * alone.abs().max(1.0), "{together} together, {alone} alone");
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tail_samples_make_the_forward_kl_gradient_the_whole_vocabularys() {
    let rows = 3;
    let (student, teacher) = (logits(2, rows, 4.0), logits(3, rows, 6.0));
    let whole = {
        let device = Default::default();
        let logits =
            Tensor::<B, 2>::from_data(TensorData::new(student.clone(), [rows, VOCAB]), &device)
                .require_grad();
        let teacher =
            Tensor::<B, 2>::from_data(TensorData::new(teacher.clone(), [rows, VOCAB]), &device);
        let loss = Divergence::ForwardKl
            .sum(logits.clone(), teacher, 1.0)
            .unwrap();
        let grads = loss.backward();
        logits
            .grad(&grads)
            .unwrap()
            .into_data()
            .into_vec::<f32>()
            .unwrap()
    };

    let draws = 8000;
    let mut mean = vec![0.0f32; rows * VOCAB];
    for seed in 0..draws {
        for (m, g) in mean
            .iter_mut()
            .zip(cached_gradient(&student, &teacher, rows, 8, seed))
        {
            *m += g / draws as f32;
        }
    }
    let buckets = cached_gradient(&student, &teacher, rows, 0, 0);

    // Measured: 1.2e-3 at 8000 draws of 4 samples a row, halving per 4x
    // draws (noise, not bias); the buckets alone are 0.072 off.
    let sampled = largest_difference(&mean, &whole);
    let bucketed = largest_difference(&buckets, &whole);
    assert!(
        sampled < 2.5e-3,
        "mean gradient with tail samples is {sampled} from the whole vocabulary's"
    );
    assert!(
        bucketed > 10.0 * sampled,
        "the buckets alone are {bucketed} off, no worse than the samples' {sampled}"
    );
}
