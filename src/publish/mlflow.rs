//! `mlflow+http://HOST:PORT`: an MLflow tracking server that serves artifacts
//! (`mlflow server`, which proxies artifact uploads by default).
//!
//! A publish makes one MLflow run in the experiment named after the model: the
//! recipe's settings as params, the manifest's metrics, and the run's recipe,
//! manifest and exported files as artifacts under `model/` (its report beside). Only then does it
//! register a model version from those artifacts, tagged with the lineage and
//! the release's content hash. Registering is one call and the last: a publish
//! that fails or is killed before it leaves an unfinished or FAILED run and no
//! version, and a publish of a release the registry holds finds its version by
//! that hash and writes nothing.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::mlflow_params::{metrics, params};
use super::{Hashing, PublishError, Published, Release, Version};
use crate::report::{PLOT_DIR, REPORT_FILE};
use crate::stage::pipeline::{MANIFEST_FILE, RECIPE_FILE};

/// MLflow's limits on one `log-batch` call.
const PARAMS_PER_BATCH: usize = 100;
const METRICS_PER_BATCH: usize = 1000;
const CONTENT_TAG: &str = "decant.content_sha256";
/// Where a version's files go within its run's artifacts.
const MODEL_DIR: &str = "model";

pub struct MlflowRegistry {
    base: String,
    agent: ureq::Agent,
}

/// An error MLflow answered with, as opposed to one reaching it.
struct ApiError {
    code: String,
    message: String,
}

struct Run {
    id: String,
    artifact_uri: String,
}

impl MlflowRegistry {
    /// `url` is the server's `http://HOST:PORT`.
    pub fn new(url: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        Self {
            base: url.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// The version of `name` whose files have the hash `content`, if any.
    fn find_version(&self, name: &str, content: &str) -> Result<Option<u64>, PublishError> {
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        let mut page_token = String::new();
        loop {
            let mut query = vec![("filter", filter.as_str()), ("max_results", "200")];
            if !page_token.is_empty() {
                query.push(("page_token", page_token.as_str()));
            }
            let reply = self.get("/api/2.0/mlflow/model-versions/search", &query)?;
            let reply = self.ok(reply, "search the model versions")?;
            for version in reply["model_versions"].as_array().into_iter().flatten() {
                let tagged = version["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["key"] == CONTENT_TAG && t["value"] == content);
                if tagged {
                    return Ok(Some(self.version_number(&version["version"])?));
                }
            }
            match reply["next_page_token"].as_str() {
                Some(token) if !token.is_empty() => page_token = token.to_owned(),
                _ => return Ok(None),
            }
        }
    }

    fn experiment(&self, name: &str) -> Result<String, PublishError> {
        let reply = self.get(
            "/api/2.0/mlflow/experiments/get-by-name",
            &[("experiment_name", name)],
        )?;
        match reply {
            Ok(found) => {
                return self.string(&found["experiment"]["experiment_id"], "experiment id");
            }
            Err(e) if e.code == "RESOURCE_DOES_NOT_EXIST" => {}
            Err(e) => return Err(self.api_error("look up the experiment", e)),
        }
        let created = self.post(
            "/api/2.0/mlflow/experiments/create",
            &json!({ "name": name }),
        )?;
        let created = self.ok(created, "create the experiment")?;
        self.string(&created["experiment_id"], "experiment id")
    }

    fn create_run(&self, experiment: &str, release: &Release) -> Result<Run, PublishError> {
        let body = json!({
            "experiment_id": experiment,
            "run_name": format!("{}-publish", release.name),
            "start_time": now_ms(),
            "tags": [
                { "key": "decant.version", "value": env!("CARGO_PKG_VERSION") },
                { "key": "decant.recipe_sha256", "value": release.recipe_sha256 },
                { "key": "decant.run_dir", "value": release.run_dir.display().to_string() },
            ],
        });
        let reply = self.post("/api/2.0/mlflow/runs/create", &body)?;
        let info = &self.ok(reply, "create a run")?["run"]["info"];
        let id = self.string(&info["run_id"], "run id")?;
        let artifact_uri = self.string(&info["artifact_uri"], "artifact URI")?;
        Ok(Run { id, artifact_uri })
    }

    /// `EXPERIMENT/RUN/artifacts`, the run's root on the artifact proxy.
    fn artifact_root<'a>(&self, run: &'a Run) -> Result<&'a str, PublishError> {
        let uri = &run.artifact_uri;
        uri.strip_prefix("mlflow-artifacts:")
            .map(|rest| rest.trim_start_matches('/'))
            .ok_or_else(|| {
                self.remote(format!(
                    "stores run artifacts at {uri}, which decant cannot upload to; \
                 start the server with artifact serving (`mlflow server --serve-artifacts`)"
                ))
            })
    }

    fn log(&self, run: &Run, release: &Release) -> Result<(), PublishError> {
        let recipe = std::fs::read_to_string(release.run_dir.join(RECIPE_FILE))
            .map_err(|e| PublishError::io(&release.run_dir.join(RECIPE_FILE), e))?;
        let params = params(&recipe).map_err(|message| PublishError::Run {
            path: release.run_dir.join(RECIPE_FILE),
            message,
        })?;
        for batch in params.chunks(PARAMS_PER_BATCH) {
            let params: Vec<Value> = batch
                .iter()
                .map(|(k, v)| json!({ "key": k, "value": v }))
                .collect();
            let reply = self.post(
                "/api/2.0/mlflow/runs/log-batch",
                &json!({ "run_id": run.id, "params": params }),
            )?;
            self.ok(reply, "log the recipe as params")?;
        }
        let timestamp = now_ms();
        let metrics = metrics(&release.artifacts);
        for batch in metrics.chunks(METRICS_PER_BATCH) {
            let metrics: Vec<Value> = batch
                .iter()
                .map(|(k, v)| json!({ "key": k, "value": v, "timestamp": timestamp, "step": 0 }))
                .collect();
            let reply = self.post(
                "/api/2.0/mlflow/runs/log-batch",
                &json!({ "run_id": run.id, "metrics": metrics }),
            )?;
            self.ok(reply, "log the metrics")?;
        }
        Ok(())
    }

    /// The recipe, manifest and exported files, each checked against the
    /// manifest's sha256 as it streams.
    fn upload(&self, root: &str, release: &Release) -> Result<(), PublishError> {
        for file in &release.files {
            let (source, name) = file.located(&release.run_dir)?;
            let target = format!("{MODEL_DIR}/{}", name.to_string_lossy());
            let sha256 = self.upload_tree(root, &source, &target)?;
            if sha256 != file.sha256 {
                return Err(PublishError::changed(&source, &sha256, &file.sha256));
            }
        }
        for extra in [MANIFEST_FILE, RECIPE_FILE] {
            self.upload_tree(
                root,
                &release.run_dir.join(extra),
                &format!("{MODEL_DIR}/{extra}"),
            )?;
        }
        for extra in [REPORT_FILE, PLOT_DIR] {
            let path = release.run_dir.join(extra);
            if path.exists() {
                self.upload_tree(root, &path, extra)?;
            }
        }
        Ok(())
    }

    /// Uploads a file, or a directory's files in name order, to `target`;
    /// returns their sha256 as the run manifest computes it.
    fn upload_tree(&self, root: &str, source: &Path, target: &str) -> Result<String, PublishError> {
        let mut hasher = Sha256::new();
        if source.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(source)
                .map_err(|e| PublishError::io(source, e))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(|e| PublishError::io(source, e))?;
            entries.sort();
            for entry in entries.iter().filter(|p| p.is_file()) {
                let name = entry.file_name().unwrap_or_default();
                hasher.update(name.as_encoded_bytes());
                self.upload_file(
                    root,
                    entry,
                    &format!("{target}/{}", name.to_string_lossy()),
                    &mut hasher,
                )?;
            }
        } else {
            self.upload_file(root, source, target, &mut hasher)?;
        }
        Ok(format!("{:x}", hasher.finalize()))
    }

    fn upload_file(
        &self,
        root: &str,
        source: &Path,
        target: &str,
        hasher: &mut Sha256,
    ) -> Result<(), PublishError> {
        let mut file = std::fs::File::open(source).map_err(|e| PublishError::io(source, e))?;
        let size = file
            .metadata()
            .map_err(|e| PublishError::io(source, e))?
            .len();
        let mut hashing = Hashing {
            inner: &mut file,
            hasher,
        };
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}/{target}",
            self.base, root
        );
        let reply = self
            .agent
            .put(&url)
            .header("Content-Length", size.to_string())
            .send(ureq::SendBody::from_reader(&mut hashing))
            .map_err(|e| self.remote(format!("cannot upload {}: {e}", source.display())))?;
        let status = reply.status().as_u16();
        if !(200..300).contains(&status) {
            let text = reply.into_body().read_to_string().unwrap_or_default();
            return Err(self.remote(format!(
                "refused {} ({status}): {}",
                source.display(),
                clip(&text)
            )));
        }
        Ok(())
    }

    fn end_run(&self, run: &Run, status: &str) -> Result<(), PublishError> {
        let body = json!({ "run_id": run.id, "status": status, "end_time": now_ms() });
        let reply = self.post("/api/2.0/mlflow/runs/update", &body)?;
        self.ok(reply, "finish the run").map(drop)
    }

    fn register(&self, run: &Run, release: &Release, content: &str) -> Result<u64, PublishError> {
        let created = self.post(
            "/api/2.0/mlflow/registered-models/create",
            &json!({ "name": release.name }),
        )?;
        match created {
            Err(e) if e.code != "RESOURCE_ALREADY_EXISTS" => {
                return Err(self.api_error("register the model", e));
            }
            _ => {}
        }
        let mut tags = vec![
            json!({ "key": CONTENT_TAG, "value": content }),
            json!({ "key": "decant.recipe_sha256", "value": release.recipe_sha256 }),
            json!({ "key": "decant.version", "value": env!("CARGO_PKG_VERSION") }),
        ];
        for file in &release.files {
            let lineage = lineage(release, &file.path.display().to_string());
            tags.push(json!({ "key": format!("decant.lineage.{}", file_key(&file.path)), "value": lineage }));
        }
        let body = json!({
            "name": release.name,
            "source": format!("{}/{MODEL_DIR}", run.artifact_uri),
            "run_id": run.id,
            "tags": tags,
            "description": format!("decant {} release of recipe {}", env!("CARGO_PKG_VERSION"), release.recipe_sha256),
        });
        let reply = self.post("/api/2.0/mlflow/model-versions/create", &body)?;
        let reply = self.ok(reply, "register the model version")?;
        self.version_number(&reply["model_version"]["version"])
    }

    fn get(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<Result<Value, ApiError>, PublishError> {
        let mut request = self.agent.get(format!("{}{endpoint}", self.base));
        for (key, value) in query {
            request = request.query(*key, *value);
        }
        let reply = request.call().map_err(|e| self.unreachable(e))?;
        self.reply(reply)
    }

    fn post(&self, endpoint: &str, body: &Value) -> Result<Result<Value, ApiError>, PublishError> {
        let reply = self
            .agent
            .post(format!("{}{endpoint}", self.base))
            .send_json(body)
            .map_err(|e| self.unreachable(e))?;
        self.reply(reply)
    }

    fn reply(
        &self,
        reply: ureq::http::Response<ureq::Body>,
    ) -> Result<Result<Value, ApiError>, PublishError> {
        let status = reply.status().as_u16();
        let text = reply
            .into_body()
            .read_to_string()
            .map_err(|e| self.remote(format!("sent an unreadable reply: {e}")))?;
        let value: Value = serde_json::from_str(&text).map_err(|_| {
            self.remote(format!(
                "answered {status} with something other than JSON: {}",
                clip(&text)
            ))
        })?;
        if (200..300).contains(&status) {
            return Ok(Ok(value));
        }
        Ok(Err(ApiError {
            code: value["error_code"].as_str().unwrap_or("UNKNOWN").to_owned(),
            message: value["message"]
                .as_str()
                .map_or_else(|| clip(&text), str::to_owned),
        }))
    }

    fn ok(&self, reply: Result<Value, ApiError>, doing: &str) -> Result<Value, PublishError> {
        reply.map_err(|e| self.api_error(doing, e))
    }

    fn api_error(&self, doing: &str, e: ApiError) -> PublishError {
        self.remote(format!("cannot {doing}: {} ({})", e.message, e.code))
    }

    fn unreachable(&self, e: ureq::Error) -> PublishError {
        self.remote(format!("cannot reach the MLflow server: {e}"))
    }

    fn remote(&self, message: String) -> PublishError {
        PublishError::Remote {
            registry: format!("mlflow+{}", self.base),
            message,
        }
    }

    fn string(&self, value: &Value, what: &str) -> Result<String, PublishError> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.remote(format!("answered without a {what}")))
    }

    fn version_number(&self, value: &Value) -> Result<u64, PublishError> {
        value
            .as_str()
            .and_then(|v| v.parse().ok())
            .or_else(|| value.as_u64())
            .ok_or_else(|| {
                self.remote(format!("answered with model version {value}, not a number"))
            })
    }
}

impl super::ModelRegistry for MlflowRegistry {
    fn publish(&self, release: &Release) -> Result<Published, PublishError> {
        let content = release.content_sha256();
        let published = |version: u64, reused| Published {
            registry: format!("mlflow+{}", self.base),
            name: release.name.clone(),
            version: Version::Number(version),
            location: format!("models:/{}/{version}", release.name),
            reused,
        };
        if let Some(version) = self.find_version(&release.name, &content)? {
            return Ok(published(version, true));
        }
        let experiment = self.experiment(&release.name)?;
        let run = self.create_run(&experiment, release)?;
        let filled = self.artifact_root(&run).and_then(|root| {
            self.log(&run, release)
                .and_then(|()| self.upload(root, release))
        });
        if let Err(e) = filled {
            // The failure may have been losing the server, which then cannot
            // take the run's FAILED status either.
            let run_state = match self.end_run(&run, "FAILED") {
                Ok(()) => "is marked FAILED",
                Err(_) => "is left unfinished",
            };
            let left = format!("no version was registered; run {} {run_state}", run.id);
            return Err(PublishError::Unfinished {
                failed: Box::new(e),
                left,
            });
        }
        self.end_run(&run, "FINISHED")?;
        let version = self.register(&run, release, &content).map_err(|e| PublishError::Unfinished {
            failed: Box::new(e),
            left: "the version may be registered all the same; publishing again finds it or registers it".to_owned(),
        })?;
        Ok(published(version, false))
    }
}

/// `path <- parent <- …` through the manifest, from an exported file back to
/// the files outside the run (the teacher).
fn lineage(release: &Release, path: &str) -> String {
    let mut chain = vec![path.to_owned()];
    let mut current = path.to_owned();
    while let Some(artifact) = release
        .artifacts
        .iter()
        .find(|a| a.path.display().to_string() == current)
    {
        match artifact.parents.first() {
            Some(parent) if !chain.contains(parent) => {
                chain.push(parent.clone());
                current = parent.clone();
            }
            _ => break,
        }
    }
    chain.join(" <- ")
}

/// A file name as an MLflow tag key allows it.
fn file_key(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
