//! A stage's training on this process's replicas: one per device of
//! `[train] devices`, and with `--world` one set per node, through the
//! training core's data parallelism. The process of rank 0 leads: it alone
//! prepares the run and writes into the stage's directory.

use std::path::Path;

use burn::tensor::backend::{AutodiffBackend, Backend};
use sha2::{Digest, Sha256};
use train::Transformer;
use train::optim::named_tensors;
use train::trainer::{
    MakeObjective, Prepare, Quiet, Replicas, Topology, TrainConfig, TrainData, TrainProgress,
    TrainSummary, Trainer, train_replicas,
};

use super::StageError;

/// A stage's training: the run's shape and what every replica trains with.
pub struct Training<'a> {
    pub topology: &'a Topology,
    pub config: &'a TrainConfig,
    pub data: TrainData,
    pub dir: &'a Path,
    /// The progress bar's name.
    pub stage: &'a str,
    pub progress: bool,
    /// What the leader does once all replicas have joined.
    pub prepare: Option<Prepare<'a>>,
}

impl Training<'_> {
    /// Trains to the configured step, with a progress bar on the leader when
    /// asked. `leader` is the started or resumed run on rank 0, `None` on the
    /// other ranks; `objectives` holds one maker per device.
    pub fn run<B: AutodiffBackend, O: train::trainer::Objective<B>>(
        self,
        leader: Option<Trainer<B>>,
        objectives: Vec<MakeObjective<'_, B::Device, O>>,
    ) -> Result<(Trainer<B>, TrainSummary), StageError> {
        let from = leader.as_ref().map_or(0, Trainer::step);
        let replicas = Replicas {
            topology: self.topology.clone(),
            devices: train::backend::devices::<B>(self.topology.devices),
            objectives,
            prepare: self.prepare,
            config: self.config.clone(),
            data: self.data,
            run_dir: self.dir,
        };
        let done = if self.progress && self.topology.is_leader() {
            let mut bar = TrainProgress::new(self.stage, self.config.steps, from);
            let done = train_replicas(replicas, leader, &mut bar);
            bar.finish();
            done
        } else {
            train_replicas(replicas, leader, &mut Quiet)
        }?;
        Ok(done)
    }
}

/// One objective maker per device of `topology`, each from `make`.
pub fn objectives<'a, D, O>(
    topology: &Topology,
    make: impl Fn() -> MakeObjective<'a, D, O>,
) -> Vec<MakeObjective<'a, D, O>> {
    (0..topology.devices).map(|_| make()).collect()
}

/// sha256 of a model's weights (f32 little-endian, in name order): replicas that
/// stayed in step hold the same.
pub fn weights_sha256<B: Backend>(model: &Transformer<B>) -> String {
    let mut hasher = Sha256::new();
    for (name, tensor) in named_tensors(model) {
        hasher.update(name.as_bytes());
        for value in tensor.values {
            hasher.update(value.to_le_bytes());
        }
    }
    format!("{:x}", hasher.finalize())
}
