//! `decant distill` with `[distill.hidden]`: hidden-state alignment trains a
//! narrower (width-pruned) student through a projection to the teacher's width
//! that its checkpoints keep and its exported student does not, and a
//! depth-pruned student of the teacher's width without one.

mod common;

use std::path::{Path, PathBuf};

use common::tiny_teacher::tiny_teacher;
use common::{decant, first_training_examples, stderr};
use serde_json::Value;

fn recipe(root: &Path, teacher: &Path, student: &str, hidden: &str) -> PathBuf {
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

[distill.hidden]
{hidden}

[train]
lr = 1e-3
steps = 4
batch_size = 2
checkpoint_every = 2
seed = 3
"#,
        teacher = teacher.display(),
        data = data.display(),
    );
    let path = root.join("recipe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The tensor names in a safetensors file's header.
fn tensor_names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect()
}

fn distill(recipe: &Path, run: &Path) -> Value {
    let output = decant(&[
        "distill",
        recipe.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn hidden_losses(stage: &Path) -> Vec<f64> {
    std::fs::read_to_string(stage.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["components"]["hidden"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_width_pruned_student_aligns_through_a_projection_it_does_not_export() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(&dir.path().join("teacher"));
    let recipe = recipe(
        dir.path(),
        &teacher,
        "kind = \"width\"\nhidden = 16\ncalibration_samples = 4",
        "kind = \"cosine\"\nweight = 0.5",
    );
    let run = dir.path().join("run");
    let report = distill(&recipe, &run);
    assert_eq!(
        report["objective"].as_str().unwrap(),
        "forward_kl (alpha 0.5)"
    );
    let stage = run.join("distill");
    let losses = hidden_losses(&stage);
    assert_eq!(losses.len(), 4);
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );

    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(stage.join("student/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["hidden_size"], 16);
    let exported = tensor_names(&stage.join("student/model.safetensors"));
    assert!(
        !exported.iter().any(|n| n.contains("projection")),
        "{exported:?}"
    );
    let checkpoints: Vec<PathBuf> = std::fs::read_dir(stage.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!checkpoints.is_empty());
    for checkpoint in checkpoints {
        let names = tensor_names(&checkpoint.join("model.safetensors"));
        assert!(
            names.iter().any(|n| n == "hidden_projection.weight"),
            "{}: {names:?}",
            checkpoint.display()
        );
    }
}

#[test]
fn a_depth_pruned_student_aligns_its_layers_with_the_ones_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(&dir.path().join("teacher"));
    let recipe = recipe(
        dir.path(),
        &teacher,
        "kind = \"layers\"\nlayers = [1]",
        "kind = \"mse\"",
    );
    let run = dir.path().join("run");
    distill(&recipe, &run);
    let stage = run.join("distill");
    // The student's one layer is the teacher's layer 1 on the teacher's own
    // input to it but not on the embeddings alone: the first step already has
    // a (small) error, and training keeps it finite.
    let losses = hidden_losses(&stage);
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
    let checkpoint = std::fs::read_dir(stage.join("checkpoints"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let names = tensor_names(&checkpoint.join("model.safetensors"));
    assert!(
        !names.iter().any(|n| n.contains("projection")),
        "same widths need no projection: {names:?}"
    );
}
