//! The `--json` form of `inspect`: every metadata key (long arrays summarised)
//! and every tensor, for scripts.

use quantize::gguf::{GgufFile, Value};
use serde_json::{Map, Value as Json, json};

use super::Summary;

/// Arrays longer than this are reported by type, length and their first items:
/// a 49k-entry token list would drown the report.
const ARRAY_PREVIEW: usize = 8;

pub fn render_json(file: &GgufFile, summary: &Summary) -> Json {
    let metadata: Map<String, Json> = file
        .metadata()
        .iter()
        .map(|(key, value)| (key.clone(), value_json(value)))
        .collect();
    let tensors: Vec<Json> = file
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ggml_type.name(),
                "shape": t.shape,
                "offset": t.offset,
                "bytes": t.n_bytes(),
            })
        })
        .collect();
    let types: Vec<Json> = summary
        .types
        .iter()
        .map(|t| json!({"type": t.ggml_type.name(), "tensors": t.tensors, "bytes": t.bytes}))
        .collect();
    json!({
        "path": file.path(),
        "format": "gguf",
        "version": file.version(),
        "alignment": file.alignment(),
        "data_offset": file.data_offset(),
        "name": summary.name,
        "architecture": summary.architecture,
        "parameters": summary.parameters,
        "context_length": summary.context_length,
        "tokenizer": {
            "model": summary.tokenizer_model,
            "pre": summary.tokenizer_pre,
            "vocab_size": summary.vocab_size,
        },
        "chat_template": summary.has_chat_template,
        "tensor_count": summary.tensor_count(),
        "tensor_bytes": summary.tensor_bytes(),
        "types": types,
        "metadata": metadata,
        "tensors": tensors,
    })
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::U8(v) => json!(v),
        Value::I8(v) => json!(v),
        Value::U16(v) => json!(v),
        Value::I16(v) => json!(v),
        Value::U32(v) => json!(v),
        Value::I32(v) => json!(v),
        Value::U64(v) => json!(v),
        Value::I64(v) => json!(v),
        Value::F32(v) => json!(v),
        Value::F64(v) => json!(v),
        Value::Bool(v) => json!(v),
        Value::String(v) => json!(v),
        Value::Array(array) => {
            let items = array.items();
            if items.len() <= ARRAY_PREVIEW {
                Json::Array(items.iter().map(value_json).collect())
            } else {
                json!({
                    "array_of": array.element_type().name(),
                    "len": items.len(),
                    "head": items[..ARRAY_PREVIEW].iter().map(value_json).collect::<Vec<_>>(),
                })
            }
        }
    }
}
