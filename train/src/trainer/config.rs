//! What a training run is asked to do.

use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::optim::{AdamWConfig, LrSchedule, ScheduleKind};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Optimizer steps to take in all.
    pub steps: u64,
    /// Micro-batches whose gradients make one step.
    pub grad_accum: u64,
    pub lr: f64,
    pub schedule: ScheduleKind,
    pub warmup_steps: u64,
    pub optimizer: AdamWConfig,
    /// Clip the global gradient norm to this value.
    pub clip_norm: Option<f64>,
    /// Fixes the data order, the per-step random streams and a fresh model's
    /// initialisation.
    pub seed: u64,
    /// Write a checkpoint every this many steps (and after the last).
    pub checkpoint_every: u64,
    /// How many of the newest checkpoints to keep.
    pub keep_checkpoints: usize,
    /// Parameters excluded from training, as glob patterns over their names.
    pub freeze: Vec<String>,
    pub on_non_finite: NonFinitePolicy,
    /// What the forward and backward passes compute in; the weights and the
    /// optimizer's state stay f32.
    #[serde(default)]
    pub precision: Precision,
}

/// The float type of a step's forward and backward passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    F32,
    /// bfloat16 copies of the f32 master weights each step (mixed precision,
    /// as `torch.autocast` with bf16 does): gradients come back in bf16 and
    /// update the f32 weights; the loss and its softmax stay f32. Only on a
    /// backend that computes in bf16.
    Bf16,
}

/// What a step whose loss or gradient norm is NaN or infinite does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonFinitePolicy {
    /// Stop the run with an error naming the step; its last checkpoint stays.
    #[default]
    Stop,
    /// Leave the weights and optimizer state as they were and go on with the
    /// next batch, as large-scale trainers do for a rare bad batch; a run that
    /// keeps failing still stops.
    Skip,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            grad_accum: 1,
            lr: 1e-4,
            schedule: ScheduleKind::Cosine { min_lr_ratio: 0.1 },
            warmup_steps: 0,
            optimizer: AdamWConfig::default(),
            clip_norm: Some(1.0),
            seed: 0,
            checkpoint_every: 100,
            keep_checkpoints: 2,
            freeze: Vec::new(),
            on_non_finite: NonFinitePolicy::Stop,
            precision: Precision::F32,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), TrainError> {
        let fail = |m: String| Err(TrainError::Config(m));
        if self.steps == 0 {
            return fail("steps must be at least 1".into());
        }
        if self.grad_accum == 0 {
            return fail("grad_accum must be at least 1".into());
        }
        if self.checkpoint_every == 0 {
            return fail("checkpoint_every must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return fail(format!("lr must be a positive number, not {}", self.lr));
        }
        if self.warmup_steps > self.steps {
            return fail(format!(
                "warmup_steps ({}) is more than steps ({})",
                self.warmup_steps, self.steps
            ));
        }
        if let Some(clip) = self.clip_norm
            && !(clip.is_finite() && clip > 0.0)
        {
            return fail(format!("clip_norm must be a positive number, not {clip}"));
        }
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.optimizer;
        if !((0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2)) {
            return fail(format!(
                "AdamW betas must be in [0, 1), not ({beta1}, {beta2})"
            ));
        }
        if !(eps > 0.0 && weight_decay >= 0.0) {
            return fail(format!(
                "AdamW needs eps > 0 and weight_decay >= 0, not {eps} and {weight_decay}"
            ));
        }
        Ok(())
    }

    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            kind: self.schedule,
            peak_lr: self.lr,
            warmup_steps: self.warmup_steps,
            total_steps: self.steps,
        }
    }

    /// A hash of everything that shapes the weights step by step (the step count
    /// too: it shapes the schedule); checkpointing may change between a run and
    /// its resume.
    pub fn fingerprint(&self) -> u64 {
        let shaping = serde_json::json!({
            "steps": self.steps,
            "grad_accum": self.grad_accum,
            "lr": self.lr,
            "schedule": self.schedule,
            "warmup_steps": self.warmup_steps,
            "optimizer": self.optimizer,
            "clip_norm": self.clip_norm,
            "seed": self.seed,
            "freeze": self.freeze,
            "on_non_finite": self.on_non_finite,
        });
        // f32 runs keep the fingerprint they had before precision was a setting.
        let mut shaping = shaping;
        if self.precision != Precision::F32 {
            shaping["precision"] = serde_json::json!(self.precision);
        }
        fnv1a(shaping.to_string().as_bytes())
    }
}

/// FNV-1a, 64 bits: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
