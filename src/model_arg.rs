//! What a MODEL argument names: a GGUF file, a Hugging Face model directory, or
//! `hf://ORG/REPO[@REV]` resolved through the local Hugging Face hub cache.

use std::fmt;
use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

/// A model on disk, by format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    Gguf(PathBuf),
    HfDir(PathBuf),
}

impl ModelSource {
    pub fn path(&self) -> &Path {
        match self {
            ModelSource::Gguf(path) | ModelSource::HfDir(path) => path,
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelArgError {
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    #[error(
        "{0}: is neither a GGUF file (GGUF magic) nor a Hugging Face model directory (config.json)"
    )]
    Unrecognized(PathBuf),
    #[error("'{0}': expected hf://ORG/REPO or hf://ORG/REPO@REVISION")]
    BadHfUri(String),
    #[error(
        "hf://{repo}@{revision} is not in the Hugging Face cache at {cache}; download it first \
         (e.g. `huggingface-cli download {repo} --revision {revision}`) or point HF_HUB_CACHE / HF_HOME at the cache that has it"
    )]
    NotCached {
        repo: String,
        revision: String,
        cache: PathBuf,
    },
}

const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Resolves a MODEL argument to a model on disk. `hf://` never touches the
/// network: it reads the hub cache that `huggingface-cli` / `transformers` fill.
pub fn resolve(arg: &str) -> Result<ModelSource, ModelArgError> {
    match arg.strip_prefix("hf://") {
        Some(spec) => resolve_hf(spec, &hub_cache_dir()).map(ModelSource::HfDir),
        None => classify(Path::new(arg)),
    }
}

fn classify(path: &Path) -> Result<ModelSource, ModelArgError> {
    if path.is_dir() {
        return if path.join("config.json").is_file() {
            Ok(ModelSource::HfDir(path.to_path_buf()))
        } else {
            Err(ModelArgError::Unrecognized(path.to_path_buf()))
        };
    }
    if !path.exists() {
        return Err(ModelArgError::Missing(path.to_path_buf()));
    }
    // The magic decides, not the extension: a GGUF saved as `model.bin` is still GGUF,
    // and any read failure here leaves the real error to the GGUF reader.
    let mut magic = [0u8; 4];
    let is_gguf = std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut magic))
        .map(|()| &magic == GGUF_MAGIC)
        .unwrap_or(false);
    if is_gguf || path.extension().is_some_and(|ext| ext == "gguf") {
        Ok(ModelSource::Gguf(path.to_path_buf()))
    } else {
        Err(ModelArgError::Unrecognized(path.to_path_buf()))
    }
}

/// The hub cache directory, with huggingface_hub's precedence:
/// `HF_HUB_CACHE`, then `HF_HOME/hub`, then `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    Cache::from_env().path().clone()
}

/// Resolves `ORG/REPO[@REV]` to its snapshot directory in `cache`. A branch or tag
/// goes through `refs/`; a full commit hash names the snapshot directly.
pub fn resolve_hf(spec: &str, cache: &Path) -> Result<PathBuf, ModelArgError> {
    let (repo, revision) = match spec.split_once('@') {
        Some((repo, revision)) => (repo, revision),
        None => (spec, "main"),
    };
    let well_formed = repo.split('/').count() == 2
        && repo
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && !revision.is_empty();
    if !well_formed {
        return Err(ModelArgError::BadHfUri(format!("hf://{spec}")));
    }
    let not_cached = || ModelArgError::NotCached {
        repo: repo.to_string(),
        revision: revision.to_string(),
        cache: cache.to_path_buf(),
    };
    let hub_repo = Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string());
    if is_commit_hash(revision) {
        let snapshot = cache
            .join(hub_repo.folder_name())
            .join("snapshots")
            .join(revision);
        return snapshot
            .join("config.json")
            .is_file()
            .then_some(snapshot)
            .ok_or_else(not_cached);
    }
    let config = Cache::new(cache.to_path_buf())
        .repo(hub_repo)
        .get("config.json")
        .ok_or_else(not_cached)?;
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(not_cached)
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    /// Lays out a hub cache as huggingface_hub does: blobs, a snapshot of links, a ref.
    fn hub_cache() -> tempfile::TempDir {
        let cache = tempfile::tempdir().expect("tempdir");
        let repo = cache
            .path()
            .join("models--HuggingFaceTB--SmolLM2-135M-Instruct");
        let snapshot = repo.join("snapshots").join(COMMIT);
        std::fs::create_dir_all(&snapshot).expect("snapshot dir");
        std::fs::create_dir_all(repo.join("blobs")).expect("blobs dir");
        std::fs::create_dir_all(repo.join("refs")).expect("refs dir");
        std::fs::write(repo.join("blobs/abc"), "{}").expect("blob");
        std::os::unix::fs::symlink("../../blobs/abc", snapshot.join("config.json")).expect("link");
        std::fs::write(repo.join("refs/main"), COMMIT).expect("ref");
        cache
    }

    #[test]
    fn resolves_branch_and_commit_through_the_cache() {
        let cache = hub_cache();
        let snapshot = cache
            .path()
            .join("models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots")
            .join(COMMIT);
        assert_eq!(
            resolve_hf("HuggingFaceTB/SmolLM2-135M-Instruct", cache.path()),
            Ok(snapshot.clone())
        );
        assert_eq!(
            resolve_hf(
                &format!("HuggingFaceTB/SmolLM2-135M-Instruct@{COMMIT}"),
                cache.path()
            ),
            Ok(snapshot)
        );
    }

    #[test]
    fn missing_entries_say_what_to_download() {
        let cache = hub_cache();
        let err = resolve_hf("HuggingFaceTB/SmolLM2-135M-Instruct@v2", cache.path()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(
                "hf://HuggingFaceTB/SmolLM2-135M-Instruct@v2 is not in the Hugging Face cache"
            ) && message.contains(
                "huggingface-cli download HuggingFaceTB/SmolLM2-135M-Instruct --revision v2"
            ),
            "{message}"
        );
        let err = resolve_hf("Org/Other", cache.path()).unwrap_err();
        assert!(matches!(err, ModelArgError::NotCached { .. }), "{err}");
    }

    #[test]
    fn malformed_uris_are_refused() {
        for spec in ["just-a-name", "a/b/c", "org/", "org/repo@", "../x"] {
            let err = resolve_hf(spec, Path::new("/nonexistent")).unwrap_err();
            assert_eq!(err, ModelArgError::BadHfUri(format!("hf://{spec}")));
        }
    }

    #[test]
    fn classifies_files_and_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gguf = dir.path().join("model.bin");
        std::fs::write(&gguf, b"GGUF\x03\0\0\0").expect("gguf");
        assert_eq!(classify(&gguf), Ok(ModelSource::Gguf(gguf.clone())));
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, b"hello").expect("text");
        assert_eq!(classify(&other), Err(ModelArgError::Unrecognized(other)));
        assert_eq!(
            classify(dir.path()),
            Err(ModelArgError::Unrecognized(dir.path().to_path_buf()))
        );
        std::fs::write(dir.path().join("config.json"), "{}").expect("config");
        assert_eq!(
            classify(dir.path()),
            Ok(ModelSource::HfDir(dir.path().to_path_buf()))
        );
        let missing = dir.path().join("absent.gguf");
        assert_eq!(classify(&missing), Err(ModelArgError::Missing(missing)));
    }
}
