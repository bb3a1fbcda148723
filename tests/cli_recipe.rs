//! `decant recipe check` on real files: the summary, --json, and every kind of
//! error, all reported at once with file:line:col.

mod common;

use std::path::{Path, PathBuf};

use common::{decant, stderr, stdout};

/// A recipe without a teacher: fine-tuning an existing model on labels.
const MINIMAL: &str = r#"[student.init]
kind = "model"
model = "student.gguf"

[data]
train = "train.jsonl"
held_out = 0.1

[train]
lr = 1e-4
steps = 10
"#;

/// Writes `body` as `r.toml` beside the files MINIMAL names.
fn write_recipe(dir: &Path, body: &str) -> PathBuf {
    std::fs::write(dir.join("student.gguf"), b"GGUF").unwrap();
    std::fs::write(dir.join("train.jsonl"), "{\"text\": \"hello\"}\n").unwrap();
    let path = dir.join("r.toml");
    std::fs::write(&path, body).unwrap();
    path
}

fn check(path: &Path, json: bool) -> std::process::Output {
    let path = path.to_str().unwrap();
    if json {
        decant(&["recipe", "check", path, "--json"])
    } else {
        decant(&["recipe", "check", path])
    }
}

/// The `file:line:col: message` lines of stderr, the final summary left out.
fn error_lines(out: &std::process::Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|line| !line.starts_with("error: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn quickstart_summary() {
    common::reference_model();
    let root = tempfile::tempdir().unwrap();
    common::write_recipe_data(root.path());
    let recipes = common::copy_shipped_recipes(root.path());
    let quickstart = recipes
        .iter()
        .find(|p| p.ends_with("quickstart.toml"))
        .unwrap();
    let out = check(quickstart, false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("{}: ok\n", quickstart.display())),
        "{text}"
    );
    for expected in [
        "student   the teacher's 10 most important layers (64 calibration examples)",
        "distill   forward KL, T=1, CE weight 0.5, online teacher, full vocabulary",
        "48 steps, AdamW",
        "qat       q4_k_m, 6 steps",
        "export    gguf (q4_k_m, q8_0) + safetensors as 'smollm2-extract-10l'",
        "eval      ppl, kld, top1, exact; cascade at 0.9 accuracy",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn json_is_one_object_with_the_resolved_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_recipe(dir.path(), MINIMAL);
    let out = check(&path, true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: serde_json::Value =
        serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    assert_eq!(value["valid"], true);
    let config = &value["config"];
    assert_eq!(config["teacher"], serde_json::Value::Null);
    assert_eq!(config["student"]["init"]["kind"], "model");
    assert_eq!(config["train"]["steps"], 10);
    // Defaults are resolved, not left out.
    assert_eq!(config["train"]["batch_size"], 8);
    assert_eq!(config["train"]["schedule"], "cosine");
    assert_eq!(config["train"]["backend"], "cpu");
    assert_eq!(config["data"]["truncation"], "right");
    assert_eq!(config["export"]["types"], serde_json::json!(["q8_0"]));
    assert_eq!(config["export"]["name"], "r");
    let train_file = dir.path().join("train.jsonl");
    assert_eq!(
        config["data"]["train"]["files"][0],
        train_file.to_str().unwrap()
    );
}

#[test]
fn unknown_key_is_reported_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let body = MINIMAL.replace("steps = 10", "steps = 10\n  stpes = 20");
    let path = write_recipe(dir.path(), &body);
    let out = check(&path, false);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_lines(&out),
        [format!(
            "{}:12:3: unknown key `stpes` in [train]; did you mean `steps`? (known keys: optimizer, \
             lr, schedule, min_lr, warmup_steps, steps, batch_size, grad_accum, clip_norm, seed, \
             checkpoint_every, keep_checkpoints, backend, devices, freeze, dtype, on_non_finite)",
            path.display()
        )]
    );
    assert!(stderr(&out).ends_with(&format!(
        "error: {}: 1 error in the recipe\n",
        path.display()
    )));
}

#[test]
fn what_a_non_finite_step_does_is_stop_or_skip() {
    let dir = tempfile::tempdir().unwrap();
    let skip = write_recipe(
        dir.path(),
        &MINIMAL.replace("steps = 10", "steps = 10\non_non_finite = \"skip\""),
    );
    let out = check(&skip, true);
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(value["config"]["train"]["on_non_finite"], "skip");

    let ignore = write_recipe(
        dir.path(),
        &MINIMAL.replace("steps = 10", "steps = 10\non_non_finite = \"ignore\""),
    );
    let out = check(&ignore, false);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_lines(&out),
        [format!(
            "{}:12:17: `train.on_non_finite`: unknown value 'ignore' (expected 'stop' or 'skip')",
            ignore.display()
        )]
    );
}

#[test]
fn wrong_type_is_reported_at_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_recipe(dir.path(), &MINIMAL.replace("lr = 1e-4", "lr = \"fast\""));
    let out = check(&path, false);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_lines(&out),
        [format!(
            "{}:10:6: `train.lr`: expected a number, found the string \"fast\"",
            path.display()
        )]
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"[student.init]
kind = "prune"

[data]
train = ["train.jsonl", "missing/*.jsonl"]
truncation = "middle"

[train]
lr = -1
steps = 10
batch_size = 6
devices = 4
warmup_steps = 20
backend = "tpu"

[qat]
steps = 5

[export]
types = ["q4_k_m", "q4_k_x"]

[eval]
metrics = ["kld"]
"#;
    let path = write_recipe(dir.path(), body);
    let out = check(&path, false);
    assert_eq!(out.status.code(), Some(1));
    let file = path.display();
    let expected = [
        format!(
            "{file}:2:8: `student.init.kind`: unknown kind 'prune' (expected 'layers', 'depth', 'width' or 'model')"
        ),
        format!(
            "{file}:5:25: `data.train`: {}: no data files",
            dir.path().join("missing/*.jsonl").display()
        ),
        format!(
            "{file}:6:14: `data.truncation`: unknown truncation 'middle' (expected error, left, right or drop)"
        ),
        format!("{file}:9:6: `train.lr`: expected a number greater than 0, found -1"),
        format!(
            "{file}:11:14: `train.batch_size`: 6 sequences cannot be split evenly over 4 devices"
        ),
        format!(
            "{file}:13:16: `train.warmup_steps`: 20 warmup steps are more than the 10 steps of the run"
        ),
        format!(
            "{file}:14:11: `train.backend`: unknown backend 'tpu': expected one of cpu, wgpu, cuda"
        ),
        format!("{file}:16:1: [qat]: missing required key `type`"),
        format!(
            "{file}:20:20: `export.types[1]`: unknown quantization type 'q4_k_x'; valid types: q4_0, "
        ),
        format!(
            "{file}:23:11: `eval.metrics`: 'kld' compares the student with the teacher, and the recipe has no [teacher]"
        ),
    ];
    let lines = error_lines(&out);
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, expected) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(expected.as_str()),
            "expected {expected:?}\n   found {line:?}"
        );
    }
    assert!(stderr(&out).ends_with(&format!("error: {file}: 10 errors in the recipe\n")));
}

#[test]
fn semantic_errors_name_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher.gguf");
    std::fs::write(&teacher, b"GGUF").unwrap();
    let body = r#"[teacher]
model = "teacher.gguf"

[student.init]
kind = "layers"
layers = [0, 1, 1, 5]

[data]
train = "train.jsonl"
format = "text"
chat_template = false

[distill]
teacher = "cached"
temperature = 2.0
hidden = { kind = "mse" }
on_policy = { lambda = 0.5 }

[train]
lr = 1e-4
steps = 100

[qat]
type = "q3_k_m"

[eval]
metrics = ["ppl", "exact"]
data = "train.jsonl"
"#;
    let path = write_recipe(dir.path(), body);
    let out = check(&path, false);
    assert_eq!(out.status.code(), Some(1));
    let file = path.display();
    let expected = [
        format!(
            "{file}:6:10: `student.init.layers`: layers must be strictly increasing, found 1 then 1"
        ),
        format!("{file}:14:11: `distill.teacher`: a cached teacher stores only its top-k tokens"),
        format!(
            "{file}:15:15: `distill.temperature`: a cached teacher stores its distribution at temperature 1"
        ),
        format!(
            "{file}:16:10: [distill.hidden]: hidden-state alignment compares the teacher's hidden states"
        ),
        format!("{file}:17:13: [distill.on_policy]: on-policy batches are student generations"),
        format!(
            "{file}:24:8: `qat.type`: QAT cannot train against q3_k_m: its q3_K blocks have no fake-quant kernel"
        ),
        format!("{file}:27:11: `eval.metrics`: 'exact' scores generated answers against gold ones"),
    ];
    let lines = error_lines(&out);
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, expected) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(expected.as_str()),
            "expected {expected:?}\n   found {line:?}"
        );
    }
}

#[test]
fn evaluation_needs_data() {
    let dir = tempfile::tempdir().unwrap();
    let body = MINIMAL.replace("held_out = 0.1\n", "") + "\n[eval]\nmetrics = [\"ppl\"]\n";
    let path = write_recipe(dir.path(), &body);
    let out = check(&path, false);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_lines(&out),
        [format!(
            "{}:12:1: [eval]: no evaluation data; set `eval.data`, `data.eval` or a `data.held_out` fraction",
            path.display()
        )]
    );
}

#[test]
fn syntax_error_is_the_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_recipe(dir.path(), &MINIMAL.replace("steps = 10", "steps = = 10"));
    let out = check(&path, false);
    assert_eq!(out.status.code(), Some(1));
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with(&format!("{}:11:9: TOML syntax: ", path.display())),
        "{lines:#?}"
    );
}

#[test]
fn json_errors_are_one_object_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_recipe(dir.path(), &MINIMAL.replace("steps = 10", "steps = 0"));
    let out = check(&path, true);
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value =
        serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    assert_eq!(value["valid"], false);
    let errors = value["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{value}");
    assert_eq!(errors[0]["line"], 11);
    assert_eq!(errors[0]["column"], 9);
    assert_eq!(errors[0]["severity"], "error");
    assert_eq!(
        errors[0]["message"],
        "`train.steps`: expected an integer of at least 1, found 0"
    );
}

#[test]
fn exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_recipe(dir.path(), MINIMAL);
    assert_eq!(check(&path, false).status.code(), Some(0));
    let missing = dir.path().join("nope.toml");
    let out = check(&missing, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{}: cannot read the recipe", missing.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(decant(&["recipe", "check"]).status.code(), Some(2));
    assert_eq!(
        decant(&["recipe", "run", path.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn missing_data_file_is_named_relative_to_the_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_recipe(
        dir.path(),
        &MINIMAL.replace("train.jsonl", "data/../gone.jsonl"),
    );
    let out = check(&path, false);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        error_lines(&out),
        [format!(
            "{}:6:9: `data.train`: {}: no such file, directory or glob",
            path.display(),
            dir.path().join("gone.jsonl").display()
        )]
    );
}

#[test]
fn tail_samples_belong_to_a_cached_teacher() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("teacher.gguf"), b"GGUF").unwrap();
    let body = r#"[teacher]
model = "teacher.gguf"

[data]
train = "train.jsonl"

[distill]
teacher = "online"
tail_samples = 8

[train]
lr = 1e-4
steps = 10

[student.init]
kind = "depth"
keep = 1
"#;
    the_one_error_starts_with(
        &write_recipe(dir.path(), body),
        "9:16: `distill.tail_samples`: the online teacher gives its whole distribution",
    );

    let body = body.replace(
        "teacher = \"online\"",
        "teacher = \"cached\"\ntop_k = 64\nloss = { kind = \"jsd\" }",
    );
    the_one_error_starts_with(
        &write_recipe(dir.path(), &body),
        "11:16: `distill.tail_samples`: tail samples teach forward KL only",
    );

    let body = body.replace("tail_samples = 8", "tail_samples = 70000");
    the_one_error_starts_with(
        &write_recipe(dir.path(), &body),
        "11:16: `distill.tail_samples`: expected at most 65536 tail samples per unit of rest mass, found 70000",
    );
}

/// `recipe check` of `path` fails with one error, at `line:col: message…`.
fn the_one_error_starts_with(path: &Path, expected: &str) {
    let out = check(path, false);
    assert_eq!(out.status.code(), Some(1));
    let lines = error_lines(&out);
    let expected = format!("{}:{expected}", path.display());
    assert!(
        lines.len() == 1 && lines[0].starts_with(&expected),
        "{lines:#?}"
    );
}
