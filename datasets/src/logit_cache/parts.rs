//! A teacher cache written in parts by ranks that never talk to each other.
//!
//! Rank R of W caches the documents of a contiguous run of whole cache shards
//! ([`rank_range`]), so every shard it writes is byte for byte the shard one
//! process would write at that place, and the merge ([`super::merge`]) only
//! checks and links files, never re-encodes them. A rank writes
//! `DIR.parts/rank-RRRRR-of-WWWWW/` — its shards under their final names,
//! `permutation.bin` and `part.json`, which lists every file's sha256 — under a
//! temporary name, and renames it when complete: a part at its final name is
//! whole.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::{FORMAT, VERSION, read_versioned, write_atomic};
use super::{CacheQuality, Manifest, ShardEntry};
use crate::error::Result;

pub const PART_MANIFEST_FILE: &str = "part.json";
pub const PART_FORMAT: &str = "decant-teacher-cache-part";
pub const PART_VERSION: u32 = 1;

/// What every part of one cache must agree on: the same teacher, tokenizer,
/// data and coding, split into the same shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheIdentity {
    pub k: usize,
    #[serde(default)]
    pub tail_samples: usize,
    pub vocab: usize,
    pub teacher_sha256: String,
    pub tokenizer_sha256: String,
    /// `datasets::Documents::fingerprint` of the whole data set.
    pub data_fingerprint: u64,
    /// Documents in the whole data set.
    pub documents: u64,
    pub shard_documents: u64,
    /// The first documents, whose top-k sets rank the id permutation.
    pub ranking_documents: u64,
}

impl CacheIdentity {
    /// The first field in which `other` differs, as (name, ours, theirs).
    pub fn difference(&self, other: &CacheIdentity) -> Option<(&'static str, String, String)> {
        let fields = [
            (
                "teacher_sha256",
                self.teacher_sha256.clone(),
                other.teacher_sha256.clone(),
            ),
            (
                "tokenizer_sha256",
                self.tokenizer_sha256.clone(),
                other.tokenizer_sha256.clone(),
            ),
            (
                "data_fingerprint",
                self.data_fingerprint.to_string(),
                other.data_fingerprint.to_string(),
            ),
            ("documents", self.documents.to_string(), other.documents.to_string()),
            ("k", self.k.to_string(), other.k.to_string()),
            ("tail_samples", self.tail_samples.to_string(), other.tail_samples.to_string()),
            ("vocab", self.vocab.to_string(), other.vocab.to_string()),
            (
                "shard_documents",
                self.shard_documents.to_string(),
                other.shard_documents.to_string(),
            ),
            (
                "ranking_documents",
                self.ranking_documents.to_string(),
                other.ranking_documents.to_string(),
            ),
        ];
        fields.into_iter().find(|(_, a, b)| a != b)
    }
}

/// A shard's sums of how far its decoded records are from the teacher. The
/// cache's quality is summed from these in shard order, by one process or by
/// the merge alike, so both write the same manifest to the last bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySums {
    /// Σ probability outside the top k.
    pub rest: f64,
    /// Σ over positions of the largest |decoded − exact| top-k probability.
    pub abs_error: f64,
    pub max_abs_error: f64,
    /// Bytes of the coded records (the shard less its header, index, footer).
    pub record_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartShard {
    pub shard: ShardEntry,
    pub quality: QualitySums,
}

/// `part.json`: which documents a rank cached, from what, into which files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartManifest {
    pub format: String,
    pub version: u32,
    pub rank: u32,
    pub world: u32,
    /// The documents `first_document..end_document` of the data set.
    pub first_document: u64,
    pub end_document: u64,
    pub cache: CacheIdentity,
    /// sha256 of the part's `permutation.bin`; `None` for a rank left without
    /// documents (more ranks than shards), which writes no files.
    pub permutation_sha256: Option<String>,
    pub shards: Vec<PartShard>,
}

impl PartManifest {
    pub fn read(path: &Path) -> Result<Self> {
        read_versioned(path, "a teacher-cache part manifest", (PART_FORMAT, PART_VERSION), |p: &PartManifest| {
            (p.format.clone(), p.version)
        })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(
            path,
            serde_json::to_string_pretty(self).expect("serializable").as_bytes(),
        )
    }

    pub fn range(&self) -> Range<u64> {
        self.first_document..self.end_document
    }
}

/// The documents rank `rank` of `world` caches: a contiguous run of whole
/// shards of `shard_documents`, the runs as even as whole shards allow (ranks
/// beyond the number of shards get none).
pub fn rank_range(documents: u64, shard_documents: u64, rank: u32, world: u32) -> Range<u64> {
    assert!(
        shard_documents > 0 && rank < world,
        "rank {rank} of {world}, shards of {shard_documents}"
    );
    let shards = documents.div_ceil(shard_documents);
    let first = shards * u64::from(rank) / u64::from(world);
    let end = shards * (u64::from(rank) + 1) / u64::from(world);
    (first * shard_documents).min(documents)..(end * shard_documents).min(documents)
}

/// The file name of shard `index` (counted over the whole cache).
pub fn shard_file(index: u64) -> String {
    format!("shard-{index:05}.dlc")
}

/// `DIR.parts`, beside the cache `DIR` the parts are merged into.
pub fn parts_dir(cache_dir: &Path) -> PathBuf {
    sibling(cache_dir, ".parts")
}

/// `DIR.partial`, where a cache is assembled before it is renamed to `DIR`.
pub fn partial_dir(cache_dir: &Path) -> PathBuf {
    sibling(cache_dir, ".partial")
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    dir.with_file_name(name)
}

/// `rank-RRRRR-of-WWWWW`: sorts by rank, and names the split it belongs to.
pub fn part_name(rank: u32, world: u32) -> String {
    format!("rank-{rank:05}-of-{world:05}")
}

/// The (rank, world) a final part directory's name says, or `None` for any
/// other name (a rank's temporary directory among them).
pub fn parse_part_name(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("rank-")?;
    let (rank, world) = rest.split_once("-of-")?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(rank) && digits(world)) {
        return None;
    }
    Some((rank.parse().ok()?, world.parse().ok()?))
}

/// The cache manifest of these shards (every shard of the cache, in order):
/// what one process writes and what the merge writes, from the same sums.
pub fn cache_manifest(cache: &CacheIdentity, permutation_sha256: &str, shards: &[PartShard]) -> Manifest {
    let positions: u64 = shards.iter().map(|s| s.shard.records).sum();
    let mut sums = QualitySums::default();
    for s in shards {
        sums.rest += s.quality.rest;
        sums.abs_error += s.quality.abs_error;
        sums.max_abs_error = sums.max_abs_error.max(s.quality.max_abs_error);
        sums.record_bytes += s.quality.record_bytes;
    }
    let n = positions.max(1) as f64;
    Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        k: cache.k,
        tail_samples: cache.tail_samples,
        vocab: cache.vocab,
        teacher_sha256: cache.teacher_sha256.clone(),
        tokenizer_sha256: cache.tokenizer_sha256.clone(),
        data_fingerprint: cache.data_fingerprint,
        documents: cache.documents,
        positions,
        record_bytes: sums.record_bytes,
        bytes_per_position: sums.record_bytes as f64 / n,
        permutation_sha256: permutation_sha256.to_owned(),
        quality: CacheQuality {
            mean_rest: sums.rest / n,
            mean_max_abs_error: sums.abs_error / n,
            max_abs_error: sums.max_abs_error,
        },
        shards: shards.iter().map(|s| s.shard.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_split_whole_shards_once_each() {
        for documents in [1u64, 7, 8, 9, 40, 41, 100] {
            for world in 1..=7 {
                let mut next = 0;
                for rank in 0..world {
                    let range = rank_range(documents, 8, rank, world);
                    assert_eq!(range.start, next, "{documents} documents, rank {rank} of {world}");
                    assert!(range.start.is_multiple_of(8) || range.is_empty());
                    next = range.end;
                }
                assert_eq!(next, documents);
            }
        }
        assert_eq!(rank_range(40, 8, 1, 3), 8..24);
    }

    #[test]
    fn part_names_round_trip_and_temporary_names_are_not_parts() {
        assert_eq!(parse_part_name(&part_name(3, 8)), Some((3, 8)));
        assert_eq!(parse_part_name("rank-00003-of-00008.tmp-12-34"), None);
        assert_eq!(parse_part_name("rank-3-of-8"), None);
    }
}
