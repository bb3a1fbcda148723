//! The facts `inspect` reports, gathered once from a GGUF file and rendered as
//! text or JSON.

use std::collections::BTreeMap;

use quantize::GgmlType;
use quantize::gguf::{GgufFile, Value};

/// Tensors of one ggml type: how many and how many bytes of tensor data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeCount {
    pub ggml_type: GgmlType,
    pub tensors: usize,
    pub bytes: u64,
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub architecture: Option<String>,
    pub name: Option<String>,
    pub parameters: u64,
    pub context_length: Option<u64>,
    pub tokenizer_model: Option<String>,
    pub tokenizer_pre: Option<String>,
    pub vocab_size: Option<u64>,
    pub has_chat_template: bool,
    pub types: Vec<TypeCount>,
}

impl Summary {
    pub fn of(file: &GgufFile) -> Summary {
        let text = |key: &str| file.get(key).and_then(Value::as_str).map(str::to_owned);
        let architecture = text("general.architecture");
        let arch_key = |suffix: &str| {
            architecture
                .as_deref()
                .and_then(|arch| file.get(&format!("{arch}.{suffix}")))
                .and_then(Value::as_u64)
        };
        // The token list is authoritative; `{arch}.vocab_size` is only written by some converters.
        let vocab_size = file
            .get("tokenizer.ggml.tokens")
            .and_then(Value::as_array)
            .map(|tokens| tokens.len() as u64)
            .or_else(|| arch_key("vocab_size"));

        let mut by_type: BTreeMap<GgmlType, TypeCount> = BTreeMap::new();
        for tensor in file.tensors() {
            let entry = by_type.entry(tensor.ggml_type).or_insert(TypeCount {
                ggml_type: tensor.ggml_type,
                tensors: 0,
                bytes: 0,
            });
            entry.tensors += 1;
            entry.bytes += tensor.n_bytes();
        }

        Summary {
            name: text("general.name"),
            parameters: file.tensors().iter().map(|t| t.n_elements()).sum(),
            context_length: arch_key("context_length"),
            tokenizer_model: text("tokenizer.ggml.model"),
            tokenizer_pre: text("tokenizer.ggml.pre"),
            vocab_size,
            has_chat_template: file.get("tokenizer.chat_template").is_some(),
            types: by_type.into_values().collect(),
            architecture,
        }
    }

    pub fn tensor_bytes(&self) -> u64 {
        self.types.iter().map(|t| t.bytes).sum()
    }

    pub fn tensor_count(&self) -> usize {
        self.types.iter().map(|t| t.tensors).sum()
    }
}
