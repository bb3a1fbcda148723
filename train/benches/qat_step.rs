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

use std::sync::Arc;
use std::time::Duration;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use datasets::{Documents, LoaderConfig, Order, Shard};
use quantize::GgmlType;
use serde_json::json;
use train::import::{LayerWeight, Weight};
use train::optim::{AdamWConfig, ScheduleKind};
use train::qat::{FakeQuant, FakeQuantPlan, Ste};
use train::trainer::{
    CrossEntropy, NonFinitePolicy, Objective, Quiet, TrainConfig, TrainData, Trainer,
};
use train::{Architecture, CpuBackend, ModelConfig, RopeConfig, RopeScaling};

type B = Autodiff<CpuBackend>;

const BATCH: usize = 4;
const SEQ: usize = 256;
const STEPS: u64 = 4;
const ROUNDS: usize = 3;
const LAYERS: usize = 4;

fn model_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 49152,
        hidden_size: 512,
        intermediate_size: 1536,
        num_layers: LAYERS,
        num_heads: 8,
        num_kv_heads: 4,
        head_dim: 64,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: SEQ,
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
}

fn plan(ty: GgmlType) -> FakeQuantPlan {
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
        threads: threads(),
    }
}

fn data() -> TrainData {
    let mut state = 1u64;
    let docs: Vec<(Vec<u32>, Vec<bool>)> = (0..64)
        .map(|_| {
            let tokens = (0..SEQ)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 33) as u32 % 49152
                })
                .collect();
            (tokens, vec![true; SEQ])
        })
        .collect();
    let documents = Documents::from_tokens(
        docs.iter().map(|(t, m)| (t.as_slice(), m.as_slice())),
        "bench",
    )
    .expect("valid documents");
    TrainData {
        documents: Arc::new(documents),
        loader: LoaderConfig {
            batch_size: BATCH,
            seq_len: SEQ,
            packing: true,
            order: Order {
                shuffle: true,
                seed: 0,
                shard: Shard::SINGLE,
            },
            pad_token: 0,
            epochs: None,
        },
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
        grad_accum: 1,
        lr: 1e-4,
        schedule: ScheduleKind::Constant,
        warmup_steps: 0,
        optimizer: AdamWConfig::default(),
        clip_norm: Some(1.0),
        seed: 0,
        checkpoint_every: 1_000_000,
        keep_checkpoints: 1,
        freeze: Vec::new(),
        on_non_finite: NonFinitePolicy::Stop,
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

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

fn main() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads())
        .build_global()
        .expect("the global thread pool is not built yet");
    let types = [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K];
    let mut plain = Duration::MAX;
    let mut fake = vec![Duration::MAX; types.len()];
    for round in 0..ROUNDS {
        plain = plain.min(median_step(&mut CrossEntropy));
        for (best, &ty) in fake.iter_mut().zip(&types) {
            *best = (*best).min(median_step(&mut FakeQuant::new(CrossEntropy, plan(ty))));
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
        json!({ "threads": threads(), "batch": [BATCH, SEQ], "plain_step_s": plain.as_secs_f64(), "fake_quant": rows })
    );
}
