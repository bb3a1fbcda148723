//! Logits of the reference teacher against llama.cpp's.
//!
//! The golden comes from `tools/goldens/logits_llamacpp.py`: llama.cpp run on the
//! Q4_1 reference model dequantized to F32, with an F32 KV cache. decant loads
//! the Q4_1 file itself and dequantizes it; the logits must then agree up to
//! float summation order.

use std::path::PathBuf;

use burn::tensor::{Int, Tensor, TensorData};
use safetensors::SafeTensors;
use train::{CpuBackend, load_gguf};

/// Issue 4's bound; float-order noise is about an order of magnitude below it.
const TOLERANCE: f32 = 2e-3;

fn reference_model() -> PathBuf {
    let path = match std::env::var_os("DECANT_REFERENCE_MODEL") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/decant/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    assert!(
        path.is_file(),
        "reference model {} is missing: run tools/fetch-reference-model.sh \
         (or set DECANT_REFERENCE_MODEL)",
        path.display()
    );
    path
}

fn floats(st: &SafeTensors, name: &str) -> Vec<f32> {
    let view = st.tensor(name).unwrap();
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn ints(st: &SafeTensors, name: &str) -> Vec<i32> {
    let view = st.tensor(name).unwrap();
    view.data()
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

fn logsumexp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + row
        .iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
}

#[test]
fn smollm2_logits_match_llama_cpp() {
    let golden_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/goldens/smollm2_logits_llamacpp.safetensors"
    );
    let golden_bytes = std::fs::read(golden_path).unwrap();
    let golden = SafeTensors::deserialize(&golden_bytes).unwrap();
    let device = Default::default();
    let started = std::time::Instant::now();
    let model = load_gguf::<CpuBackend>(&reference_model(), &device).unwrap();
    eprintln!("loaded in {:.2?}", started.elapsed());
    let vocab = model.config.vocab_size;

    let (mut max_diff, mut positions) = (0f32, 0);
    for k in 0.. {
        if golden.tensor(&format!("tokens.{k}")).is_err() {
            break;
        }
        let tokens = ints(&golden, &format!("tokens.{k}"));
        let n = tokens.len();
        let input = Tensor::<CpuBackend, 2, Int>::from_data(
            TensorData::new(tokens.iter().map(|&t| t as i64).collect(), [1, n]),
            &device,
        );
        let started = std::time::Instant::now();
        let logits: Vec<f32> = model.forward(input).into_data().to_vec().unwrap();
        eprintln!("sequence {k}: {n} tokens in {:.2?}", started.elapsed());
        let row = |p: usize| &logits[p * vocab..(p + 1) * vocab];

        let top_ids = ints(&golden, &format!("top_ids.{k}"));
        let top_logits = floats(&golden, &format!("top_logits.{k}"));
        let lse = floats(&golden, &format!("logsumexp.{k}"));
        let top_k = top_ids.len() / n;
        for p in 0..n {
            let ids = &top_ids[p * top_k..(p + 1) * top_k];
            let expected = &top_logits[p * top_k..(p + 1) * top_k];
            for (&id, &want) in ids.iter().zip(expected) {
                max_diff = max_diff.max((row(p)[id as usize] - want).abs());
            }
            assert_eq!(
                argmax(row(p)),
                ids[0] as usize,
                "argmax of sequence {k}, position {p}"
            );
            let lse_diff = (logsumexp(row(p)) - lse[p] as f64).abs() as f32;
            assert!(
                lse_diff <= TOLERANCE,
                "log-sum-exp of sequence {k}, position {p}: {lse_diff}"
            );
        }
        let row_positions = ints(&golden, &format!("row_positions.{k}"));
        let rows = floats(&golden, &format!("rows.{k}"));
        for (r, &p) in row_positions.iter().enumerate() {
            let expected = &rows[r * vocab..(r + 1) * vocab];
            for (got, want) in row(p as usize).iter().zip(expected) {
                max_diff = max_diff.max((got - want).abs());
            }
        }
        positions += n;
    }
    eprintln!("max |decant - llama.cpp| over {positions} positions: {max_diff:e}");
    assert!(positions >= 200, "the golden covers {positions} positions");
    assert!(max_diff <= TOLERANCE, "max abs logit difference {max_diff}");
}
