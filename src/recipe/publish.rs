//! `[publish]`: the model registry the run's artifacts go to.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::paths;
use super::reader::{Table, string};

/// A registry URI, read but not contacted by a check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Registry {
    /// `file://DIR`: a versioned directory with an index.
    File { dir: PathBuf },
    /// `mlflow+http://HOST:PORT` (or `mlflow+https`): an MLflow tracking server.
    Mlflow { url: String },
    /// `oci://HOST:PORT/REPO[:TAG]`: an OCI registry, with Ollama's media types.
    Oci {
        registry: String,
        repository: String,
        tag: String,
    },
    /// `hf://ORG/REPO`: a Hugging Face model repository.
    HuggingFace { repo: String },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Publish {
    pub registry: Registry,
    /// The registered model's name; the export name unless given.
    pub model_name: String,
}

pub fn read(mut table: Table<'_, '_>, base: &Path, default_name: &str) -> Option<Publish> {
    let registry = table.required("registry", |value| parse_registry(base, &string(value)?));
    let model_name = table
        .optional("model_name", |value| {
            let name = string(value)?;
            if name.trim().is_empty() {
                Err("expected a model name, found an empty string".to_owned())
            } else {
                Ok(name)
            }
        })
        .unwrap_or_else(|| default_name.to_owned());
    table.finish();
    Some(Publish {
        registry: registry?,
        model_name,
    })
}

const EXPECTED: &str =
    "expected file://DIR, mlflow+http://HOST:PORT, oci://HOST:PORT/REPO:TAG or hf://ORG/REPO";

pub fn parse_registry(base: &Path, uri: &str) -> Result<Registry, String> {
    let bad = |why: &str| format!("'{uri}': {why} ({EXPECTED})");
    let (scheme, rest) = uri.split_once("://").ok_or_else(|| bad("not a URI"))?;
    match scheme {
        "file" if !rest.is_empty() => Ok(Registry::File {
            dir: paths::resolve(base, rest),
        }),
        "mlflow+http" | "mlflow+https" => {
            let host = rest.trim_end_matches('/');
            host_port(host).ok_or_else(|| bad("expected HOST:PORT after the scheme"))?;
            let http = scheme.trim_start_matches("mlflow+");
            Ok(Registry::Mlflow {
                url: format!("{http}://{host}"),
            })
        }
        "oci" => {
            let (registry, reference) = rest
                .split_once('/')
                .ok_or_else(|| bad("expected HOST:PORT/REPO"))?;
            host_port(registry).ok_or_else(|| bad("expected HOST:PORT before the repository"))?;
            // A colon after the last slash separates the tag; one before it is a port.
            let (repository, tag) = match reference.rsplit_once(':') {
                Some((repository, tag)) if !tag.contains('/') => (repository, tag),
                _ => (reference, "latest"),
            };
            let valid = |part: &str| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
            };
            if !valid(repository) || !valid(tag) || tag.contains('/') {
                return Err(bad(
                    "repository and tag must be lower-case letters, digits, '.', '_', '-'",
                ));
            }
            Ok(Registry::Oci {
                registry: registry.to_owned(),
                repository: repository.to_owned(),
                tag: tag.to_owned(),
            })
        }
        "hf" => {
            let (org, name) = rest
                .split_once('/')
                .ok_or_else(|| bad("expected ORG/REPO"))?;
            if org.is_empty() || name.is_empty() || name.contains('/') || rest.contains('@') {
                return Err(bad("expected ORG/REPO"));
            }
            Ok(Registry::HuggingFace {
                repo: rest.to_owned(),
            })
        }
        _ => Err(bad("unknown registry scheme")),
    }
}

fn host_port(text: &str) -> Option<()> {
    let (host, port) = text.rsplit_once(':')?;
    (!host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_by_scheme() {
        let base = Path::new("/recipes");
        assert_eq!(
            parse_registry(base, "file://registry").unwrap(),
            Registry::File {
                dir: "/recipes/registry".into()
            }
        );
        assert_eq!(
            parse_registry(base, "file:///srv/models").unwrap(),
            Registry::File {
                dir: "/srv/models".into()
            }
        );
        assert_eq!(
            parse_registry(base, "mlflow+http://127.0.0.1:5000").unwrap(),
            Registry::Mlflow {
                url: "http://127.0.0.1:5000".into()
            }
        );
        assert_eq!(
            parse_registry(base, "oci://localhost:5000/decant/extractor:v1").unwrap(),
            Registry::Oci {
                registry: "localhost:5000".into(),
                repository: "decant/extractor".into(),
                tag: "v1".into()
            }
        );
        assert_eq!(
            parse_registry(base, "oci://localhost:5000/extractor").unwrap(),
            Registry::Oci {
                registry: "localhost:5000".into(),
                repository: "extractor".into(),
                tag: "latest".into()
            }
        );
        for bad in [
            "s3://bucket/x",
            "mlflow+http://host",
            "oci://host/repo",
            "hf://org",
            "registry",
            "oci://localhost:5000/Upper:v1",
        ] {
            let err = parse_registry(base, bad).unwrap_err();
            assert!(
                err.starts_with(&format!("'{bad}'")) && err.contains("expected file://"),
                "{err}"
            );
        }
    }
}
