//! Teacher caches: the teacher's top-k next-token distribution at every trained
//! position of a prepared dataset, written once and read every epoch.
//!
//! A cache directory holds `manifest.json` (what was cached from what, every
//! shard with its size and sha256), `permutation.bin` (the vocabulary ranked
//! by how often each token is among the top k, which makes the ids cheap to
//! code) and shards `shard-NNNNN.dlc` of consecutive documents, each written
//! under a temporary name and renamed when complete. Records are coded by
//! [`codec`], about 90 bytes per position at k = 64.
//!
//! Ranks that share the work write [`parts`] of a cache, which [`merge`]
//! checks and assembles into the same directory.

pub mod codec;
pub mod manifest;
pub mod merge;
pub mod parts;
mod shard;

use std::path::{Path, PathBuf};

pub use codec::{CodecError, Decoded, Permutation, TopK};
pub use manifest::{CacheQuality, Manifest, ShardEntry};
pub use shard::{ShardReader, ShardWriter};

use crate::error::{DatasetError, Result};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const PERMUTATION_FILE: &str = "permutation.bin";

fn cache_error(path: &Path, message: impl Into<String>) -> DatasetError {
    DatasetError::LogitCache {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// An opened cache: its manifest, permutation and memory-mapped shards.
pub struct TeacherCache {
    dir: PathBuf,
    manifest: Manifest,
    permutation: Permutation,
    shards: Vec<ShardReader>,
}

impl TeacherCache {
    /// Opens the cache in `dir`, checking that the shards are those the manifest
    /// lists, cover its documents once each in order, and are whole.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::read(&dir.join(MANIFEST_FILE))?;
        let permutation = manifest::read_permutation(&dir.join(PERMUTATION_FILE), manifest.vocab)?;
        let mut shards = Vec::with_capacity(manifest.shards.len());
        let mut next = 0u64;
        for entry in &manifest.shards {
            // A shard is a file of the cache directory itself: a manifest must
            // not send the reader elsewhere on the disk.
            let plain = Path::new(&entry.file).components().count() == 1
                && matches!(Path::new(&entry.file).components().next(), Some(std::path::Component::Normal(_)));
            if !plain {
                return Err(cache_error(
                    &dir.join(MANIFEST_FILE),
                    format!("shard file {:?} is not a file name in the cache directory", entry.file),
                ));
            }
            let path = dir.join(&entry.file);
            if entry.first_document != next {
                return Err(cache_error(
                    &dir.join(MANIFEST_FILE),
                    format!(
                        "shard {} starts at document {}, expected {next}: the shards must cover \
                         the documents once each, in order",
                        entry.file, entry.first_document
                    ),
                ));
            }
            let reader = ShardReader::open(&path, manifest.k, manifest.tail_samples)?;
            if reader.first_document() != entry.first_document
                || reader.documents() != entry.documents
                || reader.len_bytes() != entry.bytes
            {
                return Err(cache_error(
                    &path,
                    "does not match its manifest entry (documents or size differ)",
                ));
            }
            next += entry.documents;
            shards.push(reader);
        }
        if next != manifest.documents {
            return Err(cache_error(
                &dir.join(MANIFEST_FILE),
                format!(
                    "the shards hold {next} documents, the manifest says {}",
                    manifest.documents
                ),
            ));
        }
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
            permutation,
            shards,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The records of document `index`, one per trained position in order.
    pub fn document(&self, index: u64) -> Result<Vec<Decoded>> {
        let shard = self
            .shards
            .iter()
            .find(|s| (s.first_document()..s.first_document() + s.documents()).contains(&index))
            .ok_or_else(|| {
                cache_error(
                    &self.dir,
                    format!(
                        "has no document {index}: it holds {}",
                        self.manifest.documents
                    ),
                )
            })?;
        shard.document(index, &self.permutation)
    }

    /// Recomputes every shard's sha256 and compares it with the manifest.
    pub fn verify(&self) -> Result<()> {
        for (reader, entry) in self.shards.iter().zip(&self.manifest.shards) {
            let hash = reader.sha256();
            if hash != entry.sha256 {
                return Err(cache_error(
                    reader.path(),
                    format!("sha256 is {hash}, the manifest says {}", entry.sha256),
                ));
            }
        }
        Ok(())
    }
}
