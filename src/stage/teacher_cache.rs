//! The teacher-cache stage: the teacher's top-k distributions over the
//! prepared training documents, written once and reused while the teacher,
//! its tokenizer, the data and k stay the same.
//!
//! One process writes the cache with [`ensure`]. Ranks that share the work
//! each write their part with [`ensure_part`] — no rank waits on or talks to
//! another — and one [`merge`] (or [`merge_parts`]) afterwards checks the parts
//! and assembles the same cache directory, which [`ensure`] then reuses.
//!
//! On disk, for a cache directory `DIR`:
//!
//! ```text
//! DIR.parts/rank-00001-of-00008/part.json        rank, world, documents, hashes, every file's sha256
//! DIR.parts/rank-00001-of-00008/permutation.bin  the same on every rank
//! DIR.parts/rank-00001-of-00008/shard-00003.dlc  shards under their final names
//! DIR.parts/rank-00001-of-00008.tmp-PID-NANOS/   a rank still writing (or killed): not a part
//! DIR/                                           the merged cache; DIR.parts is removed
//! ```

use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use datasets::logit_cache::merge::read_parts;
use datasets::logit_cache::parts::{PART_MANIFEST_FILE, PartManifest, part_name, parts_dir};
use datasets::logit_cache::{MANIFEST_FILE, Manifest, TeacherCache};
use datasets::{Documents, Tokenizer};
use distill::teacher_cache::{CacheSpec, cache_identity, write_cache, write_part};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use train::Transformer;

use super::StageError;

/// Documents per shard: a few MB each at ~90 bytes per position.
pub const SHARD_DOCUMENTS: u64 = 4096;
/// Documents whose top-k sets rank the id permutation.
pub const RANKING_DOCUMENTS: u64 = 512;
const BATCH_ROWS: usize = 8;

/// sha256 of every token's piece, in id order: two tokenizers that agree on it
/// split text into the same ids.
pub fn tokenizer_sha256(tokenizer: &Tokenizer, vocab: usize) -> String {
    let mut hasher = Sha256::new();
    for id in 0..vocab as u32 {
        match tokenizer.token_to_piece(id, true) {
            Ok(piece) => {
                hasher.update((piece.len() as u32).to_le_bytes());
                hasher.update(&piece);
            }
            Err(_) => hasher.update(u32::MAX.to_le_bytes()),
        }
    }
    format!("{:x}", hasher.finalize())
}

/// The cache in `dir` for these inputs, written first if absent.
pub fn ensure<B: Backend>(
    teacher: &Transformer<B>,
    documents: &Arc<Documents>,
    spec: CacheSpec,
    dir: &Path,
    progress: bool,
) -> Result<(TeacherCache, Manifest, bool), StageError> {
    if let Some(reused) = reuse(dir, Some((&spec, documents)))? {
        return Ok(reused);
    }
    let bar = bar(documents.len() as u64, progress);
    let manifest = write_cache(teacher, documents, &spec, dir, |done, _| {
        bar.set_position(done)
    })
    .map_err(|e| StageError::Unsupported(e.to_string()))?;
    bar.finish_and_clear();
    Ok((TeacherCache::open(dir)?, manifest, false))
}

/// What [`ensure_part`] found or did.
#[derive(Debug)]
pub enum PartOutcome {
    /// This call ran the teacher and wrote the part.
    Written(PartManifest),
    /// The part was already complete, for these inputs: nothing was run.
    Reused(PartManifest),
    /// The parts were already merged into `dir`, for these inputs.
    Merged(Manifest),
}

/// Rank `rank` of `world`'s part of the cache `dir`, written first if absent,
/// to `DIR.parts/rank-RRRRR-of-WWWWW/`.
///
/// The rank caches a contiguous run of whole shards of `spec.shard_documents`
/// (`datasets::logit_cache::parts::rank_range`), plus the teacher over the
/// first `spec.ranking_documents` for the id permutation, which every rank
/// computes alike; `documents` is the whole data set, the same on every rank.
/// `spec.shard_documents` must be a multiple of `spec.batch_rows` (the
/// [`spec`] defaults are). The part appears at its final name only when
/// complete, so a killed rank leaves none and is simply run again; a
/// completed part, or an already merged cache, of the same inputs makes the
/// call a no-op, and one of other inputs is an error naming it.
pub fn ensure_part<B: Backend>(
    teacher: &Transformer<B>,
    documents: &Arc<Documents>,
    spec: &CacheSpec,
    dir: &Path,
    rank: u32,
    world: u32,
    progress: bool,
) -> Result<PartOutcome, StageError> {
    if let Some((_, manifest, _)) = reuse(dir, Some((spec, documents)))? {
        return Ok(PartOutcome::Merged(manifest));
    }
    let expected = cache_identity(teacher.config.vocab_size, spec, documents);
    let existing = parts_dir(dir)
        .join(part_name(rank, world))
        .join(PART_MANIFEST_FILE);
    if existing.is_file() {
        let part = PartManifest::read(&existing)?;
        if let Some((field, theirs, ours)) = part.cache.difference(&expected) {
            return Err(StageError::RunDir {
                path: existing,
                message: format!(
                    "is a part of another cache ({field} is {theirs}, these inputs give {ours}); \
                     remove it or use another --out"
                ),
            });
        }
        return Ok(PartOutcome::Reused(part));
    }
    let bar = bar(0, progress);
    let part = write_part(teacher, documents, spec, dir, rank, world, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .map_err(|e| StageError::Unsupported(e.to_string()))?;
    bar.finish_and_clear();
    Ok(PartOutcome::Written(part))
}

/// Merges the parts of the cache `dir` written by [`ensure_part`] for these
/// inputs, and returns the cache as [`ensure`] does (true: it was merged
/// already). Every part must be of `spec` and `documents`; see
/// [`merge_parts`] for the checks and the layout.
pub fn merge(
    dir: &Path,
    spec: &CacheSpec,
    documents: &Documents,
) -> Result<(TeacherCache, Manifest, bool), StageError> {
    merge_checked(dir, Some((spec, documents)))
}

/// Merges the parts of the cache `dir` as their manifests describe them,
/// without the teacher or the data: checks that they agree (teacher,
/// tokenizer, data, k, shard size, world, permutation), cover the documents
/// exactly once, and that every file has its recorded size and sha256; then
/// links them into `DIR.partial`, writes the manifest one process would have
/// written, renames it to `DIR` and removes `DIR.parts`. Run it once, after
/// every rank has finished; run again after success, it returns the cache.
pub fn merge_parts(dir: &Path) -> Result<(TeacherCache, Manifest, bool), StageError> {
    merge_checked(dir, None)
}

fn merge_checked(
    dir: &Path,
    expected: Option<(&CacheSpec, &Documents)>,
) -> Result<(TeacherCache, Manifest, bool), StageError> {
    if let Some(reused) = reuse(dir, expected)? {
        remove_parts(dir)?;
        return Ok(reused);
    }
    if let Some((spec, documents)) = expected {
        for part in read_parts(dir)? {
            let theirs = &part.manifest.cache;
            let ours = cache_identity(theirs.vocab, spec, documents);
            if let Some((field, theirs, ours)) = theirs.difference(&ours) {
                return Err(StageError::RunDir {
                    path: part.dir.join(PART_MANIFEST_FILE),
                    message: format!(
                        "is a part of another cache ({field} is {theirs}, these inputs give {ours})"
                    ),
                });
            }
        }
    }
    let manifest = datasets::logit_cache::merge::merge(dir)?;
    let cache = TeacherCache::open(dir)?;
    remove_parts(dir)?;
    Ok((cache, manifest, false))
}

fn remove_parts(dir: &Path) -> Result<(), StageError> {
    let parts = parts_dir(dir);
    if parts.exists() {
        std::fs::remove_dir_all(&parts).map_err(|e| StageError::io(&parts, e))?;
    }
    Ok(())
}

/// The complete cache in `dir`, if there is one; an error if it is not of
/// these inputs.
fn reuse(
    dir: &Path,
    expected: Option<(&CacheSpec, &Documents)>,
) -> Result<Option<(TeacherCache, Manifest, bool)>, StageError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Ok(None);
    }
    let manifest = Manifest::read(&manifest_path)?;
    if let Some((spec, documents)) = expected {
        let same = manifest.teacher_sha256 == spec.teacher_sha256
            && manifest.tokenizer_sha256 == spec.tokenizer_sha256
            && manifest.data_fingerprint == documents.fingerprint()
            && manifest.k == spec.k;
        if !same {
            return Err(StageError::RunDir {
                path: dir.to_owned(),
                message: "holds a teacher cache of another teacher, tokenizer, data or top-k; \
                          remove it or use another --out"
                    .to_owned(),
            });
        }
    }
    Ok(Some((TeacherCache::open(dir)?, manifest, true)))
}

fn bar(documents: u64, progress: bool) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    ProgressBar::new(documents).with_style(
        ProgressStyle::with_template("teacher cache [{bar:30}] {pos}/{len} documents  ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    )
}

pub fn spec(
    k: usize,
    tail_samples: usize,
    teacher_sha256: String,
    tokenizer_sha256: String,
) -> CacheSpec {
    CacheSpec {
        k,
        tail_samples,
        teacher_sha256,
        tokenizer_sha256,
        shard_documents: SHARD_DOCUMENTS,
        ranking_documents: RANKING_DOCUMENTS,
        batch_rows: BATCH_ROWS,
    }
}
