//! `decant qat`: after a short QAT run, the GGUF `decant export` writes at the
//! QAT type holds exactly the weights training saw, so llama.cpp's logits on it
//! equal decant's fake-quant forward logits within float noise: there is no
//! second rounding at export.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use common::{decant, llamacpp_oracle, python, stderr, stdout, tiny_recipe};
use quantize::mix::{Mix, MixOptions};
use serde_json::Value;
use train::optim::named_tensors;
use train::qat::{FakeQuantPlan, Ste, fake_quantized};
use train::{CpuBackend, Transformer};

/// An arbitrary stretch of the vocabulary: prose, digits, punctuation.
const TOKENS: [i64; 12] = [504, 3458, 282, 260, 2539, 30, 216, 1003, 28, 34, 35, 2];

fn recipe(root: &Path, mix: &str, qat_extra: &str) -> PathBuf {
    let qat = format!("\n[qat]\ntype = \"{mix}\"\nsteps = 3\nlr = 1e-3\n{qat_extra}\n");
    tiny_recipe(root, "kind = \"layers\"\nlayers = [0, 29]", 2, &qat, "")
}

fn stage(command: &str, recipe: &Path, out: &Path) -> Value {
    let output = decant(&[
        command,
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        output.status.success(),
        "decant {command}: {}",
        stderr(&output)
    );
    serde_json::from_str(&stdout(&output)).expect("one JSON object")
}

fn logits(model: &Transformer<CpuBackend>) -> Vec<f32> {
    let tokens = Tensor::<CpuBackend, 2, Int>::from_data(
        TensorData::new(TOKENS.to_vec(), [1, TOKENS.len()]),
        &Default::default(),
    );
    model
        .forward(tokens)
        .into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_exported_gguf_computes_what_qat_trained() {
    let python = python();
    // The second run distils from the full-precision student, with the
    // clipped estimator: the rounding the export writes is the same.
    for (mix, options) in [
        ("q4_0", ""),
        ("q4_k_m", "reference = \"student\"\nste = \"clipped\""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let recipe = recipe(dir.path(), mix, options);
        let run = dir.path().join("run");
        stage("distill", &recipe, &run);
        let report = stage("qat", &recipe, &run);
        assert_eq!(report["type"], mix);
        assert_eq!(report["steps"], 3);
        let against = if options.is_empty() {
            "against the teacher"
        } else {
            "against the full-precision student"
        };
        assert!(
            report["objective"].as_str().unwrap().contains(against),
            "{report}"
        );
        let student = PathBuf::from(report["student"].as_str().unwrap());

        let gguf = dir.path().join(format!("student-{mix}.gguf"));
        let export = decant(&[
            "export",
            "--model",
            student.to_str().unwrap(),
            "--format",
            "gguf",
            "--type",
            mix,
            "--out",
            gguf.to_str().unwrap(),
        ]);
        assert!(export.status.success(), "export: {}", stderr(&export));

        let master = train::load_model::<CpuBackend>(&student, &Default::default()).unwrap();
        let parsed: Mix = mix.parse().unwrap();
        let plan = FakeQuantPlan {
            tensors: export::planned_types(&master.config, &MixOptions::new(parsed))
                .unwrap()
                .into_iter()
                .filter(|(_, ty)| *ty != quantize::GgmlType::F32)
                .collect(),
            ste: Ste::Identity,
            threads: 2,
        };
        let counts: usize = report["fake_quantized"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap() as usize)
            .sum();
        assert_eq!(counts, plan.tensors.len(), "{mix}: {report}");
        let trained = fake_quantized(&master, &plan).unwrap();

        // The file dequantizes to the very weights QAT's forward pass used.
        let exported = train::load_model::<CpuBackend>(&gguf, &Default::default()).unwrap();
        let (want, got) = (named_tensors(&trained), named_tensors(&exported));
        for (name, tensor) in &want {
            assert!(
                tensor.values == got[name].values,
                "{mix}: {name} differs between QAT and the GGUF"
            );
        }

        let ours = logits(&trained);
        let tokens: Vec<String> = TOKENS.iter().map(i64::to_string).collect();
        let theirs = llamacpp_oracle(
            &python,
            &[
                "logits",
                gguf.to_str().unwrap(),
                "--tokens",
                &tokens.join(","),
                "--dequantize",
            ],
        );
        let theirs: Vec<f32> = theirs["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
            })
            .collect();
        let noise = max_abs_diff(&ours, &theirs);
        let rounding = max_abs_diff(&logits(&master), &theirs);
        assert!(
            noise < 2e-3,
            "{mix}: llama.cpp differs from the fake-quant forward by {noise}"
        );
        assert!(
            rounding > 50.0 * noise,
            "{mix}: the full-precision weights are as close ({rounding} vs {noise})"
        );
        eprintln!(
            "{mix}: |llama.cpp − fake-quant| = {noise:.2e}, |llama.cpp − full precision| = {rounding:.3}"
        );

        let again = stage("qat", &recipe, &run);
        assert_eq!(again["reused"], true);
    }
}

#[test]
fn qat_needs_a_completed_distill_stage_and_a_qat_section() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), "q4_0", "");
    let run = dir.path().join("run");
    let output = decant(&[
        "qat",
        recipe.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("distill") && message.contains("holds no completed distill stage"),
        "{message}"
    );

    let plain = tiny_recipe(dir.path(), "kind = \"layers\"\nlayers = [0]", 1, "", "");
    let output = decant(&[
        "qat",
        plain.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no [qat] section"),
        "{}",
        stderr(&output)
    );
}
