//! An export that fails part-way leaves nothing at the target path and no
//! temporary file beside it: the tensor data is streamed into a temporary name
//! that is removed when the write is abandoned.

use std::path::{Path, PathBuf};

use export::{Dtype, ExportMetadata, HfOptions, Vocabulary, export_gguf, export_hf_dir};
use quantize::gguf::GgufFile;
use quantize::mix::{Mix, MixOptions};
use train::{CpuBackend, load_model};

fn tiny_llama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../train/tests/goldens/hf/llama")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_directory_export_that_fails_midway_leaves_nothing() {
    let mut model = load_model::<CpuBackend>(&tiny_llama(), &Default::default()).unwrap();
    // The configuration now promises attention biases the layers do not have:
    // the first tensors are written before the missing one is reached.
    model.config.qkv_bias = true;
    model.config.o_bias = true;
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("exported");
    let options = HfOptions { dtype: Dtype::F32, max_shard_bytes: u64::MAX };
    let err = export_hf_dir(&model, None, &ExportMetadata::default(), options, &out, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.layers.0.self_attn.") && err.contains("bias"), "{err}");
    assert!(!out.exists());
    assert_eq!(entries(root.path()), Vec::<String>::new());
}

#[test]
fn a_gguf_export_that_fails_midway_leaves_nothing_and_keeps_the_old_file() {
    let vocab_path = match std::env::var_os("DECANT_LLAMACPP_VOCABS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/decant/vocabs"),
    }
    .join("ggml-vocab-gpt-2.gguf");
    assert!(vocab_path.is_file(), "{} is missing: run `bash tools/fetch-llamacpp-vocabs.sh`", vocab_path.display());
    let vocab = Vocabulary::from_gguf(&GgufFile::open(&vocab_path).unwrap()).unwrap();
    let mut model = load_model::<CpuBackend>(&tiny_llama(), &Default::default()).unwrap();
    // Declared with the vocabulary's size, the embeddings are too small when
    // their turn comes: the header is out by then, the data is not.
    model.config.vocab_size = vocab.tokens.len();
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("model.gguf");
    std::fs::write(&out, b"the previous export").unwrap();
    let err = export_gguf(&model, &vocab, &ExportMetadata::default(), MixOptions::new(Mix::F16), &out, 1, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.embed_tokens.weight") && err.contains("values"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"the previous export");
    assert_eq!(entries(root.path()), ["model.gguf"]);
}
