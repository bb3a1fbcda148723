//! A whole-model quantization: planned first (every tensor's type chosen and the
//! importance matrix checked against it before anything is written), then written
//! tensor by tensor.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use crate::GgmlType;
use crate::gguf::{GgufError, GgufFile, TensorInfo};
use crate::mix::{MixOptions, ModelParams, Plan, PlannedTensor, n_dims, plan};

use super::convert::{Source, convert};
use super::error::ModelQuantError;
use super::imatrix::Imatrix;
use super::metadata::output_metadata;

/// A model ready to be quantized: the plan is made, nothing is written yet.
pub struct Quantization<'a> {
    input: &'a GgufFile,
    options: MixOptions,
    imatrix: Option<Imatrix>,
    plan: Plan,
}

/// Where a running quantization is, after each tensor.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub tensor: &'a str,
    pub target: GgmlType,
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub path: PathBuf,
    /// File size in bytes.
    pub size: u64,
    /// Tensors per type in the output.
    pub type_counts: BTreeMap<GgmlType, usize>,
    /// Tensors whose rows did not fit the chosen type and got another one.
    pub n_fallback: usize,
}

impl<'a> Quantization<'a> {
    /// Plans `input` for `options`; `options.has_imatrix` is taken from `imatrix`.
    pub fn new(
        input: &'a GgufFile,
        options: MixOptions,
        imatrix: Option<Imatrix>,
    ) -> Result<Quantization<'a>, ModelQuantError> {
        let options = MixOptions {
            has_imatrix: imatrix.is_some(),
            ..options
        };
        let params = ModelParams::from_gguf(input)?;
        let plan = plan(input.tensors(), &params, &options)?;
        let job = Quantization {
            input,
            options,
            imatrix,
            plan,
        };
        for planned in &job.plan.tensors {
            if planned.target != job.info(planned).ggml_type {
                job.imatrix_for(planned)?;
            }
        }
        Ok(job)
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Block-quantized input types that will be dequantized and quantized again,
    /// which loses more than quantizing from F32/F16/BF16 would.
    pub fn requantized_types(&self) -> BTreeSet<GgmlType> {
        self.plan
            .tensors
            .iter()
            .map(|t| (self.info(t).ggml_type, t.target))
            .filter(|&(from, to)| from != to && from.block_size() > 1)
            .map(|(from, _)| from)
            .collect()
    }

    /// Writes the quantized model to `out`, which appears (replacing any file
    /// there) only once complete. `progress` is called after each tensor.
    pub fn write(
        &self,
        out: &Path,
        threads: NonZeroUsize,
        mut progress: impl FnMut(Progress<'_>),
    ) -> Result<Report, ModelQuantError> {
        let metadata = output_metadata(self.input, self.options.mix, self.imatrix.as_ref())?;
        let mut infos = metadata.finish_metadata();
        for planned in &self.plan.tensors {
            let info = self.info(planned);
            infos.tensor_info(
                info.name.as_str(),
                output_shape(&info.shape),
                planned.target,
            )?;
        }
        let mut data = infos.write_file(out)?;
        let mut type_counts = BTreeMap::new();
        let total = self.plan.tensors.len();
        for (done, planned) in self.plan.tensors.iter().enumerate() {
            let info = self.info(planned);
            let bytes = self.input.tensor_data(info);
            if planned.target == info.ggml_type {
                data.write_tensor(&info.name, bytes)?;
            } else {
                let source = Source {
                    path: self.input.path(),
                    info,
                    data: bytes,
                };
                let imatrix = self.imatrix_for(planned)?;
                let converted = convert(&source, planned.target, imatrix, threads.get())?;
                data.write_tensor(&info.name, &converted)?;
            }
            *type_counts.entry(planned.target).or_insert(0) += 1;
            progress(Progress {
                done: done + 1,
                total,
                tensor: &info.name,
                target: planned.target,
            });
        }
        let path = data.finish()?;
        let size = std::fs::metadata(&path)
            .map_err(|e| GgufError::Io {
                path: path.clone(),
                source: e,
            })?
            .len();
        Ok(Report {
            path,
            size,
            type_counts,
            n_fallback: self.plan.n_fallback,
        })
    }

    fn info(&self, planned: &PlannedTensor) -> &'a TensorInfo {
        &self.input.tensors()[planned.index]
    }

    /// The tensor's importance weights as llama.cpp picks them: none when the
    /// imatrix lacks the tensor (an error only for types that need them), an
    /// error when their count does not match, except for the token embeddings,
    /// which a matmul-based imatrix never describes correctly.
    fn imatrix_for(&self, planned: &PlannedTensor) -> Result<Option<&[f32]>, ModelQuantError> {
        let info = self.info(planned);
        let weights = self
            .imatrix
            .as_ref()
            .and_then(|m| m.weights.get(&info.name));
        let expected =
            info.shape.first().copied().unwrap_or(1) * info.shape.get(2).copied().unwrap_or(1);
        match weights {
            Some(w) if w.len() as u64 == expected => Ok(Some(w)),
            Some(w) if !crate::mix::is_token_embd(&info.name) => {
                Err(ModelQuantError::ImatrixSize {
                    tensor: info.name.clone(),
                    len: w.len(),
                    expected,
                })
            }
            _ if planned.requires_imatrix => Err(ModelQuantError::ImatrixMissing {
                tensor: info.name.clone(),
                ty: planned.target,
            }),
            _ => Ok(None),
        }
    }
}

/// The shape as ggml's GGUF writer stores it: trailing dimensions of 1 dropped.
fn output_shape(shape: &[u64]) -> &[u64] {
    let dims = n_dims(shape);
    shape.get(..dims).unwrap_or(&[1])
}
