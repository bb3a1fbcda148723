//! `metrics.jsonl`: one JSON line per optimizer step. A resumed run first drops
//! the lines of the steps it will redo, so the file reads as one uninterrupted run.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer steps taken, this one included.
    pub step: u64,
    /// Mean loss per trained token.
    #[serde(with = "crate::json_number")]
    pub loss: f64,
    /// The parts of the loss, each a mean per trained token.
    pub components: BTreeMap<String, f64>,
    pub lr: f64,
    /// Global gradient norm before clipping.
    #[serde(with = "crate::json_number")]
    pub grad_norm: f64,
    /// Tokens that carried a loss.
    pub trained_tokens: u64,
    /// Input tokens (padding excluded) per second of this step.
    pub tokens_per_s: f64,
    /// Seconds since this process started training.
    pub elapsed_s: f64,
    /// Why the step left the weights as they were (`"the loss is NaN"`), when
    /// the run skips non-finite steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for appending after `completed_steps`, dropping any line of a
    /// later step (work a killed run did after its last checkpoint).
    pub fn open(path: &Path, completed_steps: u64) -> Result<Self, TrainError> {
        let io = |source| TrainError::Io {
            path: path.to_owned(),
            source,
        };
        if path.exists() {
            let kept = kept_lines(path, completed_steps)?;
            let temporary = path.with_extension("jsonl.tmp");
            let mut out = File::create(&temporary).map_err(io)?;
            for line in &kept {
                writeln!(out, "{line}").map_err(io)?;
            }
            out.sync_all().map_err(io)?;
            fs::rename(&temporary, path).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    pub fn append(&mut self, metrics: &StepMetrics) -> Result<(), TrainError> {
        let line = serde_json::to_string(metrics).map_err(|source| TrainError::Json {
            path: self.path.clone(),
            source,
        })?;
        writeln!(self.file, "{line}").map_err(|source| TrainError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Makes every line so far durable; done with each checkpoint.
    pub fn sync(&self) -> Result<(), TrainError> {
        self.file.sync_data().map_err(|source| TrainError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// The lines of steps up to `completed_steps`; a torn last line (a kill in the
/// middle of a write) is dropped too.
fn kept_lines(path: &Path, completed_steps: u64) -> Result<Vec<String>, TrainError> {
    let file = File::open(path).map_err(|source| TrainError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut kept = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|source| TrainError::Io {
            path: path.to_owned(),
            source,
        })?;
        let step = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64));
        if step.is_some_and(|s| s <= completed_steps) {
            kept.push(line);
        }
    }
    Ok(kept)
}

/// Every step's metrics in a `metrics.jsonl`, for reports and tests.
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>, TrainError> {
    let text = fs::read_to_string(path).map_err(|source| TrainError::Io {
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .map(|line| {
            serde_json::from_str(line).map_err(|source| TrainError::Json {
                path: path.to_owned(),
                source,
            })
        })
        .collect()
}
