//! `oci://HOST:PORT/REPO:TAG`: each exported GGUF pushed as an Ollama model
//! image through the OCI distribution API, with Ollama's media types: the GGUF
//! as the model layer, the chat template, default system prompt and stop
//! parameters as their own layers, and an Ollama config. `ollama pull
//! HOST:PORT/REPO:TAG` fetches it.
//!
//! The first exported GGUF is tagged `TAG`, every GGUF `TAG-TYPE`. Blobs are
//! content-addressed and pushed first; a tag appears only when its manifest,
//! pushed last, is accepted. A push that fails or is killed before that leaves
//! unreferenced blobs and no tag; the next push finds those blobs. A tag that
//! holds its manifest already is not written again.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Hashing, PublishError, Published, Release, Version};

const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG_TYPE: &str = "application/vnd.docker.container.image.v1+json";
const MODEL_TYPE: &str = "application/vnd.ollama.image.model";
const TEMPLATE_TYPE: &str = "application/vnd.ollama.image.template";
const SYSTEM_TYPE: &str = "application/vnd.ollama.image.system";
const PARAMS_TYPE: &str = "application/vnd.ollama.image.params";

pub struct OciRegistry {
    /// `HOST:PORT`, as the URI names it.
    registry: String,
    repository: String,
    tag: String,
    /// `SCHEME://HOST:PORT`, which relative upload locations are resolved against.
    origin: String,
    base: String,
    agent: ureq::Agent,
}

/// One layer or config blob: its bytes in memory, or the file that holds them.
enum Blob<'a> {
    Bytes(Vec<u8>),
    File {
        path: &'a Path,
        sha256: &'a str,
        size: u64,
    },
}

struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: u64,
}

impl Descriptor {
    fn json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

impl OciRegistry {
    /// Like Docker, plain HTTP to a registry on loopback and HTTPS elsewhere.
    pub fn new(registry: &str, repository: &str, tag: &str) -> Self {
        let host = registry.rsplit_once(':').map_or(registry, |(host, _)| host);
        let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.");
        let scheme = if loopback { "http" } else { "https" };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            origin: format!("{scheme}://{registry}"),
            base: format!("{scheme}://{registry}/v2/{repository}"),
            agent,
        }
    }

    /// Pushes a GGUF's blobs; returns the image manifest to tag.
    fn push_image(
        &self,
        gguf: &Path,
        sha256: &str,
        size: u64,
        ty: &str,
    ) -> Result<Value, PublishError> {
        let model = self.push_blob(
            MODEL_TYPE,
            Blob::File {
                path: gguf,
                sha256,
                size,
            },
            gguf,
            "model layer",
        )?;
        let file = quantize::gguf::GgufFile::open(gguf).map_err(|e| PublishError::Run {
            path: gguf.to_owned(),
            message: format!("is not a GGUF file decant can read: {e}"),
        })?;
        let text = |key: &str| file.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let family = text("general.architecture").unwrap_or_else(|| "llama".to_owned());
        let mut layers = vec![model];
        if let Some(chat) = text("tokenizer.chat_template")
            .as_deref()
            .and_then(export::ollama_chat)
        {
            let template = Blob::Bytes(chat.template.as_bytes().to_vec());
            layers.push(self.push_blob(TEMPLATE_TYPE, template, gguf, "chat template layer")?);
            if let Some(system) = &chat.system {
                let system = Blob::Bytes(system.as_bytes().to_vec());
                layers.push(self.push_blob(SYSTEM_TYPE, system, gguf, "system prompt layer")?);
            }
            let params = serde_json::to_vec(&json!({ "stop": chat.stops })).expect("serializable");
            layers.push(self.push_blob(
                PARAMS_TYPE,
                Blob::Bytes(params),
                gguf,
                "stop parameters layer",
            )?);
        }
        let config = json!({
            "model_format": "gguf",
            "model_family": family,
            "model_families": [family],
            "model_type": "",
            "file_type": ty.to_uppercase(),
            "architecture": "amd64",
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>() },
        });
        let config = Blob::Bytes(serde_json::to_vec(&config).expect("serializable"));
        let config = self.push_blob(CONFIG_TYPE, config, gguf, "image config")?;
        Ok(json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": config.json(),
            "layers": layers.iter().map(Descriptor::json).collect::<Vec<_>>(),
        }))
    }

    /// Stores `blob`, the `part` of the image of `gguf`, unless the registry
    /// holds it already.
    fn push_blob(
        &self,
        media_type: &'static str,
        blob: Blob<'_>,
        gguf: &Path,
        part: &str,
    ) -> Result<Descriptor, PublishError> {
        let (digest, size) = match &blob {
            Blob::Bytes(bytes) => (
                format!("sha256:{:x}", Sha256::digest(bytes)),
                bytes.len() as u64,
            ),
            Blob::File { sha256, size, .. } => (format!("sha256:{sha256}"), *size),
        };
        let descriptor = Descriptor {
            media_type,
            digest,
            size,
        };
        self.store_blob(&descriptor, blob).map_err(|e| match e {
            PublishError::Remote { registry, message } => PublishError::Remote {
                registry,
                message: format!(
                    "cannot push the {part} of {} (blob {}): {message}",
                    gguf.display(),
                    descriptor.digest
                ),
            },
            other => other,
        })?;
        Ok(descriptor)
    }

    fn store_blob(&self, descriptor: &Descriptor, blob: Blob<'_>) -> Result<(), PublishError> {
        let head = self
            .agent
            .head(format!("{}/blobs/{}", self.base, descriptor.digest))
            .call()
            .map_err(|e| self.unreachable(e))?;
        if head.status().is_success() {
            return Ok(());
        }
        let started = self
            .agent
            .post(format!("{}/blobs/uploads/", self.base))
            .send_empty()
            .map_err(|e| self.unreachable(e))?;
        let location = self.expect(started, 202, "start its upload")?;
        let location = location
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| self.remote("started its upload without a Location".to_owned()))?
            .to_owned();
        let url = if location.starts_with('/') {
            format!("{}{location}", self.origin)
        } else {
            location
        };
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}digest={}", descriptor.digest);
        let request = self
            .agent
            .put(&url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", descriptor.size.to_string());
        let reply = match blob {
            Blob::Bytes(bytes) => request.send(&bytes[..]).map_err(|e| self.unreachable(e))?,
            Blob::File { path, sha256, .. } => {
                let mut file = std::fs::File::open(path).map_err(|e| PublishError::io(path, e))?;
                let mut hasher = Sha256::new();
                let mut hashing = Hashing {
                    inner: &mut file,
                    hasher: &mut hasher,
                };
                let reply = request.send(ureq::SendBody::from_reader(&mut hashing));
                let actual = format!("{:x}", hasher.finalize());
                if actual != sha256 {
                    return Err(PublishError::changed(path, &actual, sha256));
                }
                reply.map_err(|e| self.unreachable(e))?
            }
        };
        self.expect(reply, 201, "store it").map(drop)
    }

    /// Whether `tag` already names exactly this manifest.
    fn holds(&self, tag: &str, manifest: &[u8]) -> Result<bool, PublishError> {
        let reply = self
            .agent
            .get(format!("{}/manifests/{tag}", self.base))
            .header("Accept", MANIFEST_TYPE)
            .call()
            .map_err(|e| self.unreachable(e))?;
        if !reply.status().is_success() {
            return Ok(false);
        }
        let held = reply
            .into_body()
            .read_to_vec()
            .map_err(|e| self.remote(format!("sent an unreadable manifest: {e}")))?;
        Ok(held == manifest)
    }

    fn put_manifest(&self, tag: &str, manifest: &[u8]) -> Result<(), PublishError> {
        let reply = self
            .agent
            .put(format!("{}/manifests/{tag}", self.base))
            .header("Content-Type", MANIFEST_TYPE)
            .send(manifest)
            .map_err(|e| self.unreachable(e))?;
        self.expect(reply, 201, &format!("tag {tag}")).map(drop)
    }

    fn expect(
        &self,
        reply: ureq::http::Response<ureq::Body>,
        status: u16,
        doing: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, PublishError> {
        if reply.status().as_u16() == status {
            return Ok(reply);
        }
        let code = reply.status().as_u16();
        let text = reply.into_body().read_to_string().unwrap_or_default();
        Err(self.remote(format!(
            "cannot {doing} ({code}): {}",
            text.trim().chars().take(300).collect::<String>()
        )))
    }

    fn unreachable(&self, e: ureq::Error) -> PublishError {
        self.remote(format!("cannot reach the registry: {e}"))
    }

    fn remote(&self, message: String) -> PublishError {
        PublishError::Remote {
            registry: format!("oci://{}/{}", self.registry, self.repository),
            message,
        }
    }
}

impl super::ModelRegistry for OciRegistry {
    fn publish(&self, release: &Release) -> Result<Published, PublishError> {
        let ggufs: Vec<_> = release
            .artifacts
            .iter()
            .filter(|a| a.stage == "export" && a.path.extension().is_some_and(|e| e == "gguf"))
            .collect();
        let Some(first) = ggufs.first() else {
            return Err(PublishError::Run {
                path: release.run_dir.clone(),
                message: "exported no GGUF file; an OCI registry takes Ollama's GGUF images"
                    .to_owned(),
            });
        };
        let mut manifests = Vec::new();
        for gguf in &ggufs {
            let path = release.run_dir.join(&gguf.path);
            // The registry may hold the blob already, and the image's other
            // layers come from this file's metadata: check it before using it.
            let sha256 = crate::stage::state::sha256_of(&path).map_err(|e| PublishError::Run {
                path: path.clone(),
                message: e.to_string(),
            })?;
            if sha256 != gguf.sha256 {
                return Err(PublishError::changed(&path, &sha256, &gguf.sha256));
            }
            let ty = gguf.metrics["type"].as_str().unwrap_or("gguf");
            let manifest = self
                .push_image(&path, &gguf.sha256, gguf.size, ty)
                .map_err(|e| PublishError::Unfinished {
                    failed: Box::new(e),
                    left: "no tag was pushed".to_owned(),
                })?;
            let mut tags = vec![format!("{}-{ty}", self.tag)];
            if std::ptr::eq(*gguf, *first) {
                tags.insert(0, self.tag.clone());
            }
            manifests.push((tags, manifest));
        }
        let mut reused = true;
        for (tags, manifest) in &manifests {
            let body = serde_json::to_vec(manifest).expect("serializable");
            for tag in tags {
                if !self.holds(tag, &body)? {
                    reused = false;
                    self.put_manifest(tag, &body)?;
                }
            }
        }
        Ok(Published {
            registry: format!("oci://{}", self.registry),
            name: release.name.clone(),
            version: Version::Tag(self.tag.clone()),
            location: format!("{}/{}:{}", self.registry, self.repository, self.tag),
            reused,
        })
    }
}
