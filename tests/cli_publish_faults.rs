//! `decant publish` when the registry fails it: an MLflow server killed
//! between two artifact uploads or as it answers the registration, an OCI
//! registry refusing one blob. Each fault
//! comes from a proxy in front of the real server, at a chosen request; the
//! failed publish must name what it was doing, leave no version or tag, and a
//! retry must complete. Also the messages for registries publish cannot use.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::fault_proxy::{Fault, FaultProxy};
use common::mlflow_server::MlflowServer;
use common::{decant, stderr, stdout, tiny_recipe};
use serde_json::{Value, json};

const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A completed two-step run; `export` goes into its `[export]` section.
fn run_dir(root: &Path, export: &str) -> PathBuf {
    let recipe = tiny_recipe(root, "kind = \"layers\"\nlayers = [0]", 2, "", "");
    let text = std::fs::read_to_string(&recipe).unwrap() + export;
    std::fs::write(&recipe, text).unwrap();
    let out = root.join("run");
    let run = decant(&[
        "run",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    out
}

fn publish(run: &Path, registry: &str, name: &str) -> std::process::Output {
    decant(&[
        "publish",
        run.to_str().unwrap(),
        "--registry",
        registry,
        "--name",
        name,
        "--json",
    ])
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// The registered versions of model `name`.
fn versions(server: &MlflowServer, name: &str) -> Vec<Value> {
    let found = server.get(
        "/api/2.0/mlflow/model-versions/search",
        &[("filter", &format!("name='{name}'"))],
    );
    found["model_versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn mlflow_killed_mid_publish_registers_nothing_and_a_retry_registers_one_version() {
    let mut server = MlflowServer::start();
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path(), "");
    server.ready();

    // The GGUF goes first and is stored by the time the manifest's upload
    // starts; the server dies there, with the run's artifacts half uploaded.
    let pid = server.pid();
    let proxy = FaultProxy::start(
        server.url.trim_start_matches("http://"),
        |method, target| method == "PUT" && target.ends_with("/model/manifest.json"),
        Fault::Drop(Box::new(move || {
            common::loopback::signal_group(pid, "KILL")
        })),
    );
    let killed = publish(
        &run,
        &format!("mlflow+http://{}", proxy.addr),
        "tiny-student",
    );
    assert!(proxy.tripped());
    assert_eq!(killed.status.code(), Some(1), "{}", stdout(&killed));
    let expected = format!(
        "mlflow+http://{}: cannot upload {}: ",
        proxy.addr,
        run.join("manifest.json").display()
    );
    let message = stderr(&killed);
    assert!(message.contains(&expected), "{message}");
    assert!(
        message.contains("; no version was registered; run "),
        "{message}"
    );
    assert!(message.ends_with(" is left unfinished\n"), "{message}");

    server.restart();
    assert!(versions(&server, "tiny-student").is_empty());
    let experiment = server.get(
        "/api/2.0/mlflow/experiments/get-by-name",
        &[("experiment_name", "tiny-student")],
    );
    let experiment = experiment["experiment"]["experiment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let runs = server.post(
        "/api/2.0/mlflow/runs/search",
        &json!({ "experiment_ids": [experiment] }),
    );
    let interrupted = runs["runs"].as_array().unwrap();
    assert_eq!(interrupted.len(), 1, "{runs}");
    let interrupted = interrupted[0]["info"]["run_id"].as_str().unwrap();
    let stored = server.get(
        "/api/2.0/mlflow/artifacts/list",
        &[("run_id", interrupted), ("path", "model")],
    );
    let stored: Vec<&str> = stored["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(stored, ["model/tiny-student-q8_0.gguf"]);

    let retried = publish(&run, &format!("mlflow+{}", server.url), "tiny-student");
    assert!(
        retried.status.success(),
        "{}\n{}",
        stderr(&retried),
        server.log()
    );
    let retried: Value = serde_json::from_str(&stdout(&retried)).unwrap();
    assert_eq!(
        (retried["version"].as_u64(), retried["reused"].as_bool()),
        (Some(1), Some(false)),
        "{retried}"
    );
    let registered = versions(&server, "tiny-student");
    assert_eq!(registered.len(), 1, "{registered:?}");
    let tags = registered[0]["tags"].as_array().unwrap();
    let tag = |key: &str| {
        tags.iter()
            .find(|t| t["key"] == key)
            .and_then(|t| t["value"].as_str())
            .unwrap_or_default()
    };
    let teacher = common::reference_model().display().to_string();
    assert_eq!(
        tag("decant.lineage.tiny-student-q8_0.gguf"),
        format!("export/tiny-student-q8_0.gguf <- distill/student <- {teacher}")
    );
    assert_eq!(tag("decant.content_sha256").len(), 64, "{tags:?}");
    let run_id = registered[0]["run_id"].as_str().unwrap();
    assert_ne!(run_id, interrupted);
    let finished = &server.get("/api/2.0/mlflow/runs/get", &[("run_id", run_id)])["run"]["info"];
    assert_eq!(finished["status"], "FINISHED");
    let root = finished["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_owned();
    for (artifact, file) in [
        (
            "model/tiny-student-q8_0.gguf",
            "export/tiny-student-q8_0.gguf",
        ),
        ("model/manifest.json", "manifest.json"),
    ] {
        let bytes = server.artifact(&format!("{root}/{artifact}"));
        assert!(
            bytes == std::fs::read(run.join(file)).unwrap(),
            "{artifact} is not {file}"
        );
    }

    // Killed as it answers the registration: the version exists though
    // decant never heard so; the retry finds it rather than adding another.
    let pid = server.pid();
    let proxy = FaultProxy::start(
        server.url.trim_start_matches("http://"),
        |method, target| method == "POST" && target.ends_with("/model-versions/create"),
        Fault::Unanswered(Box::new(move || {
            common::loopback::signal_group(pid, "KILL")
        })),
    );
    let unanswered = publish(&run, &format!("mlflow+http://{}", proxy.addr), "tiny-lost");
    assert!(proxy.tripped());
    assert_eq!(unanswered.status.code(), Some(1), "{}", stdout(&unanswered));
    let message = stderr(&unanswered);
    assert!(
        message.contains("; the version may be registered all the same; publishing again finds it"),
        "{message}"
    );
    server.restart();
    assert_eq!(versions(&server, "tiny-lost").len(), 1);
    let retried = publish(&run, &format!("mlflow+{}", server.url), "tiny-lost");
    assert!(retried.status.success(), "{}", stderr(&retried));
    let retried: Value = serde_json::from_str(&stdout(&retried)).unwrap();
    assert_eq!(
        (retried["version"].as_u64(), retried["reused"].as_bool()),
        (Some(1), Some(true)),
        "{retried}"
    );
    assert_eq!(versions(&server, "tiny-lost").len(), 1);

    // An experiment deleted in MLflow still holds its name: the server's
    // refusal of a run there reaches the user as MLflow words it.
    let deleted = server.post(
        "/api/2.0/mlflow/experiments/create",
        &json!({ "name": "tiny-deleted" }),
    );
    server.post(
        "/api/2.0/mlflow/experiments/delete",
        &json!({ "experiment_id": deleted["experiment_id"] }),
    );
    let refused = publish(&run, &format!("mlflow+{}", server.url), "tiny-deleted");
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(
        message.contains(&format!("mlflow+{}: cannot create a run: ", server.url)),
        "{message}"
    );
    assert!(
        message.contains("must be in the 'active' state")
            && message.contains("(INVALID_PARAMETER_VALUE)"),
        "{message}"
    );

    // An experiment storing its artifacts outside the server's artifact proxy
    // gets runs decant cannot upload to; the one it made is marked FAILED.
    let local = dir.path().join("local-artifacts");
    let location = format!("file://{}", local.display());
    let created = server.post(
        "/api/2.0/mlflow/experiments/create",
        &json!({ "name": "tiny-local", "artifact_location": location }),
    );
    let refused = publish(&run, &format!("mlflow+{}", server.url), "tiny-local");
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(
        message.contains(&format!("stores run artifacts at {location}/")),
        "{message}"
    );
    assert!(
        message
            .contains("start the server with artifact serving (`mlflow server --serve-artifacts`)"),
        "{message}"
    );
    assert!(message.contains("is marked FAILED"), "{message}");
    let runs = server.post(
        "/api/2.0/mlflow/runs/search",
        &json!({ "experiment_ids": [created["experiment_id"]] }),
    );
    assert_eq!(runs["runs"][0]["info"]["status"], "FAILED", "{runs}");
    assert!(versions(&server, "tiny-local").is_empty());
}

#[test]
fn oci_blob_refused_leaves_no_tag_and_a_retry_pushes_every_layer() {
    let registry = common::oci_registry::OciRegistryServer::start();
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path(), "");
    let gguf = run.join("export/tiny-student-q8_0.gguf");

    // Blobs go model layer first, then the chat template: the second upload
    // fails with the model layer already stored.
    let uploads = AtomicUsize::new(0);
    let proxy = FaultProxy::start(
        &registry.addr,
        move |method, target| {
            method == "PUT"
                && target.contains("/blobs/uploads/")
                && uploads.fetch_add(1, Ordering::SeqCst) == 1
        },
        Fault::Answer(
            500,
            r#"{"errors":[{"code":"UNKNOWN","message":"no space left on device"}]}"#,
        ),
    );
    let refused = publish(
        &run,
        &format!("oci://{}/decant/tiny:v1", proxy.addr),
        "tiny",
    );
    assert!(proxy.tripped());
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let message = stderr(&refused);
    let expected = format!(
        "oci://{}/decant/tiny: cannot push the chat template layer of {} (blob sha256:",
        proxy.addr,
        gguf.display()
    );
    assert!(message.contains(&expected), "{message}");
    assert!(
        message.contains("): cannot store it (500): ")
            && message.contains("no space left on device"),
        "{message}"
    );
    assert!(message.ends_with("; no tag was pushed\n"), "{message}");
    for tag in ["v1", "v1-q8_0"] {
        assert_eq!(
            registry.status(&format!("decant/tiny/manifests/{tag}"), MANIFEST),
            404,
            "{tag}"
        );
    }
    let model_blob = format!(
        "decant/tiny/blobs/sha256:{}",
        sha256(&std::fs::read(&gguf).unwrap())
    );
    assert_eq!(registry.status(&model_blob, "*/*"), 200);

    let retried = publish(
        &run,
        &format!("oci://{}/decant/tiny:v1", registry.addr),
        "tiny",
    );
    assert!(
        retried.status.success(),
        "{}\n{}",
        stderr(&retried),
        registry.log()
    );
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&retried)).unwrap()["reused"],
        false
    );
    let manifest = registry.get_json("decant/tiny/manifests/v1", MANIFEST);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "{manifest}");
    for descriptor in layers.iter().chain([&manifest["config"]]) {
        let digest = descriptor["digest"].as_str().unwrap();
        let blob = registry.get(&format!("decant/tiny/blobs/{digest}"), "*/*");
        assert_eq!(format!("sha256:{}", sha256(&blob)), digest);
        assert_eq!(
            Some(blob.len() as u64),
            descriptor["size"].as_u64(),
            "{digest}"
        );
    }

    // The tags hold this image: publishing again writes no manifest, which
    // this proxy would refuse.
    let no_put = FaultProxy::start(
        &registry.addr,
        |method, target| method == "PUT" && target.contains("/manifests/"),
        Fault::Answer(
            500,
            r#"{"errors":[{"code":"UNKNOWN","message":"a manifest was written"}]}"#,
        ),
    );
    let again = publish(
        &run,
        &format!("oci://{}/decant/tiny:v1", no_put.addr),
        "tiny",
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!no_put.tripped());
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&again)).unwrap()["reused"],
        true
    );
}

#[test]
fn oci_needs_a_gguf_export() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_dir(dir.path(), "formats = [\"safetensors\"]\n");
    // Nothing is pushed, so no registry answers this address.
    let refused = publish(&run, "oci://127.0.0.1:9/decant/tiny:v1", "tiny");
    assert_eq!(refused.status.code(), Some(1));
    let expected = format!(
        "{}: exported no GGUF file; an OCI registry takes Ollama's GGUF images",
        run.display()
    );
    assert!(stderr(&refused).contains(&expected), "{}", stderr(&refused));
}
