//! The transformers checkpoints of train/tests/goldens/hf (written by
//! `save_pretrained`, logits from transformers' forward pass, made by
//! tools/goldens/hf_transformers.py) imported and exported as Hugging Face
//! directories again: every tensor byte for byte as transformers stored it, the
//! config read back to the same model, and the logits of the re-imported
//! directory equal to transformers' within 1e-4.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use export::{Dtype, ExportMetadata, HfOptions, export_hf_dir};
use safetensors::SafeTensors;
use train::{CpuBackend, load_model};

const TOLERANCE: f32 = 1e-4;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../train/tests/goldens/hf")
}

/// Every tensor of a directory: name → (dtype, shape, bytes).
fn tensors(dir: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "safetensors") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        for (name, view) in st.tensors() {
            let value = (format!("{:?}", view.dtype()), view.shape().to_vec(), view.data().to_vec());
            assert!(all.insert(name.clone(), value).is_none(), "{name} twice");
        }
    }
    all
}

fn golden_logits(name: &str) -> (Vec<i64>, [usize; 3], Vec<f32>) {
    let bytes = std::fs::read(golden_dir().join(format!("{name}.logits.safetensors"))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let words = |data: &[u8]| -> Vec<[u8; 4]> { data.chunks_exact(4).map(|b| b.try_into().unwrap()).collect() };
    let tokens = st.tensor("tokens").unwrap();
    let logits = st.tensor("logits").unwrap();
    (
        words(tokens.data()).into_iter().map(|b| i64::from(i32::from_le_bytes(b))).collect(),
        logits.shape().try_into().unwrap(),
        words(logits.data()).into_iter().map(f32::from_le_bytes).collect(),
    )
}

fn round_trip(name: &str, max_shard_bytes: u64) -> Vec<String> {
    let source = golden_dir().join(name);
    let device = Default::default();
    let model = load_model::<CpuBackend>(&source, &device).unwrap();
    let out_root = tempfile::tempdir().unwrap();
    let out = out_root.path().join(name);
    let metadata = ExportMetadata { name: name.into(), ..ExportMetadata::default() };
    let options = HfOptions { dtype: Dtype::F32, max_shard_bytes };
    let report = export_hf_dir(&model, None, &metadata, options, &out, |_| {}).unwrap();
    assert_eq!(report.path, out);

    assert_eq!(tensors(&out), tensors(&source), "{name}: tensors differ from transformers'");

    let again = load_model::<CpuBackend>(&out, &device).unwrap();
    assert_eq!(again.config, model.config, "{name}: config.json reads back differently");
    let (ids, [batch, seq, vocab], expected) = golden_logits(name);
    let input = Tensor::<CpuBackend, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device);
    let logits: Vec<f32> = again.forward(input).into_data().to_vec().unwrap();
    assert_eq!(logits.len(), batch * seq * vocab);
    let max_diff = logits.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    eprintln!("{name}: max abs diff {max_diff:.2e} against transformers");
    assert!(max_diff <= TOLERANCE, "{name}: max abs diff {max_diff}");
    report.files
}

#[test]
fn llama_tied() {
    let files = round_trip("llama", u64::MAX);
    assert!(files.contains(&"model.safetensors".to_owned()) && files.contains(&"README.md".to_owned()));
    assert!(!files.contains(&"tokenizer.json".to_owned()), "no tokenizer to write: {files:?}");
}

#[test]
fn llama3_rope_scaling_untied() {
    round_trip("llama3_untied", u64::MAX);
}

#[test]
fn qwen2_qkv_bias() {
    round_trip("qwen2", u64::MAX);
}

#[test]
fn qwen3_qk_norm() {
    round_trip("qwen3", u64::MAX);
}

#[test]
fn mistral_sharded_above_the_threshold() {
    let files = round_trip("mistral_sharded", 40_000);
    assert!(files.contains(&"model.safetensors.index.json".to_owned()), "{files:?}");
    assert!(files.iter().filter(|f| f.starts_with("model-0")).count() > 1, "{files:?}");
}
