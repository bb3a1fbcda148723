//! Which files a data argument names, in a deterministic order.

use std::path::{Path, PathBuf};

use crate::error::{DatasetError, Result};

/// How a data file is read, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    JsonLines,
    Parquet,
    /// Arrow IPC, the file format (Feather v2) or the stream format that
    /// Hugging Face `datasets` caches in `.arrow` files.
    ArrowIpc,
}

impl FileType {
    fn from_extension(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "jsonl" | "ndjson" | "json" => Some(Self::JsonLines),
            "parquet" => Some(Self::Parquet),
            "arrow" | "ipc" | "feather" => Some(Self::ArrowIpc),
            _ => None,
        }
    }

    pub fn of(path: &Path) -> Result<Self> {
        Self::from_extension(path).ok_or_else(|| DatasetError::UnknownFileType {
            path: path.to_path_buf(),
        })
    }
}

/// The data files that `patterns` name, each one a file, a directory (its
/// data files, recursively, hidden entries skipped) or a glob (`data/*.parquet`,
/// `shards/**/train-*.jsonl`). Directories and globs keep only files with a
/// data extension, so a README beside the shards is no error; a file named
/// directly must be one. Each pattern's files are sorted by path, byte by byte,
/// so the order is the same on every platform, and a file named twice is read
/// once.
pub fn resolve_files(patterns: &[impl AsRef<str>]) -> Result<Vec<PathBuf>> {
    if patterns.is_empty() {
        return Err(DatasetError::NoDataFiles {
            pattern: "data".to_owned(),
            reason: "no data file, directory or glob given".to_owned(),
        });
    }
    let mut files = Vec::new();
    for pattern in patterns {
        for file in resolve(pattern.as_ref())? {
            if !files.contains(&file) {
                files.push(file);
            }
        }
    }
    Ok(files)
}

fn resolve(pattern: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(pattern);
    if path.is_file() {
        FileType::of(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = if path.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files)?;
        files
    } else if pattern.contains(['*', '?', '[']) {
        glob_files(pattern)?
    } else {
        return Err(DatasetError::NoDataFiles {
            pattern: pattern.to_owned(),
            reason: "no such file, directory or glob".to_owned(),
        });
    };
    files.retain(|file| FileType::from_extension(file).is_some());
    if files.is_empty() {
        return Err(DatasetError::NoDataFiles {
            pattern: pattern.to_owned(),
            reason:
                "no data files (.jsonl, .ndjson, .json, .parquet, .arrow, .ipc, .feather) there"
                    .to_owned(),
        });
    }
    files.sort_unstable_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path
            .file_name()
            .is_some_and(|name| name.as_encoded_bytes().starts_with(b"."))
        {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn glob_files(pattern: &str) -> Result<Vec<PathBuf>> {
    let no_files = |reason: String| DatasetError::NoDataFiles {
        pattern: pattern.to_owned(),
        reason,
    };
    let mut files = Vec::new();
    // Hidden files match only a pattern that names the dot, as in a shell
    // and as directories are walked.
    let options = glob::MatchOptions {
        require_literal_leading_dot: true,
        ..glob::MatchOptions::new()
    };
    for entry in glob::glob_with(pattern, options)
        .map_err(|error| no_files(format!("invalid glob: {error}")))?
    {
        let path = entry.map_err(|error| DatasetError::Io {
            path: error.path().to_path_buf(),
            source: error.into(),
        })?;
        if path.is_file() {
            files.push(path);
        }
    }
    Ok(files)
}
