//! `decant distill`: a recipe's distill stage on the reference teacher, end to
//! end: pruning, online distillation, checkpoints, resumption and the student
//! it writes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{decant, reference_model, stderr, stdout, tiny_recipe};
use serde_json::Value;

/// A recipe of `steps` steps for the reference teacher with `student` as its
/// `[student.init]` body, on the first examples of the shipped extraction data.
fn recipe(root: &Path, student: &str, steps: u64, extra: &str) -> PathBuf {
    tiny_recipe(root, student, steps, extra, "")
}

/// [`recipe`] with more `[distill]` keys.
fn recipe_with(root: &Path, student: &str, steps: u64, extra: &str, distill: &str) -> PathBuf {
    tiny_recipe(root, student, steps, extra, distill)
}

fn distill(recipe: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "distill",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    decant(&args)
}

fn losses(stage: &Path) -> Vec<f64> {
    std::fs::read_to_string(stage.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn distill_prunes_the_teacher_trains_and_writes_a_student_the_other_commands_read() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(
        dir.path(),
        "kind = \"depth\"\nkeep = 2\ncalibration_samples = 8",
        3,
        "",
    );
    let run = dir.path().join("run");
    let output = distill(&recipe, &run, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["steps"], 3);
    assert_eq!(report["reused"], false);
    assert_eq!(report["objective"], "forward_kl (alpha 0.5)");
    let layers = report["student_layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let influence = report["layer_influence"].as_array().unwrap();
    assert_eq!(influence.len(), 30);
    // The two kept layers are the two most influential.
    let mut ranked: Vec<(f64, usize)> = influence
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_f64().unwrap(), i))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut top: Vec<usize> = ranked[..2].iter().map(|&(_, i)| i).collect();
    top.sort_unstable();
    let kept: Vec<usize> = layers
        .iter()
        .map(|l| l.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(kept, top);

    let stage = run.join("distill");
    let metrics: Vec<Value> = std::fs::read_to_string(stage.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(metrics.len(), 3);
    for m in &metrics {
        assert!(m["components"]["ce"].as_f64().unwrap().is_finite());
        assert!(m["components"]["kd"].as_f64().unwrap().is_finite());
    }

    // The student is a Hugging Face directory every MODEL argument accepts.
    let student = stage.join("student");
    let inspect = decant(&[
        "generate",
        "--model",
        student.to_str().unwrap(),
        "--prompt",
        "Invoice",
        "--max-tokens",
        "3",
        "--json",
    ]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));

    // A finished stage is found complete and not redone.
    let started = Instant::now();
    let again = distill(&recipe, &run, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let again: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(again["reused"], true);
    assert_eq!(again["inputs"], report["inputs"]);
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Killed with SIGKILL after its first checkpoint, the stage refuses to start
/// over, and `--resume` finishes it with the uninterrupted run's losses and
/// weights.
#[test]
fn a_killed_stage_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), "kind = \"layers\"\nlayers = [0, 29]", 6, "");
    let whole = dir.path().join("whole");
    let output = distill(&recipe, &whole, &[]);
    assert!(output.status.success(), "{}", stderr(&output));

    let killed = dir.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_decant"))
        .args([
            "distill",
            recipe.to_str().unwrap(),
            "--out",
            killed.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = killed.join("distill/checkpoints/step-00000002");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !first.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first.exists(), "no checkpoint appeared");

    let refused = distill(&recipe, &killed, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("--resume"),
        "{}",
        stderr(&refused)
    );

    let resumed = distill(&recipe, &killed, &["--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let (a, b) = (
        losses(&whole.join("distill")),
        losses(&killed.join("distill")),
    );
    assert_eq!(a.len(), 6);
    assert_eq!(b.len(), 6);
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-6, "step {}: {x} vs {y}", step + 1);
    }
    assert_eq!(
        sha256(&whole.join("distill/student/model.safetensors")),
        sha256(&killed.join("distill/student/model.safetensors"))
    );
}

#[test]
fn recipes_the_stage_cannot_run_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [(
        "kind = \"layers\"\nlayers = [0]",
        "",
        "[train] min_lr: the linear schedule decays to 0",
    )];
    for (student, extra, expected) in cases {
        let recipe = recipe(dir.path(), student, 2, extra);
        // Keys the shared recipe sets already are changed in place.
        let text = std::fs::read_to_string(&recipe).unwrap();
        let text = match expected {
            e if e.contains("linear") => {
                text.replace("schedule = \"cosine\"", "schedule = \"linear\"")
            }
            _ => text,
        };
        std::fs::write(&recipe, text).unwrap();
        let output = distill(&recipe, &dir.path().join("run"), &[]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    }
}

/// A cached teacher: the stage writes the cache once (under 100 bytes per
/// position at k = 64), trains from it, and a second run reuses both.
#[test]
fn a_cached_teacher_is_cached_once_and_trained_from() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe_with(
        dir.path(),
        "kind = \"layers\"\nlayers = [0, 29]",
        2,
        "",
        "teacher = \"cached\"\ntop_k = 64",
    );
    let run = dir.path().join("run");
    let output = distill(&recipe, &run, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["objective"], "forward_kl (alpha 0.5, cached top-64)");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("teacher-cache/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["k"], 64);
    assert_eq!(manifest["documents"], 24);
    let per_position = manifest["bytes_per_position"].as_f64().unwrap();
    assert!(per_position < 100.0, "{per_position} bytes per position");
    let metrics = losses(&run.join("distill"));
    assert_eq!(metrics.len(), 2);
    assert!(metrics.iter().all(|l| l.is_finite()));
    let again = distill(&recipe, &run, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&again)).unwrap()["reused"],
        true
    );
}

/// On-policy batches (GKD's lambda) from the recipe: the student answers the
/// prompts itself and is trained towards the teacher on its answers.
#[test]
fn on_policy_distillation_runs_from_the_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe_with(
        dir.path(),
        "kind = \"layers\"\nlayers = [0, 29]",
        2,
        "",
        "on_policy = { lambda = 1.0, max_new_tokens = 8, temperature = 1.0 }",
    );
    let run = dir.path().join("run");
    let output = distill(&recipe, &run, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        report["objective"],
        "forward_kl (alpha 0.5, on-policy lambda 1)"
    );
    let metrics: Vec<Value> = std::fs::read_to_string(run.join("distill/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(metrics.len(), 2);
    for m in &metrics {
        assert!(m["components"]["kd"].as_f64().unwrap().is_finite());
        assert!(m["components"].get("ce").is_none(), "{m}");
    }
}

/// A student of another tokenizer cannot be distilled token by token: the
/// stage refuses it, naming the first token the two vocabularies disagree on.
#[test]
fn a_student_with_another_tokenizer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let student = dir.path().join("student");
    let exported = decant(&[
        "export",
        "--model",
        reference_model().to_str().unwrap(),
        "--format",
        "safetensors",
        "--out",
        student.to_str().unwrap(),
    ]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let student_recipe = |steps| {
        recipe(
            dir.path(),
            &format!("kind = \"model\"\nmodel = \"{}\"", student.display()),
            steps,
            "",
        )
    };
    // The same tokenizer in the other format is accepted.
    let same = distill(&student_recipe(1), &dir.path().join("same"), &[]);
    assert!(same.status.success(), "{}", stderr(&same));
    // Another tokenizer: two tokens trade ids.
    let path = student.join("tokenizer.json");
    let mut tokenizer: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let vocab = tokenizer["model"]["vocab"].as_object_mut().unwrap();
    let (a, b) = {
        let mut by_id: Vec<(&String, u64)> = vocab
            .iter()
            .map(|(k, v)| (k, v.as_u64().unwrap()))
            .collect();
        by_id.sort_by_key(|&(_, id)| id);
        (by_id[300].0.clone(), by_id[301].0.clone())
    };
    let (ia, ib) = (vocab[&a].clone(), vocab[&b].clone());
    vocab.insert(a, ib);
    vocab.insert(b, ia);
    std::fs::write(&path, serde_json::to_string(&tokenizer).unwrap()).unwrap();

    let output = distill(&student_recipe(2), &dir.path().join("run"), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("have different tokenizers (token 300 is"),
        "{err}"
    );
}
