//! How a run reports each step as it goes: the progress bar on stderr, or
//! nothing (tests, `--json` callers that draw their own).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::metrics::StepMetrics;

pub trait StepObserver {
    fn on_step(&mut self, metrics: &StepMetrics);
}

/// Ignores every step.
pub struct Quiet;

impl StepObserver for Quiet {
    fn on_step(&mut self, _: &StepMetrics) {}
}

/// An indicatif bar on stderr with loss, learning rate, tokens/s and ETA.
pub struct TrainProgress(ProgressBar);

impl TrainProgress {
    /// A bar for a run of `total_steps`, of which `done` are already done.
    pub fn new(label: &str, total_steps: u64, done: u64) -> Self {
        let bar = ProgressBar::new(total_steps).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps  {msg}  ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        bar.set_position(done);
        bar.enable_steady_tick(Duration::from_millis(500));
        Self(bar)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl StepObserver for TrainProgress {
    fn on_step(&mut self, m: &StepMetrics) {
        self.0.set_position(m.step);
        self.0.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.0} tok/s",
            m.loss, m.lr, m.tokens_per_s
        ));
    }
}
