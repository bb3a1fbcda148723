//! Whole-model quantization against llama.cpp's `llama_model_quantize`, byte for
//! byte (goldens/mix/llamacpp.json): every mix of the 256-divisible tiny llama,
//! with and without --pure, overrides and an importance matrix. The models are
//! rebuilt here from the golden script's recipe, and the reference teacher's F32
//! copy from decant's own dequantizer, each checked against the script's sha256.

mod mix_common;

use std::num::NonZeroUsize;

use mix_common::{
    HashSink, assert_matches_run, f32_copy, file_sha256, golden, options, reference_f32_copy,
    reference_model, write_tiny_imatrix, write_tiny_model,
};
use quantize::gguf::GgufFile;
use quantize::model_quant::{Imatrix, Quantization};

const THREADS: NonZeroUsize = NonZeroUsize::new(2).unwrap();

#[test]
fn tiny_model_runs_match_llama_cpp() {
    let golden = golden();
    let tiny = &golden["models"]["tiny"];
    let dir = tempfile::tempdir().unwrap();
    let (model_path, imatrix_path) = (
        dir.path().join("tiny.gguf"),
        dir.path().join("imatrix.gguf"),
    );
    write_tiny_model(&model_path);
    write_tiny_imatrix(&model_path, &imatrix_path);
    assert_eq!(
        file_sha256(&model_path),
        tiny["f32_sha256"].as_str().unwrap(),
        "tiny model"
    );
    assert_eq!(
        file_sha256(&imatrix_path),
        tiny["imatrix_sha256"].as_str().unwrap(),
        "tiny imatrix"
    );

    let model = GgufFile::open(&model_path).unwrap();
    let order = tiny["output_order"].as_array().unwrap();
    let out = dir.path().join("out.gguf");
    for (name, run) in tiny["runs"].as_object().unwrap() {
        let imatrix = run["imatrix"].as_bool().unwrap_or(false).then(|| {
            let mut imatrix = Imatrix::load(&imatrix_path).unwrap();
            // What llama-quantize records: the path as typed, `--imatrix imatrix.gguf`.
            imatrix.source = "imatrix.gguf".into();
            imatrix
        });
        let job = Quantization::new(&model, options(run), imatrix)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let report = job
            .write(&out, THREADS, |_| {})
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_matches_run(&out, run, order, &format!("tiny {name}"));
        assert_eq!(
            report.n_fallback as u64,
            run["n_fallback"].as_u64().unwrap(),
            "tiny {name}"
        );
        assert_eq!(
            report.size,
            run["file_size"].as_u64().unwrap(),
            "tiny {name}"
        );
    }
}

/// The reference runs the CLI tests do not repeat: the other K-quant kernels and
/// the legacy types on 576-wide rows, with their fallbacks.
#[test]
fn reference_runs_match_llama_cpp() {
    let golden = golden();
    let smollm2 = &golden["models"]["smollm2"];
    let model = GgufFile::open(reference_f32_copy()).unwrap();
    let order = smollm2["output_order"].as_array().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    for name in ["q4_0", "q6_k", "q3_k_m", "q2_k"] {
        let run = &smollm2["runs"][name];
        let job = Quantization::new(&model, options(run), None).unwrap();
        let report = job
            .write(&out, THREADS, |_| {})
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_matches_run(&out, run, order, &format!("smollm2 {name}"));
        assert_eq!(
            report.n_fallback as u64,
            run["n_fallback"].as_u64().unwrap(),
            "smollm2 {name}"
        );
    }
}

#[test]
fn reference_f32_copy_matches_gguf_py() {
    let golden = golden();
    let source = GgufFile::open(reference_model()).unwrap();
    let sha = f32_copy(&source, HashSink::new());
    assert_eq!(
        sha,
        golden["models"]["smollm2"]["f32_sha256"].as_str().unwrap()
    );
}
