//! What fake-quantization costs a training step: the trainer's full step
//! (forward, cross-entropy, backward, global-norm clip, AdamW) on a Llama of
//! 4 layers, hidden 512, FFN 1536, vocabulary 49152 (38M parameters, rows of
//! 512 and 1536 so that every type's blocks fit), batch 4 × 256 tokens, f32 on
//! 2 threads (`RAYON_NUM_THREADS` overrides), plain and with every matrix
//! fake-quantized to each type. Prints each step time and its ratio to the
//! plain step; the goal is at most 1.3.
//!
//!     cargo bench --bench qat_step
//!
//! The machine is shared, so the variants take turns, a few steps each per
//! round, and each variant's best median counts.

use std::time::Duration;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use quantize::GgmlType;
use serde_json::json;
use train::import::{LayerWeight, Weight};
use train::optim::ScheduleKind;
use train::qat::{FakeQuant, FakeQuantPlan, Ste};
use train::trainer::{CrossEntropy, Objective, Quiet, TrainConfig, TrainData, Trainer};
use train::{CpuBackend, ModelConfig};

mod common;

use common::SEQ;

type B = Autodiff<CpuBackend>;

const BATCH: usize = 4;
const STEPS: u64 = 4;
const ROUNDS: usize = 3;
const LAYERS: usize = 4;

fn model_config() -> ModelConfig {
    ModelConfig {
        num_layers: LAYERS,
        ..common::model_config()
    }
}

fn plan(ty: GgmlType, threads: usize) -> FakeQuantPlan {
    use LayerWeight::*;
    let mut tensors = vec![(Weight::TokenEmbedding, ty)];
    for layer in 0..LAYERS {
        for kind in [Q, K, V, O, Gate, Up, Down] {
            tensors.push((Weight::Layer(layer, kind), ty));
        }
    }
    FakeQuantPlan {
        tensors,
        ste: Ste::Identity,
        threads,
    }
}

fn data() -> TrainData {
    TrainData {
        documents: common::documents(64, common::model_config().vocab_size),
        loader: common::loader(BATCH),
    }
}

/// The median step time of a short run with `objective`.
fn median_step(objective: &mut impl Objective<B>) -> Duration {
    B::seed(&Default::default(), 0);
    let model = model_config()
        .init::<B>(&Default::default())
        .expect("a valid configuration");
    let config = TrainConfig {
        steps: STEPS,
        schedule: ScheduleKind::Constant,
        checkpoint_every: 1_000_000,
        keep_checkpoints: 1,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut trainer = Trainer::start(config, model, data(), dir.path()).expect("a fresh run");
    trainer
        .run(objective, &mut Quiet, None)
        .expect("the run completes");
    let metrics = std::fs::read_to_string(dir.path().join("metrics.jsonl")).expect("metrics");
    let mut seconds: Vec<f64> = metrics
        .lines()
        .skip(1)
        .map(|line| {
            let m: serde_json::Value = serde_json::from_str(line).expect("a metrics line");
            (BATCH * SEQ) as f64 / m["tokens_per_s"].as_f64().expect("tokens/s")
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    Duration::from_secs_f64(seconds[seconds.len() / 2])
}

fn main() {
    let threads = common::threads();
    let types = [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K];
    let mut plain = Duration::MAX;
    let mut fake = vec![Duration::MAX; types.len()];
    for round in 0..ROUNDS {
        plain = plain.min(median_step(&mut CrossEntropy));
        for (best, &ty) in fake.iter_mut().zip(&types) {
            *best = (*best).min(median_step(&mut FakeQuant::new(
                CrossEntropy,
                plan(ty, threads),
            )));
        }
        eprintln!("round {} of {ROUNDS} done", round + 1);
    }
    let rows: Vec<_> = types
        .iter()
        .zip(&fake)
        .map(|(ty, step)| {
            let ratio = step.as_secs_f64() / plain.as_secs_f64();
            println!(
                "{:<6} {:>8.3} s/step  {ratio:.3}× the plain step",
                ty.name(),
                step.as_secs_f64()
            );
            json!({ "type": ty.name(), "step_s": step.as_secs_f64(), "ratio": ratio })
        })
        .collect();
    println!("plain  {:>8.3} s/step", plain.as_secs_f64());
    println!(
        "{}",
        json!({ "threads": threads, "batch": [BATCH, SEQ], "plain_step_s": plain.as_secs_f64(), "fake_quant": rows })
    );
}
