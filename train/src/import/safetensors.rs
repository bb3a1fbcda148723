//! Weights from a Hugging Face directory: `model.safetensors`, or the shards that
//! `model.safetensors.index.json` lists.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Component, Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata};
use serde::Deserialize;

use super::{RawTensor, WeightSource};
use crate::error::ImportError;
use crate::import::names::Weight;

const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";

struct Shard {
    path: PathBuf,
    map: Mmap,
    /// Where tensor data starts: after the 8-byte header length and the header.
    data_start: usize,
    metadata: Metadata,
}

pub struct SafetensorsSource {
    dir: PathBuf,
    shards: Vec<Shard>,
    /// Tensor name → index into `shards`.
    index: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, ShardName>,
}

/// A shard's file name as the index gives it, refused while parsing (so the
/// error has its line and column) unless it names a file inside the model
/// directory: an absolute path or `..` would have the loader map any file.
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
struct ShardName(String);

impl TryFrom<String> for ShardName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let mut components = Path::new(&name).components().peekable();
        let inside =
            components.peek().is_some() && components.all(|c| matches!(c, Component::Normal(_)));
        if inside {
            Ok(Self(name))
        } else {
            Err(format!(
                "weight_map names shard '{name}', which is not a file inside the model directory"
            ))
        }
    }
}

impl SafetensorsSource {
    pub fn open(dir: &Path) -> Result<Self, ImportError> {
        let index_path = dir.join(INDEX);
        let files: Vec<PathBuf> = if index_path.is_file() {
            let text = std::fs::read_to_string(&index_path).map_err(|source| ImportError::Io {
                path: index_path.clone(),
                source,
            })?;
            let index: ShardIndex =
                serde_json::from_str(&text).map_err(|source| ImportError::Json {
                    path: index_path.clone(),
                    source,
                })?;
            let names: BTreeSet<ShardName> = index.weight_map.into_values().collect();
            names.into_iter().map(|f| dir.join(f.0)).collect()
        } else {
            vec![dir.join(SINGLE)]
        };
        let shards = files
            .into_iter()
            .map(Shard::open)
            .collect::<Result<Vec<_>, _>>()?;
        let index = shards
            .iter()
            .enumerate()
            .flat_map(|(i, shard)| {
                shard
                    .metadata
                    .tensors()
                    .into_keys()
                    .map(move |name| (name, i))
            })
            .collect();
        Ok(Self {
            dir: dir.to_owned(),
            shards,
            index,
        })
    }
}

impl Shard {
    fn open(path: PathBuf) -> Result<Self, ImportError> {
        let io_error = |source| ImportError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io_error)?;
        // SAFETY: read-only map; like every safetensors loader we rely on the file
        // not being modified while the model loads.
        let map = unsafe { Mmap::map(&file) }.map_err(io_error)?;
        let (header_len, metadata) =
            safetensors::SafeTensors::read_metadata(&map).map_err(|source| {
                ImportError::Safetensors {
                    path: path.clone(),
                    source,
                }
            })?;
        Ok(Self {
            path,
            map,
            data_start: 8 + header_len,
            metadata,
        })
    }
}

impl WeightSource for SafetensorsSource {
    fn path(&self) -> &Path {
        &self.dir
    }

    fn name(&self, weight: Weight) -> String {
        weight.hf_name()
    }

    fn read(&self, weight: Weight) -> Result<Option<RawTensor>, ImportError> {
        let name = weight.hf_name();
        let Some(&i) = self.index.get(&name) else {
            return Ok(None);
        };
        let shard = &self.shards[i];
        let info = shard
            .metadata
            .info(&name)
            .expect("the index lists only tensors of the shard's own header");
        let (start, end) = info.data_offsets;
        let bytes = &shard.map[shard.data_start + start..shard.data_start + end];
        let data = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(ImportError::UnsupportedDtype {
                    path: shard.path.clone(),
                    tensor: name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(Some(RawTensor {
            shape: info.shape.clone(),
            data,
        }))
    }
}
