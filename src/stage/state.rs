//! What every training stage keeps in its directory: `inputs.json` (the hash of
//! what it was started with, so that a resume with other inputs is refused),
//! checkpoints, and `stage.json` last, when it is complete.

use std::io::Write;
use std::path::{Path, PathBuf};

use quantize::gguf::{AtomicFile, Sink};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::StageError;

pub const INPUTS_FILE: &str = "inputs.json";
pub const REPORT_FILE: &str = "stage.json";

/// Where a stage directory stands before the stage does any work.
pub enum Started {
    /// Never started: the caller writes `inputs.json` and starts training.
    Fresh,
    /// Started with the same inputs and resumed as asked; `inputs.json` holds
    /// what the first start recorded.
    Resume {
        inputs: serde_json::Value,
        checkpoint: bool,
    },
}

/// Refuses a directory started with other inputs, or a started one without
/// `resume`; `stage` names the stage in the messages.
pub fn check_started(
    dir: &Path,
    inputs: &str,
    resume: bool,
    stage: &str,
) -> Result<Started, StageError> {
    let inputs_path = dir.join(INPUTS_FILE);
    if !inputs_path.is_file() {
        return Ok(Started::Fresh);
    }
    let saved: serde_json::Value = read_json(&inputs_path)?;
    if saved["inputs"] != json!(inputs) {
        return Err(StageError::RunDir {
            path: dir.to_owned(),
            message: format!(
                "was started with other inputs (recipe, teacher or data changed) than this {stage} \
                 stage; use another --out or remove it"
            ),
        });
    }
    if !resume {
        return Err(StageError::RunDir {
            path: dir.to_owned(),
            message: format!(
                "holds an unfinished {stage} stage; continue it with --resume, or use another --out"
            ),
        });
    }
    let checkpoints = dir.join("checkpoints");
    let checkpoint = checkpoints.is_dir()
        && train::checkpoint::CheckpointDir::new(&checkpoints, 1)
            .latest()?
            .is_some();
    Ok(Started::Resume {
        inputs: saved,
        checkpoint,
    })
}

/// The report of a stage completed with `inputs`, or `None` when it is not
/// complete; a stage completed with other inputs is refused.
pub fn completed<R: DeserializeOwned>(
    dir: &Path,
    inputs: &str,
    stage: &str,
    inputs_of: impl Fn(&R) -> &str,
) -> Result<Option<R>, StageError> {
    let path = dir.join(REPORT_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let report: R = read_json(&path)?;
    if inputs_of(&report) != inputs {
        return Err(StageError::RunDir {
            path: dir.to_owned(),
            message: format!(
                "holds a {stage} stage completed with other inputs (recipe, teacher or data \
                 changed); use another --out or remove it"
            ),
        });
    }
    Ok(Some(report))
}

/// sha256 of a model file, or of a model directory's files in name order.
pub fn sha256_of(path: &Path) -> Result<String, StageError> {
    let mut hasher = Sha256::new();
    hash_path(&mut hasher, path)?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn hash_path(hasher: &mut Sha256, path: &Path) -> Result<(), StageError> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| StageError::io(path, e))?
            .map(|entry| entry.map(|e| e.path()).map_err(|e| StageError::io(path, e)))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries.iter().filter(|p| p.is_file()) {
            hasher.update(entry.file_name().unwrap_or_default().as_encoded_bytes());
            hash_path(hasher, entry)?;
        }
        return Ok(());
    }
    let mut file = std::fs::File::open(path).map_err(|e| StageError::io(path, e))?;
    std::io::copy(&mut file, hasher).map_err(|e| StageError::io(path, e))?;
    Ok(())
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| StageError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| StageError::RunDir {
        path: path.to_owned(),
        message: format!("is not what decant wrote: {e}"),
    })
}

/// Writes `value` as pretty JSON under a temporary name, renamed when complete.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), StageError> {
    write_bytes(
        path,
        serde_json::to_string_pretty(value)
            .expect("serializable")
            .as_bytes(),
    )
}

/// Writes `bytes` under a temporary name, renamed when complete.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), StageError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StageError::io(parent, e))?;
    }
    let mut file = AtomicFile::create(path).map_err(|e| StageError::io(path, e))?;
    file.write_all(bytes).map_err(|e| StageError::io(path, e))?;
    file.complete().map_err(|e| StageError::io(path, e))?;
    Ok(())
}

/// Replaces `dir` (a model directory the stage writes last) if a killed run
/// left one behind.
pub fn clear_dir(dir: &Path) -> Result<(), StageError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| StageError::io(dir, e))?;
    }
    Ok(())
}
