//! A Hugging Face directory's tokenizer in GGUF's terms, as llama.cpp's
//! `convert_hf_to_gguf.py` converts a byte-level BPE one (`_set_vocab_gpt2`):
//! one token per id up to the model's vocabulary size (`[PADn]` for ids the
//! tokenizer lacks), added tokens as control or user-defined ones, the merges,
//! the pre-tokenizer recognised by its hash, and the special tokens and chat
//! template from `tokenizer_config.json` (and `config.json` for missing ids).

use std::collections::HashMap;
use std::path::Path;

use datasets::{EncodeOptions, Tokenizer};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::pre::{CHECK_TEXT, pre_tokenizer_of_hash, python_list};
use super::{SpecialIds, Vocabulary, token_type};
use crate::error::ExportError;

impl Vocabulary {
    /// Converts `dir/tokenizer.json` for a model of `vocab_size` token ids.
    pub fn from_hf_dir(dir: &Path, vocab_size: usize) -> Result<Vocabulary, ExportError> {
        let path = dir.join("tokenizer.json");
        let origin = path.display().to_string();
        let json = read_json(&path)?.ok_or_else(|| {
            ExportError::tokenizer(&origin, "missing: a Hugging Face export source needs its tokenizer.json")
        })?;
        let bad = |message: String| ExportError::tokenizer(&origin, message);
        let model = &json["model"];
        if model["type"] != "BPE" {
            return Err(bad(format!(
                "model.type is {}; decant converts byte-level BPE tokenizers (\"BPE\") only",
                model["type"]
            )));
        }
        let vocab = model["vocab"]
            .as_object()
            .ok_or_else(|| bad("model.vocab is not an object of token → id".into()))?;
        let mut by_id: HashMap<usize, (String, Option<AddedToken>)> = HashMap::new();
        for (token, id) in vocab {
            let id = id_of(id).ok_or_else(|| bad(format!("model.vocab[{token:?}] is not a token id")))?;
            by_id.insert(id, (token.clone(), None));
        }
        for (i, entry) in json["added_tokens"].as_array().into_iter().flatten().enumerate() {
            let (Some(id), Some(content)) = (id_of(&entry["id"]), entry["content"].as_str()) else {
                return Err(bad(format!("added_tokens[{i}] lacks an integer id or a content string")));
            };
            let added = AddedToken { special: entry["special"].as_bool().unwrap_or(false) };
            by_id.insert(id, (content.to_owned(), Some(added)));
        }
        if let Some(max) = by_id.keys().max()
            && *max >= vocab_size
        {
            return Err(bad(format!(
                "token id {max} is outside the model's vocabulary of {vocab_size} (config.json vocab_size)"
            )));
        }

        let mut tokens = Vec::with_capacity(vocab_size);
        let mut token_types = Vec::with_capacity(vocab_size);
        for id in 0..vocab_size {
            let (token, kind) = match by_id.remove(&id) {
                None => (format!("[PAD{id}]"), token_type::UNUSED),
                Some((token, None)) => (token, token_type::NORMAL),
                Some((token, Some(added))) if added.special || looks_special(&token) => {
                    (token, token_type::CONTROL)
                }
                // The converter's pre-normalization of user-defined spaces.
                Some((token, Some(_))) => (token.replace('\u{2581}', " "), token_type::USER_DEFINED),
            };
            tokens.push(token);
            token_types.push(kind);
        }

        let merges = model["merges"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, merge)| match merge {
                Value::String(pair) => Ok(pair.clone()),
                Value::Array(pair) => match pair.as_slice() {
                    [Value::String(a), Value::String(b)] => Ok(format!("{a} {b}")),
                    _ => Err(bad(format!("model.merges[{i}] is not a pair of strings"))),
                },
                _ => Err(bad(format!("model.merges[{i}] is neither \"a b\" nor [a, b]"))),
            })
            .collect::<Result<Vec<_>, _>>()?;

        let tokenizer = Tokenizer::from_hf_dir(dir).map_err(|e| bad(e.to_string()))?;
        let pre_hash = check_text_hash(&tokenizer, &origin)?;

        let tokenizer_config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let model_config = read_json(&dir.join("config.json"))?.unwrap_or(Value::Null);
        let found = tokenizer.special_tokens();
        let config_id = |key: &str| model_config[key].as_u64().and_then(|v| u32::try_from(v).ok());
        let special = SpecialIds {
            bos: found.bos.or_else(|| config_id("bos_token_id")),
            eos: found.eos.or_else(|| config_id("eos_token_id")),
            eot: found.eot,
            unk: found.unk,
            sep: found.sep,
            pad: found.pad.or_else(|| config_id("pad_token_id")),
        };
        let add_bos = tokenizer_config["add_bos_token"]
            .as_bool()
            .unwrap_or_else(|| post_processor_adds_bos(&json, special.bos.and_then(|id| tokens.get(id as usize))));
        let add_eos = tokenizer_config["add_eos_token"].as_bool().unwrap_or(false);

        Ok(Vocabulary {
            model: "gpt2".into(),
            pre: pre_tokenizer_of_hash(&pre_hash).map(str::to_owned),
            pre_hash: Some(pre_hash),
            tokens,
            token_types,
            merges,
            special,
            add_bos,
            add_eos,
            chat_template: chat_template(dir, &tokenizer_config)?,
            carried: Vec::new(),
            hf_dir: Some(dir.to_owned()),
            origin,
        })
    }
}

struct AddedToken {
    special: bool,
}

fn id_of(value: &Value) -> Option<usize> {
    value.as_u64().and_then(|v| usize::try_from(v).ok())
}

/// The converter's `does_token_look_special`.
fn looks_special(token: &str) -> bool {
    matches!(token, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (token.starts_with("<|") && token.ends_with("|>"))
        || (token.starts_with("<\u{ff5c}") && token.ends_with("\u{ff5c}>"))
        || (token.starts_with("<unused") && token.ends_with('>'))
}

/// `get_vocab_base_pre`'s hash: of the ids of the check text with special
/// tokens added, as `AutoTokenizer.encode` gives them.
fn check_text_hash(tokenizer: &Tokenizer, origin: &str) -> Result<String, ExportError> {
    let options = EncodeOptions { add_special: true, parse_special: true };
    let ids = tokenizer
        .encode(CHECK_TEXT, options)
        .map_err(|e| ExportError::tokenizer(origin, e.to_string()))?;
    Ok(Sha256::digest(python_list(&ids).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Whether a `TemplateProcessing` post-processor starts single texts with BOS.
fn post_processor_adds_bos(json: &Value, bos: Option<&String>) -> bool {
    let Some(bos) = bos else { return false };
    let processors: Vec<&Value> = match json["post_processor"]["type"].as_str() {
        Some("Sequence") => json["post_processor"]["processors"].as_array().into_iter().flatten().collect(),
        _ => vec![&json["post_processor"]],
    };
    processors.iter().any(|p| {
        p["type"] == "TemplateProcessing" && p["single"][0]["SpecialToken"]["id"].as_str() == Some(bos)
    })
}

/// `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template` (a
/// string, or the entry named `default` of a list), as transformers reads it.
fn chat_template(dir: &Path, tokenizer_config: &Value) -> Result<Option<String>, ExportError> {
    let jinja = dir.join("chat_template.jinja");
    match std::fs::read_to_string(&jinja) {
        Ok(text) => return Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ExportError::io(jinja, e)),
    }
    Ok(match &tokenizer_config["chat_template"] {
        Value::String(text) => Some(text.clone()),
        Value::Array(named) => named
            .iter()
            .find(|entry| entry["name"] == "default")
            .and_then(|entry| entry["template"].as_str().map(str::to_owned)),
        _ => None,
    })
}

pub(crate) fn read_json(path: &Path) -> Result<Option<Value>, ExportError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|source| ExportError::Json {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ExportError::io(path, e)),
    }
}
