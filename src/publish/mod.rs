//! Publishing a run's exported files to a model registry. A release is what
//! `decant run` listed in its manifest for the export stage; each registry
//! registers it whole or not at all.

mod file;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use file::FileRegistry;

use crate::recipe::publish::Registry;
use crate::stage::pipeline::MANIFEST_FILE;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Run { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Registry { path: PathBuf, message: String },
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error("{0}")]
    Unsupported(String),
}

impl PublishError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        PublishError::Io { path: path.to_owned(), source }
    }
}

/// One file (or model directory) of a release, as the manifest lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReleaseFile {
    /// Relative to the run directory.
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// What is published from a run directory.
#[derive(Clone, Debug)]
pub struct Release {
    pub run_dir: PathBuf,
    pub name: String,
    pub recipe_sha256: String,
    pub files: Vec<ReleaseFile>,
}

/// Where a release went.
#[derive(Clone, Debug, Serialize)]
pub struct Published {
    pub registry: String,
    pub name: String,
    pub version: u64,
    pub location: PathBuf,
    /// The registry held this very release already; nothing was written.
    pub reused: bool,
}

#[derive(Deserialize)]
struct ManifestView {
    name: String,
    recipe_sha256: String,
    artifacts: Vec<ArtifactView>,
}

#[derive(Deserialize)]
struct ArtifactView {
    path: PathBuf,
    stage: String,
    sha256: String,
    size: u64,
}

impl Release {
    /// The export stage's files of the run in `run_dir`, named `name` (the
    /// recipe's export name unless given).
    pub fn of_run(run_dir: &Path, name: Option<&str>) -> Result<Release, PublishError> {
        let path = run_dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PublishError::Run {
                path: run_dir.to_owned(),
                message: "has no manifest.json; publish a run directory `decant run` completed".to_owned(),
            },
            _ => PublishError::io(&path, e),
        })?;
        let manifest: ManifestView = serde_json::from_str(&text).map_err(|e| PublishError::Run {
            path: path.clone(),
            message: format!("is not a manifest decant wrote: {e}"),
        })?;
        let files: Vec<ReleaseFile> = manifest
            .artifacts
            .into_iter()
            .filter(|a| a.stage == "export")
            .map(|a| ReleaseFile { path: a.path, sha256: a.sha256, size: a.size })
            .collect();
        if files.is_empty() {
            return Err(PublishError::Run {
                path,
                message: "lists no exported files; run the export stage first".to_owned(),
            });
        }
        Ok(Release {
            run_dir: run_dir.to_owned(),
            name: name.map_or(manifest.name, str::to_owned),
            recipe_sha256: manifest.recipe_sha256,
            files,
        })
    }
}

/// Publishes `release` to `registry`.
pub fn publish(release: &Release, registry: &Registry) -> Result<Published, PublishError> {
    match registry {
        Registry::File { dir } => FileRegistry::new(dir).publish(release),
        Registry::Mlflow { url } => Err(PublishError::Unsupported(format!(
            "mlflow+{url}: publishing to MLflow is not available yet; use a file:// registry"
        ))),
        Registry::Oci { registry, repository, tag } => Err(PublishError::Unsupported(format!(
            "oci://{registry}/{repository}:{tag}: publishing to OCI registries is not available yet; use a file:// registry"
        ))),
        Registry::HuggingFace { repo } => Err(PublishError::Unsupported(format!(
            "hf://{repo}: publishing to the Hugging Face Hub is not available yet; use a file:// registry"
        ))),
    }
}
