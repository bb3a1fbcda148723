//! `decant quantize` end to end: the reference teacher (dequantized to F32, as the
//! golden script did) quantized to q4_k_m, q5_k_m and q8_0 must equal
//! llama.cpp's `llama_model_quantize` output byte for byte
//! (quantize/tests/goldens/mix/llamacpp.json); an importance matrix given on the
//! command line ends up in the file as llama-quantize records it; bad input fails
//! with exit code 1 naming what is wrong, and leaves an existing output alone.

mod common;
#[path = "../quantize/tests/mix_common/mod.rs"]
mod mix_common;

use std::path::Path;
use std::process::{Command, Output};

use common::{decant, stderr, stdout};
use serde_json::Value;

fn decant_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_decant"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("decant runs")
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        output.status,
        stderr(output)
    );
}

fn quantize_reference(mix: &str) {
    let golden = mix_common::golden();
    let smollm2 = &golden["models"]["smollm2"];
    let run = &smollm2["runs"][mix];
    let model = mix_common::reference_f32_copy();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{mix}.gguf"));
    let output = decant(&[
        "quantize",
        "--model",
        model.to_str().unwrap(),
        "--type",
        mix,
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "2",
        "--json",
    ]);
    assert_success(&output, mix);
    let summary: Value = serde_json::from_str(&stdout(&output)).expect("one JSON object on stdout");
    assert_eq!(summary["output"], out.to_str().unwrap());
    assert_eq!(summary["size"], run["file_size"]);
    assert_eq!(summary["type"], mix);
    assert_eq!(summary["n_fallback"], run["n_fallback"]);
    assert_eq!(summary["n_tensors"], 272);
    assert!(summary["elapsed_s"].as_f64().is_some());
    let order = smollm2["output_order"].as_array().unwrap();
    mix_common::assert_matches_run(&out, run, order, &format!("smollm2 {mix}"));
}

#[test]
fn reference_q4_k_m_equals_llama_cpp() {
    quantize_reference("q4_k_m");
}

#[test]
fn reference_q5_k_m_equals_llama_cpp() {
    quantize_reference("q5_k_m");
}

#[test]
fn reference_q8_0_equals_llama_cpp() {
    quantize_reference("q8_0");
}

/// The tiny llama and its imatrix, written into `dir` as the golden script wrote them.
fn tiny_in(dir: &Path) {
    mix_common::write_tiny_model(&dir.join("tiny.gguf"));
    mix_common::write_tiny_imatrix(&dir.join("tiny.gguf"), &dir.join("imatrix.gguf"));
}

#[test]
fn imatrix_from_the_command_line_equals_llama_quantize() {
    let golden = mix_common::golden();
    let tiny = &golden["models"]["tiny"];
    let dir = tempfile::tempdir().unwrap();
    tiny_in(dir.path());
    let args = [
        "quantize",
        "--model",
        "tiny.gguf",
        "--type",
        "Q4_K_M",
        "--imatrix",
        "imatrix.gguf",
        "--out",
        "q.gguf",
    ];
    assert_success(&decant_in(dir.path(), &args), "q4_k_m with imatrix");
    let order = tiny["output_order"].as_array().unwrap();
    mix_common::assert_matches_run(
        &dir.path().join("q.gguf"),
        &tiny["runs"]["q4_k_m+imatrix"],
        order,
        "cli imatrix",
    );
}

#[test]
fn quantized_input_is_dequantized_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    tiny_in(dir.path());
    assert_success(
        &decant_in(
            dir.path(),
            &[
                "quantize",
                "--model",
                "tiny.gguf",
                "--type",
                "q4_0",
                "--out",
                "q4.gguf",
            ],
        ),
        "q4_0",
    );
    let output = decant_in(
        dir.path(),
        &[
            "quantize", "--model", "q4.gguf", "--type", "q8_0", "--out", "q8.gguf", "--json",
        ],
    );
    assert_success(&output, "q4_0 -> q8_0");
    let err = stderr(&output);
    assert!(
        err.contains("warning") && err.contains("q4_0") && err.contains("q6_K"),
        "{err}"
    );
    let summary: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(summary["tensors"]["q8_0"], 58, "{summary}");
}

#[test]
fn unknown_type_is_a_usage_error_listing_the_valid_ones() {
    let output = decant(&[
        "quantize", "--model", "m.gguf", "--type", "q4_k_x", "--out", "o.gguf",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("q4_k_x") && err.contains("q4_k_m") && err.contains("iq4_xs"),
        "{err}"
    );
}

#[test]
fn a_mix_that_needs_an_imatrix_names_the_tensor_and_keeps_the_old_output() {
    let dir = tempfile::tempdir().unwrap();
    tiny_in(dir.path());
    std::fs::write(dir.path().join("out.gguf"), "old").unwrap();
    let output = decant_in(
        dir.path(),
        &[
            "quantize",
            "--model",
            "tiny.gguf",
            "--type",
            "q2_k_s",
            "--out",
            "out.gguf",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("'blk.0.attn_k.weight'") && err.contains("--imatrix"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.path().join("out.gguf")).unwrap(), b"old");
}

#[test]
fn an_imatrix_for_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    tiny_in(dir.path());
    let reference = common::reference_model();
    let args = [
        "quantize",
        "--model",
        reference.to_str().unwrap(),
        "--type",
        "q4_k_m",
        "--imatrix",
        "imatrix.gguf",
        "--out",
        "o.gguf",
    ];
    let output = decant_in(dir.path(), &args);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("importance matrix") && err.contains("'blk.0.attn_k.weight'"),
        "{err}"
    );
    assert!(!dir.path().join("o.gguf").exists());
}

#[test]
fn hugging_face_directories_are_not_supported_yet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let output = decant(&[
        "quantize",
        "--model",
        dir.path().to_str().unwrap(),
        "--type",
        "q8_0",
        "--out",
        "o.gguf",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("Hugging Face directory is not supported yet"),
        "{err}"
    );
}

/// llama-quantize --pure still demotes a type whose block does not divide a row
/// (the reference's 576-wide rows cannot hold 256-blocks): so does decant, to the
/// same type for every tensor, and it says how many tensors fell back.
#[test]
fn pure_falls_back_for_rows_the_type_cannot_hold_like_llama_quantize() {
    let golden = mix_common::golden();
    let smollm2 = &golden["models"]["smollm2"];
    let run = &smollm2["runs"]["q4_k_m+pure"];
    let model = mix_common::reference_f32_copy();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pure.gguf");
    let output = decant(&[
        "quantize",
        "--model",
        model.to_str().unwrap(),
        "--type",
        "q4_k_m",
        "--pure",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_success(&output, "q4_k_m --pure");
    let summary: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(summary["n_fallback"], run["n_fallback"]);
    assert_eq!(summary["pure"], true);
    let file = quantize::gguf::GgufFile::open(&out).unwrap();
    let types: Vec<(&str, &str)> = file
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), t.ggml_type.name()))
        .collect();
    let order = smollm2["output_order"].as_array().unwrap();
    let want: Vec<(&str, &str)> = order
        .iter()
        .zip(run["types"].as_array().unwrap())
        .map(|(name, ty)| (name.as_str().unwrap(), ty.as_str().unwrap()))
        .collect();
    assert_eq!(types, want);
}

#[test]
fn an_existing_output_is_replaced_whole_and_no_temporary_file_is_left() {
    let dir = tempfile::tempdir().unwrap();
    tiny_in(dir.path());
    std::fs::write(dir.path().join("out.gguf"), "old").unwrap();
    let args = [
        "quantize",
        "--model",
        "tiny.gguf",
        "--type",
        "q8_0",
        "--out",
        "out.gguf",
    ];
    assert_success(&decant_in(dir.path(), &args), "q8_0 over an old file");
    let golden = mix_common::golden();
    let tiny = &golden["models"]["tiny"];
    mix_common::assert_matches_run(
        &dir.path().join("out.gguf"),
        &tiny["runs"]["q8_0"],
        tiny["output_order"].as_array().unwrap(),
        "replaced output",
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["imatrix.gguf", "out.gguf", "tiny.gguf"]);
}
