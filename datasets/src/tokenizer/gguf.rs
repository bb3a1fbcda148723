//! Reading a vocabulary's `tokenizer.ggml.*` metadata out of a GGUF file.

use quantize::gguf::{Array, GgufFile, Value};

use super::special::SpecialTokens;
use super::vocab::VocabConfig;
use crate::error::{DatasetError, Result};

/// The GGUF metadata of one file, read with the error messages the crate wants.
pub(crate) struct Metadata<'a> {
    file: &'a GgufFile,
    origin: String,
}

impl<'a> Metadata<'a> {
    pub(crate) fn new(file: &'a GgufFile) -> Self {
        Self {
            file,
            origin: file.path().display().to_string(),
        }
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    fn invalid(&self, key: &'static str, expected: &str, found: &Value) -> DatasetError {
        let found = match found {
            Value::Array(array) => format!("an array of {}", array.element_type()),
            other => format!("a value of type {}", other.value_type()),
        };
        DatasetError::InvalidKey {
            origin: self.origin.clone(),
            key,
            expected: expected.to_owned(),
            found,
        }
    }

    pub(crate) fn string(&self, key: &'static str) -> Result<Option<&'a str>> {
        self.file
            .get(key)
            .map(|value| {
                value
                    .as_str()
                    .ok_or_else(|| self.invalid(key, "a string", value))
            })
            .transpose()
    }

    fn bool(&self, key: &'static str) -> Result<Option<bool>> {
        self.file
            .get(key)
            .map(|value| {
                value
                    .as_bool()
                    .ok_or_else(|| self.invalid(key, "a bool", value))
            })
            .transpose()
    }

    /// A token id: any non-negative integer that fits a u32.
    pub(crate) fn token_id(&self, key: &'static str) -> Result<Option<u32>> {
        self.file
            .get(key)
            .map(|value| {
                value
                    .as_u64()
                    .and_then(|id| u32::try_from(id).ok())
                    .ok_or_else(|| self.invalid(key, "a token id (u32)", value))
            })
            .transpose()
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.file.get(key)
    }

    pub(crate) fn strings(&self, key: &'static str) -> Result<Option<&'a [String]>> {
        match self.file.get(key) {
            None => Ok(None),
            Some(Value::Array(Array::String(strings))) => Ok(Some(strings)),
            Some(value) => Err(self.invalid(key, "an array of strings", value)),
        }
    }
}

impl VocabConfig {
    /// The vocabulary metadata of a GGUF file, as llama.cpp reads it.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let meta = Metadata::new(file);
        let model =
            meta.string("tokenizer.ggml.model")?
                .ok_or_else(|| DatasetError::MissingKey {
                    origin: meta.origin().to_owned(),
                    key: "tokenizer.ggml.model",
                    expected: "the tokenizer kind, \"gpt2\" or \"llama\"",
                })?;
        let tokens =
            meta.strings("tokenizer.ggml.tokens")?
                .ok_or_else(|| DatasetError::MissingKey {
                    origin: meta.origin().to_owned(),
                    key: "tokenizer.ggml.tokens",
                    expected: "the array of token strings",
                })?;
        let token_types = match meta.get("tokenizer.ggml.token_type") {
            None => None,
            Some(Value::Array(Array::I32(types))) => Some(types.clone()),
            Some(value) => {
                return Err(meta.invalid("tokenizer.ggml.token_type", "an array of i32", value));
            }
        };
        let scores = match meta.get("tokenizer.ggml.scores") {
            None => None,
            Some(Value::Array(Array::F32(scores))) => Some(scores.clone()),
            // llama.cpp also accepts integer scores.
            Some(Value::Array(Array::I32(scores))) => {
                Some(scores.iter().map(|&score| score as f32).collect())
            }
            Some(value) => {
                return Err(meta.invalid("tokenizer.ggml.scores", "an array of f32 or i32", value));
            }
        };
        let id = |key| meta.token_id(key);
        let special = SpecialTokens {
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            eot: id("tokenizer.ggml.eot_token_id")?,
            eom: id("tokenizer.ggml.eom_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            sep: id("tokenizer.ggml.seperator_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            mask: id("tokenizer.ggml.mask_token_id")?,
            // The deprecated keys are read last in llama.cpp, so they win.
            fim_pre: id("tokenizer.ggml.prefix_token_id")?
                .or(id("tokenizer.ggml.fim_pre_token_id")?),
            fim_suf: id("tokenizer.ggml.suffix_token_id")?
                .or(id("tokenizer.ggml.fim_suf_token_id")?),
            fim_mid: id("tokenizer.ggml.middle_token_id")?
                .or(id("tokenizer.ggml.fim_mid_token_id")?),
            fim_pad: id("tokenizer.ggml.fim_pad_token_id")?,
            fim_rep: id("tokenizer.ggml.fim_rep_token_id")?,
            fim_sep: id("tokenizer.ggml.fim_sep_token_id")?,
        };
        Ok(Self {
            origin: meta.origin().to_owned(),
            model: model.to_owned(),
            pre: meta.string("tokenizer.ggml.pre")?.map(str::to_owned),
            tokens: tokens.to_vec(),
            token_types,
            scores,
            merges: meta
                .strings("tokenizer.ggml.merges")?
                .map(<[String]>::to_vec),
            special,
            add_bos: meta.bool("tokenizer.ggml.add_bos_token")?,
            add_eos: meta.bool("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: meta.bool("tokenizer.ggml.add_space_prefix")?,
        })
    }
}
