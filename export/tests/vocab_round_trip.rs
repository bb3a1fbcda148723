//! GGUF vocabularies (llama.cpp's own ggml-vocab-*.gguf files, fetched by
//! tools/fetch-llamacpp-vocabs.sh) written as Hugging Face tokenizer files and
//! converted back as llama.cpp's converter converts them: the same tokens,
//! token types and merges, the same `tokenizer.ggml.pre` recognised by its
//! hash, and `tokenizers` on the written tokenizer.json tokenizing as llama.cpp
//! does on the original vocabulary.

use std::path::PathBuf;

use datasets::{EncodeOptions, Tokenizer};
use export::Vocabulary;
use export::vocab::CHECK_TEXT;
use quantize::gguf::GgufFile;

const TEXTS: &[&str] = &[
    "Hello world",
    "  3.14159 is pi; 12345 apples!\n\tTabs and  spaces   ",
    "I've been 'told he's there, 'RE you sure? We'Ve a'lL",
    "Ünïcödé — 我想在apple工作1314151天～ 🦙🦙 нещо на Български",
    "```rust\nfn main() { println!(\"hi\"); }\n```",
    CHECK_TEXT,
];

fn vocab_file(name: &str) -> PathBuf {
    let dir = match std::env::var_os("DECANT_LLAMACPP_VOCABS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/decant/vocabs"),
    };
    let path = dir.join(format!("ggml-vocab-{name}.gguf"));
    assert!(path.is_file(), "{} is missing: run `bash tools/fetch-llamacpp-vocabs.sh`", path.display());
    path
}

fn round_trip(name: &str, expected_pre: &str) {
    let file = GgufFile::open(vocab_file(name)).unwrap();
    let original = Vocabulary::from_gguf(&file).unwrap();
    assert_eq!(original.pre.as_deref(), Some(expected_pre));
    let dir = tempfile::tempdir().unwrap();
    let files = original.hf_files(4096).unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), &files.tokenizer).unwrap();
    std::fs::write(dir.path().join("tokenizer_config.json"), &files.tokenizer_config).unwrap();

    let converted = Vocabulary::from_hf_dir(dir.path(), original.tokens.len()).unwrap();
    assert_eq!(converted.pre.as_deref(), Some(expected_pre), "{name}: hash {:?}", converted.pre_hash);
    assert_eq!(converted.tokens, original.tokens, "{name}");
    assert_eq!(converted.token_types, original.token_types, "{name}");
    assert_eq!(converted.merges, original.merges, "{name}");
    assert_eq!((converted.special.bos, converted.special.eos), (original.special.bos, original.special.eos));

    let llama = Tokenizer::from_gguf(&file).unwrap();
    let hf = Tokenizer::from_hf_dir(dir.path()).unwrap();
    let plain = EncodeOptions::default();
    for text in TEXTS {
        assert_eq!(hf.encode(text, plain).unwrap(), llama.encode(text, plain).unwrap(), "{name}: {text:?}");
    }
}

#[test]
fn gpt2() {
    round_trip("gpt-2", "gpt-2");
}

#[test]
fn llama3() {
    round_trip("llama-bpe", "llama-bpe");
}

#[test]
fn qwen2() {
    round_trip("qwen2", "qwen2");
}

#[test]
fn sentencepiece_vocabularies_are_refused_by_name() {
    let file = GgufFile::open(vocab_file("llama-spm")).unwrap();
    let vocab = Vocabulary::from_gguf(&file).unwrap();
    let err = vocab.hf_files(4096).err().expect("llama (SPM) has no tokenizer.json writer").to_string();
    assert!(err.contains("llama tokenizer") && err.contains("ggml-vocab-llama-spm.gguf"), "{err}");
}
