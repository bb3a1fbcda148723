//! Training throughput of decant's own training loop (the `Trainer` with
//! cross-entropy, AdamW, global-norm clipping) on the ~50M-parameter student
//! of `common/mod.rs`, batches of BATCH rows of 256 tokens, f32, on
//! RAYON_NUM_THREADS threads (2 by default).
//!
//! It prints one JSON line: tokens per second over the measured steps (after
//! warm-up; the steps alone, as the trainer times them, without the final
//! checkpoint), the median step, and the process's peak resident memory. It
//! runs on decant's allocator, as the `decant` binary does.
//! `tools/bench/train_vs_torch.sh` runs it beside the same model in PyTorch
//! eager and prints the ratio.
//!
//!     cargo bench -p train --bench train_step --profile dev
//!     BATCH=8 STEPS=6 cargo bench -p train --bench train_step --profile dev

mod common;

use burn::backend::Autodiff;
use serde_json::json;
use train::CpuBackend;
use train::trainer::{CrossEntropy, Quiet, TrainConfig, TrainData, Trainer, read_metrics};

use common::{SEQ, documents, env, loader, model_config, threads};

type B = Autodiff<CpuBackend>;

const WARMUP_STEPS: u64 = 2;

#[global_allocator]
static HEAP: train::allocator::Heap = train::allocator::HEAP;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    train::allocator::keep_freed_memory();
    let threads = threads();
    let batch = env("BATCH", 4);
    let measured = env("STEPS", 5) as u64;
    let config = model_config();
    let steps = WARMUP_STEPS + measured;
    let data = TrainData {
        documents: documents(batch * steps as usize, config.vocab_size),
        loader: loader(batch),
    };
    let train = TrainConfig {
        steps,
        lr: 3e-4,
        clip_norm: Some(1.0),
        checkpoint_every: steps + 1,
        keep_checkpoints: 1,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let model = config
        .init::<B>(&Default::default())
        .expect("a valid configuration");
    let parameters = burn::module::Module::num_params(&model);
    let mut trainer = Trainer::start(train, model, data, dir.path()).expect("a fresh run");
    trainer
        .run(&mut CrossEntropy, &mut Quiet, None)
        .expect("the steps run");
    let metrics = read_metrics(&dir.path().join("metrics.jsonl")).expect("the run's metrics");
    let mut step_s: Vec<f64> = metrics[WARMUP_STEPS as usize..]
        .iter()
        .map(|m| (batch * SEQ) as f64 / m.tokens_per_s)
        .collect();
    let tokens = (batch * SEQ) as f64 * measured as f64;
    let tokens_per_s = tokens / step_s.iter().sum::<f64>();
    step_s.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "impl": "decant (burn flex)",
            "parameters": parameters,
            "batch": batch,
            "seq": SEQ,
            "threads": threads,
            "steps": measured,
            "tokens_per_s": tokens_per_s,
            "median_step_s": step_s[step_s.len() / 2],
            "peak_rss_mib": peak_rss_mib(),
        })
    );
}
