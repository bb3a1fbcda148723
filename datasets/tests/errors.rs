//! Bad tokenizer metadata and templates fail with messages that name the file,
//! the key and what was expected there.

use datasets::{ChatTemplate, DatasetError, EncodeOptions, Tokenizer};
use quantize::gguf::{GgufFile, GgufWriter, Value};

/// A GGUF file in memory named `tiny.gguf` holding `entries` as metadata.
fn gguf(entries: Vec<(&str, Value)>) -> GgufFile {
    let mut writer = GgufWriter::new();
    for (key, value) in entries {
        writer.metadata(key, value).unwrap();
    }
    let bytes = writer
        .finish_metadata()
        .write_to(Vec::new())
        .unwrap()
        .finish()
        .unwrap();
    GgufFile::from_bytes(bytes, "tiny.gguf").unwrap()
}

/// A four-token byte-level BPE vocabulary: a, b, ab (merged from a + b), and a
/// control token.
fn tiny_bpe() -> Vec<(&'static str, Value)> {
    vec![
        ("tokenizer.ggml.model", "gpt2".into()),
        ("tokenizer.ggml.pre", "smollm".into()),
        (
            "tokenizer.ggml.tokens",
            vec!["a", "b", "ab", "<|im_end|>"].into(),
        ),
        ("tokenizer.ggml.token_type", vec![1i32, 1, 1, 3].into()),
        ("tokenizer.ggml.merges", vec!["a b"].into()),
        ("tokenizer.ggml.eos_token_id", 3u32.into()),
        (
            "tokenizer.chat_template",
            "{{ messages[0]['content'] }}".into(),
        ),
    ]
}

fn with(key: &'static str, value: Value) -> Vec<(&'static str, Value)> {
    let mut entries = tiny_bpe();
    entries.retain(|(existing, _)| *existing != key);
    entries.push((key, value));
    entries
}

fn without(key: &str) -> Vec<(&'static str, Value)> {
    let mut entries = tiny_bpe();
    entries.retain(|(existing, _)| *existing != key);
    entries
}

fn tokenizer_error(entries: Vec<(&str, Value)>) -> String {
    Tokenizer::from_gguf(&gguf(entries))
        .unwrap_err()
        .to_string()
}

#[test]
fn tiny_vocabulary_tokenizes() {
    let tokenizer = Tokenizer::from_gguf(&gguf(tiny_bpe())).unwrap();
    let parse = EncodeOptions {
        add_special: false,
        parse_special: true,
    };
    assert_eq!(tokenizer.encode("ab<|im_end|>a", parse).unwrap(), [2, 3, 0]);
    assert_eq!(tokenizer.decode(&[2, 3, 0], true).unwrap(), "ab<|im_end|>a");
    assert_eq!(tokenizer.decode(&[2, 3, 0], false).unwrap(), "aba");
    assert!(tokenizer.is_eog(3));
}

#[test]
fn missing_tokenizer_model() {
    assert_eq!(
        tokenizer_error(without("tokenizer.ggml.model")),
        "tiny.gguf: missing `tokenizer.ggml.model` (expected the tokenizer kind, \"gpt2\" or \"llama\")"
    );
}

#[test]
fn missing_tokens() {
    assert_eq!(
        tokenizer_error(without("tokenizer.ggml.tokens")),
        "tiny.gguf: missing `tokenizer.ggml.tokens` (expected the array of token strings)"
    );
}

#[test]
fn missing_merges() {
    assert_eq!(
        tokenizer_error(without("tokenizer.ggml.merges")),
        "tiny.gguf: missing `tokenizer.ggml.merges` (expected the BPE merges of a \"gpt2\" vocabulary)"
    );
}

#[test]
fn unknown_tokenizer_model() {
    assert_eq!(
        tokenizer_error(with("tokenizer.ggml.model", "bert".into())),
        "tiny.gguf: tokenizer.ggml.model = \"bert\" is not supported \
         (expected \"gpt2\" for byte-level BPE or \"llama\" for SentencePiece)"
    );
}

#[test]
fn unknown_pre_tokenizer() {
    let message = tokenizer_error(with("tokenizer.ggml.pre", "my-pre".into()));
    assert!(
        message.starts_with(
            "tiny.gguf: tokenizer.ggml.pre = \"my-pre\" is not a pre-tokenizer decant implements \
             (expected one of: default, llama3, "
        ),
        "{message}"
    );
    for name in ["smollm", "llama-bpe", "qwen2", "gpt-2"] {
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn wrongly_typed_keys() {
    assert_eq!(
        tokenizer_error(with("tokenizer.ggml.model", 2u32.into())),
        "tiny.gguf: `tokenizer.ggml.model`: expected a string, found a value of type u32"
    );
    assert_eq!(
        tokenizer_error(with("tokenizer.ggml.token_type", vec!["x"; 4].into())),
        "tiny.gguf: `tokenizer.ggml.token_type`: expected an array of i32, found an array of string"
    );
    assert_eq!(
        tokenizer_error(with("tokenizer.ggml.bos_token_id", (-1i32).into())),
        "tiny.gguf: `tokenizer.ggml.bos_token_id`: expected a token id (u32), found a value of type i32"
    );
}

#[test]
fn per_token_arrays_cover_every_token() {
    assert_eq!(
        tokenizer_error(with("tokenizer.ggml.token_type", vec![1i32, 1].into())),
        "tiny.gguf: `tokenizer.ggml.token_type`: expected one entry per token (4), found 2 entries"
    );
}

#[test]
fn add_eos_without_an_eos_token() {
    let mut entries = with("tokenizer.ggml.add_eos_token", true.into());
    entries.retain(|(key, _)| *key != "tokenizer.ggml.eos_token_id");
    // The gpt2 default EOS id (11) is outside this vocabulary, so there is none.
    assert_eq!(
        tokenizer_error(entries),
        "tiny.gguf: `tokenizer.ggml.add_eos_token`: expected false when the vocabulary \
         has no such token, found true"
    );
}

#[test]
fn missing_chat_template() {
    let error = ChatTemplate::from_gguf(&gguf(without("tokenizer.chat_template"))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "tiny.gguf: missing `tokenizer.chat_template` (expected the model's Jinja chat template)"
    );
}

#[test]
fn chat_template_syntax_error_names_origin_and_line() {
    let error = ChatTemplate::from_gguf(&gguf(with(
        "tokenizer.chat_template",
        "{% for m in messages %}\n{{ m.content }\n{% endfor %}".into(),
    )))
    .unwrap_err();
    let DatasetError::TemplateSyntax { origin, message } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(origin, "tokenizer.chat_template in tiny.gguf");
    assert!(
        message.contains("syntax error") && message.contains(":2)"),
        "{message}"
    );
    assert!(
        error.to_string().starts_with(
            "chat template from tokenizer.chat_template in tiny.gguf does not parse: syntax error"
        ),
        "{error}"
    );
}

#[test]
fn raise_exception_fails_the_render_with_its_message() {
    let chat = ChatTemplate::new(
        "{{ raise_exception('System role not supported') }}",
        "model.jinja",
    )
    .unwrap();
    let error = chat.render(&[], false).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("chat template from model.jinja failed to render: invalid operation: System role not supported"),
        "{error}"
    );
}

#[test]
fn hf_directory_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let error = Tokenizer::from_hf_dir(dir.path()).unwrap_err();
    let tokenizer_json = dir.path().join("tokenizer.json");
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: ", tokenizer_json.display())),
        "{error}"
    );

    std::fs::write(&tokenizer_json, "{\"model\": 1}").unwrap();
    let error = Tokenizer::from_hf_dir(dir.path()).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!(
            "{}: not a tokenizer.json the tokenizers crate can load: ",
            tokenizer_json.display()
        )),
        "{error}"
    );

    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        "{\"bos_token\": \"<s>\"}",
    )
    .unwrap();
    let error = ChatTemplate::from_hf_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "{}: missing `chat_template` (expected the model's Jinja chat template: a string, \
             or a list with one named \"default\"; or a chat_template.jinja file beside it)",
            dir.path().join("tokenizer_config.json").display()
        )
    );
}
