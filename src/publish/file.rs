//! `file://DIR`: a versioned registry directory.
//!
//! ```text
//! DIR/index.json            every model's versions and their files' sha256
//! DIR/NAME/vN/...           a version's files and the run's manifest.json
//! ```
//!
//! A version is copied into `NAME/.vN.partial`, checked against the manifest's
//! hashes, renamed to `NAME/vN`, and only then added to the index, which is
//! replaced atomically: a publish killed at any point leaves no registered
//! half-version, and the next publish removes what it left. `DIR/.lock` keeps
//! two publishes apart.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use quantize::gguf::{AtomicFile, Sink};
use serde::{Deserialize, Serialize};

use super::{PublishError, Published, Release, ReleaseFile, Version as Numbered};
use crate::lock::Lock;
use crate::stage::pipeline::MANIFEST_FILE;
use crate::stage::state::sha256_of;

const INDEX_FILE: &str = "index.json";
const LOCK_FILE: &str = ".lock";

pub struct FileRegistry {
    dir: PathBuf,
}

#[derive(Default, Serialize, Deserialize)]
struct Index {
    models: std::collections::BTreeMap<String, Model>,
}

#[derive(Default, Serialize, Deserialize)]
struct Model {
    versions: Vec<Version>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Version {
    version: u64,
    /// sha256 over the files' names and hashes: the same release is found again.
    content_sha256: String,
    recipe_sha256: String,
    decant_version: String,
    files: Vec<ReleaseFile>,
}

impl FileRegistry {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }
}

impl super::ModelRegistry for FileRegistry {
    fn publish(&self, release: &Release) -> Result<Published, PublishError> {
        check_name(&release.name)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| PublishError::io(&self.dir, e))?;
        let _lock = Lock::take(&self.dir.join(LOCK_FILE), "the registry")?;
        let index_path = self.dir.join(INDEX_FILE);
        let mut index = read_index(&index_path)?;
        let content = release.content_sha256();
        let model_dir = self.dir.join(&release.name);
        let published = |version: u64, reused| Published {
            registry: format!("file://{}", self.dir.display()),
            name: release.name.clone(),
            version: Numbered::Number(version),
            location: model_dir.join(format!("v{version}")).display().to_string(),
            reused,
        };
        let model = index.models.entry(release.name.clone()).or_default();
        if let Some(existing) = model.versions.iter().find(|v| v.content_sha256 == content) {
            return Ok(published(existing.version, true));
        }
        let version = model.versions.last().map_or(1, |v| v.version + 1);
        let target = model_dir.join(format!("v{version}"));
        let partial = model_dir.join(format!(".v{version}.partial"));
        for leftover in [&target, &partial] {
            if leftover.exists() {
                std::fs::remove_dir_all(leftover).map_err(|e| PublishError::io(leftover, e))?;
            }
        }
        std::fs::create_dir_all(&partial).map_err(|e| PublishError::io(&partial, e))?;
        for file in &release.files {
            let (source, name) = file.located(&release.run_dir)?;
            let copy = partial.join(name);
            copy_synced(&source, &copy)?;
            let sha256 = sha256_of(&copy).map_err(|e| PublishError::Registry {
                path: copy.clone(),
                message: e.to_string(),
            })?;
            if sha256 != file.sha256 {
                return Err(PublishError::changed(&source, &sha256, &file.sha256));
            }
        }
        copy_synced(
            &release.run_dir.join(MANIFEST_FILE),
            &partial.join(MANIFEST_FILE),
        )?;
        std::fs::rename(&partial, &target).map_err(|e| PublishError::io(&target, e))?;
        sync_dir(&model_dir)?;
        model.versions.push(Version {
            version,
            content_sha256: content,
            recipe_sha256: release.recipe_sha256.clone(),
            decant_version: env!("CARGO_PKG_VERSION").to_owned(),
            files: release.files.clone(),
        });
        write_index(&index_path, &index)?;
        Ok(published(version, false))
    }
}

fn check_name(name: &str) -> Result<(), PublishError> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(PublishError::Unsupported(format!(
            "model name '{name}': a file registry names directories after models; use letters, digits, '.', '_' and '-'"
        )))
    }
}

fn read_index(path: &Path) -> Result<Index, PublishError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| PublishError::Registry {
            path: path.to_owned(),
            message: format!("is not a decant registry index: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
        Err(e) => Err(PublishError::io(path, e)),
    }
}

fn write_index(path: &Path, index: &Index) -> Result<(), PublishError> {
    let text = serde_json::to_string_pretty(index).expect("serializable");
    let mut file = AtomicFile::create(path).map_err(|e| PublishError::io(path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| PublishError::io(path, e))?;
    file.complete().map_err(|e| PublishError::io(path, e))?;
    Ok(())
}

/// Copies a file, or a directory's files, each flushed to disk.
fn copy_synced(source: &Path, dest: &Path) -> Result<(), PublishError> {
    if source.is_dir() {
        std::fs::create_dir_all(dest).map_err(|e| PublishError::io(dest, e))?;
        for entry in std::fs::read_dir(source).map_err(|e| PublishError::io(source, e))? {
            let entry = entry.map_err(|e| PublishError::io(source, e))?;
            copy_synced(&entry.path(), &dest.join(entry.file_name()))?;
        }
        return sync_dir(dest);
    }
    std::fs::copy(source, dest).map_err(|e| PublishError::io(source, e))?;
    File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| PublishError::io(dest, e))
}

fn sync_dir(dir: &Path) -> Result<(), PublishError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| PublishError::io(dir, e))
}
