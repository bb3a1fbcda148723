//! `[train] dtype = "bf16"`: `decant distill` trains in bf16 mixed precision
//! (bf16 working copies, f32 master weights) and writes an f32 student; a
//! recipe with [qat] refuses it, since QAT trains against the rounding of
//! the f32 weights.

mod common;

use common::tiny_teacher::tiny_teacher;
use common::{decant, first_training_examples, stderr};
use serde_json::Value;

fn recipe(root: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let teacher = tiny_teacher(&root.join("teacher"));
    let data = first_training_examples(root);
    let text = format!(
        r#"[teacher]
model = "{teacher}"

[student.init]
kind = "layers"
layers = [1]

[data]
train = "{data}"
max_length = 256
packing = true

[distill]
alpha = 0.5

[train]
lr = 1e-3
steps = 3
batch_size = 2
checkpoint_every = 3
dtype = "bf16"
{extra}"#,
        teacher = teacher.display(),
        data = data.display(),
    );
    let path = root.join("recipe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bf16_distills_an_f32_student() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), "");
    let run = dir.path().join("run");
    let output = decant(&["distill", recipe.to_str().unwrap(), "--out", run.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let metrics = std::fs::read_to_string(run.join("distill/metrics.jsonl")).unwrap();
    let losses: Vec<f64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 3);
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "{losses:?}");
    let student = std::fs::read(run.join("distill/student/model.safetensors")).unwrap();
    let len = u64::from_le_bytes(student[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&student[8..8 + len]).unwrap();
    for (name, tensor) in header.as_object().unwrap().iter().filter(|(n, _)| *n != "__metadata__") {
        assert_eq!(tensor["dtype"], "F32", "{name}");
    }
}

#[test]
fn bf16_with_qat_is_a_recipe_error() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), "\n[qat]\ntype = \"q8_0\"\nsteps = 1\n");
    let output = decant(&["recipe", "check", recipe.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let expected = format!(
        "{}:21:9: `train.dtype`: QAT trains against the rounding of the f32 master weights",
        recipe.display()
    );
    assert!(stderr(&output).contains(&expected), "{}", stderr(&output));
}
