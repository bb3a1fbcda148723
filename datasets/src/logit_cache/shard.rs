//! One shard file: consecutive documents' records, then an index of where each
//! document's records start and how many there are, then a fixed footer.
//!
//! ```text
//! "DCLC" | version u32 | k u32 | 0u32                       header, 16 bytes
//! records …                                                 codec records
//! (offset u64, records u32) × documents                     index, little-endian
//! first_document u64 | documents u64 | index_offset u64 | "DCLCEND1"   footer
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use quantize::gguf::{AtomicFile, Sink};
use sha2::{Digest, Sha256};

use super::codec::{self, Decoded, Permutation, TopK};
use super::{ShardEntry, cache_error};
use crate::error::{DatasetError, Result};

const MAGIC: &[u8; 4] = b"DCLC";
const FOOTER_MAGIC: &[u8; 8] = b"DCLCEND1";
const VERSION: u32 = 1;
const HEADER: u64 = 16;
const FOOTER: u64 = 32;
const INDEX_ENTRY: u64 = 12;

fn io_error(path: &Path, source: std::io::Error) -> DatasetError {
    DatasetError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes one shard; nothing appears at its path until [`ShardWriter::finish`].
pub struct ShardWriter {
    path: PathBuf,
    file: AtomicFile,
    hasher: Sha256,
    k: usize,
    tail: usize,
    first_document: u64,
    index: Vec<(u64, u32)>,
    written: u64,
    record: Vec<u8>,
}

impl ShardWriter {
    pub fn create(path: &Path, k: usize, tail: usize, first_document: u64) -> Result<Self> {
        let file = AtomicFile::create(path).map_err(|e| io_error(path, e))?;
        let mut writer = Self {
            path: path.to_owned(),
            file,
            hasher: Sha256::new(),
            k,
            tail,
            first_document,
            index: Vec::new(),
            written: 0,
            record: Vec::new(),
        };
        let mut header = Vec::with_capacity(HEADER as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&(k as u32).to_le_bytes());
        header.extend_from_slice(&(tail as u32).to_le_bytes());
        writer.put(&header)?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).map_err(|e| io_error(&self.path, e))?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Appends the next document: one record per trained position, in order.
    pub fn push_document(&mut self, records: &[TopK], permutation: &Permutation) -> Result<()> {
        let start = self.written;
        self.record.clear();
        for topk in records {
            codec::encode(topk, self.k, self.tail, permutation, &mut self.record)
                .map_err(|e| cache_error(&self.path, e.to_string()))?;
        }
        let record = std::mem::take(&mut self.record);
        self.put(&record)?;
        self.record = record;
        self.index.push((start, records.len() as u32));
        Ok(())
    }

    pub fn documents(&self) -> u64 {
        self.index.len() as u64
    }

    /// Writes the index and footer, syncs and renames the shard into place.
    pub fn finish(mut self) -> Result<ShardEntry> {
        let index_offset = self.written;
        let mut tail = Vec::with_capacity(self.index.len() * INDEX_ENTRY as usize + FOOTER as usize);
        for &(offset, records) in &self.index {
            tail.extend_from_slice(&offset.to_le_bytes());
            tail.extend_from_slice(&records.to_le_bytes());
        }
        tail.extend_from_slice(&self.first_document.to_le_bytes());
        tail.extend_from_slice(&(self.index.len() as u64).to_le_bytes());
        tail.extend_from_slice(&index_offset.to_le_bytes());
        tail.extend_from_slice(FOOTER_MAGIC);
        self.put(&tail)?;
        let records = self.index.iter().map(|&(_, n)| u64::from(n)).sum();
        let path = self.file.complete().map_err(|e| io_error(&self.path, e))?;
        Ok(ShardEntry {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            first_document: self.first_document,
            documents: self.index.len() as u64,
            records,
            bytes: self.written,
            sha256: format!("{:x}", self.hasher.finalize()),
        })
    }
}

/// A shard opened for reading, memory-mapped, with its index checked.
pub struct ShardReader {
    path: PathBuf,
    map: Mmap,
    k: usize,
    tail: usize,
    first_document: u64,
    index: Vec<(u64, u32)>,
    index_offset: u64,
}

impl ShardReader {
    pub fn open(path: &Path, k: usize, tail: usize) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
        // SAFETY: shards are written once, under a temporary name, and never
        // modified in place; a file truncated behind our back is the one risk
        // memory-mapping takes, as every mmap reader does.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| io_error(path, e))?;
        let bad = |message: String| cache_error(path, message);
        let len = map.len() as u64;
        if len < HEADER + FOOTER {
            return Err(bad(format!("is {len} bytes, shorter than a shard's header and footer")));
        }
        if &map[..4] != MAGIC || &map[map.len() - 8..] != FOOTER_MAGIC {
            return Err(bad("is not a decant teacher-cache shard (no DCLC magic)".into()));
        }
        let u32_at = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
        let version = u32_at(4);
        if version != VERSION {
            return Err(bad(format!("has format version {version}, this decant reads {VERSION}")));
        }
        let stored_k = u32_at(8) as usize;
        if stored_k != k {
            return Err(bad(format!("holds top-{stored_k} records, the manifest says top-{k}")));
        }
        let stored_tail = u32_at(12) as usize;
        if stored_tail != tail {
            return Err(bad(format!(
                "holds {stored_tail} tail samples per unit of rest mass, the manifest says {tail}"
            )));
        }
        let footer = (len - FOOTER) as usize;
        let (first_document, documents, index_offset) =
            (u64_at(footer), u64_at(footer + 8), u64_at(footer + 16));
        let index_bytes = documents.checked_mul(INDEX_ENTRY);
        if index_offset < HEADER || index_bytes.and_then(|b| b.checked_add(index_offset)) != Some(len - FOOTER) {
            return Err(bad(format!(
                "footer says {documents} documents indexed at byte {index_offset}, which does not \
                 fit the file's {len} bytes"
            )));
        }
        let mut index = Vec::with_capacity(documents as usize);
        let mut previous = HEADER;
        for i in 0..documents as usize {
            let at = index_offset as usize + i * INDEX_ENTRY as usize;
            let (offset, records) = (u64_at(at), u32_at(at + 8));
            if offset < previous || offset > index_offset {
                return Err(bad(format!(
                    "index entry {i} points at byte {offset}, outside the records or out of order"
                )));
            }
            previous = offset;
            index.push((offset, records));
        }
        Ok(Self {
            path: path.to_owned(),
            map,
            k,
            tail,
            first_document,
            index,
            index_offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn first_document(&self) -> u64 {
        self.first_document
    }

    pub fn documents(&self) -> u64 {
        self.index.len() as u64
    }

    pub fn len_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn sha256(&self) -> String {
        format!("{:x}", Sha256::digest(&self.map[..]))
    }

    /// The records of document `index` (a global document number).
    pub fn document(&self, index: u64, permutation: &Permutation) -> Result<Vec<Decoded>> {
        let local = index
            .checked_sub(self.first_document)
            .filter(|&l| l < self.documents())
            .ok_or_else(|| cache_error(&self.path, format!("does not hold document {index}")))? as usize;
        let (start, records) = self.index[local];
        let end = self.index.get(local + 1).map_or(self.index_offset, |&(o, _)| o);
        let mut bytes = &self.map[start as usize..end as usize];
        // A record is at least three bytes (its 16-bit rest mass and headers).
        if u64::from(records) * 3 > end - start {
            return Err(cache_error(
                &self.path,
                format!("document {index}: {records} records cannot fit in {} bytes", end - start),
            ));
        }
        let mut decoded = Vec::with_capacity(records as usize);
        for record in 0..records {
            let (topk, used) = codec::decode(bytes, self.k, self.tail, permutation).map_err(|e| {
                cache_error(&self.path, format!("document {index}, record {record}: {e}"))
            })?;
            bytes = &bytes[used..];
            decoded.push(topk);
        }
        if !bytes.is_empty() {
            return Err(cache_error(
                &self.path,
                format!("document {index}: {} bytes left over after its {records} records", bytes.len()),
            ));
        }
        Ok(decoded)
    }
}
