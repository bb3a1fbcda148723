//! The few model hyperparameters the mix rules read, from GGUF metadata.

use crate::gguf::{Array, GgufFile, Value};

use super::error::MixError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelParams {
    /// `general.architecture`, e.g. `llama`.
    pub arch: String,
    /// `{arch}.block_count`, which llama.cpp also uses as the number of `ffn_down`
    /// tensors when spreading extra bits over the layers.
    pub n_layer: u32,
    /// Attention heads of the first layer (`{arch}.attention.head_count`).
    pub n_head: u32,
    /// KV heads of the first layer; `n_head` when the key is absent.
    pub n_head_kv: u32,
    /// `{arch}.expert_count`, 0 for dense models.
    pub n_expert: u32,
}

impl ModelParams {
    pub fn from_gguf(file: &GgufFile) -> Result<ModelParams, MixError> {
        let missing = |key: &str| MixError::MissingKey {
            path: file.path().to_owned(),
            key: key.to_owned(),
        };
        let arch = file
            .get("general.architecture")
            .and_then(Value::as_str)
            .ok_or_else(|| missing("general.architecture"))?
            .to_owned();
        let key = |name: &str| format!("{arch}.{name}");
        let n_layer =
            first_u32(file, &key("block_count")).ok_or_else(|| missing(&key("block_count")))?;
        let n_head = first_u32(file, &key("attention.head_count")).unwrap_or(0);
        let n_head_kv = first_u32(file, &key("attention.head_count_kv")).unwrap_or(n_head);
        let n_expert = first_u32(file, &key("expert_count")).unwrap_or(0);
        Ok(ModelParams {
            arch,
            n_layer,
            n_head,
            n_head_kv,
            n_expert,
        })
    }

    /// Query heads per KV head (`hparams.n_gqa()`), 0 without KV heads.
    pub fn n_gqa(&self) -> u32 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    /// Whether llama.cpp classifies the model as a 70B, whose `attn_v` gets more
    /// bits. Its loader decides per architecture; like llama.cpp's own
    /// `llama_quant_model_from_metadata`, only the Llama rule (80 layers and GQA) is
    /// applied here.
    pub fn is_70b(&self) -> bool {
        self.arch == "llama" && self.n_layer == 80 && self.n_head != self.n_head_kv
    }

    pub fn is_falcon(&self) -> bool {
        self.arch == "falcon"
    }
}

/// A u32 key, or the first element of a per-layer array (llama.cpp reads either).
fn first_u32(file: &GgufFile, key: &str) -> Option<u32> {
    let value = match file.get(key)? {
        Value::Array(array) => first_element(array)?,
        scalar => scalar.as_u64()?,
    };
    u32::try_from(value).ok()
}

fn first_element(array: &Array) -> Option<u64> {
    match array {
        Array::U32(v) => v.first().map(|&x| x.into()),
        Array::I32(v) => v.first().and_then(|&x| u64::try_from(x).ok()),
        Array::U64(v) => v.first().copied(),
        Array::I64(v) => v.first().and_then(|&x| u64::try_from(x).ok()),
        _ => None,
    }
}
