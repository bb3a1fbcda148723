//! Learning-rate schedules with linear warmup, as `transformers` defines them
//! (`get_linear_schedule_with_warmup`, `get_cosine_schedule_with_warmup`), so a
//! recipe ported from a Trainer or TRL config keeps its curve.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduleKind {
    Constant,
    /// From the peak down to 0 at the last step.
    Linear,
    /// Half a cosine from the peak down to `min_lr_ratio` × peak.
    Cosine {
        min_lr_ratio: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub kind: ScheduleKind,
    pub peak_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl LrSchedule {
    /// The learning rate of optimizer step `step` (0-based). Warmup rises
    /// linearly from 0, as in transformers, where the first step's rate is 0.
    pub fn lr(&self, step: u64) -> f64 {
        let (step, warmup, total) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        if step < warmup {
            return self.peak_lr * step / warmup.max(1.0);
        }
        let decay_steps = (total - warmup).max(1.0);
        let progress = ((step - warmup) / decay_steps).min(1.0);
        let factor = match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => ((total - step) / decay_steps).max(0.0),
            ScheduleKind::Cosine { min_lr_ratio } => {
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                min_lr_ratio + (1.0 - min_lr_ratio) * cosine
            }
        };
        self.peak_lr * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind) -> LrSchedule {
        LrSchedule {
            kind,
            peak_lr: 1e-3,
            warmup_steps: 10,
            total_steps: 110,
        }
    }

    /// The values `transformers`' LambdaLR schedules give for the same settings.
    #[test]
    fn matches_transformers_formulas() {
        let linear = schedule(ScheduleKind::Linear);
        assert_eq!(linear.lr(0), 0.0);
        assert!((linear.lr(5) - 5e-4).abs() < 1e-15);
        assert!((linear.lr(10) - 1e-3).abs() < 1e-15);
        assert!((linear.lr(60) - 5e-4).abs() < 1e-15);
        assert_eq!(linear.lr(110), 0.0);
        let cosine = schedule(ScheduleKind::Cosine { min_lr_ratio: 0.0 });
        assert!((cosine.lr(60) - 5e-4).abs() < 1e-15);
        assert!(cosine.lr(110).abs() < 1e-18);
        let floor = schedule(ScheduleKind::Cosine { min_lr_ratio: 0.1 });
        assert!((floor.lr(110) - 1e-4).abs() < 1e-15);
        let constant = schedule(ScheduleKind::Constant);
        assert_eq!(constant.lr(109), 1e-3);
    }
}
