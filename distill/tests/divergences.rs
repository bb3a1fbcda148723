//! Each divergence against a direct f64 implementation of its definition:
//! values, and gradients with respect to the student logits (autodiff against
//! central finite differences of the reference).

use burn::backend::Autodiff;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use datasets::order::SplitMix64;
use distill::Divergence;
use train::CpuBackend;

type B = Autodiff<CpuBackend>;

const N: usize = 3;
const V: usize = 7;

fn logits(seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..N * V)
        .map(|_| (rng.next_u64() as f64 / u64::MAX as f64 - 0.5) * 2.0 * scale)
        .collect()
}

fn softmax(row: &[f64], t: f64) -> Vec<f64> {
    let max = row.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = row.iter().map(|x| ((x - max) / t).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|x| x / z).collect()
}

fn kl(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(p, q)| if *p == 0.0 { 0.0 } else { p * (p / q).ln() })
        .sum()
}

fn mix(w: f64, p: &[f64], q: &[f64]) -> Vec<f64> {
    p.iter()
        .zip(q)
        .map(|(p, q)| w * p + (1.0 - w) * q)
        .collect()
}

/// The definition, position by position, T²-scaled and summed.
fn reference(kind: Divergence, student: &[f64], teacher: &[f64], t: f64) -> f64 {
    let mut total = 0.0;
    for row in 0..N {
        let s = softmax(&student[row * V..(row + 1) * V], t);
        let p = softmax(&teacher[row * V..(row + 1) * V], t);
        total += match kind {
            Divergence::ForwardKl => kl(&p, &s),
            Divergence::ReverseKl => kl(&s, &p),
            // TRL's ends: the mixture formula vanishes there, TRL uses the KLs.
            Divergence::Jsd { beta } if beta == 0.0 => kl(&p, &s),
            Divergence::Jsd { beta } if beta == 1.0 => kl(&s, &p),
            Divergence::Jsd { beta } => {
                let m = mix(beta, &p, &s);
                beta * kl(&p, &m) + (1.0 - beta) * kl(&s, &m)
            }
            Divergence::SkewForwardKl { alpha } => kl(&p, &mix(alpha, &p, &s)),
            Divergence::SkewReverseKl { alpha } => kl(&s, &mix(alpha, &s, &p)),
            Divergence::TotalVariation => {
                0.5 * p.iter().zip(&s).map(|(a, b)| (a - b).abs()).sum::<f64>()
            }
        };
    }
    total * t * t
}

fn tensor(values: &[f64]) -> Tensor<B, 2> {
    let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, [N, V]), &Default::default())
}

const KINDS: [Divergence; 8] = [
    Divergence::ForwardKl,
    Divergence::ReverseKl,
    Divergence::Jsd { beta: 0.5 },
    Divergence::Jsd { beta: 0.1 },
    Divergence::Jsd { beta: 0.0 },
    Divergence::SkewForwardKl { alpha: 0.1 },
    Divergence::SkewReverseKl { alpha: 0.3 },
    Divergence::TotalVariation,
];

#[test]
fn values_and_gradients_match_the_definitions() {
    let teacher = logits(1, 3.0);
    let student = logits(2, 3.0);
    for kind in KINDS {
        for t in [1.0, 2.0, 0.7] {
            let s = tensor(&student).require_grad();
            let loss = kind.sum(s.clone(), tensor(&teacher), t).unwrap();
            let value: f64 = loss.clone().into_scalar().elem();
            let expected = reference(kind, &student, &teacher, t);
            assert!(
                (value - expected).abs() <= 1e-5 + 1e-4 * expected.abs(),
                "{kind:?} T={t}: {value} vs {expected}"
            );
            let grads = loss.backward();
            let grad: Vec<f32> = s.grad(&grads).unwrap().into_data().to_vec().unwrap();
            let h = 1e-5;
            for i in 0..N * V {
                let mut plus = student.clone();
                plus[i] += h;
                let mut minus = student.clone();
                minus[i] -= h;
                let numeric = (reference(kind, &plus, &teacher, t)
                    - reference(kind, &minus, &teacher, t))
                    / (2.0 * h);
                let exact = f64::from(grad[i]);
                assert!(
                    (numeric - exact).abs() <= 1e-4 + 1e-3 * numeric.abs(),
                    "{kind:?} T={t} d/ds[{i}]: autodiff {exact}, reference {numeric}"
                );
            }
        }
    }
}

#[test]
fn identical_distributions_have_no_divergence() {
    let same = logits(3, 5.0);
    for kind in KINDS {
        let value: f64 = kind
            .sum(tensor(&same), tensor(&same), 1.5)
            .unwrap()
            .into_scalar()
            .elem();
        assert!(value.abs() < 1e-5, "{kind:?}: {value}");
    }
}

#[test]
fn the_teacher_gets_no_gradient() {
    let t = tensor(&logits(4, 1.0)).require_grad();
    let s = tensor(&logits(5, 1.0)).require_grad();
    let grads = Divergence::ForwardKl
        .sum(s.clone(), t.clone(), 1.0)
        .unwrap()
        .backward();
    assert!(t.grad(&grads).is_none());
    assert!(s.grad(&grads).is_some());
}

#[test]
fn bad_settings_are_named() {
    let (s, t) = (tensor(&logits(6, 1.0)), tensor(&logits(7, 1.0)));
    let err = Divergence::ForwardKl
        .sum(s.clone(), t.clone(), 0.0)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "the temperature must be a positive number, not 0"
    );
    let err = Divergence::Jsd { beta: 1.5 }
        .sum(s.clone(), t.clone(), 1.0)
        .err()
        .unwrap();
    assert_eq!(err.to_string(), "beta must lie in [0, 1], not 1.5");
    let narrow = Tensor::<B, 2>::zeros([N, V - 1], &Default::default());
    let err = Divergence::ReverseKl.sum(s, narrow, 1.0).err().unwrap();
    assert!(
        err.to_string().contains("align a padded vocabulary"),
        "{err}"
    );
}
