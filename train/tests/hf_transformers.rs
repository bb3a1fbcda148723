//! Checkpoints written by transformers' own `save_pretrained`, and the logits its
//! forward pass gave, against decant's import and forward pass.
//!
//! The goldens come from `tools/goldens/hf_transformers.py`: tiny random models of
//! each family (every parameter random, biases and norms included) in float32,
//! run on a batch of fixed token ids with no padding.

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use train::{Architecture, CpuBackend, ModelConfig, RopeScaling, load_model};

/// Issue 4's bound for f32; the differences are float summation order.
const TOLERANCE: f32 = 1e-4;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/hf")
}

struct Golden {
    tokens: Vec<i64>,
    logits: Vec<f32>,
    shape: [usize; 3],
}

fn read_golden(name: &str) -> Golden {
    let path = golden_dir().join(format!("{name}.logits.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (tokens, logits) = (st.tensor("tokens").unwrap(), st.tensor("logits").unwrap());
    assert_eq!((tokens.dtype(), logits.dtype()), (Dtype::I32, Dtype::F32));
    let words = |data: &[u8]| -> Vec<[u8; 4]> {
        data.chunks_exact(4)
            .map(|b| b.try_into().unwrap())
            .collect()
    };
    Golden {
        tokens: words(tokens.data())
            .into_iter()
            .map(|b| i64::from(i32::from_le_bytes(b)))
            .collect(),
        logits: words(logits.data())
            .into_iter()
            .map(f32::from_le_bytes)
            .collect(),
        shape: logits.shape().try_into().unwrap(),
    }
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

/// Loads the checkpoint, runs the golden's batch and compares every logit.
fn check(name: &str, expect_config: impl FnOnce(&ModelConfig)) {
    let golden = read_golden(name);
    let [batch, seq, vocab] = golden.shape;
    let device = Default::default();
    let model = load_model::<CpuBackend>(&golden_dir().join(name), &device)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    expect_config(&model.config);
    assert_eq!(model.config.vocab_size, vocab, "{name}");

    let tokens = TensorData::new(golden.tokens, [batch, seq]);
    let logits: Vec<f32> = model
        .forward(Tensor::<CpuBackend, 2, Int>::from_data(tokens, &device))
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(logits.len(), golden.logits.len(), "{name}");

    let max_diff = logits
        .iter()
        .zip(&golden.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    eprintln!("{name}: max abs diff {max_diff:.2e} over {batch}×{seq} positions");
    assert!(max_diff <= TOLERANCE, "{name}: max abs diff {max_diff}");
    for (position, (ours, theirs)) in logits
        .chunks(vocab)
        .zip(golden.logits.chunks(vocab))
        .enumerate()
    {
        assert_eq!(
            argmax(ours),
            argmax(theirs),
            "{name}: argmax differs at sequence {}, position {}",
            position / seq,
            position % seq
        );
    }
}

#[test]
fn llama_tied() {
    check("llama", |c| {
        assert_eq!(c.architecture, Architecture::Llama);
        assert!(c.tie_word_embeddings && !c.qkv_bias);
        assert_eq!(c.rope.scaling, RopeScaling::None);
    });
}

#[test]
fn llama3_rope_scaling_untied_head() {
    check("llama3_untied", |c| {
        assert_eq!(c.architecture, Architecture::Llama);
        assert!(!c.tie_word_embeddings);
        assert!(matches!(c.rope.scaling, RopeScaling::Llama3 { .. }));
        assert_eq!(c.rope.theta, 500_000.0);
    });
}

#[test]
fn qwen2_qkv_bias() {
    check("qwen2", |c| {
        assert_eq!(c.architecture, Architecture::Qwen2);
        assert!(c.qkv_bias && !c.o_bias && c.sliding_window.is_none());
    });
}

#[test]
fn qwen3_qk_norm() {
    check("qwen3", |c| {
        assert_eq!(c.architecture, Architecture::Qwen3);
        assert_eq!((c.head_dim, c.hidden_size / c.num_heads), (24, 16));
    });
}

#[test]
fn mistral_sliding_window_sharded() {
    assert!(
        golden_dir()
            .join("mistral_sharded/model.safetensors.index.json")
            .is_file()
    );
    check("mistral_sharded", |c| {
        assert_eq!(c.architecture, Architecture::Mistral);
        assert_eq!((c.sliding_window, c.num_kv_heads), (Some(8), 1));
    });
}
