//! Model weights as safetensors, streamed: each file's header is computed from
//! the shapes first, then the tensors are copied out of the model and written
//! one at a time. Above a size threshold the weights are split into shards with
//! a `model.safetensors.index.json`, as transformers' `save_pretrained` does.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use burn::tensor::backend::Backend;
use serde_json::{Map, Value, json};
use train::Transformer;
use train::import::Weight;

use crate::error::ExportError;
use crate::weights::{read_weight, weight_list, weight_shape};

/// The element types a Hugging Face export stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::Bf16 => "BF16",
        }
    }

    /// transformers' `torch_dtype` name.
    pub fn torch_name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
            Dtype::Bf16 => "bfloat16",
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Dtype::F16 => values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
            Dtype::Bf16 => values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
        }
    }
}

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Writes the weights into `dir`; returns the files written and the total size
/// of the tensor data.
pub fn write_weights<B: Backend>(
    model: &Transformer<B>,
    dtype: Dtype,
    max_shard_bytes: u64,
    dir: &Path,
    mut progress: impl FnMut(&str),
) -> Result<(Vec<String>, u64), ExportError> {
    let config = &model.config;
    let sized: Vec<(Weight, Vec<usize>, u64)> = weight_list(config)
        .into_iter()
        .map(|w| {
            let shape = weight_shape(config, w);
            let bytes = shape.iter().product::<usize>() as u64 * dtype.size() as u64;
            (w, shape, bytes)
        })
        .collect();
    let mut shards: Vec<Vec<&(Weight, Vec<usize>, u64)>> = vec![Vec::new()];
    let mut current = 0u64;
    for entry in &sized {
        let last = shards.last_mut().expect("one shard at least");
        if !last.is_empty() && current + entry.2 > max_shard_bytes {
            shards.push(Vec::new());
            current = 0;
        }
        current += entry.2;
        shards.last_mut().expect("one shard at least").push(entry);
    }
    let total: u64 = sized.iter().map(|e| e.2).sum();
    let n = shards.len();
    let names: Vec<String> = if n == 1 {
        vec![SINGLE_FILE.to_owned()]
    } else {
        (1..=n).map(|i| format!("model-{i:05}-of-{n:05}.safetensors")).collect()
    };
    let mut weight_map = BTreeMap::new();
    for (shard, name) in shards.iter_mut().zip(&names) {
        // safetensors orders a file's tensors by name (all share one dtype here).
        shard.sort_by_key(|(w, _, _)| w.hf_name());
        write_file(model, dtype, shard, &dir.join(name), &mut progress)?;
        for (w, _, _) in shard.iter() {
            weight_map.insert(w.hf_name(), Value::from(name.as_str()));
        }
    }
    if n > 1 {
        let index = json!({"metadata": {"total_size": total}, "weight_map": Map::from_iter(weight_map)});
        let path = dir.join(INDEX_FILE);
        let text = serde_json::to_string_pretty(&index).expect("JSON values always serialize");
        std::fs::write(&path, text).map_err(|e| ExportError::io(&path, e))?;
    }
    Ok((names, total))
}

fn write_file<B: Backend>(
    model: &Transformer<B>,
    dtype: Dtype,
    tensors: &[&(Weight, Vec<usize>, u64)],
    path: &Path,
    progress: &mut impl FnMut(&str),
) -> Result<(), ExportError> {
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0u64;
    for (weight, shape, bytes) in tensors {
        header.insert(
            weight.hf_name(),
            json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut header = serde_json::to_string(&Value::Object(header)).expect("JSON values always serialize");
    // Data starts 8-byte aligned; the header is padded with spaces as safetensors does.
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let io = |e| ExportError::io(path, e);
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
    out.write_all(header.as_bytes()).map_err(io)?;
    for (weight, _, _) in tensors {
        let data = read_weight(model, *weight)?;
        out.write_all(&dtype.encode(&data.values)).map_err(io)?;
        progress(&weight.hf_name());
    }
    out.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)
}
