//! Where a training step's time goes, phase by phase, on the ~50M-parameter
//! student of `common/mod.rs` (BATCH rows of 256 tokens, 2 threads by
//! default): the model's forward pass alone, the cross-entropy objective
//! (forward pass and the output head's chunked loss, whose chunks run their
//! own backward passes), the backward pass through the model, the global
//! gradient norm and the AdamW update. The kernels under the step are tuned
//! against these figures.
//!
//!     cargo bench -p train --bench step_phases --profile dev

mod common;

use std::time::Instant;

use burn::backend::Autodiff;
use burn::optim::GradientsParams;
use burn::tensor::ElementConversion;
use datasets::Loader;
use datasets::order::SplitMix64;
use train::CpuBackend;
use train::optim::{AdamW, AdamWConfig, global_grad_norm};
use train::trainer::{CrossEntropy, Objective, layout, token_tensor};

use common::{documents, env, loader, model_config, threads};

type B = Autodiff<CpuBackend>;

#[global_allocator]
static HEAP: train::allocator::Heap = train::allocator::HEAP;

fn main() {
    train::allocator::keep_freed_memory();
    threads();
    let (batch, steps) = (env("BATCH", 4), env("STEPS", 4));
    let config = model_config();
    let batches: Vec<_> = Loader::new(documents(batch * steps, config.vocab_size), loader(batch))
        .expect("a loader")
        .take(steps)
        .collect();
    let mut model = config
        .init::<B>(&Default::default())
        .expect("a valid configuration");
    let mut optimizer = AdamW::<B>::new(AdamWConfig::default());
    let device = Default::default();
    for (step, batch) in batches.iter().enumerate() {
        let started = Instant::now();
        drop(model.hidden_states_rows(token_tensor(batch, &device), layout(batch)));
        let forward = started.elapsed();
        let started = Instant::now();
        let loss = CrossEntropy
            .loss(&model, batch, &mut SplitMix64::new(0))
            .expect("the loss");
        let objective = started.elapsed();
        let tokens = (batch.rows * batch.seq_len) as f64;
        let value: f64 = loss.total.clone().into_scalar().elem();
        let started = Instant::now();
        let grads = GradientsParams::from_grads(loss.total.div_scalar(tokens).backward(), &model);
        let backward = started.elapsed();
        let started = Instant::now();
        let norm = global_grad_norm(&model, &grads);
        let clip = started.elapsed();
        let started = Instant::now();
        model = optimizer.step(model, grads, 1e-4, 1.0);
        let update = started.elapsed();
        eprintln!(
            "step {step}: loss {:.3}, forward {forward:.2?} | objective (forward + head) {objective:.2?} | \
             backward {backward:.2?} | gradient norm {clip:.2?} ({norm:.3}) | AdamW {update:.2?} | \
             step {:.2?}",
            value / tokens,
            objective + backward + clip + update
        );
    }
}
