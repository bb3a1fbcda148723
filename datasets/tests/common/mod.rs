//! Where the tests find the model files the goldens were made from. A missing
//! file fails the test with the command that fetches it: these tests never skip.
//! Each test binary uses part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

fn cache_dir() -> PathBuf {
    std::env::var_os("DECANT_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/decant")))
        .expect("neither DECANT_CACHE nor HOME is set")
}

fn existing(path: PathBuf, fetch: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: run `bash {fetch}` (or point the environment variable at the file)",
        path.display()
    );
    path
}

/// The reference teacher, SmolLM2-135M-Instruct Q4_1 (`DECANT_REFERENCE_MODEL` overrides).
pub fn reference_model() -> PathBuf {
    let path = std::env::var_os("DECANT_REFERENCE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    existing(path, "tools/fetch-reference-model.sh")
}

/// One of llama.cpp's vocabulary-only GGUF files (`DECANT_LLAMACPP_VOCABS` names their directory).
pub fn llamacpp_vocab(file: &str) -> PathBuf {
    let dir = std::env::var_os("DECANT_LLAMACPP_VOCABS")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("vocabs"));
    existing(dir.join(file), "tools/fetch-llamacpp-vocabs.sh")
}
