//! Tokenization of GGUF vocabularies against llama.cpp: the goldens hold, for a
//! varied corpus, the ids `llama_tokenize` gives with and without special-token
//! parsing and with BOS/EOS added, `llama_detokenize` of those ids, the special
//! token ids, the end-of-generation set and a hash of every token's piece
//! (made by tools/goldens/tokenize_llamacpp.py).

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use datasets::{EncodeOptions, SpecialTokens, Tokenizer, VocabConfig};
use quantize::gguf::GgufFile;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Golden {
    fuzz_texts: Vec<String>,
    models: Vec<ModelGolden>,
}

#[derive(Deserialize)]
struct ModelGolden {
    name: String,
    file: String,
    /// A `tokenizer.ggml.pre` that replaced the file's when llama.cpp loaded it.
    pre_override: Option<String>,
    vocab_size: usize,
    special: SpecialGolden,
    eog: Vec<u32>,
    pieces_sha256: String,
    pieces_special_sha256: String,
    cases: Vec<Case>,
    /// `llama_tokenize(fuzz_texts[i], add_special = false, parse_special = true)`.
    fuzz_ids: Vec<Vec<u32>>,
}

#[derive(Deserialize, Debug, PartialEq, Eq)]
struct SpecialGolden {
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    pad: Option<u32>,
    sep: Option<u32>,
    fim_pre: Option<u32>,
    fim_suf: Option<u32>,
    fim_mid: Option<u32>,
    fim_pad: Option<u32>,
    fim_rep: Option<u32>,
    fim_sep: Option<u32>,
}

impl From<&SpecialTokens> for SpecialGolden {
    fn from(special: &SpecialTokens) -> Self {
        Self {
            bos: special.bos,
            eos: special.eos,
            eot: special.eot,
            pad: special.pad,
            sep: special.sep,
            fim_pre: special.fim_pre,
            fim_suf: special.fim_suf,
            fim_mid: special.fim_mid,
            fim_pad: special.fim_pad,
            fim_rep: special.fim_rep,
            fim_sep: special.fim_sep,
        }
    }
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    ids_parse_special: Vec<u32>,
    ids_add_special: Vec<u32>,
    decoded: String,
    decoded_special: String,
}

const PLAIN: EncodeOptions = EncodeOptions {
    add_special: false,
    parse_special: false,
};
const PARSE_SPECIAL: EncodeOptions = EncodeOptions {
    add_special: false,
    parse_special: true,
};
const ADD_SPECIAL: EncodeOptions = EncodeOptions {
    add_special: true,
    parse_special: true,
};

/// The goldens of one vocabulary, and the random texts.
fn golden(name: &str) -> (ModelGolden, Vec<String>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/goldens/tokenize_llamacpp.json"
    );
    let text = std::fs::read_to_string(path).expect("the golden file is committed");
    let golden: Golden = serde_json::from_str(&text).expect("the golden file is valid JSON");
    let model = golden
        .models
        .into_iter()
        .find(|model| model.name == name)
        .unwrap_or_else(|| panic!("no golden for {name}"));
    (model, golden.fuzz_texts)
}

/// sha256 over every token's piece, each preceded by its length (u32 LE), as
/// the golden script hashes them.
fn pieces_sha256(tokenizer: &Tokenizer, special: bool) -> String {
    let mut digest = Sha256::new();
    for id in 0..tokenizer.vocab_size() as u32 {
        let piece = tokenizer.token_to_piece(id, special).unwrap();
        digest.update((piece.len() as u32).to_le_bytes());
        digest.update(&piece);
    }
    digest
        .finalize()
        .iter()
        .fold(String::new(), |mut hex, byte| {
            write!(hex, "{byte:02x}").unwrap();
            hex
        })
}

/// Checks every golden of one vocabulary; returns how many texts matched.
fn check(name: &str, path: PathBuf) -> usize {
    let (golden, fuzz_texts) = golden(name);
    assert_eq!(
        path.file_name().unwrap().to_str(),
        Some(golden.file.as_str())
    );
    let file = GgufFile::open(&path).unwrap();
    let mut config = VocabConfig::from_gguf(&file).unwrap();
    if let Some(pre) = &golden.pre_override {
        config.pre = Some(pre.clone());
    }
    let tokenizer = Tokenizer::from_vocab(config).unwrap();

    assert_eq!(
        tokenizer.vocab_size(),
        golden.vocab_size,
        "{name}: vocab size"
    );
    let mut special = SpecialGolden::from(tokenizer.special_tokens());
    if name == "smollm" {
        // Two end-of-turn candidates and no eot key: llama.cpp's pick follows its
        // hash map (<|endoftext|> = 0), decant's the candidate order (<|im_end|> = 2).
        assert_eq!(special.eot, Some(2));
        special.eot = golden.special.eot;
    }
    assert_eq!(special, golden.special, "{name}: special token ids");
    let eog: Vec<u32> = (0..golden.vocab_size as u32)
        .filter(|&id| tokenizer.is_eog(id))
        .collect();
    assert_eq!(eog, golden.eog, "{name}: end-of-generation tokens");
    assert_eq!(
        pieces_sha256(&tokenizer, false),
        golden.pieces_sha256,
        "{name}: token pieces"
    );
    assert_eq!(
        pieces_sha256(&tokenizer, true),
        golden.pieces_special_sha256,
        "{name}: token pieces with special tokens rendered"
    );

    let mut failures = String::new();
    for case in &golden.cases {
        let encode = |options| tokenizer.encode(&case.text, options).unwrap();
        let checks = [
            ("ids", encode(PLAIN), &case.ids),
            (
                "ids_parse_special",
                encode(PARSE_SPECIAL),
                &case.ids_parse_special,
            ),
            (
                "ids_add_special",
                encode(ADD_SPECIAL),
                &case.ids_add_special,
            ),
        ];
        for (what, actual, expected) in checks {
            if &actual != expected {
                writeln!(
                    failures,
                    "{what} of {:?}:\n  decant   {actual:?}\n  llama.cpp {expected:?}",
                    case.text
                )
                .unwrap();
            }
        }
        let decodes = [
            (
                "decode",
                tokenizer.decode(&case.ids, false).unwrap(),
                &case.decoded,
            ),
            (
                "decode special",
                tokenizer.decode(&case.ids_parse_special, true).unwrap(),
                &case.decoded_special,
            ),
        ];
        for (what, actual, expected) in decodes {
            if &actual != expected {
                writeln!(
                    failures,
                    "{what} of {:?}:\n  decant   {actual:?}\n  llama.cpp {expected:?}",
                    case.text
                )
                .unwrap();
            }
        }
    }
    for (text, expected) in fuzz_texts.iter().zip(&golden.fuzz_ids) {
        let actual = tokenizer.encode(text, PARSE_SPECIAL).unwrap();
        if &actual != expected {
            writeln!(
                failures,
                "random text {text:?}:\n  decant   {actual:?}\n  llama.cpp {expected:?}"
            )
            .unwrap();
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: differs from llama.cpp:\n{failures}"
    );
    golden.cases.len() + golden.fuzz_ids.len()
}

#[test]
fn smollm_reference_teacher_matches_llama_cpp() {
    let matched = check("smollm", common::reference_model());
    println!("smollm: {matched} texts identical to llama.cpp");
}

#[test]
fn llama3_bpe_matches_llama_cpp() {
    let matched = check(
        "llama-bpe",
        common::llamacpp_vocab("ggml-vocab-llama-bpe.gguf"),
    );
    println!("llama-bpe: {matched} texts identical to llama.cpp");
}

#[test]
fn qwen2_matches_llama_cpp() {
    let matched = check("qwen2", common::llamacpp_vocab("ggml-vocab-qwen2.gguf"));
    println!("qwen2: {matched} texts identical to llama.cpp");
}

#[test]
fn gpt2_matches_llama_cpp() {
    let matched = check("gpt-2", common::llamacpp_vocab("ggml-vocab-gpt-2.gguf"));
    println!("gpt-2: {matched} texts identical to llama.cpp");
}

#[test]
fn default_pre_tokenizer_matches_llama_cpp() {
    let matched = check(
        "gpt-2-pre-default",
        common::llamacpp_vocab("ggml-vocab-gpt-2.gguf"),
    );
    println!("gpt-2 vocabulary, default pre-tokenizer: {matched} texts identical to llama.cpp");
}

#[test]
fn llama_sentencepiece_matches_llama_cpp() {
    let matched = check(
        "llama-spm",
        common::llamacpp_vocab("ggml-vocab-llama-spm.gguf"),
    );
    println!("llama-spm: {matched} texts identical to llama.cpp");
}
