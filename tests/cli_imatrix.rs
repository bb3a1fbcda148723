//! `decant imatrix` end to end: the reference teacher's importance matrix over
//! train/tests/goldens/ppl/prose.txt must equal llama.cpp's (tests/goldens/imatrix/,
//! collected from libllama's forward pass by llama-imatrix's eval callback in
//! tools/goldens/imatrix_llamacpp_callback.py; tools/goldens/imatrix_llamacpp.sh
//! runs llama-imatrix itself) in layout and metadata, with sums within 1e-3 relative; `decant quantize --imatrix` reads
//! ours as it reads llama.cpp's; bad input fails with exit code 1 naming what is
//! wrong and leaves an existing output alone.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{reference_model, stderr, stdout};
use quantize::gguf::{GgufFile, Value as GgufValue};
use quantize::model_quant::Imatrix;
use serde_json::Value;

/// Logits agree with llama.cpp's to ~1e-4; activations inside the model as well.
const RELATIVE_TOLERANCE: f32 = 1e-3;
const TEXT: &str = "train/tests/goldens/ppl/prose.txt";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn golden_path() -> PathBuf {
    root().join("tests/goldens/imatrix/smollm2_ctx128_llamacpp.gguf")
}

/// Runs decant in the repository root, so that the data path it records is the
/// relative one llama-imatrix was given.
fn decant_in_root(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_decant"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("decant runs")
}

fn imatrix(out: &Path, data: &str, extra: &[&str]) -> Output {
    let model = reference_model();
    let mut args = vec![
        "imatrix",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    decant_in_root(&args)
}

fn f32s(file: &GgufFile, name: &str) -> Vec<f32> {
    let info = file
        .tensors()
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor {name}"));
    file.tensor_data(info)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn importance_matrix_matches_llama_imatrix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imatrix.gguf");
    let output = imatrix(&out, TEXT, &["--ctx", "128", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value = serde_json::from_str(&stdout(&output)).expect("one JSON object");
    assert_eq!(summary["entries"], 30 * 7);
    assert_eq!(summary["ctx"], 128);

    let ours = GgufFile::open(&out).unwrap();
    let theirs = GgufFile::open(golden_path()).unwrap();
    let keys = |f: &GgufFile| -> Vec<(String, GgufValue)> { f.metadata().to_vec() };
    assert_eq!(keys(&ours), keys(&theirs), "metadata");
    assert_eq!(
        summary["chunks"].as_u64(),
        theirs
            .get("imatrix.chunk_count")
            .and_then(GgufValue::as_u64)
    );
    let layout = |f: &GgufFile| -> Vec<(String, Vec<u64>)> {
        f.tensors()
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect()
    };
    assert_eq!(
        layout(&ours),
        layout(&theirs),
        "tensor names, order and shapes"
    );

    let mut worst = (0.0f32, String::new());
    for info in theirs.tensors() {
        let (a, b) = (f32s(&ours, &info.name), f32s(&theirs, &info.name));
        if info.name.ends_with(".counts") {
            assert_eq!(a, b, "{}", info.name);
            continue;
        }
        for (j, (x, y)) in a.iter().zip(&b).enumerate() {
            let relative = (x - y).abs() / y.abs().max(f32::MIN_POSITIVE);
            if relative > worst.0 {
                worst = (
                    relative,
                    format!("{}[{j}]: decant {x}, llama.cpp {y}", info.name),
                );
            }
        }
    }
    eprintln!("largest relative difference {:.2e} at {}", worst.0, worst.1);
    assert!(worst.0 <= RELATIVE_TOLERANCE, "{}", worst.1);
}

#[test]
fn quantize_reads_ours_as_it_reads_llama_cpps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imatrix.gguf");
    let output = imatrix(&out, TEXT, &["--ctx", "128", "--chunks", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let ours = Imatrix::load(&out).unwrap();
    let theirs = Imatrix::load(&golden_path()).unwrap();
    let mut names: Vec<&String> = ours.weights.keys().collect();
    names.sort();
    let mut their_names: Vec<&String> = theirs.weights.keys().collect();
    their_names.sort();
    assert_eq!(names, their_names);
    assert_eq!(
        (ours.chunk_count, ours.datasets.as_slice()),
        (2, [TEXT.to_owned()].as_slice())
    );

    let quantized = dir.path().join("q4_k_m.gguf");
    let model = reference_model();
    let output = decant_in_root(&[
        "quantize",
        "--model",
        model.to_str().unwrap(),
        "--type",
        "q4_k_m",
        "--imatrix",
        out.to_str().unwrap(),
        "--out",
        quantized.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let file = GgufFile::open(&quantized).unwrap();
    assert_eq!(
        file.get("quantize.imatrix.entries_count")
            .and_then(GgufValue::as_u64),
        Some(210)
    );
    assert_eq!(
        file.get("quantize.imatrix.chunks_count")
            .and_then(GgufValue::as_u64),
        Some(2)
    );
}

#[test]
fn too_little_text_names_the_tokens_needed_and_keeps_the_old_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("short.txt");
    std::fs::write(&data, "Only a few words of calibration text.").unwrap();
    let out = dir.path().join("imatrix.gguf");
    std::fs::write(&out, "old").unwrap();
    let output = imatrix(&out, data.to_str().unwrap(), &["--ctx", "128"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("short.txt") && err.contains("needs at least 256"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"old");
}

#[test]
fn a_context_too_short_to_collect_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = imatrix(&dir.path().join("i.gguf"), TEXT, &["--ctx", "8"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("context of 8") && err.contains("16"), "{err}");
}

#[test]
fn a_missing_data_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = imatrix(&dir.path().join("i.gguf"), "no/such/file.txt", &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no/such/file.txt"),
        "{}",
        stderr(&output)
    );
}
