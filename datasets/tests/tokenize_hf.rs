//! Tokenization of Hugging Face model directories against Python's `tokenizers`
//! (goldens made by tools/goldens/tokenize_hf_tokenizers.py), and the special
//! tokens and chat template read from the directory's JSON files.

mod common;

use std::path::Path;

use datasets::{ChatTemplate, EncodeOptions, Message, Role, Tokenizer, VocabConfig};
use quantize::gguf::GgufFile;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Golden {
    skeleton: Value,
    control_token_type: i32,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    ids_parse_special: Vec<u32>,
    decoded: String,
    decoded_special: String,
}

fn golden() -> Golden {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/goldens/tokenize_hf_tokenizers.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + \
                      message['content'] + '<|im_end|>\n' }}{% endfor %}\
                      {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The reference teacher as a Hugging Face tokenizer directory: the golden's
/// tokenizer.json skeleton filled with the GGUF's vocabulary, merges and
/// control tokens, and the config files a real directory has.
fn write_model_dir(dir: &Path, golden: &Golden) {
    let file = GgufFile::open(common::reference_model()).unwrap();
    let vocab = VocabConfig::from_gguf(&file).unwrap();
    let types = vocab.token_types.as_ref().unwrap();
    let added: Vec<Value> = vocab
        .tokens
        .iter()
        .zip(types)
        .enumerate()
        .filter(|(_, (_, kind))| **kind == golden.control_token_type)
        .map(|(id, (token, _))| {
            json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let mut tokenizer = golden.skeleton.clone();
    tokenizer["added_tokens"] = Value::from(added);
    let ids: serde_json::Map<String, Value> = vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), Value::from(id)))
        .collect();
    tokenizer["model"]["vocab"] = Value::Object(ids);
    tokenizer["model"]["merges"] = Value::from(vocab.merges.clone().unwrap());

    let write = |name: &str, value: &Value| {
        std::fs::write(dir.join(name), serde_json::to_string(value).unwrap()).unwrap();
    };
    write("tokenizer.json", &tokenizer);
    write(
        "tokenizer_config.json",
        &json!({
            "bos_token": "<|im_start|>",
            "eos_token": {"content": "<|im_end|>", "special": true},
            "pad_token": "<|im_end|>",
            "unk_token": "<|endoftext|>",
            "chat_template": CHATML,
        }),
    );
    write("generation_config.json", &json!({"eos_token_id": [2, 0]}));
}

#[test]
fn hf_directory_tokenizes_as_python_tokenizers() {
    let golden = golden();
    let dir = tempfile::tempdir().unwrap();
    write_model_dir(dir.path(), &golden);
    let tokenizer = Tokenizer::from_hf_dir(dir.path()).unwrap();

    assert_eq!(tokenizer.vocab_size(), 49152);
    let special = tokenizer.special_tokens();
    assert_eq!(
        (
            special.bos,
            special.eos,
            special.eot,
            special.pad,
            special.unk
        ),
        (Some(1), Some(2), Some(2), Some(2), Some(0))
    );
    let eog: Vec<u32> = (0..49152).filter(|&id| tokenizer.is_eog(id)).collect();
    assert_eq!(eog, [0, 2]);

    let plain = EncodeOptions::default();
    let parse_special = EncodeOptions {
        add_special: false,
        parse_special: true,
    };
    for case in &golden.cases {
        assert_eq!(
            tokenizer.encode(&case.text, plain).unwrap(),
            case.ids,
            "{:?}",
            case.text
        );
        let ids = tokenizer.encode(&case.text, parse_special).unwrap();
        assert_eq!(ids, case.ids_parse_special, "{:?}", case.text);
        assert_eq!(
            tokenizer.decode(&ids, false).unwrap(),
            case.decoded,
            "{:?}",
            case.text
        );
        assert_eq!(
            tokenizer.decode(&ids, true).unwrap(),
            case.decoded_special,
            "{:?}",
            case.text
        );
    }
    println!(
        "{} texts identical to Python tokenizers",
        golden.cases.len()
    );
}

#[test]
fn hf_directory_chat_template() {
    let dir = tempfile::tempdir().unwrap();
    write_model_dir(dir.path(), &golden());
    let messages = [Message::new(Role::User, "Hi")];

    let chat = ChatTemplate::from_hf_dir(dir.path()).unwrap();
    assert_eq!(
        chat.render(&messages, true).unwrap(),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );

    // A chat_template.jinja file takes precedence, as in transformers.
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "{{ bos_token }}|{{ eos_token }}|{{ messages | length }}",
    )
    .unwrap();
    let chat = ChatTemplate::from_hf_dir(dir.path()).unwrap();
    assert_eq!(
        chat.render(&messages, false).unwrap(),
        "<|im_start|>|<|im_end|>|1"
    );
}
