//! `decant publish` to a `file://` registry: a version holds exactly the run's
//! exported files, the same release is found again, a publish killed half-way
//! leaves nothing registered, and two publishes do not interleave.

mod common;

use std::path::{Path, PathBuf};

use common::{decant, stderr, stdout, tiny_recipe};
use serde_json::Value;

/// A run directory with a manifest: two distill steps, one Q8_0 GGUF; with
/// `registry`, the recipe's `[publish]` sends it there. Also what the run printed.
fn run_dir(root: &Path, seed: u64, registry: Option<&Path>) -> (PathBuf, Value) {
    let recipe = tiny_recipe(
        root,
        "kind = \"layers\"\nlayers = [0]",
        2,
        &format!("seed = {seed}\n"),
        "",
    );
    let mut text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("seed = 3\n", "");
    if let Some(registry) = registry {
        text += &format!(
            "\n[publish]\nregistry = \"file://{}\"\n",
            registry.display()
        );
    }
    std::fs::write(&recipe, text).unwrap();
    let out = root.join(format!("run-{seed}"));
    let run = decant(&[
        "run",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    (out, serde_json::from_str(&stdout(&run)).unwrap())
}

fn publish(run: &Path, registry: &Path) -> std::process::Output {
    let uri = format!("file://{}", registry.display());
    decant(&[
        "publish",
        run.to_str().unwrap(),
        "--registry",
        &uri,
        "--json",
    ])
}

fn published(run: &Path, registry: &Path) -> Value {
    let output = publish(run, registry);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

fn index(registry: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(registry.join("index.json")).unwrap()).unwrap()
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn versions_hold_the_run_s_files_and_a_killed_publish_registers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    let (first, _) = run_dir(dir.path(), 1, None);

    let v1 = published(&first, &registry);
    assert_eq!(
        (
            v1["name"].as_str(),
            v1["version"].as_u64(),
            v1["reused"].as_bool()
        ),
        (Some("tiny-student"), Some(1), Some(false))
    );
    let gguf = registry.join("tiny-student/v1/tiny-student-q8_0.gguf");
    assert_eq!(
        sha256(&gguf),
        sha256(&first.join("export/tiny-student-q8_0.gguf"))
    );
    assert!(registry.join("tiny-student/v1/manifest.json").is_file());
    let versions = &index(&registry)["models"]["tiny-student"]["versions"];
    assert_eq!(versions.as_array().unwrap().len(), 1);
    assert_eq!(
        versions[0]["files"][0]["sha256"].as_str().unwrap(),
        sha256(&gguf)
    );

    let again = published(&first, &registry);
    assert_eq!(
        (again["version"].as_u64(), again["reused"].as_bool()),
        (Some(1), Some(true))
    );

    // A publish killed after copying (or after renaming) never reached the index:
    // its leftovers are not a version, and the next publish replaces them.
    std::fs::create_dir_all(registry.join("tiny-student/.v2.partial")).unwrap();
    std::fs::create_dir_all(registry.join("tiny-student/v2")).unwrap();
    std::fs::write(registry.join("tiny-student/v2/half.gguf"), b"GGUF").unwrap();
    assert_eq!(
        index(&registry)["models"]["tiny-student"]["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // This time the recipe's [publish] section publishes at the end of the run.
    let (second, report) = run_dir(dir.path(), 2, Some(&registry));
    let v2 = &report["published"];
    assert_eq!(
        (v2["version"].as_u64(), v2["reused"].as_bool()),
        (Some(2), Some(false)),
        "{report}"
    );
    assert!(!registry.join("tiny-student/v2/half.gguf").exists());
    assert!(!registry.join("tiny-student/.v2.partial").exists());
    assert_eq!(
        sha256(&registry.join("tiny-student/v2/tiny-student-q8_0.gguf")),
        sha256(&second.join("export/tiny-student-q8_0.gguf"))
    );
    assert_eq!(
        index(&registry)["models"]["tiny-student"]["versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A file changed after the run is refused, and registers nothing.
    std::fs::write(
        second.join("export/tiny-student-q8_0.gguf"),
        b"GGUF tampered",
    )
    .unwrap();
    let other = dir.path().join("other-registry");
    let refused = publish(&second, &other);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("it changed after the run"),
        "{}",
        stderr(&refused)
    );
    assert!(!other.join("index.json").exists());

    // A lock held by a live process (this test) names its holder; a dead
    // holder's lock is stale and taken over.
    std::fs::write(registry.join(".lock"), std::process::id().to_string()).unwrap();
    let locked = publish(&first, &registry);
    assert_eq!(locked.status.code(), Some(1));
    let expected = format!(
        "the registry is in use by decant pid {}",
        std::process::id()
    );
    assert!(stderr(&locked).contains(&expected), "{}", stderr(&locked));
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(registry.join(".lock"), dead.to_string()).unwrap();
    assert_eq!(published(&first, &registry)["reused"], true);
    assert!(!registry.join(".lock").exists());
}

#[test]
fn registries_and_runs_publish_cannot_use_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("not-a-run");
    std::fs::create_dir_all(&empty).unwrap();
    let out = publish(&empty, &dir.path().join("registry"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has no manifest.json"),
        "{}",
        stderr(&out)
    );

    let out = decant(&[
        "publish",
        empty.to_str().unwrap(),
        "--registry",
        "ftp://host/x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--registry 'ftp://host/x': "),
        "{}",
        stderr(&out)
    );
}

/// `hf://` cannot reach the Hub from the tests; what it says without a token,
/// and when the Hub does not answer, is checked on a real run.
#[test]
fn the_hub_without_a_token_or_an_answer_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = run_dir(dir.path(), 5, None);
    let hub = |env: &[(&str, &str)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_decant"))
            .args([
                "publish",
                run.to_str().unwrap(),
                "--registry",
                "hf://decant-test/tiny-student",
            ])
            .env("HOME", dir.path())
            .env_remove("HF_TOKEN")
            .env_remove("HF_HOME")
            .env_remove("HF_TOKEN_PATH")
            .env_remove("HF_ENDPOINT")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let out = hub(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("hf://decant-test/tiny-student: no Hugging Face token: set HF_TOKEN"),
        "{}",
        stderr(&out)
    );
    let out = hub(&[
        ("HF_TOKEN", "hf_test"),
        ("HF_ENDPOINT", "http://127.0.0.1:9"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach the Hub at http://127.0.0.1:9"),
        "{}",
        stderr(&out)
    );
}

/// `mlflow+http://` against a real MLflow server: the run holds the recipe as
/// params, the metrics and the files; the model version carries the lineage;
/// the same release is found again; a publish that fails half-way registers
/// nothing and leaves its run FAILED.
#[test]
fn mlflow_receives_a_run_and_a_registered_version_with_lineage() {
    let mut server = common::mlflow_server::MlflowServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = run_dir(dir.path(), 1, None);
    server.ready();
    let uri = format!("mlflow+{}", server.url);
    let publish = || {
        decant(&[
            "publish",
            run.to_str().unwrap(),
            "--registry",
            &uri,
            "--json",
        ])
    };

    let out = publish();
    assert!(out.status.success(), "{}\n{}", stderr(&out), server.log());
    let v1: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (v1["version"].as_u64(), v1["reused"].as_bool()),
        (Some(1), Some(false)),
        "{v1}"
    );
    assert_eq!(v1["location"], "models:/tiny-student/1");

    let version = &server.get(
        "/api/2.0/mlflow/model-versions/get",
        &[("name", "tiny-student"), ("version", "1")],
    )["model_version"];
    let tag = |key: &str| -> String {
        let tags = version["tags"].as_array().unwrap();
        let tag = tags
            .iter()
            .find(|t| t["key"] == key)
            .unwrap_or_else(|| panic!("no tag {key}: {version}"));
        tag["value"].as_str().unwrap().to_owned()
    };
    let lineage = tag("decant.lineage.tiny-student-q8_0.gguf");
    let teacher = common::reference_model().display().to_string();
    assert_eq!(
        lineage,
        format!("export/tiny-student-q8_0.gguf <- distill/student <- {teacher}")
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        tag("decant.recipe_sha256"),
        manifest["recipe_sha256"].as_str().unwrap()
    );

    let run_id = version["run_id"].as_str().unwrap();
    let mlflow_run = &server.get("/api/2.0/mlflow/runs/get", &[("run_id", run_id)])["run"];
    assert_eq!(mlflow_run["info"]["status"], "FINISHED");
    let params = mlflow_run["data"]["params"].as_array().unwrap();
    let param = |key: &str| {
        params
            .iter()
            .find(|p| p["key"] == key)
            .map(|p| p["value"].as_str().unwrap().to_owned())
    };
    assert_eq!(param("train.steps").as_deref(), Some("2"));
    assert_eq!(param("export.name").as_deref(), Some("tiny-student"));
    let metrics = mlflow_run["data"]["metrics"].as_array().unwrap();
    let last_loss = metrics
        .iter()
        .find(|m| m["key"] == "distill.last_loss")
        .expect("distill.last_loss");
    let distilled = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["stage"] == "distill")
        .unwrap();
    assert_eq!(
        last_loss["value"].as_f64(),
        distilled["metrics"]["last_loss"].as_f64()
    );

    // The registered files are the run's, byte for byte.
    let root = mlflow_run["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_owned();
    let gguf = server.artifact(&format!("{root}/model/tiny-student-q8_0.gguf"));
    assert_eq!(
        gguf,
        std::fs::read(run.join("export/tiny-student-q8_0.gguf")).unwrap()
    );
    assert_eq!(
        server.artifact(&format!("{root}/model/recipe.toml")),
        std::fs::read(run.join("recipe.toml")).unwrap()
    );

    let again = publish();
    assert!(again.status.success(), "{}", stderr(&again));
    let again: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(
        (again["version"].as_u64(), again["reused"].as_bool()),
        (Some(1), Some(true))
    );

    // Half-way: as a new model, the file fails its hash once uploaded; nothing
    // is registered and the run that held the upload is marked FAILED.
    std::fs::write(run.join("export/tiny-student-q8_0.gguf"), b"GGUF tampered").unwrap();
    let refused = decant(&[
        "publish",
        run.to_str().unwrap(),
        "--registry",
        &uri,
        "--name",
        "tiny-other",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("it changed after the run"),
        "{}",
        stderr(&refused)
    );
    let versions = server.get(
        "/api/2.0/mlflow/model-versions/search",
        &[("filter", "name='tiny-other'")],
    );
    assert!(
        versions["model_versions"]
            .as_array()
            .is_none_or(|v| v.is_empty()),
        "{versions}"
    );
    let experiment = server.get(
        "/api/2.0/mlflow/experiments/get-by-name",
        &[("experiment_name", "tiny-other")],
    );
    let experiment = experiment["experiment"]["experiment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let runs = server.post(
        "/api/2.0/mlflow/runs/search",
        &serde_json::json!({ "experiment_ids": [experiment] }),
    );
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs["runs"][0]["info"]["status"], "FAILED", "{runs}");

    let unreachable = decant(&[
        "publish",
        run.to_str().unwrap(),
        "--registry",
        "mlflow+http://127.0.0.1:9",
    ]);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        stderr(&unreachable).contains("mlflow+http://127.0.0.1:9: cannot reach the MLflow server"),
        "{}",
        stderr(&unreachable)
    );
}

/// `oci://` against a real registry: each GGUF becomes an Ollama image (the
/// model layer is the file itself, with the chat template, system prompt and
/// stop parameters beside it), the same push is found again, and a push whose
/// file fails its hash creates no tag.
#[test]
fn oci_registry_receives_ollama_images() {
    const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    let registry = common::oci_registry::OciRegistryServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = run_dir(dir.path(), 1, None);
    let uri = format!("oci://{}/decant/tiny:v1", registry.addr);
    let publish = |uri: &str| {
        decant(&[
            "publish",
            run.to_str().unwrap(),
            "--registry",
            uri,
            "--json",
        ])
    };

    let out = publish(&uri);
    assert!(out.status.success(), "{}\n{}", stderr(&out), registry.log());
    let pushed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (pushed["version"].as_str(), pushed["reused"].as_bool()),
        (Some("v1"), Some(false)),
        "{pushed}"
    );
    assert_eq!(
        pushed["location"].as_str().unwrap(),
        format!("{}/decant/tiny:v1", registry.addr)
    );
    let mut tags: Vec<String> =
        serde_json::from_value(registry.get_json("decant/tiny/tags/list", "*/*")["tags"].clone())
            .unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v1-q8_0"]);

    let gguf_path = run.join("export/tiny-student-q8_0.gguf");
    let gguf = std::fs::read(&gguf_path).unwrap();
    let manifest = registry.get_json("decant/tiny/manifests/v1", MANIFEST);
    assert_eq!(manifest["mediaType"], MANIFEST);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    let media: Vec<&str> = layers
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        media,
        [
            "application/vnd.ollama.image.model",
            "application/vnd.ollama.image.template",
            "application/vnd.ollama.image.system",
            "application/vnd.ollama.image.params"
        ]
    );
    assert_eq!(
        layers[0]["digest"].as_str().unwrap(),
        format!("sha256:{}", sha256(&gguf_path))
    );
    assert_eq!(layers[0]["size"].as_u64(), Some(gguf.len() as u64));
    let blob = |layer: &Value| {
        registry.get(
            &format!("decant/tiny/blobs/{}", layer["digest"].as_str().unwrap()),
            "*/*",
        )
    };
    assert_eq!(blob(&layers[0]), gguf);
    assert!(
        String::from_utf8(blob(&layers[1]))
            .unwrap()
            .contains("<|im_start|>{{ .Role }}")
    );
    let params: Value = serde_json::from_slice(&blob(&layers[3])).unwrap();
    assert_eq!(
        params,
        serde_json::json!({ "stop": ["<|im_start|>", "<|im_end|>"] })
    );
    let config: Value = serde_json::from_slice(&blob(&manifest["config"])).unwrap();
    assert_eq!(
        (
            config["model_format"].as_str(),
            config["file_type"].as_str()
        ),
        (Some("gguf"), Some("Q8_0"))
    );
    assert_eq!(config["rootfs"]["diff_ids"][0], layers[0]["digest"]);

    let again = publish(&uri);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&again)).unwrap()["reused"],
        true
    );

    std::fs::write(&gguf_path, b"GGUF tampered").unwrap();
    let refused = publish(&format!("oci://{}/decant/tiny:broken", registry.addr));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("it changed after the run"),
        "{}",
        stderr(&refused)
    );
    let tags = registry.get_json("decant/tiny/tags/list", "*/*")["tags"].clone();
    assert!(
        !tags
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().starts_with("broken")),
        "{tags}"
    );
}
