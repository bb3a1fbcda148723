//! A Hugging Face model directory's tokenizer: `tokenizer.json` run by the
//! `tokenizers` crate itself, so ids match Python's `tokenizers` by construction,
//! with the special tokens `tokenizer_config.json` and `generation_config.json` name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use super::special::{EOT_TEXTS, SpecialTokens};
use crate::caught::caught;
use crate::error::{DatasetError, Result};

pub(super) struct HfTokenizer {
    path: PathBuf,
    tokenizer: tokenizers::Tokenizer,
    /// A copy that reads special tokens in the input as plain text, made on
    /// first use (`tokenizers` keeps that switch on the tokenizer itself).
    literal: OnceLock<tokenizers::Tokenizer>,
    special: SpecialTokens,
    eog: BTreeSet<u32>,
}

impl HfTokenizer {
    pub(super) fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let text = std::fs::read_to_string(&path).map_err(|source| DatasetError::Io {
            path: path.clone(),
            source,
        })?;
        let tokenizer = load(&path, text)?;

        let config = read_json(&dir.join("tokenizer_config.json"))?;
        let id_of = |name: &str| {
            config
                .as_ref()
                .and_then(|config| token_content(config.get(name)?))
                .and_then(|text| tokenizer.token_to_id(text))
        };
        let mut special = SpecialTokens {
            bos: id_of("bos_token"),
            eos: id_of("eos_token"),
            unk: id_of("unk_token"),
            sep: id_of("sep_token"),
            pad: id_of("pad_token"),
            mask: id_of("mask_token"),
            ..SpecialTokens::default()
        };
        special.eot = EOT_TEXTS
            .iter()
            .find_map(|text| tokenizer.token_to_id(text));

        let mut eog: BTreeSet<u32> = [special.eos, special.eot].into_iter().flatten().collect();
        if let Some(generation) = read_json(&dir.join("generation_config.json"))? {
            match generation.get("eos_token_id") {
                Some(Value::Array(ids)) => eog.extend(ids.iter().filter_map(token_id)),
                Some(id) => eog.extend(token_id(id)),
                None => {}
            }
        }
        Ok(Self {
            path,
            tokenizer,
            literal: OnceLock::new(),
            special,
            eog,
        })
    }

    fn error(&self, action: &str, error: &tokenizers::Error) -> DatasetError {
        DatasetError::HfTokenizer {
            path: self.path.clone(),
            message: format!("{action} failed: {error}"),
        }
    }

    pub(super) fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>> {
        let tokenizer = if parse_special {
            &self.tokenizer
        } else {
            self.literal.get_or_init(|| {
                let mut literal = self.tokenizer.clone();
                literal.set_encode_special_tokens(true);
                literal
            })
        };
        let encoding = tokenizer
            .encode(text, add_special)
            .map_err(|error| self.error("encoding", &error))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub(super) fn decode(&self, ids: &[u32], special: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, !special)
            .map_err(|error| self.error("decoding", &error))
    }

    pub(super) fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    pub(super) fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    pub(super) fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    pub(super) fn token_id(&self, text: &str) -> Option<u32> {
        self.tokenizer.token_to_id(text)
    }
}

/// `tokenizers` panics on some malformed files instead of failing: an `expect`
/// on a decoder whose JSON does not parse, another on a `Precompiled`
/// normalizer of the wrong shape. Checking the syntax first words the common
/// case as a JSON error with its line; a panic left is the file's error.
fn load(path: &Path, text: String) -> Result<tokenizers::Tokenizer> {
    let unloadable = |message: String| DatasetError::HfTokenizer {
        path: path.to_owned(),
        message: format!("not a tokenizer.json the tokenizers crate can load: {message}"),
    };
    if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        return Err(unloadable(format!("not valid JSON: {error}")));
    }
    match caught(|| tokenizers::Tokenizer::from_bytes(text)) {
        Ok(loaded) => loaded.map_err(|error| unloadable(error.to_string())),
        Err(panic) => Err(unloadable(format!("it panicked: {panic}"))),
    }
}

/// A JSON file of the model directory, `None` when the directory has none.
pub(crate) fn read_json(path: &Path) -> Result<Option<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DatasetError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| DatasetError::HfTokenizer {
            path: path.to_owned(),
            message: format!("not valid JSON: {error}"),
        })
}

/// A special token as `tokenizer_config.json` writes it: a string, or an
/// added-token object with its text under `content`.
pub(crate) fn token_content(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) => Some(text),
        Value::Object(token) => token.get("content")?.as_str(),
        _ => None,
    }
}

fn token_id(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|id| u32::try_from(id).ok())
}
