//! Paths and model references in a recipe: relative paths are read from the
//! recipe's directory, so a recipe means the same from any working directory.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// `~/...` from the home directory, an absolute path as is, anything else
/// relative to `base` (the recipe's directory); `.` and `..` are folded away
/// so that messages name the file plainly.
pub fn resolve(base: &Path, text: &str) -> PathBuf {
    if let Some(rest) = text.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return clean(&PathBuf::from(home).join(rest));
    }
    let path = Path::new(text);
    if path.is_absolute() {
        clean(path)
    } else {
        clean(&base.join(path))
    }
}

/// Lexical clean-up, as Go's `filepath.Clean`: `a/./b/../c` is `a/c`.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// A model a recipe names: on the Hugging Face hub (read from the local hub
/// cache when the stage runs, never fetched by a check) or on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelRef {
    Hub {
        repo: String,
        revision: Option<String>,
    },
    Path {
        path: PathBuf,
    },
}

impl ModelRef {
    /// The MODEL argument the commands take for it.
    pub fn argument(&self) -> String {
        match self {
            ModelRef::Hub {
                repo,
                revision: Some(revision),
            } => format!("hf://{repo}@{revision}"),
            ModelRef::Hub {
                repo,
                revision: None,
            } => format!("hf://{repo}"),
            ModelRef::Path { path } => path.display().to_string(),
        }
    }

    /// Reads `hf://ORG/REPO[@REV]` or a path, which must exist.
    pub fn parse(base: &Path, text: &str) -> Result<Self, String> {
        if let Some(spec) = text.strip_prefix("hf://") {
            return parse_hub(spec).ok_or_else(|| {
                format!("'{text}': expected hf://ORG/REPO or hf://ORG/REPO@REVISION")
            });
        }
        if text.is_empty() {
            return Err("expected a model path or hf://ORG/REPO, found an empty string".to_owned());
        }
        let path = resolve(base, text);
        if path.exists() {
            Ok(ModelRef::Path { path })
        } else {
            Err(format!(
                "{}: no such file or directory (a GGUF file, a Hugging Face model directory, \
                 or hf://ORG/REPO)",
                path.display()
            ))
        }
    }
}

fn parse_hub(spec: &str) -> Option<ModelRef> {
    let (repo, revision) = match spec.split_once('@') {
        Some((repo, revision)) if !revision.is_empty() => (repo, Some(revision.to_owned())),
        Some(_) => return None,
        None => (spec, None),
    };
    let (org, name) = repo.split_once('/')?;
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (valid(org) && valid(name)).then(|| ModelRef::Hub {
        repo: repo.to_owned(),
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_references_are_checked_without_fetching() {
        let base = Path::new("/nonexistent");
        assert_eq!(
            ModelRef::parse(base, "hf://Qwen/Qwen2.5-7B-Instruct@main").unwrap(),
            ModelRef::Hub {
                repo: "Qwen/Qwen2.5-7B-Instruct".into(),
                revision: Some("main".into())
            }
        );
        for bad in ["hf://Qwen", "hf://Qwen/", "hf://a/b@", "hf://a/b c"] {
            let err = ModelRef::parse(base, bad).unwrap_err();
            assert!(err.contains("expected hf://ORG/REPO"), "{bad}: {err}");
        }
    }

    #[test]
    fn dots_are_folded_lexically() {
        assert_eq!(
            resolve(Path::new("recipes"), "../data/x.jsonl"),
            PathBuf::from("data/x.jsonl")
        );
        assert_eq!(resolve(Path::new("."), "../x"), PathBuf::from("../x"));
        assert_eq!(resolve(Path::new("/r"), "../../x"), PathBuf::from("/x"));
        assert_eq!(resolve(Path::new("a"), "./b/../c"), PathBuf::from("a/c"));
    }

    #[test]
    fn relative_paths_are_read_from_the_recipe_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.gguf"), b"GGUF").unwrap();
        assert_eq!(
            ModelRef::parse(dir.path(), "m.gguf").unwrap(),
            ModelRef::Path {
                path: dir.path().join("m.gguf")
            }
        );
        let err = ModelRef::parse(dir.path(), "other.gguf").unwrap_err();
        assert!(
            err.contains("other.gguf: no such file or directory"),
            "{err}"
        );
    }
}
