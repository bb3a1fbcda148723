//! The tokenizer an export carries, in GGUF's terms (llama.cpp's `tokenizer.ggml.*`
//! keys): read from a GGUF source as it is, or converted from a Hugging Face
//! `tokenizer.json` as llama.cpp's `convert_hf_to_gguf.py` converts it; and
//! turned back into a `tokenizer.json` for Hugging Face exports.

mod from_hf;
mod pre;
mod to_hf;

use std::path::PathBuf;

use datasets::VocabConfig;
use quantize::gguf::{GgufFile, Value};

pub use pre::{CHECK_TEXT, pre_tokenizer_of_hash};
pub use to_hf::HfTokenizerFiles;

use crate::error::ExportError;

/// gguf-py's `TokenType`.
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
}

/// Ids of the tokens with a role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Vocabulary {
    /// The file or directory it came from, for errors.
    pub origin: String,
    /// `tokenizer.ggml.model`: `gpt2` for byte-level BPE.
    pub model: String,
    /// `tokenizer.ggml.pre`, the pre-tokenizer llama.cpp applies; `None` for a
    /// `tokenizer.json` whose pre-tokenizer llama.cpp does not know.
    pub pre: Option<String>,
    /// The hash that identified (or failed to identify) a `tokenizer.json`'s
    /// pre-tokenizer.
    pub pre_hash: Option<String>,
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    /// `"left right"` pairs, highest priority first.
    pub merges: Vec<String>,
    pub special: SpecialIds,
    pub add_bos: bool,
    pub add_eos: bool,
    pub chat_template: Option<String>,
    /// A GGUF source's `tokenizer.*` entries, written back unchanged.
    carried: Vec<(String, Value)>,
    /// A Hugging Face source's directory, whose `tokenizer.json` is copied.
    hf_dir: Option<PathBuf>,
}

impl Vocabulary {
    /// The vocabulary of a GGUF model; its `tokenizer.*` metadata is carried into
    /// GGUF exports as it is.
    pub fn from_gguf(file: &GgufFile) -> Result<Vocabulary, ExportError> {
        let origin = file.path().display().to_string();
        let config = VocabConfig::from_gguf(file)
            .map_err(|e| ExportError::tokenizer(&origin, e.to_string()))?;
        let string = |key: &str| file.get(key).and_then(Value::as_str).map(str::to_owned);
        let n = config.tokens.len();
        Ok(Vocabulary {
            model: config.model,
            pre: Some(config.pre.unwrap_or_else(|| "default".into())),
            pre_hash: None,
            token_types: config.token_types.unwrap_or_else(|| vec![token_type::NORMAL; n]),
            tokens: config.tokens,
            merges: config.merges.unwrap_or_default(),
            special: SpecialIds {
                bos: config.special.bos,
                eos: config.special.eos,
                eot: config.special.eot,
                unk: config.special.unk,
                sep: config.special.sep,
                pad: config.special.pad,
            },
            add_bos: config.add_bos.unwrap_or(false),
            add_eos: config.add_eos.unwrap_or(false),
            chat_template: string("tokenizer.chat_template"),
            carried: file
                .metadata()
                .iter()
                .filter(|(key, _)| key.starts_with("tokenizer."))
                .cloned()
                .collect(),
            hf_dir: None,
            origin,
        })
    }

    /// The `tokenizer.*` entries of a GGUF export: a GGUF source's own, else
    /// those llama.cpp's converter writes, in its order.
    pub fn gguf_entries(&self) -> Result<Vec<(String, Value)>, ExportError> {
        if !self.carried.is_empty() {
            return Ok(self.carried.clone());
        }
        let Some(pre) = &self.pre else {
            return Err(ExportError::UnknownPreTokenizer {
                origin: self.origin.clone(),
                hash: self.pre_hash.clone().unwrap_or_default(),
            });
        };
        let mut kv: Vec<(String, Value)> = vec![
            ("tokenizer.ggml.model".into(), self.model.as_str().into()),
            ("tokenizer.ggml.pre".into(), pre.as_str().into()),
            ("tokenizer.ggml.tokens".into(), Value::from(self.tokens.clone())),
            ("tokenizer.ggml.token_type".into(), Value::from(self.token_types.clone())),
        ];
        if !self.merges.is_empty() {
            kv.push(("tokenizer.ggml.merges".into(), Value::from(self.merges.clone())));
        }
        let ids = [
            ("tokenizer.ggml.bos_token_id", self.special.bos),
            ("tokenizer.ggml.eos_token_id", self.special.eos),
            ("tokenizer.ggml.unknown_token_id", self.special.unk),
            // gguf-py's spelling, which llama.cpp reads.
            ("tokenizer.ggml.seperator_token_id", self.special.sep),
            ("tokenizer.ggml.padding_token_id", self.special.pad),
            ("tokenizer.ggml.eot_token_id", self.special.eot),
        ];
        kv.extend(ids.into_iter().filter_map(|(k, id)| Some((k.to_owned(), Value::U32(id?)))));
        kv.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(self.add_bos)));
        kv.push(("tokenizer.ggml.add_eos_token".into(), Value::Bool(self.add_eos)));
        if let Some(template) = &self.chat_template {
            kv.push(("tokenizer.chat_template".into(), template.as_str().into()));
        }
        Ok(kv)
    }

    pub fn token(&self, id: Option<u32>) -> Option<&str> {
        self.tokens.get(id? as usize).map(String::as_str)
    }
}
