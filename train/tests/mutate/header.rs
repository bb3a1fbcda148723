//! Edits of a safetensors file's JSON header that keep it a well-formed
//! header with a correct length prefix, so that the reader's checks of shapes,
//! offsets and element types against the data are what gets exercised.

use proptest::prelude::*;
use serde_json::Value;

use super::json::{JsonEdit, json_edit};

/// Splits a safetensors file into its header and its data.
fn split(file: &[u8]) -> (Value, &[u8]) {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&file[8..8 + n]).expect("a valid file's header");
    (header, &file[8 + n..])
}

fn join(header: &Value, data: &[u8]) -> Vec<u8> {
    let text = header.to_string();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

#[derive(Clone, Debug)]
pub enum HeaderEdit {
    Json(JsonEdit),
    /// A tensor's element type: the reader's supported ones, others, nonsense.
    Dtype {
        tensor: usize,
        dtype: String,
    },
    /// Data cut or grown at the end, the header left as it was.
    DataLength {
        delta: i16,
    },
}

pub fn header_edit() -> impl Strategy<Value = HeaderEdit> {
    let dtype = prop_oneof![
        Just("F32"),
        Just("F16"),
        Just("BF16"),
        Just("F64"),
        Just("I8"),
        Just("U8"),
        Just("BOOL"),
        Just("F8_E4M3"),
        Just("I64"),
        Just("Q4"),
    ];
    prop_oneof![
        4 => json_edit().prop_map(HeaderEdit::Json),
        1 => (any::<usize>(), dtype).prop_map(|(tensor, dtype)| HeaderEdit::Dtype {
            tensor,
            dtype: dtype.to_owned(),
        }),
        1 => any::<i16>().prop_map(|delta| HeaderEdit::DataLength { delta }),
    ]
}

pub fn edit_file(file: &[u8], edits: &[HeaderEdit]) -> Vec<u8> {
    let (mut header, data) = split(file);
    let mut data = data.to_vec();
    for edit in edits {
        match edit {
            HeaderEdit::Json(edit) => super::json::apply(&mut header, edit),
            HeaderEdit::Dtype { tensor, dtype } => {
                if let Some(map) = header.as_object_mut().filter(|m| !m.is_empty()) {
                    let i = tensor % map.len();
                    if let Some(info) = map.values_mut().nth(i).and_then(Value::as_object_mut) {
                        info.insert("dtype".into(), Value::from(dtype.as_str()));
                    }
                }
            }
            HeaderEdit::DataLength { delta } => {
                let len = (data.len() as i64 + i64::from(*delta)).max(0) as usize;
                data.resize(len, 0xA5);
            }
        }
    }
    join(&header, &data)
}
