//! `hf://ORG/REPO`: a model repository on the Hugging Face Hub, through the
//! Hub's HTTP API as the `huggingface_hub` client speaks it (the Rust `hf-hub`
//! crate only downloads). The repository is created (private) when missing.
//!
//! A release is one commit on `main` holding the exported GGUF files and the
//! files of the safetensors directory at the repository root, so that
//! `transformers` loads the repository and llama.cpp finds the GGUFs, then a
//! tag `decant-SHA` (the release's content hash, 16 digits) on that commit.
//! Large files go to Git LFS before the commit, which the Hub applies whole or
//! not at all: a publish stopped before its commit leaves only unreferenced LFS
//! objects, and one stopped between commit and tag is finished by the retry,
//! which finds its commit at the head of `main` by its title.
//!
//! The Hub is the one registry the tests cannot reach (they run offline); the
//! request bodies and the parsing of the Hub's replies are tested, the rest
//! follows the Hub's documented API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::{PublishError, Published, Release, Version};

mod lfs;

use lfs::LfsObject;

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The Hub's preupload endpoint decides LFS or not from a file's first bytes.
const SAMPLE_BYTES: usize = 512;

pub struct HfRegistry {
    repo: String,
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// One file of the commit: where it is here and its path in the repository.
struct Upload {
    source: PathBuf,
    path: String,
    size: u64,
}

impl HfRegistry {
    /// `repo` is `ORG/NAME`. The endpoint and token come from the environment
    /// as for `huggingface_hub`: `HF_ENDPOINT`, and `HF_TOKEN` or the token file
    /// that `hf auth login` writes.
    pub fn new(repo: &str) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Self {
            repo: repo.to_owned(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token: token(var, |path| std::fs::read_to_string(path).ok()),
            agent,
        }
    }

    fn api(&self, rest: &str) -> String {
        format!("{}/api/models/{}/{rest}", self.endpoint, self.repo)
    }

    fn token(&self) -> Result<&str, PublishError> {
        self.token.as_deref().ok_or_else(|| {
            self.remote(
                "no Hugging Face token: set HF_TOKEN, or log in with `hf auth login`".to_owned(),
            )
        })
    }

    fn get(&self, url: &str) -> Result<Option<Value>, PublishError> {
        let reply = self
            .agent
            .get(url)
            .header("Authorization", format!("Bearer {}", self.token()?))
            .call()
            .map_err(|e| self.unreachable(e))?;
        if reply.status().as_u16() == 404 {
            return Ok(None);
        }
        self.json(reply, "read the repository").map(Some)
    }

    fn post(&self, url: &str, body: &Value, doing: &str) -> Result<Value, PublishError> {
        let reply = self
            .agent
            .post(url)
            .header("Authorization", format!("Bearer {}", self.token()?))
            .send_json(body)
            .map_err(|e| self.unreachable(e))?;
        self.json(reply, doing)
    }

    fn create_repo(&self) -> Result<(), PublishError> {
        let (organization, name) = self.repo.split_once('/').expect("hf:// URIs are ORG/REPO");
        let reply = self
            .agent
            .post(format!("{}/api/repos/create", self.endpoint))
            .header("Authorization", format!("Bearer {}", self.token()?))
            .send_json(json!({ "type": "model", "name": name, "organization": organization, "private": true }))
            .map_err(|e| self.unreachable(e))?;
        // 409: it exists, which is what was wanted.
        if reply.status().as_u16() == 409 {
            return Ok(());
        }
        self.json(reply, "create the repository").map(drop)
    }

    /// The commit the tag names, if the repository has the tag.
    fn tagged(&self, tag: &str) -> Result<Option<String>, PublishError> {
        let Some(refs) = self.get(&self.api("refs"))? else {
            return Ok(None);
        };
        Ok(tag_target(&refs, tag))
    }

    /// The head of `main` when its title is `title`: a commit of this release
    /// whose tag was not made.
    fn head_with_title(&self, title: &str) -> Result<Option<String>, PublishError> {
        let Some(commits) = self.get(&self.api("commits/main"))? else {
            return Ok(None);
        };
        Ok(commits
            .get(0)
            .filter(|c| c["title"] == title)
            .and_then(|c| c["id"].as_str())
            .map(str::to_owned))
    }

    /// Which files the Hub wants in LFS, asked in the Hub's batches of 256.
    fn lfs_paths(&self, uploads: &[Upload]) -> Result<Vec<bool>, PublishError> {
        let mut lfs = Vec::with_capacity(uploads.len());
        for batch in uploads.chunks(256) {
            let files = batch
                .iter()
                .map(|u| Ok(json!({ "path": u.path, "size": u.size, "sample": BASE64.encode(sample(&u.source)?) })))
                .collect::<Result<Vec<_>, PublishError>>()?;
            let reply = self.post(
                &self.api("preupload/main"),
                &json!({ "files": files }),
                "ask which files go to LFS",
            )?;
            for upload in batch {
                lfs.push(upload_mode(&reply, &upload.path).map_err(|m| self.remote(m))? == "lfs");
            }
        }
        Ok(lfs)
    }

    fn unreachable(&self, e: ureq::Error) -> PublishError {
        self.remote(format!("cannot reach the Hub at {}: {e}", self.endpoint))
    }

    fn remote(&self, message: String) -> PublishError {
        PublishError::Remote {
            registry: format!("hf://{}", self.repo),
            message,
        }
    }

    fn json(
        &self,
        reply: ureq::http::Response<ureq::Body>,
        doing: &str,
    ) -> Result<Value, PublishError> {
        let status = reply.status().as_u16();
        let text = reply.into_body().read_to_string().unwrap_or_default();
        if !(200..300).contains(&status) {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.trim().chars().take(300).collect());
            return Err(self.remote(format!("cannot {doing} ({status}): {detail}")));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| self.remote(format!("cannot {doing}: the Hub replied {e}")))
    }
}

/// The token: `HF_TOKEN`, else the file `HF_TOKEN_PATH`, `$HF_HOME/token` or
/// `~/.cache/huggingface/token`, in `huggingface_hub`'s order.
fn token(
    var: impl Fn(&str) -> Option<String>,
    read: impl Fn(&Path) -> Option<String>,
) -> Option<String> {
    if let Some(token) = var("HF_TOKEN") {
        return Some(token);
    }
    let file = var("HF_TOKEN_PATH").map(PathBuf::from).or_else(|| {
        var("HF_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| Path::new(&home).join(".cache/huggingface")))
            .map(|home| home.join("token"))
    })?;
    read(&file)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn sample(path: &Path) -> Result<Vec<u8>, PublishError> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(SAMPLE_BYTES);
    std::fs::File::open(path)
        .and_then(|f| f.take(SAMPLE_BYTES as u64).read_to_end(&mut bytes))
        .map_err(|e| PublishError::io(path, e))?;
    Ok(bytes)
}

/// `"lfs"` or `"regular"`, as the preupload reply gives it for `path`.
fn upload_mode(reply: &Value, path: &str) -> Result<String, String> {
    reply["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["path"] == path))
        .and_then(|f| f["uploadMode"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("the preupload reply does not say how to upload {path}"))
}

fn tag_target(refs: &Value, tag: &str) -> Option<String> {
    refs["tags"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == tag)
        .and_then(|t| t["targetCommit"].as_str())
        .map(str::to_owned)
}

/// The commit's NDJSON body: a header, then one line per file, inline
/// (base64) or as the LFS object uploaded before.
fn commit_body(title: &str, description: &str, files: &[(String, CommitFile)]) -> String {
    let mut lines =
        vec![json!({ "key": "header", "value": { "summary": title, "description": description } })];
    for (path, file) in files {
        lines.push(match file {
            CommitFile::Inline(bytes) => {
                json!({ "key": "file", "value": { "path": path, "content": BASE64.encode(bytes), "encoding": "base64" } })
            }
            CommitFile::Lfs(object) => {
                json!({ "key": "lfsFile", "value": { "path": path, "algo": "sha256", "oid": object.oid } })
            }
        });
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

enum CommitFile {
    Inline(Vec<u8>),
    Lfs(LfsObject),
}

/// The repository's files for the release: GGUFs by name, a model
/// directory's files at the root. Each export artifact is checked against
/// the manifest first.
fn uploads(release: &Release) -> Result<Vec<Upload>, PublishError> {
    let mut uploads = Vec::new();
    for file in &release.files {
        let (source, name) = file.located(&release.run_dir)?;
        let actual = crate::stage::state::sha256_of(&source).map_err(|e| PublishError::Run {
            path: source.clone(),
            message: e.to_string(),
        })?;
        if actual != file.sha256 {
            return Err(PublishError::changed(&source, &actual, &file.sha256));
        }
        if source.is_dir() {
            let mut members: Vec<PathBuf> = std::fs::read_dir(&source)
                .map_err(|e| PublishError::io(&source, e))?
                .map(|e| {
                    e.map(|e| e.path())
                        .map_err(|e| PublishError::io(&source, e))
                })
                .collect::<Result<_, _>>()?;
            members.retain(|p| p.is_file());
            members.sort();
            for member in members {
                let size = std::fs::metadata(&member)
                    .map_err(|e| PublishError::io(&member, e))?
                    .len();
                let path = member
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                uploads.push(Upload {
                    source: member,
                    path,
                    size,
                });
            }
        } else {
            uploads.push(Upload {
                source: source.clone(),
                path: name.to_string_lossy().into_owned(),
                size: file.size,
            });
        }
    }
    let mut paths: Vec<&str> = uploads.iter().map(|u| u.path.as_str()).collect();
    paths.sort_unstable();
    if let Some(pair) = paths.windows(2).find(|w| w[0] == w[1]) {
        return Err(PublishError::Run {
            path: release.run_dir.clone(),
            message: format!(
                "exports two files named {}; a Hub repository holds one per path",
                pair[0]
            ),
        });
    }
    Ok(uploads)
}

impl super::ModelRegistry for HfRegistry {
    fn publish(&self, release: &Release) -> Result<Published, PublishError> {
        let content = release.content_sha256();
        let tag = format!("decant-{}", &content[..16]);
        let published = |reused| Published {
            registry: format!("hf://{}", self.repo),
            name: release.name.clone(),
            version: Version::Tag(tag.clone()),
            location: format!("{}/{}/tree/{tag}", self.endpoint, self.repo),
            reused,
        };
        let uploads = uploads(release)?;
        self.token()?;
        if self.tagged(&tag)?.is_some() {
            return Ok(published(true));
        }
        self.create_repo()?;
        let title = format!("decant: {} release {}", release.name, &content[..16]);
        let commit = match self.head_with_title(&title)? {
            Some(commit) => commit,
            None => {
                let unfinished = |e| PublishError::Unfinished {
                    failed: Box::new(e),
                    left: "no commit was made; uploaded LFS objects stay unreferenced".to_owned(),
                };
                let lfs = self.lfs_paths(&uploads).map_err(unfinished)?;
                let mut files = Vec::with_capacity(uploads.len());
                for (upload, lfs) in uploads.iter().zip(lfs) {
                    let file = if lfs {
                        CommitFile::Lfs(
                            lfs::upload(self, &upload.source, upload.size).map_err(unfinished)?,
                        )
                    } else {
                        CommitFile::Inline(
                            std::fs::read(&upload.source)
                                .map_err(|e| PublishError::io(&upload.source, e))?,
                        )
                    };
                    files.push((upload.path.clone(), file));
                }
                let description = format!(
                    "Published by decant {}.\n\ndecant.content_sha256: {content}\ndecant.recipe_sha256: {}\n",
                    env!("CARGO_PKG_VERSION"),
                    release.recipe_sha256
                );
                let reply = self
                    .agent
                    .post(self.api("commit/main"))
                    .header("Authorization", format!("Bearer {}", self.token()?))
                    .header("Content-Type", "application/x-ndjson")
                    .send(commit_body(&title, &description, &files))
                    .map_err(|e| unfinished(self.unreachable(e)))?;
                let reply = self.json(reply, "commit the release").map_err(unfinished)?;
                reply["commitOid"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        self.remote(format!("committed without naming the commit: {reply}"))
                    })?
            }
        };
        self.post(
            &self.api(&format!("tag/{commit}")),
            &json!({ "tag": tag, "message": title }),
            &format!("tag {tag}"),
        )
        .map_err(|e| PublishError::Unfinished {
            failed: Box::new(e),
            left: format!("commit {commit} is on main without its tag; publish again to tag it"),
        })?;
        Ok(published(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_hf_token_else_the_login_file() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let file = |path: &Path| {
            (path == Path::new("/home/u/.cache/huggingface/token")).then(|| "hf_file\n".to_owned())
        };
        assert_eq!(
            token(env(&[("HF_TOKEN", "hf_env"), ("HOME", "/home/u")]), file).as_deref(),
            Some("hf_env")
        );
        assert_eq!(
            token(env(&[("HOME", "/home/u")]), file).as_deref(),
            Some("hf_file")
        );
        assert_eq!(
            token(env(&[("HF_HOME", "/elsewhere"), ("HOME", "/home/u")]), file),
            None
        );
        let at = |path: &Path| (path == Path::new("/t")).then(|| "hf_path".to_owned());
        assert_eq!(
            token(env(&[("HF_TOKEN_PATH", "/t")]), at).as_deref(),
            Some("hf_path")
        );
    }

    #[test]
    fn the_commit_is_a_header_then_one_line_per_file() {
        let object = LfsObject {
            oid: "ab".repeat(32),
        };
        let files = [
            ("README.md".to_owned(), CommitFile::Inline(b"hi".to_vec())),
            ("m.gguf".to_owned(), CommitFile::Lfs(object)),
        ];
        let body = commit_body("title", "text", &files);
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            json!({ "key": "header", "value": { "summary": "title", "description": "text" } })
        );
        assert_eq!(
            lines[1],
            json!({ "key": "file", "value": { "path": "README.md", "content": "aGk=", "encoding": "base64" } })
        );
        assert_eq!(
            lines[2],
            json!({ "key": "lfsFile", "value": { "path": "m.gguf", "algo": "sha256", "oid": "ab".repeat(32) } })
        );
        assert!(body.ends_with('\n'));
    }

    #[test]
    fn the_hub_s_replies_are_read_for_upload_mode_and_tags() {
        let preupload = json!({ "files": [
            { "path": "model.safetensors", "uploadMode": "lfs", "shouldIgnore": false },
            { "path": "config.json", "uploadMode": "regular", "shouldIgnore": false },
        ] });
        assert_eq!(upload_mode(&preupload, "model.safetensors").unwrap(), "lfs");
        assert_eq!(upload_mode(&preupload, "config.json").unwrap(), "regular");
        assert!(
            upload_mode(&preupload, "x.gguf")
                .unwrap_err()
                .contains("x.gguf")
        );
        let refs = json!({ "branches": [{ "name": "main", "ref": "refs/heads/main", "targetCommit": "c1" }],
                           "tags": [{ "name": "decant-0123", "ref": "refs/tags/decant-0123", "targetCommit": "c0" }] });
        assert_eq!(tag_target(&refs, "decant-0123").as_deref(), Some("c0"));
        assert_eq!(tag_target(&refs, "decant-4567"), None);
    }
}
