//! A teacher small enough for tests that run the whole pipeline many times: a
//! randomly initialised two-layer Llama with the reference model's tokenizer
//! (so the shipped extraction data tokenizes as it does for real), written as
//! a Hugging Face directory. Its checkpoints are ~20 MB where the reference
//! teacher's are ~400 MB.

use std::path::{Path, PathBuf};

use serde_json::Value;

use burn::tensor::backend::Backend;
use decant::model_arg::ModelSource;
use export::{Dtype, ExportMetadata, HfOptions};
use train::CpuBackend;
use train::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};

pub fn tiny_teacher(out: &Path) -> PathBuf {
    let reference = ModelSource::Gguf(super::reference_model());
    let vocab = decant::stage::source::vocabulary(&reference, 0)
        .expect("the reference model's tokenizer")
        .expect("a GGUF always has one");
    let config = ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: vocab.tokens.len(),
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: 512,
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    };
    let device = Default::default();
    CpuBackend::seed(&device, 7);
    let model = config
        .init::<CpuBackend>(&device)
        .expect("a valid configuration");
    let metadata = ExportMetadata {
        name: "tiny-teacher".to_owned(),
        ..ExportMetadata::default()
    };
    let options = HfOptions {
        dtype: Dtype::F32,
        max_shard_bytes: export::hf::DEFAULT_MAX_SHARD_BYTES,
    };
    export::export_hf_dir(&model, Some(&vocab), &metadata, options, out, |_| {})
        .expect("the teacher is written");
    out.to_owned()
}

/// A recipe distilling a one-layer student from `teacher` on the first 24
/// shipped extraction examples with a cached top-8 teacher; `rest` holds
/// `[train]` and the sections after it.
pub fn tiny_teacher_recipe(root: &Path, teacher: &Path, file: &str, rest: &str) -> PathBuf {
    let data = super::first_training_examples(root);
    let text = format!(
        r#"[teacher]
model = "{teacher}"

[student.init]
kind = "layers"
layers = [1]

[data]
train = "{data}"
max_length = 256
packing = true

[distill]
loss = {{ kind = "forward_kl" }}
alpha = 0.5
teacher = "cached"
top_k = 8

{rest}"#,
        teacher = teacher.display(),
        data = data.display(),
    );
    let path = root.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// The manifest's artifacts of the run in `out`, as (path, sha256).
pub fn manifest_artifacts(out: &Path) -> Vec<(String, String)> {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_owned(),
                a["sha256"].to_string(),
            )
        })
        .collect()
}
