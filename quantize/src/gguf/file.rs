//! A GGUF file opened for reading: parsed metadata and tensor infos over a memory
//! map of the whole file.

use std::fs::File;
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::error::GgufError;
use super::named::Named;
use super::parse::{Layout, parse};
use super::tensor_info::TensorInfo;
use super::value::Value;

pub struct GgufFile {
    path: PathBuf,
    bytes: Bytes,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Named<(String, Value)>,
    tensors: Named<TensorInfo>,
}

enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(vec) => vec,
        }
    }
}

impl GgufFile {
    /// Maps and parses a GGUF v2 or v3 file. Tensor data is not read: it is paged in
    /// from the map when [`GgufFile::tensor_data`] is used.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| GgufError::io(path, e))?;
        let len = file.metadata().map_err(|e| GgufError::io(path, e))?.len();
        let bytes = if len == 0 {
            // Mapping zero bytes fails on some platforms; an empty file is simply truncated.
            Bytes::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only. Like llama.cpp, which maps model files too,
            // we rely on the file not being truncated or rewritten while it is open.
            Bytes::Mapped(unsafe { Mmap::map(&file) }.map_err(|e| GgufError::io(path, e))?)
        };
        GgufFile::parse(path.to_owned(), bytes)
    }

    /// Parses a GGUF file held in memory; `label` stands for its path in errors.
    pub fn from_bytes(bytes: Vec<u8>, label: impl Into<PathBuf>) -> Result<GgufFile, GgufError> {
        GgufFile::parse(label.into(), Bytes::Owned(bytes))
    }

    fn parse(path: PathBuf, bytes: Bytes) -> Result<GgufFile, GgufError> {
        let layout = parse(&bytes).map_err(|problem| GgufError::malformed(&path, problem))?;
        let Layout { version, alignment, data_offset, metadata, tensors } = layout;
        Ok(GgufFile { path, bytes, version, alignment, data_offset, metadata, tensors })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment: `general.alignment`, or 32 when the file does not set it.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// File offset where the tensor data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Size of the whole file in bytes.
    pub fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Metadata entries in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        self.metadata.items()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key).map(|(_, value)| value)
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        self.tensors.items()
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// The raw bytes of a tensor, as stored (ggml block layout for quantized types).
    ///
    /// # Panics
    /// If `info` does not come from this file and names bytes outside it; the
    /// bounds of this file's own tensors were checked when it was opened.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        self.data_range(info).and_then(|range| self.bytes.get(range)).unwrap_or_else(|| {
            panic!("tensor '{}' lies outside {}", info.name, self.path.display())
        })
    }

    fn data_range(&self, info: &TensorInfo) -> Option<Range<usize>> {
        let start = self.data_offset.checked_add(info.offset)?;
        let end = start.checked_add(info.n_bytes())?;
        Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
    }
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .field("metadata", &self.metadata.items().len())
            .field("tensors", &self.tensors.items().len())
            .finish_non_exhaustive()
    }
}
