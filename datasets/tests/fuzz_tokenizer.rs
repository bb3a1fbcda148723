//! Tokenizers read from mutated inputs: a GGUF file's `tokenizer.ggml.*`
//! metadata (byte-level BPE and SentencePiece) and a model directory's
//! `tokenizer.json` with its two config files. Loading, encoding and decoding
//! give results or errors naming the file, never a panic, and the heap stays
//! within a bound set by the input's size.
//!
//! Longer run: `PROPTEST_CASES=100000 cargo nextest run -p datasets -E 'test(/fuzz/)'`.

mod fuzz_support;

use std::sync::LazyLock;

use datasets::{EncodeOptions, Tokenizer};
use fuzz_support::{Edit, cases, edits, mutated, within, write};
use proptest::prelude::*;
use quantize::gguf::{GgufFile, GgufWriter, Value};

#[global_allocator]
static METER: testkit::PeakAlloc = testkit::PeakAlloc;

const TEXT: &str = "ab ba<|im_end|> héllo\n\t 123 ▁x";

/// The GGUF parse is bounded by 64× (see quantize's gguf_hostile.rs); the
/// vocabulary then copies each token and merge into a few tables (text, a
/// hash-map key, a merge-rank key: 24-byte headers per string of at least
/// 8 encoded bytes, about 10×) and the BPE or SentencePiece state for one
/// short text. 128× covers both; `K` is the pre-tokenizer's compiled regexes
/// and caches, which do not depend on the input.
fn gguf_bound(len: usize) -> usize {
    128 * len + (4 << 20)
}

/// serde_json's tree of the three files (up to 48×, see fuzz_jsonl.rs) and the
/// `tokenizers` crate's model built from it; `K` is the crate's compiled
/// regexes and byte tables.
fn hf_bound(len: usize) -> usize {
    128 * len + (4 << 20)
}

fn bpe() -> Vec<(&'static str, Value)> {
    vec![
        ("tokenizer.ggml.model", "gpt2".into()),
        ("tokenizer.ggml.pre", "smollm".into()),
        (
            "tokenizer.ggml.tokens",
            vec!["a", "b", "ab", "Ġ", "Ġb", "<|im_end|>", "1", "2"].into(),
        ),
        (
            "tokenizer.ggml.token_type",
            vec![1i32, 1, 1, 1, 1, 3, 1, 1].into(),
        ),
        ("tokenizer.ggml.merges", vec!["a b", "Ġ b"].into()),
        ("tokenizer.ggml.eos_token_id", 5u32.into()),
        ("tokenizer.ggml.add_bos_token", false.into()),
    ]
}

fn spm() -> Vec<(&'static str, Value)> {
    vec![
        ("tokenizer.ggml.model", "llama".into()),
        (
            "tokenizer.ggml.tokens",
            vec!["<unk>", "<s>", "</s>", "<0x41>", "▁", "a", "b", "▁a", "ab"].into(),
        ),
        (
            "tokenizer.ggml.scores",
            vec![0f32, 0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -1.5, -2.5].into(),
        ),
        (
            "tokenizer.ggml.token_type",
            vec![2i32, 3, 3, 6, 1, 1, 1, 1, 1].into(),
        ),
        ("tokenizer.ggml.bos_token_id", 1u32.into()),
        ("tokenizer.ggml.eos_token_id", 2u32.into()),
        ("tokenizer.ggml.unknown_token_id", 0u32.into()),
        ("tokenizer.ggml.add_space_prefix", true.into()),
    ]
}

fn gguf_bytes(entries: Vec<(&str, Value)>) -> Vec<u8> {
    let mut writer = GgufWriter::new();
    for (key, value) in entries {
        writer.metadata(key, value).unwrap();
    }
    writer
        .finish_metadata()
        .write_to(Vec::new())
        .unwrap()
        .finish()
        .unwrap()
}

static GGUFS: LazyLock<[Vec<u8>; 2]> = LazyLock::new(|| [gguf_bytes(bpe()), gguf_bytes(spm())]);

/// Encodes, decodes and looks up pieces the way data preparation does, so a
/// vocabulary that loads but breaks later is caught too.
fn exercise(tokenizer: &Tokenizer) -> Vec<String> {
    let mut errors = Vec::new();
    for (add_special, parse_special) in [(false, false), (true, true)] {
        let options = EncodeOptions {
            add_special,
            parse_special,
        };
        match tokenizer.encode(TEXT, options) {
            Ok(ids) => errors.extend(tokenizer.decode(&ids, true).err().map(|e| e.to_string())),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let ids: Vec<u32> = (0..tokenizer.vocab_size() as u32 + 2).collect();
    for special in [false, true] {
        errors.extend(tokenizer.decode(&ids, special).err().map(|e| e.to_string()));
        for &id in &ids {
            errors.extend(
                tokenizer
                    .token_to_piece(id, special)
                    .err()
                    .map(|e| e.to_string()),
            );
        }
    }
    errors
}

/// Loads a tokenizer from GGUF `bytes` and exercises it; every error must name
/// the file.
fn gguf_case(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    let bound = gguf_bound(bytes.len());
    let errors = within(bound, "loading and using the tokenizer", || {
        let file = GgufFile::from_bytes(bytes, "vocab.gguf").map_err(|e| vec![e.to_string()])?;
        let tokenizer = Tokenizer::from_gguf(&file).map_err(|e| vec![e.to_string()])?;
        Ok::<_, Vec<String>>(exercise(&tokenizer))
    })?;
    for e in errors.unwrap_or_else(|e| e) {
        prop_assert!(e.contains("vocab.gguf"), "{}", e);
    }
    Ok(())
}

const TOKENIZER_JSON: &str = r#"{
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [
    {"id": 7, "content": "<|im_end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
  "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {
    "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
    "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
    "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġb": 4, "1": 5, "2": 6, "<|im_end|>": 7},
    "merges": ["a b", "Ġ b"]
  }
}"#;
const TOKENIZER_CONFIG: &str =
    r#"{"eos_token": "<|im_end|>", "bos_token": {"content": "a"}, "pad_token": null}"#;
const GENERATION_CONFIG: &str = r#"{"eos_token_id": [7, 2]}"#;
const HF_FILES: [(&str, &str); 3] = [
    ("tokenizer.json", TOKENIZER_JSON),
    ("tokenizer_config.json", TOKENIZER_CONFIG),
    ("generation_config.json", GENERATION_CONFIG),
];

/// Loads a model directory holding `files` and exercises its tokenizer; every
/// error must name one of the files.
fn hf_case(files: [Vec<u8>; 3]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    for ((name, _), bytes) in HF_FILES.iter().zip(&files) {
        write(dir.path(), name, bytes);
    }
    let bound = hf_bound(files.iter().map(Vec::len).sum());
    let errors = within(
        bound,
        "loading and using the tokenizer",
        || match Tokenizer::from_hf_dir(dir.path()) {
            Ok(tokenizer) => exercise(&tokenizer),
            Err(e) => vec![e.to_string()],
        },
    )?;
    let dir_name = dir.path().display().to_string();
    for e in errors {
        prop_assert!(e.contains(&dir_name), "{}", e);
    }
    Ok(())
}

#[test]
fn the_valid_inputs_load_and_encode() {
    let options = EncodeOptions {
        add_special: false,
        parse_special: true,
    };
    for bytes in GGUFS.iter() {
        let file = GgufFile::from_bytes(bytes.clone(), "vocab.gguf").unwrap();
        let tokenizer = Tokenizer::from_gguf(&file).unwrap();
        assert!(!tokenizer.encode("ab ba", options).unwrap().is_empty());
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in HF_FILES {
        write(dir.path(), name, text.as_bytes());
    }
    let tokenizer = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(tokenizer.encode("ab<|im_end|>", options).unwrap(), [2, 7]);
    assert!(tokenizer.is_eog(7));
}

/// Findings of the fuzz test: the `tokenizers` crate panicked (an `expect` in
/// its decoder and normalizer deserializers) where the file was at fault.
#[test]
fn tokenizer_json_that_made_the_tokenizers_crate_panic_is_an_error_naming_the_file() {
    let broken_decoder =
        TOKENIZER_JSON.replacen(r#""decoder": {"type""#, "\"decoder\": {\0type\"", 1);
    let precompiled = TOKENIZER_JSON.replacen(
        r#""normalizer": null"#,
        r#""normalizer": {"type": "Precompiled", "precompiled_charsmap": 5}"#,
        1,
    );
    for (case, json, expected) in [
        ("broken decoder", broken_decoder, "not valid JSON: "),
        (
            "precompiled normalizer",
            precompiled,
            "it panicked: Precompiled",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "tokenizer.json", json.as_bytes());
        let error = Tokenizer::from_hf_dir(dir.path())
            .expect_err(case)
            .to_string();
        let path = dir.path().join("tokenizer.json").display().to_string();
        assert!(
            error.starts_with(&format!("{path}: not a tokenizer.json")),
            "{case}: {error}"
        );
        assert!(error.contains(expected), "{case}: {error}");
    }
}

/// Metadata a GGUF writer could put in a file: token texts from a small
/// alphabet (so merges and special texts name real tokens), any token types,
/// merges, scores and special ids, including ones outside the vocabulary.
fn vocab_metadata() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
    let piece = "[abĠ▁<>|0x41 ]{0,4}";
    (
        prop_oneof![Just("gpt2"), Just("llama"), Just("bert")],
        proptest::option::of(proptest::sample::select(vec![
            "smollm", "qwen2", "default", "llama3", "x",
        ])),
        proptest::collection::vec((piece, -1i32..8, any::<f32>()), 0..24),
        proptest::option::of(proptest::collection::vec((piece, piece), 0..12)),
        proptest::collection::vec((0usize..5, 0u32..30), 0..4),
        any::<[bool; 3]>(),
    )
        .prop_map(
            |(model, pre, tokens, merges, special, [types, scores, add])| {
                let mut entries = vec![("tokenizer.ggml.model", Value::from(model))];
                entries.extend(pre.map(|pre| ("tokenizer.ggml.pre", Value::from(pre))));
                let texts: Vec<&str> = tokens.iter().map(|(t, _, _)| t.as_str()).collect();
                entries.push(("tokenizer.ggml.tokens", texts.into()));
                if types {
                    entries.push((
                        "tokenizer.ggml.token_type",
                        tokens.iter().map(|t| t.1).collect::<Vec<_>>().into(),
                    ));
                }
                if scores {
                    entries.push((
                        "tokenizer.ggml.scores",
                        tokens.iter().map(|t| t.2).collect::<Vec<_>>().into(),
                    ));
                }
                if let Some(merges) = merges {
                    let merges: Vec<String> =
                        merges.iter().map(|(l, r)| format!("{l} {r}")).collect();
                    entries.push((
                        "tokenizer.ggml.merges",
                        merges.iter().map(String::as_str).collect::<Vec<_>>().into(),
                    ));
                }
                const IDS: [&str; 5] = [
                    "tokenizer.ggml.bos_token_id",
                    "tokenizer.ggml.eos_token_id",
                    "tokenizer.ggml.unknown_token_id",
                    "tokenizer.ggml.padding_token_id",
                    "tokenizer.ggml.eot_token_id",
                ];
                let mut seen = [false; 5];
                for (key, id) in special {
                    if !std::mem::replace(&mut seen[key], true) {
                        entries.push((IDS[key], id.into()));
                    }
                }
                entries.push(("tokenizer.ggml.add_bos_token", add.into()));
                entries.push(("tokenizer.ggml.add_space_prefix", (!add).into()));
                entries
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1000)))]

    #[test]
    fn fuzz_mutated_gguf_vocabulary(which in 0usize..2, edits in edits()) {
        gguf_case(mutated(GGUFS[which].clone(), &edits))?;
    }

    #[test]
    fn fuzz_generated_gguf_vocabulary(entries in vocab_metadata()) {
        gguf_case(gguf_bytes(entries))?;
    }

    #[test]
    fn fuzz_mutated_tokenizer_json(changes in proptest::collection::vec((0usize..3, edits()), 1..3)) {
        let files = HF_FILES.map(|(name, text)| {
            let edits: Vec<Edit> = changes
                .iter()
                .filter(|(f, _)| HF_FILES[*f].0 == name)
                .flat_map(|(_, e)| e.iter().cloned())
                .collect();
            mutated(text.as_bytes().to_vec(), &edits)
        });
        hf_case(files)?;
    }
}
