//! Weights from a GGUF file, dequantized to f32 whatever their ggml type.

use std::path::Path;

use quantize::gguf::GgufFile;

use super::{RawTensor, WeightSource};
use crate::error::ImportError;
use crate::import::names::Weight;

pub struct GgufSource<'a> {
    file: &'a GgufFile,
    normal_rope: bool,
}

impl<'a> GgufSource<'a> {
    /// `normal_rope`: the file's Q/K rows are in llama.cpp's adjacent-pair order.
    pub fn new(file: &'a GgufFile, normal_rope: bool) -> Self {
        Self { file, normal_rope }
    }
}

impl WeightSource for GgufSource<'_> {
    fn path(&self) -> &Path {
        self.file.path()
    }

    fn name(&self, weight: Weight) -> String {
        weight.gguf_name()
    }

    fn read(&self, weight: Weight) -> Result<Option<RawTensor>, ImportError> {
        let name = weight.gguf_name();
        let Some(info) = self.file.tensor(&name) else {
            return Ok(None);
        };
        let data = quantize::dequantize_to_vec(info.ggml_type, self.file.tensor_data(info))
            .map_err(|source| ImportError::Dequantize {
                path: self.file.path().to_owned(),
                tensor: name,
                source,
            })?;
        // ggml lists the contiguous dimension first; the model wants row-major order.
        let shape = info.shape.iter().rev().map(|&d| d as usize).collect();
        Ok(Some(RawTensor { shape, data }))
    }

    fn qk_rows_interleaved(&self) -> bool {
        self.normal_rope
    }
}
