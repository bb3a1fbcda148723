//! Named f32 tensors in a safetensors file, as checkpoints keep weights and
//! optimizer moments.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::TrainError;
use crate::optim::NamedTensor;

pub(crate) fn write(
    path: &Path,
    tensors: &BTreeMap<String, NamedTensor>,
) -> Result<(), TrainError> {
    let bytes: Vec<(&String, Vec<u8>, &[usize])> = tensors
        .iter()
        .map(|(name, t)| {
            let bytes = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, bytes, t.shape.as_slice())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, bytes, shape)| {
            let view = TensorView::new(Dtype::F32, shape.to_vec(), bytes).map_err(|source| {
                TrainError::Safetensors {
                    path: path.to_owned(),
                    source,
                }
            })?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>, TrainError>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|source| {
        TrainError::Safetensors {
            path: path.to_owned(),
            source,
        }
    })?;
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|source| TrainError::Io {
            path: path.to_owned(),
            source,
        })
}

pub(crate) fn read(path: &Path) -> Result<BTreeMap<String, NamedTensor>, TrainError> {
    let io = |source| TrainError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: checkpoint files are written once under a temporary name and
    // renamed into place; nothing writes to them while they are mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let tensors = SafeTensors::deserialize(&map).map_err(|source| TrainError::Safetensors {
        path: path.to_owned(),
        source,
    })?;
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            if view.dtype() != Dtype::F32 {
                return Err(TrainError::Checkpoint {
                    path: path.to_owned(),
                    message: format!("tensor '{name}' is {:?}, expected F32", view.dtype()),
                });
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let shape = view.shape().to_vec();
            Ok((name, NamedTensor { shape, values }))
        })
        .collect()
}
