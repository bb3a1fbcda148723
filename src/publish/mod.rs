//! Publishing a run's exported files to a model registry. A release is what
//! `decant run` listed in its manifest for the export stage; each registry
//! registers it whole or not at all.

mod file;
mod hf;
mod mlflow;
mod mlflow_params;
mod oci;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use file::FileRegistry;
pub use hf::HfRegistry;
pub use mlflow::MlflowRegistry;
pub use oci::OciRegistry;

use crate::recipe::publish::Registry;
use crate::stage::pipeline::MANIFEST_FILE;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Run { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Registry { path: PathBuf, message: String },
    #[error("{registry}: {message}")]
    Remote { registry: String, message: String },
    /// A publish that failed once it was writing to the registry; `left` is
    /// what it left there.
    #[error("{failed}; {left}")]
    Unfinished {
        failed: Box<PublishError>,
        left: String,
    },
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error("{0}")]
    Unsupported(String),
}

impl PublishError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        PublishError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A run's file whose hash is no longer the manifest's.
    fn changed(path: &Path, actual: &str, expected: &str) -> Self {
        PublishError::Run {
            path: path.to_owned(),
            message: format!(
                "has sha256 {actual}, the manifest says {expected}; it changed after the run"
            ),
        }
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

impl ReleaseFile {
    /// The file in `run_dir`, and its name.
    fn located(&self, run_dir: &Path) -> Result<(PathBuf, &std::ffi::OsStr), PublishError> {
        let source = run_dir.join(&self.path);
        match self.path.file_name() {
            Some(name) => Ok((source, name)),
            None => Err(PublishError::Run {
                path: source,
                message: "names no file".to_owned(),
            }),
        }
    }
}

/// What is published from a run directory.
#[derive(Clone, Debug)]
pub struct Release {
    pub run_dir: PathBuf,
    pub name: String,
    /// The recipe the run ran, as written.
    pub recipe: String,
    pub recipe_sha256: String,
    pub files: Vec<ReleaseFile>,
    /// Every artifact of the run, for lineage and metrics.
    pub artifacts: Vec<Artifact>,
}

/// One artifact of the run's manifest.
#[derive(Clone, Debug, Deserialize)]
pub struct Artifact {
    pub path: PathBuf,
    pub stage: String,
    pub sha256: String,
    pub size: u64,
    #[serde(default)]
    pub parents: Vec<String>,
    #[serde(default)]
    pub metrics: serde_json::Value,
}

/// Where a release went.
#[derive(Clone, Debug, Serialize)]
pub struct Published {
    pub registry: String,
    pub name: String,
    pub version: Version,
    /// The version's directory, or its URI in a remote registry.
    pub location: String,
    /// The registry held this very release already; nothing was written.
    pub reused: bool,
}

/// A registry's name for a version: a number, or an OCI tag.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Version {
    Number(u64),
    Tag(String),
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Version::Number(n) => write!(f, "{n}"),
            Version::Tag(tag) => f.write_str(tag),
        }
    }
}

/// A reader that hashes what passes through it, for files checked against
/// the manifest as they upload.
struct Hashing<'a, R> {
    inner: &'a mut R,
    hasher: &'a mut Sha256,
}

impl<R: std::io::Read> std::io::Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[derive(Deserialize)]
struct ManifestView {
    name: String,
    recipe: String,
    recipe_sha256: String,
    artifacts: Vec<Artifact>,
}

impl Release {
    /// The export stage's files of the run in `run_dir`, named `name` (the
    /// recipe's export name unless given).
    pub fn of_run(run_dir: &Path, name: Option<&str>) -> Result<Release, PublishError> {
        let path = run_dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PublishError::Run {
                path: run_dir.to_owned(),
                message: "has no manifest.json; publish a run directory `decant run` completed"
                    .to_owned(),
            },
            _ => PublishError::io(&path, e),
        })?;
        let manifest: ManifestView =
            serde_json::from_str(&text).map_err(|e| PublishError::Run {
                path: path.clone(),
                message: format!("is not a manifest decant wrote: {e}"),
            })?;
        let files: Vec<ReleaseFile> = manifest
            .artifacts
            .iter()
            .filter(|a| a.stage == "export")
            .map(|a| ReleaseFile {
                path: a.path.clone(),
                sha256: a.sha256.clone(),
                size: a.size,
            })
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
            recipe: manifest.recipe,
            recipe_sha256: manifest.recipe_sha256,
            files,
            artifacts: manifest.artifacts,
        })
    }

    /// sha256 over the files' names and hashes: the same release is found again.
    pub fn content_sha256(&self) -> String {
        let mut hasher = Sha256::new();
        for file in &self.files {
            hasher.update(file.path.as_os_str().as_encoded_bytes());
            hasher.update(b"\0");
            hasher.update(file.sha256.as_bytes());
        }
        format!("{:x}", hasher.finalize())
    }
}

/// A registry a release can be published to.
pub trait ModelRegistry {
    /// Registers `release` whole, or finds the version that holds it.
    fn publish(&self, release: &Release) -> Result<Published, PublishError>;
}

/// Publishes `release` to `registry`.
pub fn publish(release: &Release, registry: &Registry) -> Result<Published, PublishError> {
    let registry: Box<dyn ModelRegistry> = match registry {
        Registry::File { dir } => Box::new(FileRegistry::new(dir)),
        Registry::Mlflow { url } => Box::new(MlflowRegistry::new(url)),
        Registry::Oci {
            registry,
            repository,
            tag,
        } => Box::new(OciRegistry::new(registry, repository, tag)),
        Registry::HuggingFace { repo } => Box::new(HfRegistry::new(repo)),
    };
    registry.publish(release)
}
