//! `decant tokenize` end to end against llama.cpp's own tokenization of the
//! reference teacher (goldens from tools/goldens/tokenize_llamacpp.py).

mod common;

use common::{decant, reference_model, stderr, stdout};
use serde_json::Value as Json;

fn smollm_cases() -> Vec<Json> {
    let golden: Json = serde_json::from_str(include_str!(
        "../datasets/tests/goldens/tokenize_llamacpp.json"
    ))
    .expect("golden JSON");
    let model = golden["models"]
        .as_array()
        .and_then(|models| models.iter().find(|m| m["name"] == "smollm"))
        .expect("smollm entry");
    model["cases"].as_array().expect("cases").clone()
}

fn ids(values: &Json) -> Vec<u64> {
    values
        .as_array()
        .expect("id list")
        .iter()
        .map(|v| v.as_u64().expect("id"))
        .collect()
}

#[test]
fn matches_llama_cpp_on_the_golden_texts() {
    let model = reference_model();
    let model = model.to_str().expect("UTF-8 path");
    let cases = smollm_cases();
    assert!(cases.len() > 50, "golden has {} cases", cases.len());
    // Every text through the CLI would take a process each; a varied sample keeps it quick
    // while the datasets crate checks all of them in-process.
    for case in cases.iter().step_by(4) {
        let text = case["text"].as_str().expect("text");
        for (special, key) in [(false, "ids"), (true, "ids_parse_special")] {
            let mut args = vec!["tokenize", "--json", "--model", model, "--text", text];
            if special {
                args.push("--special");
            }
            let out = decant(&args);
            assert!(out.status.success(), "{text:?}: {}", stderr(&out));
            let report: Json = serde_json::from_str(&stdout(&out)).expect("one JSON object");
            assert_eq!(
                ids(&report["tokens"]),
                ids(&case[key]),
                "{key} for {text:?}"
            );
            assert_eq!(report["count"], case[key].as_array().expect("ids").len());
        }
    }
}

#[test]
fn plain_output_is_comma_separated_ids() {
    let model = reference_model();
    let out = decant(&[
        "tokenize",
        "--model",
        model.to_str().expect("UTF-8"),
        "--text",
        "Hello world",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "19556,905\n");
}

#[test]
fn chatml_markers_become_special_tokens_only_when_asked() {
    let model = reference_model();
    let model = model.to_str().expect("UTF-8");
    let out = decant(&[
        "tokenize",
        "--model",
        model,
        "--text",
        "<|im_start|>user",
        "--special",
    ]);
    assert_eq!(
        stdout(&out).split(',').next(),
        Some("1"),
        "{}",
        stderr(&out)
    );
    let out = decant(&["tokenize", "--model", model, "--text", "<|im_start|>user"]);
    assert_ne!(
        stdout(&out).split(',').next(),
        Some("1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_model_arguments_are_user_errors_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "/nonexistent/m.gguf".to_string(),
            "/nonexistent/m.gguf: no such file or directory",
        ),
        (
            dir.path().display().to_string(),
            "nor a Hugging Face model directory (config.json)",
        ),
        (
            "hf://just-a-name".to_string(),
            "expected hf://ORG/REPO or hf://ORG/REPO@REVISION",
        ),
    ];
    for (model, expected) in cases {
        let out = decant(&["tokenize", "--model", &model, "--text", "x"]);
        assert_eq!(out.status.code(), Some(1), "{model}");
        assert!(stderr(&out).contains(expected), "{model}: {}", stderr(&out));
    }
}

#[test]
fn hf_uri_not_in_cache_says_what_to_download() {
    let cache = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_decant"))
        .args([
            "tokenize",
            "--model",
            "hf://HuggingFaceTB/SmolLM2-135M-Instruct",
            "--text",
            "x",
        ])
        .env("HF_HUB_CACHE", cache.path())
        .output()
        .expect("decant runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "huggingface-cli download HuggingFaceTB/SmolLM2-135M-Instruct --revision main"
        ),
        "{}",
        stderr(&out)
    );
}
