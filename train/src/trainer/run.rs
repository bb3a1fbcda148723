//! The training loop: micro-batches → loss → gradients accumulated over the
//! step → global-norm clipping → AdamW → metrics, with a checkpoint every N
//! steps from which [`Trainer::resume`] continues exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;
use datasets::order::SplitMix64;
use datasets::{Batch, Documents, Loader, LoaderConfig};

use super::config::{NonFinitePolicy, Precision, TrainConfig};
use super::metrics::{MetricsLog, StepMetrics};
use super::objective::Objective;
use super::parallel::{self, Replica};
use super::precision;
use super::progress::StepObserver;
use crate::checkpoint::{self, CheckpointDir, TrainerState};
use crate::error::TrainError;
use crate::model::Transformer;
use crate::optim::{AdamW, FreezePatterns, freeze, global_grad_norm, load_named, scale_grads};

/// The data a run trains on: prepared documents and how to batch them.
#[derive(Clone)]
pub struct TrainData {
    pub documents: Arc<Documents>,
    pub loader: LoaderConfig,
}

/// A run's directory layout: `checkpoints/` and `metrics.jsonl`.
fn checkpoints_of(run_dir: &Path, config: &TrainConfig) -> CheckpointDir {
    CheckpointDir::new(run_dir.join("checkpoints"), config.keep_checkpoints)
}

pub struct Trainer<B: AutodiffBackend> {
    config: TrainConfig,
    model: Transformer<B>,
    optimizer: AdamW<B>,
    loader: Loader,
    checkpoints: CheckpointDir,
    /// Only the leading replica writes metrics and checkpoints.
    metrics: Option<MetricsLog>,
    replica: Replica,
    step: u64,
    last_loss: f64,
    /// Steps skipped for a non-finite loss since the last good one.
    skipped_in_a_row: u64,
}

/// A run that skips non-finite steps stops after this many in a row: by then the
/// weights, not one batch, are what is broken.
const MAX_SKIPPED_IN_A_ROW: u64 = 10;

/// How a call to [`Trainer::run`] ended.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    /// Optimizer steps completed in all.
    pub steps: u64,
    pub last_loss: f64,
    pub last_checkpoint: Option<PathBuf>,
    /// The data ran out (a finite number of epochs) before the step count.
    pub data_exhausted: bool,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A fresh run of `model` in `run_dir`, which must hold no checkpoint yet.
    pub fn start(
        config: TrainConfig,
        model: Transformer<B>,
        data: TrainData,
        run_dir: &Path,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        precision::check::<B>(config.precision, &model.embed_tokens.weight.device())?;
        let checkpoints = checkpoints_of(run_dir, &config);
        if let Some(existing) = checkpoints.latest()? {
            return Err(TrainError::Checkpoint {
                path: existing,
                message: "this run has checkpoints already; resume it or use a new directory"
                    .into(),
            });
        }
        let (model, _) = freeze(model, &FreezePatterns::new(&config.freeze)?)?;
        std::fs::create_dir_all(run_dir).map_err(|source| TrainError::Io {
            path: run_dir.to_owned(),
            source,
        })?;
        Ok(Self {
            optimizer: AdamW::new(config.optimizer),
            loader: Loader::new(data.documents, data.loader)?,
            metrics: Some(MetricsLog::open(&run_dir.join("metrics.jsonl"), 0)?),
            checkpoints,
            replica: Replica::SOLE,
            model,
            config,
            step: 0,
            last_loss: f64::NAN,
            skipped_in_a_row: 0,
        })
    }

    /// Continues the run in `run_dir` from its newest checkpoint, with the same
    /// configuration and data (checked by fingerprints).
    pub fn resume(
        config: TrainConfig,
        data: TrainData,
        run_dir: &Path,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        precision::check::<B>(config.precision, device)?;
        let checkpoints = checkpoints_of(run_dir, &config);
        let dir = checkpoints
            .latest()?
            .ok_or_else(|| TrainError::Checkpoint {
                path: checkpoints.root().to_owned(),
                message: "no checkpoint to resume from".into(),
            })?;
        let mut trainer = Self::load(config, data, checkpoints, &dir, device)?;
        trainer.metrics = Some(MetricsLog::open(
            &run_dir.join("metrics.jsonl"),
            trainer.step,
        )?);
        Ok(trainer)
    }

    /// A replica other than the leader, starting where the leader's checkpoint
    /// of `step` in `run_dir` is; it writes nothing there.
    pub fn follow(
        config: TrainConfig,
        data: TrainData,
        run_dir: &Path,
        device: &B::Device,
        replica: Replica,
        step: u64,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        precision::check::<B>(config.precision, device)?;
        let checkpoints = checkpoints_of(run_dir, &config);
        let dir = checkpoints.of_step(step);
        let mut trainer = Self::load(config, data, checkpoints, &dir, device)?;
        trainer.replica = replica;
        Ok(trainer)
    }

    fn load(
        config: TrainConfig,
        data: TrainData,
        checkpoints: CheckpointDir,
        dir: &Path,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        let saved = checkpoint::load(dir)?;
        if saved.state.config_fingerprint != config.fingerprint() {
            return Err(TrainError::Checkpoint {
                path: dir.to_owned(),
                message: "was written with other training settings; resume with the same ones"
                    .into(),
            });
        }
        let model = checkpoint::model_for::<B>(&saved.model_config, &saved.weights, device)
            .map_err(|e| TrainError::Checkpoint {
                path: dir.to_owned(),
                message: e.to_string(),
            })?;
        let model = load_named(model, &saved.weights, device)?;
        let (model, _) = freeze(model, &FreezePatterns::new(&config.freeze)?)?;
        let optimizer = AdamW::load_state(config.optimizer, &saved.optimizer, device)?;
        let step = saved.state.step;
        Ok(Self {
            loader: Loader::resume(data.documents, data.loader, saved.state.loader)?,
            metrics: None,
            replica: Replica::SOLE,
            checkpoints,
            model,
            optimizer,
            config,
            step,
            last_loss: saved.state.loss,
            skipped_in_a_row: 0,
        })
    }

    pub fn model(&self) -> &Transformer<B> {
        &self.model
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn replica(&self) -> Replica {
        self.replica
    }

    /// This trainer as `replica` of a data-parallel run; the leader keeps
    /// writing, the others stop.
    pub fn into_replica(mut self, replica: Replica) -> Self {
        if !replica.is_leader() {
            self.metrics = None;
        }
        self.replica = replica;
        self
    }

    /// Makes sure the weights this run starts from are in a checkpoint, for
    /// replicas in other threads or processes to start from as well; returns its step.
    pub fn checkpoint_for_replicas(&mut self) -> Result<u64, TrainError> {
        if self
            .checkpoints
            .list()?
            .last()
            .is_none_or(|(step, _)| *step != self.step)
        {
            self.save_checkpoint()?;
        }
        Ok(self.step)
    }

    /// Trains until `config.steps` (or `until`, if sooner), reporting each step
    /// to `observer`.
    pub fn run(
        &mut self,
        objective: &mut impl Objective<B>,
        observer: &mut impl StepObserver,
        until: Option<u64>,
    ) -> Result<TrainSummary, TrainError> {
        let last = until.map_or(self.config.steps, |u| u.min(self.config.steps));
        let started = Instant::now();
        let mut last_checkpoint = None;
        let mut data_exhausted = false;
        while self.step < last {
            let batches: Vec<Batch> = (&mut self.loader)
                .take(self.config.grad_accum as usize)
                .collect();
            if batches.is_empty() {
                data_exhausted = true;
                break;
            }
            let step_started = Instant::now();
            let mut metrics = self.train_step(objective, &batches)?;
            let seconds = step_started.elapsed().as_secs_f64();
            let input_tokens: usize = batches
                .iter()
                .map(|b| b.document_ids.iter().filter(|&&d| d != 0).count())
                .sum();
            metrics.tokens_per_s = input_tokens as f64 / seconds.max(1e-9);
            metrics.elapsed_s = started.elapsed().as_secs_f64();
            if let Some(log) = &mut self.metrics {
                log.append(&metrics)?;
            }
            observer.on_step(&metrics);
            if self.replica.is_leader()
                && (self.step.is_multiple_of(self.config.checkpoint_every)
                    || self.step == self.config.steps)
            {
                last_checkpoint = Some(self.save_checkpoint()?);
            }
        }
        if data_exhausted && last_checkpoint.is_none() && self.step > 0 && self.replica.is_leader()
        {
            last_checkpoint = Some(self.save_checkpoint()?);
        }
        Ok(TrainSummary {
            steps: self.step,
            last_loss: self.last_loss,
            last_checkpoint,
            data_exhausted,
        })
    }

    fn train_step(
        &mut self,
        objective: &mut impl Objective<B>,
        batches: &[Batch],
    ) -> Result<StepMetrics, TrainError> {
        let step = self.step + 1;
        let lr = self.config.schedule().lr(self.step);
        let mut rng = SplitMix64::new(self.config.seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let trained: usize = batches
            .iter()
            .map(|b| b.loss_mask.iter().filter(|&&m| m).count())
            .sum();
        let norm = trained.max(1) as f64;
        let mut accumulator = GradientsAccumulator::<Transformer<B>>::new();
        let mut loss_sum = 0.0;
        let names = objective.components();
        // Per component name: its sum, then whether any micro-batch reported it.
        let mut components = vec![0.0; 2 * names.len()];
        for batch in batches {
            let rows = self.replica.rows(batch.rows);
            if rows.is_empty() {
                return Err(TrainError::BatchSplit {
                    step,
                    rows: batch.rows,
                    peers: self.replica.peers,
                });
            }
            let local;
            let batch = if self.replica.is_parallel() {
                local = batch.select_rows(rows);
                &local
            } else {
                batch
            };
            let working = (self.config.precision != Precision::F32).then(|| {
                precision::working_copy(&self.model, precision::dtype(self.config.precision))
            });
            let model = working.as_ref().unwrap_or(&self.model);
            let loss = objective.loss(model, batch, &mut rng)?;
            let value: f64 = loss.total.clone().into_scalar().elem();
            loss_sum += value;
            if !value.is_finite() {
                break;
            }
            for (name, part) in loss.components {
                let Some(at) = names.iter().position(|&n| n == name) else {
                    return Err(TrainError::UnknownComponent { name });
                };
                components[at] += part / norm;
                components[names.len() + at] = 1.0;
            }
            let grads = GradientsParams::from_grads(loss.total.div_scalar(norm).backward(), model);
            let grads = match &working {
                Some(working) => precision::f32_gradients(working, grads),
                None => grads,
            };
            accumulator.accumulate(&self.model, grads);
        }
        let device = self.model.embed_tokens.weight.device();
        let loss_sum =
            parallel::sum_values::<B::InnerBackend>(self.replica, &[loss_sum], &device)?[0];
        if !loss_sum.is_finite() {
            return self.non_finite(step, "loss", loss_sum, lr, trained);
        }
        let components =
            parallel::sum_values::<B::InnerBackend>(self.replica, &components, &device)?;
        let components: BTreeMap<String, f64> = names
            .iter()
            .enumerate()
            .filter(|&(at, _)| components[names.len() + at] > 0.0)
            .map(|(at, &name)| (name.to_owned(), components[at]))
            .collect();
        let grads = parallel::sum_grads(self.replica, &self.model, accumulator.grads())?;
        let grad_norm = global_grad_norm(&self.model, &grads);
        if !grad_norm.is_finite() {
            return self.non_finite(step, "gradient norm", grad_norm, lr, trained);
        }
        let scale = scale_grads(grad_norm, self.config.clip_norm);
        self.model = self.optimizer.step(self.model.clone(), grads, lr, scale);
        self.step = step;
        self.last_loss = loss_sum / norm;
        self.skipped_in_a_row = 0;
        Ok(StepMetrics {
            step,
            loss: self.last_loss,
            components,
            lr,
            grad_norm,
            trained_tokens: trained as u64,
            tokens_per_s: 0.0,
            elapsed_s: 0.0,
            skipped: None,
        })
    }

    /// Step `step` met a non-finite `what`: an error under
    /// [`NonFinitePolicy::Stop`]; under `Skip`, the step is taken without an
    /// update, so the schedule, the data and the checkpoints go on as planned.
    fn non_finite(
        &mut self,
        step: u64,
        what: &'static str,
        value: f64,
        lr: f64,
        trained: usize,
    ) -> Result<StepMetrics, TrainError> {
        if self.config.on_non_finite == NonFinitePolicy::Stop {
            return Err(TrainError::NonFinite { step, what, value });
        }
        self.skipped_in_a_row += 1;
        if self.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW {
            return Err(TrainError::NonFiniteRepeated {
                step,
                what,
                value,
                steps: self.skipped_in_a_row,
            });
        }
        self.step = step;
        Ok(StepMetrics {
            step,
            loss: if what == "loss" { value } else { f64::NAN },
            components: BTreeMap::new(),
            lr,
            grad_norm: if what == "loss" { f64::NAN } else { value },
            trained_tokens: trained as u64,
            tokens_per_s: 0.0,
            elapsed_s: 0.0,
            skipped: Some(format!("the {what} is {value}")),
        })
    }

    fn save_checkpoint(&mut self) -> Result<PathBuf, TrainError> {
        if let Some(log) = &mut self.metrics {
            log.sync()?;
        }
        let state = TrainerState {
            step: self.step,
            loader: self.loader.state(),
            seed: self.config.seed,
            config_fingerprint: self.config.fingerprint(),
            precision: self.config.precision,
            loss: self.last_loss,
        };
        self.checkpoints
            .save(&self.model, &self.optimizer.state(), &state)
    }
}
