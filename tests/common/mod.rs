//! Shared helpers for the end-to-end tests of the `decant` binary.
// Each test binary compiles this module and uses only some of the helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub mod fault_proxy;
pub mod loopback;
pub mod mlflow_server;
pub mod oci_registry;
pub mod tiny_teacher;

/// The reference teacher, fetched by `tools/fetch-reference-model.sh`. Missing is a
/// failure, not a skip: CI fetches it first, and a silent skip would hide that.
pub fn reference_model() -> PathBuf {
    let path = match std::env::var_os("DECANT_REFERENCE_MODEL") {
        Some(path) => PathBuf::from(path),
        None => {
            let cache = std::env::var_os("DECANT_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                        .join(".cache/decant")
                });
            cache.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        }
    };
    assert!(
        path.is_file(),
        "reference model {} is missing: run `bash tools/fetch-reference-model.sh`",
        path.display()
    );
    path
}

pub fn decant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_decant"))
        .args(args)
        .output()
        .expect("decant runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// The data files the shipped recipes name (relative to the repository root),
/// written under `root` with a few field-extraction records each, so that a
/// copy of `recipes/` there checks without the generated datasets.
pub fn write_recipe_data(root: &std::path::Path) {
    let records = [
        (
            "Ana Silva moved to Porto in 2019.",
            r#"{"name": "Ana Silva", "city": "Porto"}"#,
        ),
        (
            "Call Bo Chen at the Oslo office.",
            r#"{"name": "Bo Chen", "city": "Oslo"}"#,
        ),
    ];
    let lines: String = records
        .iter()
        .map(|(text, fields)| {
            let record = serde_json::json!({
                "prompt": format!("Extract the name and city as JSON: {text}"),
                "completion": fields,
            });
            format!("{record}\n")
        })
        .collect();
    for file in [
        "data/extract/train.jsonl",
        "data/extract/eval.jsonl",
        "data/nightly/2026-11-30.jsonl",
    ] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("data directory");
        std::fs::write(&path, &lines).expect("data file");
    }
}

/// Copies the shipped recipes into `root/recipes`, returning their paths.
pub fn copy_shipped_recipes(root: &std::path::Path) -> Vec<PathBuf> {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    std::fs::create_dir_all(root.join("recipes")).expect("recipes directory");
    let mut copies: Vec<PathBuf> = std::fs::read_dir(&shipped)
        .expect("recipes/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .map(|path| {
            let copy = root
                .join("recipes")
                .join(path.file_name().expect("a file name"));
            std::fs::copy(&path, &copy).expect("copy recipe");
            copy
        })
        .collect();
    copies.sort();
    copies
}

/// `root/train.jsonl`: the first 24 examples of the shipped extraction data,
/// what the tiny recipes train on.
pub fn first_training_examples(root: &std::path::Path) -> PathBuf {
    let data = root.join("train.jsonl");
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/extract/train.jsonl"),
    )
    .expect("the shipped extraction data");
    let lines: String = shipped.lines().take(24).map(|l| format!("{l}\n")).collect();
    std::fs::write(&data, lines).unwrap();
    data
}

/// A recipe of `steps` training steps for the reference teacher with `student`
/// as its `[student.init]` body, on the first 24 examples of the shipped
/// extraction data; `extra` goes into `[train]` (or opens more sections after
/// it), `distill` into `[distill]`.
pub fn tiny_recipe(
    root: &std::path::Path,
    student: &str,
    steps: u64,
    extra: &str,
    distill: &str,
) -> PathBuf {
    let data = first_training_examples(root);
    let text = format!(
        r#"[teacher]
model = "{teacher}"

[student.init]
{student}

[data]
train = "{data}"
max_length = 256
packing = true

[distill]
loss = {{ kind = "forward_kl" }}
alpha = 0.5
{distill}

[train]
lr = 1e-3
schedule = "cosine"
min_lr = 1e-4
warmup_steps = 1
steps = {steps}
batch_size = 1
checkpoint_every = 2
keep_checkpoints = 2
seed = 3
{extra}
[export]
name = "tiny-student"
"#,
        teacher = reference_model().display(),
        data = data.display(),
    );
    let path = root.join("recipe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The venv python with llama-cpp-python. Unset is a failure, not a skip.
pub fn python() -> PathBuf {
    let python = std::env::var_os("DECANT_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "DECANT_PYTHON is not set: run `bash tools/setup-python.sh --with-llama` and \
             export DECANT_PYTHON=~/.cache/decant/venv/bin/python (tools/test.sh is meant to do both)"
        )
    });
    assert!(
        python.is_file(),
        "DECANT_PYTHON={} is not a file",
        python.display()
    );
    python
}

/// Runs `tools/oracles/llamacpp_export.py ARGS` (llama.cpp through
/// llama-cpp-python) and returns the JSON object it prints.
pub fn llamacpp_oracle(python: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/oracles/llamacpp_export.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "oracle {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the oracle prints one JSON object")
}
