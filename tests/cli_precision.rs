//! `[train] dtype = "bf16"`: `decant distill` trains in bf16 mixed precision
//! (bf16 working copies, f32 master weights) and writes an f32 student; QAT
//! after it trains in f32, since it trains against the rounding of the f32
//! weights.

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
    let output = decant(&[
        "distill",
        recipe.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let metrics = std::fs::read_to_string(run.join("distill/metrics.jsonl")).unwrap();
    let losses: Vec<f64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 3);
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
    let student = std::fs::read(run.join("distill/student/model.safetensors")).unwrap();
    let len = u64::from_le_bytes(student[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&student[8..8 + len]).unwrap();
    for (name, tensor) in header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(n, _)| *n != "__metadata__")
    {
        assert_eq!(tensor["dtype"], "F32", "{name}");
    }
}

#[test]
fn qat_after_bf16_distillation_trains_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), "\n[qat]\ntype = \"q8_0\"\nsteps = 1\n");
    let check = decant(&["recipe", "check", recipe.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("bf16 (QAT in f32)"),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let run = dir.path().join("run");
    for stage in ["distill", "qat"] {
        let output = decant(&[
            stage,
            recipe.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--json",
        ]);
        assert!(output.status.success(), "{stage}: {}", stderr(&output));
    }
    let distilled = checkpoint_settings(&run.join("distill/checkpoints"));
    assert_eq!(distilled["trainer"]["precision"], "bf16", "{distilled}");
    let qat = checkpoint_settings(&run.join("qat/checkpoints"));
    assert_eq!(qat["trainer"]["precision"], "f32", "QAT must train in f32: {qat}");
}

/// The trainer state of the newest checkpoint under `dir`.
fn checkpoint_settings(dir: &std::path::Path) -> Value {
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("trainer_state.json").is_file())
        .max()
        .unwrap_or_else(|| panic!("no checkpoint under {}", dir.display()));
    serde_json::from_str(&std::fs::read_to_string(newest.join("trainer_state.json")).unwrap())
        .unwrap()
}
