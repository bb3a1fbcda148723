//! The metadata of a quantized file, as `llama_model_quantize` writes it.

use crate::gguf::{GgufError, GgufFile, GgufWriter, Value};
use crate::mix::Mix;

use super::imatrix::Imatrix;

/// ggml's quantization format version (`GGML_QNT_VERSION`).
const QUANTIZATION_VERSION: u32 = 2;

/// Split bookkeeping of the input; the output is always one file.
const SPLIT_KEYS: [&str; 3] = ["split.no", "split.count", "split.tensors.count"];

/// Every input entry in order, except the split keys and the ones llama.cpp sets
/// itself: those it removes and appends, so they come last, in the order it sets
/// them (quantization version, file type, then the imatrix keys).
pub(super) fn output_metadata(
    input: &GgufFile,
    mix: Mix,
    imatrix: Option<&Imatrix>,
) -> Result<GgufWriter, GgufError> {
    let mut appended = vec![
        (
            "general.quantization_version",
            Value::U32(QUANTIZATION_VERSION),
        ),
        ("general.file_type", Value::U32(mix.ftype())),
    ];
    appended.extend(imatrix.map(Imatrix::metadata).unwrap_or_default());

    let mut writer = GgufWriter::new();
    for (key, value) in input.metadata() {
        let replaced = appended.iter().any(|(k, _)| k == key);
        if !replaced && !SPLIT_KEYS.contains(&key.as_str()) {
            writer.metadata(key.as_str(), value.clone())?;
        }
    }
    for (key, value) in appended {
        writer.metadata(key, value)?;
    }
    Ok(writer)
}
