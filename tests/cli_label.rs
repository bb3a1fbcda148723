//! `decant label`: the teacher's answers to prompts as training conversations.

mod common;

use std::path::Path;

use common::{decant, reference_model, stderr, stdout};
use serde_json::Value;

fn prompts(dir: &Path, n: usize) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/extract/prompts.jsonl"),
    )
    .unwrap();
    let path = dir.join("prompts.jsonl");
    let lines: Vec<&str> = shipped.lines().take(n).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn greedy_labels_are_the_teachers_chat_answers() {
    let teacher = reference_model();
    let teacher = teacher.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = prompts(dir.path(), 2);
    let out = dir.path().join("labelled.jsonl");
    let output = decant(&[
        "label",
        "--teacher",
        teacher,
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--max-new-tokens",
        "24",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["examples"], 2);
    let labelled = records(&out);
    let originals = records(&data);
    assert_eq!(labelled.len(), 2);
    for (record, original) in labelled.iter().zip(&originals) {
        let messages = record["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0], original["messages"][0]);
        assert_eq!(messages[1]["role"], "assistant");
        let generated = decant(&[
            "generate",
            "--model",
            teacher,
            "--chat",
            "--prompt",
            messages[0]["content"].as_str().unwrap(),
            "--max-tokens",
            "24",
            "--json",
        ]);
        let generated: Value = serde_json::from_str(&stdout(&generated)).unwrap();
        assert_eq!(messages[1]["content"], generated["text"]);
    }
    // The labels are training data as they are.
    let stats = decant(&[
        "data",
        "stats",
        "--data",
        out.to_str().unwrap(),
        "--model",
        teacher,
        "--json",
    ]);
    assert!(stats.status.success(), "{}", stderr(&stats));
    let stats: Value = serde_json::from_str(&stdout(&stats)).unwrap();
    assert_eq!(stats["stats"]["kept"], 2);
}

#[test]
fn sampled_labels_repeat_for_a_seed() {
    let teacher = reference_model();
    let teacher = teacher.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = prompts(dir.path(), 1);
    let run = |name: &str| {
        let out = dir.path().join(name);
        let output = decant(&[
            "label",
            "--teacher",
            teacher,
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--max-new-tokens",
            "12",
            "--temperature",
            "0.8",
            "--top-p",
            "0.95",
            "--seed",
            "4",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        std::fs::read(out).unwrap()
    };
    assert_eq!(run("a.jsonl"), run("b.jsonl"));
}

#[test]
fn a_bad_prompt_is_named_and_leaves_no_output() {
    let teacher = reference_model();
    let teacher = teacher.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("prompts.jsonl");
    std::fs::write(
        &data,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}]}\n",
    )
    .unwrap();
    let out = dir.path().join("labelled.jsonl");
    let output = decant(&[
        "label",
        "--teacher",
        teacher,
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--max-new-tokens",
        "4",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("{}:2", data.display())) && err.contains("no user turn"),
        "{err}"
    );
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    let output = decant(&[
        "label",
        "--teacher",
        teacher,
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--temperature=-1",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--temperature -1"),
        "{}",
        stderr(&output)
    );
}
