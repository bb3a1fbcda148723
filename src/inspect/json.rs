//! The `--json` form of `inspect`: every metadata key (long arrays summarised)
//! and every tensor, for scripts.

use quantize::gguf::{Array, GgufFile, Value};
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
        Value::F32(v) => f32_json(*v),
        Value::F64(v) => json!(v),
        Value::Bool(v) => json!(v),
        Value::String(v) => json!(v),
        Value::Array(array) => array_json(array),
    }
}

fn array_json(array: &Array) -> Json {
    let items = array_items(array);
    if items.len() <= ARRAY_PREVIEW {
        Json::Array(items)
    } else {
        json!({
            "array_of": array.element_type().name(),
            "len": array.len(),
            "head": items[..ARRAY_PREVIEW],
        })
    }
}

/// At most `ARRAY_PREVIEW + 1` items: enough to render the array whole or know it is long.
fn array_items(array: &Array) -> Vec<Json> {
    fn take<T>(items: &[T], f: impl Fn(&T) -> Json) -> Vec<Json> {
        items.iter().take(ARRAY_PREVIEW + 1).map(f).collect()
    }
    match array {
        Array::U8(v) => take(v, |x| json!(x)),
        Array::I8(v) => take(v, |x| json!(x)),
        Array::U16(v) => take(v, |x| json!(x)),
        Array::I16(v) => take(v, |x| json!(x)),
        Array::U32(v) => take(v, |x| json!(x)),
        Array::I32(v) => take(v, |x| json!(x)),
        Array::U64(v) => take(v, |x| json!(x)),
        Array::I64(v) => take(v, |x| json!(x)),
        Array::F32(v) => take(v, |x| f32_json(*x)),
        Array::F64(v) => take(v, |x| json!(x)),
        Array::Bool(v) => take(v, |x| json!(x)),
        Array::String(v) => take(v, |x| json!(x)),
        Array::Array(v) => take(v, array_json),
    }
}

/// Widening through the shortest decimal form keeps `1e-5f32` as `1e-5` in the
/// report instead of `9.999999747378752e-6`.
fn f32_json(value: f32) -> Json {
    value
        .to_string()
        .parse::<f64>()
        .map_or(Json::Null, |v| json!(v))
}
