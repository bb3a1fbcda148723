//! `decant cache-teacher`: the reference teacher's top-k over extraction data.

mod common;

use std::path::Path;
use std::process::Output;

use common::{decant, reference_model, stderr, stdout};
use serde_json::Value;

/// `decant cache-teacher` of `teacher` over `data` into `out`, then `options`.
fn cache_teacher(teacher: &Path, data: &Path, top_k: &str, out: &Path, options: &[&str]) -> Output {
    let args = [
        "cache-teacher",
        "--teacher",
        teacher.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--top-k",
        top_k,
        "--out",
        out.to_str().unwrap(),
    ];
    decant(&[&args[..], options].concat())
}

#[test]
fn the_cache_holds_every_trained_position_compactly() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/extract/train.jsonl"),
    )
    .unwrap();
    let data = dir.path().join("train.jsonl");
    std::fs::write(
        &data,
        shipped.lines().take(12).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let out = dir.path().join("cache");
    let teacher = reference_model();
    let options = ["--max-length", "256", "--json"];
    let output = cache_teacher(&teacher, &data, "64", &out, &options);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let manifest = &report["manifest"];
    assert_eq!(manifest["documents"], 12);
    assert_eq!(manifest["vocab"], 49152);
    // The trained positions are the assistant answers, as `data stats` counts them.
    let stats = decant(&[
        "data",
        "stats",
        "--data",
        data.to_str().unwrap(),
        "--model",
        teacher.to_str().unwrap(),
        "--max-length",
        "256",
        "--json",
    ]);
    let stats: Value = serde_json::from_str(&stdout(&stats)).unwrap();
    assert_eq!(manifest["positions"], stats["stats"]["trained_tokens"]);
    assert!(
        manifest["bytes_per_position"].as_f64().unwrap() < 100.0,
        "{manifest}"
    );
    let quality = &manifest["quality"];
    assert!(quality["mean_rest"].as_f64().unwrap() < 0.2, "{quality}");
    assert!(
        quality["max_abs_error"].as_f64().unwrap() < 0.05,
        "{quality}"
    );
    for file in ["manifest.json", "permutation.bin", "shard-00000.dlc"] {
        assert!(out.join(file).is_file(), "{file}");
    }
    assert!(!dir.path().join("cache.partial").exists());

    let again = cache_teacher(&teacher, &data, "64", &out, &options);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    // Tail samples: the same positions, each holding round(512 × rest) of
    // them at 1 to 3 bytes each, plus under a byte for their code's order.
    let with_tail = dir.path().join("cache-tail");
    let options = [&options[..], &["--tail-samples", "512"]].concat();
    let output = cache_teacher(&teacher, &data, "64", &with_tail, &options);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let tail = &report["manifest"];
    assert_eq!(tail["tail_samples"], 512);
    assert_eq!(tail["positions"], manifest["positions"]);
    let samples = 512.0 * tail["quality"]["mean_rest"].as_f64().unwrap();
    let (bytes, plain) = (
        tail["bytes_per_position"].as_f64().unwrap(),
        manifest["bytes_per_position"].as_f64().unwrap(),
    );
    assert!(
        samples > 2.0 && bytes - plain > samples - 0.5 && bytes - plain < 3.0 * (samples + 0.5) + 1.0,
        "{bytes} bytes per position with about {samples:.1} tail samples, {plain} without"
    );
}

#[test]
fn a_top_k_beyond_the_vocabulary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.jsonl");
    std::fs::write(&data, "{\"prompt\": \"Hi\", \"completion\": \"Hello\"}\n").unwrap();
    let teacher = reference_model();
    let out = dir.path().join("cache");
    let refused = |top_k: &str, tail_samples: &str, message: &str| {
        let output = cache_teacher(&teacher, &data, top_k, &out, &["--tail-samples", tail_samples]);
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains(message), "{}", stderr(&output));
        assert!(!out.exists());
    };
    refused("50000", "0", "top-k = 50000: expected 1 to the teacher's vocabulary of 49152");
    refused(
        "64",
        "70000",
        "70000 tail samples per unit of rest mass: at most 65536 are written",
    );
}
