//! `manifest.json` and `permutation.bin`: what a cache holds and how its ids
//! are ranked.

use std::io::Write;
use std::path::Path;

use quantize::gguf::{AtomicFile, Sink};
use serde::{Deserialize, Serialize};

use super::cache_error;
use super::codec::Permutation;
use crate::error::{DatasetError, Result};

pub const FORMAT: &str = "decant-teacher-cache";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    pub file: String,
    pub first_document: u64,
    pub documents: u64,
    pub records: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// How far the cached distribution is from the teacher's, measured on the
/// positions cached.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheQuality {
    /// Mean probability outside the top k.
    pub mean_rest: f64,
    /// Mean over positions of the largest |decoded − exact| top-k probability.
    pub mean_max_abs_error: f64,
    pub max_abs_error: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub k: usize,
    /// Ids drawn from the teacher's distribution outside the top-k, per unit
    /// of the mass there: a position holds `round(tail_samples × rest)`
    /// (absent, 0, in caches written without them).
    #[serde(default)]
    pub tail_samples: usize,
    pub vocab: usize,
    /// sha256 of the teacher's weights file(s).
    pub teacher_sha256: String,
    /// sha256 of the tokenizer's pieces, so that a student with another
    /// tokenizer is refused.
    pub tokenizer_sha256: String,
    /// The prepared documents' fingerprint (`datasets::Documents::fingerprint`).
    pub data_fingerprint: u64,
    pub documents: u64,
    /// Cached (trained) positions.
    pub positions: u64,
    pub record_bytes: u64,
    pub bytes_per_position: f64,
    pub permutation_sha256: String,
    pub quality: CacheQuality,
    pub shards: Vec<ShardEntry>,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Self> {
        let manifest: Manifest = read_versioned(path, "a teacher-cache manifest", (FORMAT, VERSION), |m: &Manifest| {
            (m.format.clone(), m.version)
        })?;
        if manifest.vocab > 1 << 16 || super::codec::check_k(manifest.k, manifest.tail_samples, manifest.vocab).is_err() {
            return Err(cache_error(
                path,
                format!(
                    "k = {} with {} tail samples over a vocabulary of {} is not a cache decant writes",
                    manifest.k, manifest.tail_samples, manifest.vocab
                ),
            ));
        }
        Ok(manifest)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, serde_json::to_string_pretty(self).expect("serializable").as_bytes())
    }
}

/// The JSON file `path`, `what` (for the message) in the format and version
/// `expected`, which `found` reads from it.
pub(crate) fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    expected: (&str, u32),
    found: impl Fn(&T) -> (String, u32),
) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_owned(),
        source,
    })?;
    let value: T = serde_json::from_str(&text).map_err(|e| cache_error(path, format!("is not {what}: {e}")))?;
    let (format, version) = found(&value);
    if format != expected.0 || version != expected.1 {
        return Err(cache_error(
            path,
            format!("has format {format} version {version}, this decant reads {} version {}", expected.0, expected.1),
        ));
    }
    Ok(value)
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| DatasetError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = AtomicFile::create(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.complete().map_err(io)?;
    Ok(())
}

/// `permutation.bin`: one little-endian u16 rank per vocabulary id.
pub fn write_permutation(path: &Path, permutation: &Permutation) -> Result<()> {
    let bytes: Vec<u8> = permutation.ranks().iter().flat_map(|r| r.to_le_bytes()).collect();
    write_atomic(path, &bytes)
}

pub(crate) fn read_permutation(path: &Path, vocab: usize) -> Result<Permutation> {
    let io = |source| DatasetError::Io { path: path.to_owned(), source };
    let expected = (vocab as u64).saturating_mul(2);
    // Checked before reading, so a permutation file of the wrong size is never
    // read into memory whole.
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size != expected {
        return Err(cache_error(
            path,
            format!("is {size} bytes, expected {expected} (a u16 rank per id of {vocab})"),
        ));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    if bytes.len() as u64 != expected {
        return Err(cache_error(path, "changed size while it was read"));
    }
    let ranks = bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    Permutation::from_ranks(ranks).map_err(|e| cache_error(path, e.to_string()))
}
