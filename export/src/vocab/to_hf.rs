//! A vocabulary as a Hugging Face directory's tokenizer files: `tokenizer.json`
//! (the source's, copied, or built from GGUF metadata with the layout the
//! family's own files have), `tokenizer_config.json` with the chat template,
//! and `special_tokens_map.json`.

use serde_json::{Map, Value, json};

use super::pre::layout;
use super::{Vocabulary, token_type};
use crate::error::ExportError;

/// The three files, as JSON text.
pub struct HfTokenizerFiles {
    pub tokenizer: String,
    pub tokenizer_config: String,
    pub special_tokens_map: String,
}

impl Vocabulary {
    pub fn hf_files(&self, max_length: usize) -> Result<HfTokenizerFiles, ExportError> {
        let tokenizer = match &self.hf_dir {
            Some(dir) => {
                let path = dir.join("tokenizer.json");
                std::fs::read_to_string(&path).map_err(|e| ExportError::io(path, e))?
            }
            None => to_json(&self.tokenizer_json()?),
        };
        Ok(HfTokenizerFiles {
            tokenizer,
            tokenizer_config: to_json(&self.tokenizer_config(max_length)),
            special_tokens_map: to_json(&self.special_tokens_map()),
        })
    }

    fn tokenizer_json(&self) -> Result<Value, ExportError> {
        if self.model != "gpt2" {
            return Err(ExportError::Unsupported {
                what: format!("the {} tokenizer of {}", self.model, self.origin),
                reason: "decant writes tokenizer.json for byte-level BPE (tokenizer.ggml.model gpt2) only".into(),
            });
        }
        let pre = self.pre.as_deref().unwrap_or_default();
        let layout = layout(pre).ok_or_else(|| ExportError::UnsupportedPre {
            origin: self.origin.clone(),
            pre: pre.to_owned(),
        })?;
        let added: Vec<Value> = self
            .tokens
            .iter()
            .zip(&self.token_types)
            .enumerate()
            .filter(|(_, (_, kind))| **kind == token_type::CONTROL || **kind == token_type::USER_DEFINED)
            .map(|(id, (token, &kind))| {
                json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": kind != token_type::CONTROL,
                       "special": kind == token_type::CONTROL})
            })
            .collect();
        let vocab: Map<String, Value> = self
            .tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), Value::from(id)))
            .collect();
        let post_processor = match (layout.bos_template, self.token(self.special.bos)) {
            (true, Some(bos)) => {
                let bos_id = self.special.bos.expect("a BOS text has an id");
                json!({"type": "Sequence", "processors": [
                    layout.post_processor,
                    {"type": "TemplateProcessing",
                     "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                                {"Sequence": {"id": "A", "type_id": 0}}],
                     "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                              {"Sequence": {"id": "A", "type_id": 0}},
                              {"SpecialToken": {"id": bos, "type_id": 1}},
                              {"Sequence": {"id": "B", "type_id": 1}}],
                     "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}
                ]})
            }
            _ => layout.post_processor,
        };
        Ok(json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": layout.normalizer,
            "pre_tokenizer": layout.pre_tokenizer,
            "post_processor": post_processor,
            "decoder": layout.decoder,
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null,
                "fuse_unk": false, "byte_fallback": false, "ignore_merges": layout.ignore_merges,
                "vocab": vocab, "merges": self.merges,
            },
        }))
    }

    fn tokenizer_config(&self, max_length: usize) -> Value {
        let decoder: Map<String, Value> = self
            .tokens
            .iter()
            .zip(&self.token_types)
            .enumerate()
            .filter(|(_, (_, kind))| **kind == token_type::CONTROL || **kind == token_type::USER_DEFINED)
            .map(|(id, (token, &kind))| {
                let entry = json!({"content": token, "lstrip": false, "normalized": kind != token_type::CONTROL,
                                   "rstrip": false, "single_word": false,
                                   "special": kind == token_type::CONTROL});
                (id.to_string(), entry)
            })
            .collect();
        let mut config = json!({
            "add_bos_token": self.add_bos,
            "add_eos_token": self.add_eos,
            "added_tokens_decoder": decoder,
            "clean_up_tokenization_spaces": false,
            "model_max_length": max_length,
            "tokenizer_class": "PreTrainedTokenizerFast",
        });
        for (key, token) in self.role_texts() {
            config[key] = Value::from(token);
        }
        if let Some(template) = &self.chat_template {
            config["chat_template"] = Value::from(template.as_str());
        }
        config
    }

    fn special_tokens_map(&self) -> Value {
        let roles: Map<String, Value> = self
            .role_texts()
            .into_iter()
            .map(|(key, token)| {
                (key.to_owned(), json!({"content": token, "lstrip": false, "normalized": false,
                                        "rstrip": false, "single_word": false}))
            })
            .collect();
        Value::Object(roles)
    }

    /// transformers' names for the roles and their token texts.
    fn role_texts(&self) -> Vec<(&'static str, &str)> {
        [
            ("bos_token", self.special.bos),
            ("eos_token", self.special.eos),
            ("unk_token", self.special.unk),
            ("sep_token", self.special.sep),
            ("pad_token", self.special.pad),
        ]
        .into_iter()
        .filter_map(|(key, id)| Some((key, self.token(id)?)))
        .collect()
    }
}

fn to_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON values always serialize")
}
