//! A directory built under a temporary name beside its final path and renamed
//! into place only once every file in it is complete and synced: an interrupted
//! export leaves nothing at the final path (the temporary directory is removed
//! when dropped unfinished).

use std::fs::File;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::error::ExportError;

pub struct AtomicDir {
    target: PathBuf,
    tmp: TempDir,
}

impl AtomicDir {
    /// Refuses a target that exists: a directory cannot be replaced atomically,
    /// and what is there may be someone's work.
    pub fn create(target: &Path) -> Result<AtomicDir, ExportError> {
        if target.exists() {
            return Err(ExportError::OutputExists { path: target.to_owned() });
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut prefix = target.file_name().unwrap_or_default().to_owned();
        prefix.push(".");
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .tempdir_in(parent)
            .map_err(|e| ExportError::io(parent, e))?;
        Ok(AtomicDir { target: target.to_owned(), tmp })
    }

    /// Where files go while the directory is being built.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes a small file whole.
    pub fn write(&self, name: &str, contents: &str) -> Result<(), ExportError> {
        let path = self.path().join(name);
        std::fs::write(&path, contents).map_err(|e| ExportError::io(&path, e))
    }

    /// Syncs every file and the directory, then renames it to the target.
    pub fn finish(self) -> Result<PathBuf, ExportError> {
        let dir = self.tmp.path();
        let entries = std::fs::read_dir(dir).map_err(|e| ExportError::io(dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| ExportError::io(dir, e))?.path();
            sync(&path)?;
        }
        sync(dir)?;
        let tmp = self.tmp.keep();
        if let Err(e) = std::fs::rename(&tmp, &self.target) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(ExportError::io(&self.target, e));
        }
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync(parent)?;
        }
        Ok(self.target)
    }
}

fn sync(path: &Path) -> Result<(), ExportError> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| ExportError::io(path, e))
}
