//! Writing GGUF v3 files in three stages that mirror the file: metadata, then tensor
//! infos, then tensor data in declaration order. Each stage is its own type, so the
//! order cannot be broken, and offsets and padding are computed here, never by the
//! caller. The bytes match gguf-py's `GGUFWriter` for the same content.

use std::collections::HashSet;
use std::path::Path;

use crate::GgmlType;

use super::error::{GgufError, Problem};
use super::parse::checked_alignment;
use super::sink::{AtomicFile, Sink};
use super::tensor_info::{TensorInfo, checked_n_bytes};
use super::value::Value;
use super::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_ARRAY_DEPTH, MAX_TENSOR_NAME_LEN, encode,
};

/// The version this writer produces.
const VERSION: u32 = 3;

/// Zeros for padding; alignments beyond this are written in several slices.
const ZEROS: [u8; 4096] = [0; 4096];

/// First stage: metadata entries, kept in the order they are added.
///
/// The data alignment is 32 unless a `general.alignment` entry (a power-of-two u32)
/// sets it, so the file always states the alignment its layout uses.
#[derive(Debug)]
pub struct GgufWriter {
    alignment: u64,
    n_kv: u64,
    keys: HashSet<String>,
    encoded: Vec<u8>,
}

impl Default for GgufWriter {
    fn default() -> GgufWriter {
        GgufWriter::new()
    }
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter {
            alignment: DEFAULT_ALIGNMENT,
            n_kv: 0,
            keys: HashSet::new(),
            encoded: Vec::new(),
        }
    }

    /// Adds one entry. Keys must be non-empty and unique, and arrays nested no
    /// deeper than the reader accepts.
    pub fn metadata(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Result<&mut GgufWriter, GgufError> {
        let key = key.into();
        let value = value.into();
        if key.is_empty() {
            return Err(GgufError::Invalid(Problem::EmptyKey { index: self.n_kv }));
        }
        if self.keys.contains(&key) {
            return Err(GgufError::Invalid(Problem::DuplicateKey { key }));
        }
        if let Value::Array(array) = &value
            && array.depth() > MAX_ARRAY_DEPTH
        {
            return Err(GgufError::Invalid(Problem::NestingTooDeep { key, max: MAX_ARRAY_DEPTH }));
        }
        if key == ALIGNMENT_KEY {
            self.alignment = checked_alignment(&value).map_err(GgufError::Invalid)?;
        }
        encode::entry(&mut self.encoded, &key, &value);
        self.keys.insert(key);
        self.n_kv += 1;
        Ok(self)
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Ends the metadata; tensor infos follow.
    pub fn finish_metadata(self) -> TensorInfoWriter {
        TensorInfoWriter { metadata: self, tensors: Vec::new(), names: HashSet::new(), data_len: 0 }
    }
}

/// Second stage: tensor infos, in the order their data will be written.
#[derive(Debug)]
pub struct TensorInfoWriter {
    metadata: GgufWriter,
    tensors: Vec<TensorInfo>,
    names: HashSet<String>,
    /// Size of the data section so far, each tensor padded to the alignment.
    data_len: u64,
}

impl TensorInfoWriter {
    /// Declares a tensor; `shape` is in ggml order (`shape[0]` is the contiguous
    /// dimension). Its data offset is the end of the previous tensor's padded data.
    pub fn tensor_info(
        &mut self,
        name: impl Into<String>,
        shape: &[u64],
        ggml_type: GgmlType,
    ) -> Result<&mut TensorInfoWriter, GgufError> {
        let name = name.into();
        // ggml keeps names in a 64-byte buffer with a terminating NUL.
        if name.len() > MAX_TENSOR_NAME_LEN {
            let len = name.len();
            return Err(GgufError::Invalid(Problem::NameTooLong {
                name,
                len,
                max: MAX_TENSOR_NAME_LEN,
            }));
        }
        if self.names.contains(&name) {
            return Err(GgufError::Invalid(Problem::DuplicateTensor { name }));
        }
        let n_bytes = checked_n_bytes(&name, shape, ggml_type).map_err(GgufError::Invalid)?;
        let data_len = n_bytes
            .checked_next_multiple_of(self.metadata.alignment)
            .and_then(|padded| self.data_len.checked_add(padded));
        let Some(data_len) = data_len else {
            return Err(GgufError::Invalid(Problem::DataSectionOverflow { name }));
        };
        self.tensors.push(TensorInfo {
            name: name.clone(),
            shape: shape.to_vec(),
            ggml_type,
            offset: self.data_len,
        });
        self.names.insert(name);
        self.data_len = data_len;
        Ok(self)
    }

    /// The tensors declared so far, with their data offsets.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Starts writing the file at `path`: header, metadata and tensor infos go out
    /// now, the tensor data through the returned writer. The file appears at `path`
    /// only when [`TensorDataWriter::finish`] succeeds.
    pub fn write_file(
        self,
        path: impl AsRef<Path>,
    ) -> Result<TensorDataWriter<AtomicFile>, GgufError> {
        let path = path.as_ref();
        let file = AtomicFile::create(path).map_err(|e| GgufError::io(path, e))?;
        self.write_to(file)
    }

    /// Like [`TensorInfoWriter::write_file`], into any sink.
    pub fn write_to<S: Sink>(self, sink: S) -> Result<TensorDataWriter<S>, GgufError> {
        let mut head = Vec::with_capacity(self.metadata.encoded.len() + 64 * self.tensors.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&self.metadata.n_kv.to_le_bytes());
        head.extend_from_slice(&self.metadata.encoded);
        for info in &self.tensors {
            encode::tensor_info(&mut head, info);
        }
        let mut writer = TensorDataWriter {
            sink,
            alignment: self.metadata.alignment,
            tensors: self.tensors,
            next: 0,
            partial: 0,
            failed: false,
        };
        writer.put(&head)?;
        // gguf-py pads the data section's start even when there are no tensors.
        writer.pad(head.len() as u64)?;
        Ok(writer)
    }
}

/// Third stage: tensor data, one tensor after another in declaration order, each
/// padded to the alignment. Tensors may be given whole or streamed in chunks, so
/// no more than one chunk need be in memory.
#[derive(Debug)]
pub struct TensorDataWriter<S: Sink> {
    sink: S,
    alignment: u64,
    tensors: Vec<TensorInfo>,
    /// Index of the tensor whose data comes next.
    next: usize,
    /// Bytes of `tensors[next]` written so far by an unfinished stream.
    partial: u64,
    /// Set by any I/O error: what was written is then unknown, so nothing more is.
    failed: bool,
}

impl<S: Sink> TensorDataWriter<S> {
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor whose data must come next, if any is left.
    pub fn next_tensor(&self) -> Option<&TensorInfo> {
        self.tensors.get(self.next)
    }

    /// Writes the whole data of tensor `name`, which must be the next declared one.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<(), GgufError> {
        let mut stream = self.begin_tensor(name)?;
        let expected = stream.info().n_bytes();
        if data.len() as u64 != expected {
            return Err(GgufError::Invalid(Problem::TensorLength {
                name: name.to_owned(),
                expected,
                got: data.len() as u64,
            }));
        }
        stream.write(data)?;
        stream.finish()
    }

    /// Starts streaming the data of tensor `name`, which must be the next declared one.
    pub fn begin_tensor(&mut self, name: &str) -> Result<TensorStream<'_, S>, GgufError> {
        self.check_usable()?;
        let Some(next) = self.tensors.get(self.next) else {
            return Err(GgufError::Invalid(Problem::NoTensorLeft { got: name.to_owned() }));
        };
        if next.name != name {
            return Err(GgufError::Invalid(Problem::TensorOutOfOrder {
                expected: next.name.clone(),
                got: name.to_owned(),
            }));
        }
        Ok(TensorStream { writer: self })
    }

    /// Completes the file once every declared tensor has been written; for a file
    /// this is when it appears at its path.
    pub fn finish(self) -> Result<S::Output, GgufError> {
        self.check_usable()?;
        if let Some(missing) = self.tensors.get(self.next) {
            return Err(GgufError::Invalid(Problem::TensorMissing { name: missing.name.clone() }));
        }
        let path = self.sink.path().to_owned();
        self.sink.complete().map_err(|e| GgufError::io(&path, e))
    }

    fn check_usable(&self) -> Result<(), GgufError> {
        if self.failed {
            return Err(GgufError::Invalid(Problem::Abandoned));
        }
        match self.tensors.get(self.next) {
            Some(t) if self.partial > 0 => Err(GgufError::Invalid(Problem::TensorUnfinished {
                name: t.name.clone(),
                written: self.partial,
                expected: t.n_bytes(),
            })),
            _ => Ok(()),
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), GgufError> {
        if let Err(e) = self.sink.write_all(bytes) {
            self.failed = true;
            return Err(GgufError::io(self.sink.path(), e));
        }
        Ok(())
    }

    /// Zeros from `len` up to the next multiple of the alignment.
    fn pad(&mut self, len: u64) -> Result<(), GgufError> {
        let mut pad = len.next_multiple_of(self.alignment) - len;
        while pad > 0 {
            let n = pad.min(ZEROS.len() as u64);
            self.put(&ZEROS[..n as usize])?;
            pad -= n;
        }
        Ok(())
    }
}

/// The data of one tensor, arriving in chunks.
#[derive(Debug)]
pub struct TensorStream<'w, S: Sink> {
    writer: &'w mut TensorDataWriter<S>,
}

impl<S: Sink> TensorStream<'_, S> {
    pub fn info(&self) -> &TensorInfo {
        &self.writer.tensors[self.writer.next]
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.info().n_bytes() - self.writer.partial
    }

    /// Appends a chunk; a chunk that would run past the tensor's size is refused
    /// whole, before anything is written.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), GgufError> {
        if self.writer.failed {
            return Err(GgufError::Invalid(Problem::Abandoned));
        }
        if chunk.len() as u64 > self.remaining() {
            return Err(GgufError::Invalid(Problem::TensorLength {
                name: self.info().name.clone(),
                expected: self.info().n_bytes(),
                got: self.writer.partial + chunk.len() as u64,
            }));
        }
        self.writer.put(chunk)?;
        self.writer.partial += chunk.len() as u64;
        Ok(())
    }

    /// Ends the tensor, which must have received exactly its size, and pads it.
    pub fn finish(self) -> Result<(), GgufError> {
        let expected = self.info().n_bytes();
        if self.writer.partial != expected {
            return Err(GgufError::Invalid(Problem::TensorLength {
                name: self.info().name.clone(),
                expected,
                got: self.writer.partial,
            }));
        }
        self.writer.pad(expected)?;
        self.writer.next += 1;
        self.writer.partial = 0;
        Ok(())
    }
}
