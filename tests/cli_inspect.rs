//! `decant inspect` end to end: the reference teacher, a small file written by our
//! GGUF writer, and the error paths a user hits.

mod common;

use std::path::Path;

use common::{decant, reference_model, stderr, stdout};
use quantize::GgmlType;
use quantize::gguf::{Array, GgufWriter, Value};
use serde_json::Value as Json;

fn inspect_json(path: &Path) -> Json {
    let out = decant(&["inspect", "--json", path.to_str().expect("UTF-8 path")]);
    assert!(out.status.success(), "inspect failed: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("stdout is one JSON object")
}

#[test]
fn reference_teacher_text_report() {
    let model = reference_model();
    let out = decant(&["inspect", model.to_str().expect("UTF-8 path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "architecture    llama",
        "parameters      134515008 (134.5M)",
        "context length  8192",
        "tokenizer       gpt2 (pre-tokenizer smollm)",
        "vocabulary      49152",
        "chat template   present",
        "q4_1           210        66355200",
        "q8_0             1        30081024",
        "total          272        96576768",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn reference_teacher_json_report() {
    let report = inspect_json(&reference_model());
    assert_eq!(report["architecture"], "llama");
    assert_eq!(report["parameters"], 134_515_008u64);
    assert_eq!(report["tokenizer"]["vocab_size"], 49152);
    assert_eq!(report["chat_template"], true);
    assert_eq!(report["metadata"]["llama.block_count"], 30);
    assert_eq!(
        report["metadata"]["llama.attention.layer_norm_rms_epsilon"],
        1e-5
    );
    let tokens = &report["metadata"]["tokenizer.ggml.tokens"];
    assert_eq!(tokens["array_of"], "string");
    assert_eq!(tokens["len"], 49152);
    assert_eq!(tokens["head"][1], "<|im_start|>");
    let tensors = report["tensors"].as_array().expect("tensor list");
    assert_eq!(tensors.len(), 272);
    assert_eq!(tensors[0]["name"], "token_embd.weight");
    assert_eq!(tensors[0]["type"], "q8_0");
    assert_eq!(tensors[0]["shape"], serde_json::json!([576, 49152]));
    assert_eq!(tensors[0]["offset"], 0);
}

#[test]
fn written_file_reports_every_tensor_and_short_arrays_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "qwen2").expect("arch");
    w.metadata("qwen2.context_length", 2048u32).expect("ctx");
    w.metadata(
        "tokenizer.ggml.tokens",
        Value::Array(Array::String(vec!["a".into(), "b".into()])),
    )
    .expect("tokens");
    let mut infos = w.finish_metadata();
    infos
        .tensor_info("token_embd.weight", &[32, 2], GgmlType::Q8_0)
        .expect("embd");
    infos
        .tensor_info("output_norm.weight", &[32], GgmlType::F32)
        .expect("norm");
    let mut data = infos.write_file(&path).expect("create");
    data.write_tensor("token_embd.weight", &[0u8; 68])
        .expect("embd data");
    data.write_tensor("output_norm.weight", &[0u8; 128])
        .expect("norm data");
    data.finish().expect("finish");

    let report = inspect_json(&path);
    assert_eq!(report["architecture"], "qwen2");
    assert_eq!(report["context_length"], 2048);
    assert_eq!(report["parameters"], 96);
    assert_eq!(report["tokenizer"]["vocab_size"], 2);
    assert_eq!(report["tokenizer"]["model"], Json::Null);
    assert_eq!(report["chat_template"], false);
    assert_eq!(
        report["metadata"]["tokenizer.ggml.tokens"],
        serde_json::json!(["a", "b"])
    );
    assert_eq!(
        report["types"],
        serde_json::json!([
            {"type": "f32", "tensors": 1, "bytes": 128},
            {"type": "q8_0", "tensors": 1, "bytes": 68},
        ])
    );
    assert_eq!(report["tensors"][1]["offset"], 96);
}

#[test]
fn missing_file_is_a_user_error_naming_it() {
    let out = decant(&["inspect", "/nonexistent/model.gguf"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn non_gguf_file_is_a_user_error_naming_it_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.gguf");
    std::fs::write(&path, b"this is not a model file at all").expect("write");
    let out = decant(&["inspect", "--json", path.to_str().expect("UTF-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("notes.gguf") && err.contains("magic"), "{err}");
    assert!(stdout(&out).is_empty(), "--json prints nothing on error");
}

#[test]
fn directory_is_a_user_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = decant(&["inspect", dir.path().to_str().expect("UTF-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(decant(&["inspect"]).status.code(), Some(2));
    assert_eq!(decant(&["frobnicate"]).status.code(), Some(2));
}
