//! Checkpoints that a resumed run continues from bit for bit: the weights, the
//! optimizer's moments, and the trainer's position (step, data iterator,
//! random state), each checkpoint a directory written under a temporary name,
//! synced and renamed, the last K kept.
//!
//! ```text
//! checkpoints/step-00000100/
//!   model.safetensors       weights by module path (f32)
//!   optimizer.safetensors   `<name>/exp_avg`, `<name>/exp_avg_sq`
//!   model_config.json       the ModelConfig, so the checkpoint loads as a model
//!   trainer_state.json      TrainerState
//! ```

mod tensor_file;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use datasets::LoaderState;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::TrainError;
use crate::model::Transformer;
use crate::optim::{AdamWState, NamedTensor, named_tensors};

const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const CONFIG_FILE: &str = "model_config.json";
const STATE_FILE: &str = "trainer_state.json";
const TEMPORARY_PREFIX: &str = ".tmp-";

/// Where a run stands after an optimizer step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps taken.
    pub step: u64,
    /// The data iterator after the last batch of `step`.
    pub loader: LoaderState,
    /// The seed of the per-step random streams (each step's generator is
    /// derived from it and the step, so this and `step` are its whole state).
    pub seed: u64,
    /// A hash of the training configuration, so that a resume with different
    /// settings is refused instead of silently mixing two runs.
    pub config_fingerprint: u64,
    /// The float type the steps computed in (f32 master weights either way).
    #[serde(default)]
    pub precision: crate::trainer::Precision,
    /// The loss of `step`, for display.
    #[serde(with = "crate::json_number")]
    pub loss: f64,
}

/// A checkpoint read back: everything a trainer needs to continue.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub model_config: ModelConfig,
    pub weights: BTreeMap<String, NamedTensor>,
    pub optimizer: AdamWState,
    pub state: TrainerState,
}

/// The checkpoints of one run, in `root`.
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    root: PathBuf,
    keep: usize,
}

impl CheckpointDir {
    /// `keep` is how many of the newest checkpoints survive a save (at least 1).
    pub fn new(root: impl Into<PathBuf>, keep: usize) -> Self {
        Self {
            root: root.into(),
            keep: keep.max(1),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes a checkpoint of `model` and the optimizer at `state.step`, then
    /// removes the oldest beyond `keep`. Until the final rename nothing is
    /// visible under a checkpoint name, so a crash leaves the previous one intact.
    pub fn save<B: Backend>(
        &self,
        model: &Transformer<B>,
        optimizer: &AdamWState,
        state: &TrainerState,
    ) -> Result<PathBuf, TrainError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| TrainError::Io { path, source }
        };
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        self.remove_temporaries()?;
        let target = self.of_step(state.step);
        let name = target
            .file_name()
            .expect("a step name")
            .to_string_lossy()
            .into_owned();
        if target.exists() {
            return Err(TrainError::Checkpoint {
                path: target,
                message: "a checkpoint of this step exists already".into(),
            });
        }
        let temporary = self
            .root
            .join(format!("{TEMPORARY_PREFIX}{name}-{}", std::process::id()));
        fs::create_dir(&temporary).map_err(io(&temporary))?;
        tensor_file::write(&temporary.join(MODEL_FILE), &named_tensors(model))?;
        tensor_file::write(
            &temporary.join(OPTIMIZER_FILE),
            &optimizer_tensors(optimizer),
        )?;
        write_json(&temporary.join(CONFIG_FILE), &model.config)?;
        write_json(
            &temporary.join(STATE_FILE),
            &SavedState {
                trainer: state.clone(),
                optimizer_steps: optimizer.steps,
            },
        )?;
        sync_dir(&temporary)?;
        fs::rename(&temporary, &target).map_err(io(&target))?;
        sync_dir(&self.root)?;
        self.prune()?;
        Ok(target)
    }

    /// The complete checkpoints, oldest first.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>, TrainError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(TrainError::Io {
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| TrainError::Io {
                path: self.root.clone(),
                source,
            })?;
            let name = entry.file_name();
            let step = name
                .to_str()
                .and_then(|n| n.strip_prefix("step-"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(step) = step {
                found.push((step, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Where the checkpoint of `step` is (or would be).
    pub fn of_step(&self, step: u64) -> PathBuf {
        self.root.join(format!("step-{step:08}"))
    }

    pub fn latest(&self) -> Result<Option<PathBuf>, TrainError> {
        Ok(self.list()?.pop().map(|(_, path)| path))
    }

    fn prune(&self) -> Result<(), TrainError> {
        let all = self.list()?;
        let excess = all.len().saturating_sub(self.keep);
        for (_, path) in &all[..excess] {
            fs::remove_dir_all(path).map_err(|source| TrainError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Half-written checkpoints of a killed run.
    fn remove_temporaries(&self) -> Result<(), TrainError> {
        let entries = fs::read_dir(&self.root).map_err(|source| TrainError::Io {
            path: self.root.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let is_temporary = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TEMPORARY_PREFIX));
            if is_temporary {
                fs::remove_dir_all(entry.path()).map_err(|source| TrainError::Io {
                    path: entry.path(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

/// Reads the checkpoint in `dir`.
pub fn load(dir: &Path) -> Result<Checkpoint, TrainError> {
    let saved: SavedState = read_json(&dir.join(STATE_FILE))?;
    let model_config: ModelConfig = read_json(&dir.join(CONFIG_FILE))?;
    let weights = tensor_file::read(&dir.join(MODEL_FILE))?;
    check_config(dir, &model_config, &weights)?;
    let optimizer_path = dir.join(OPTIMIZER_FILE);
    let optimizer = optimizer_state(
        &optimizer_path,
        tensor_file::read(&optimizer_path)?,
        saved.optimizer_steps,
    )?;
    Ok(Checkpoint {
        dir: dir.to_owned(),
        model_config,
        weights,
        optimizer,
        state: saved.trainer,
    })
}

/// Whether `dir` holds a decant checkpoint (rather than another kind of model).
pub fn is_checkpoint(dir: &Path) -> bool {
    dir.join(STATE_FILE).is_file() && dir.join(MODEL_FILE).is_file()
}

/// The model of the checkpoint in `dir`, for commands that only read it.
pub fn load_model<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<Transformer<B>, TrainError> {
    let model_config: ModelConfig = read_json(&dir.join(CONFIG_FILE))?;
    let weights = tensor_file::read(&dir.join(MODEL_FILE))?;
    check_config(dir, &model_config, &weights)?;
    let model = model_for(&model_config, &weights, device).map_err(|e| TrainError::Checkpoint {
        path: dir.join(CONFIG_FILE),
        message: e.to_string(),
    })?;
    crate::optim::load_named(model, &weights, device).map_err(|e| TrainError::Checkpoint {
        path: dir.join(MODEL_FILE),
        message: e.to_string(),
    })
}

const PROJECTION_WEIGHT: &str = "hidden_projection.weight";

/// A model of `config` with the parameters `weights` hold: with the
/// hidden-state projection that distillation trains, when they have one.
pub(crate) fn model_for<B: Backend>(
    config: &ModelConfig,
    weights: &BTreeMap<String, NamedTensor>,
    device: &B::Device,
) -> Result<Transformer<B>, crate::error::ModelError> {
    let model = config.init::<B>(device)?;
    Ok(
        match weights.get(PROJECTION_WEIGHT).map(|t| t.shape.as_slice()) {
            Some(&[_, width]) => model.with_hidden_projection(width, None),
            _ => model,
        },
    )
}

/// Both readers initialize a model from the configuration before the saved
/// weights replace its values, so a configuration larger than the weights
/// would allocate from its sizes alone (terabytes, from an edited number):
/// it is refused while the weights' size still bounds what was allocated.
fn check_config(
    dir: &Path,
    config: &ModelConfig,
    weights: &BTreeMap<String, NamedTensor>,
) -> Result<(), TrainError> {
    let invalid = |message: String| TrainError::Checkpoint {
        path: dir.join(CONFIG_FILE),
        message,
    };
    config.validate().map_err(|e| invalid(e.to_string()))?;
    let needed = config.parameter_count().expect("validate checks it");
    let held: usize = weights.values().map(|t| t.values.len()).sum();
    if needed > held {
        return Err(invalid(format!(
            "describes a model of {needed} weights, but {MODEL_FILE} holds {held}"
        )));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    trainer: TrainerState,
    optimizer_steps: u64,
}

const EXP_AVG: &str = "/exp_avg";
const EXP_AVG_SQ: &str = "/exp_avg_sq";

fn optimizer_tensors(state: &AdamWState) -> BTreeMap<String, NamedTensor> {
    state
        .moments
        .iter()
        .flat_map(|(name, (avg, avg_sq))| {
            [
                (format!("{name}{EXP_AVG}"), avg.clone()),
                (format!("{name}{EXP_AVG_SQ}"), avg_sq.clone()),
            ]
        })
        .collect()
}

fn optimizer_state(
    path: &Path,
    mut tensors: BTreeMap<String, NamedTensor>,
    steps: u64,
) -> Result<AdamWState, TrainError> {
    let names: Vec<String> = tensors
        .keys()
        .filter_map(|key| key.strip_suffix(EXP_AVG).map(str::to_owned))
        .collect();
    let mut moments = BTreeMap::new();
    for name in names {
        let avg = tensors.remove(&format!("{name}{EXP_AVG}"));
        let avg_sq = tensors.remove(&format!("{name}{EXP_AVG_SQ}"));
        match (avg, avg_sq) {
            (Some(avg), Some(avg_sq)) => {
                moments.insert(name, (avg, avg_sq));
            }
            _ => {
                return Err(TrainError::Checkpoint {
                    path: path.to_owned(),
                    message: format!("'{name}' has a first moment but no second"),
                });
            }
        }
    }
    if let Some(stray) = tensors.keys().next() {
        return Err(TrainError::Checkpoint {
            path: path.to_owned(),
            message: format!("tensor '{stray}' is not an optimizer moment"),
        });
    }
    Ok(AdamWState { steps, moments })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_vec_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_owned(),
        source,
    })?;
    let io = |source| TrainError::Io {
        path: path.to_owned(),
        source,
    };
    fs::write(path, text).map_err(io)?;
    fs::File::open(path).and_then(|f| f.sync_all()).map_err(io)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, TrainError> {
    let text = fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| TrainError::Json {
        path: path.to_owned(),
        source,
    })
}

fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| TrainError::Io {
            path: dir.to_owned(),
            source,
        })
}
