//! Merging the parts of a cache (see [`super::parts`]) into the cache
//! directory one process would have written.
//!
//! Nothing is trusted that can be checked: the parts must agree on what they
//! cached and from what, cover the documents exactly once, and each file must
//! still have the sha256 its rank recorded. Only then are the files linked
//! into `DIR.partial`, the manifest written, and the directory renamed to
//! `DIR`; the parts stay intact until that rename, so a killed merge is simply
//! run again.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::parts::{
    PART_MANIFEST_FILE, PartManifest, PartShard, cache_manifest, parse_part_name, part_name, partial_dir, parts_dir,
    rank_range, shard_file,
};
use super::{MANIFEST_FILE, Manifest, PERMUTATION_FILE, cache_error};
use crate::error::{DatasetError, Result};

/// A complete part: its directory and what its `part.json` says.
#[derive(Clone, Debug)]
pub struct Part {
    pub dir: PathBuf,
    pub manifest: PartManifest,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Every complete part in `DIR.parts`, checked to make exactly one cache,
/// in rank order. Temporary directories of ranks still running (or killed)
/// are not parts and are passed over.
pub fn check_parts(cache_dir: &Path) -> Result<Vec<Part>> {
    let parts = read_parts(cache_dir)?;
    let reference = &parts[0];
    for part in &parts {
        check_identity(reference, part)?;
        check_own_range(part)?;
    }
    check_coverage(cache_dir, &parts)?;
    check_split(cache_dir, &parts)?;
    check_permutations(&parts)?;
    for part in &parts {
        check_files(part)?;
    }
    Ok(parts)
}

/// Checks the parts of `DIR` and assembles the cache in `DIR`, which must not
/// exist; returns its manifest. The parts are left in place for the caller to
/// remove once it has opened the cache.
pub fn merge(cache_dir: &Path) -> Result<Manifest> {
    if cache_dir.exists() {
        return Err(cache_error(
            cache_dir,
            "already exists; the parts are merged into a new directory",
        ));
    }
    let parts = check_parts(cache_dir)?;
    let partial = partial_dir(cache_dir);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    let mut shards: Vec<PartShard> = Vec::new();
    let mut permutation_sha256 = None;
    for part in &parts {
        let Some(sha) = &part.manifest.permutation_sha256 else {
            continue;
        };
        if permutation_sha256.is_none() {
            link_or_copy(&part.dir.join(PERMUTATION_FILE), &partial.join(PERMUTATION_FILE))?;
            permutation_sha256 = Some(sha.clone());
        }
        for shard in &part.manifest.shards {
            link_or_copy(&part.dir.join(&shard.shard.file), &partial.join(&shard.shard.file))?;
        }
        shards.extend(part.manifest.shards.iter().cloned());
    }
    let permutation_sha256 = permutation_sha256.expect("a checked split has a part with documents");
    let manifest = cache_manifest(&parts[0].manifest.cache, &permutation_sha256, &shards);
    manifest.write(&partial.join(MANIFEST_FILE))?;
    sync_dir(&partial)?;
    std::fs::rename(&partial, cache_dir).map_err(io(cache_dir))?;
    if let Some(parent) = cache_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(manifest)
}

/// The complete parts in `DIR.parts` as their `part.json` files say, unchecked, in
/// name order (rank within world).
pub fn read_parts(cache_dir: &Path) -> Result<Vec<Part>> {
    let root = parts_dir(cache_dir);
    let entries = std::fs::read_dir(&root).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            cache_error(&root, "does not exist: no rank has written a part of this cache yet")
        } else {
            io(&root)(e)
        }
    })?;
    let mut parts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(&root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((rank, world)) = parse_part_name(&name) else {
            continue;
        };
        let dir = entry.path();
        let path = dir.join(PART_MANIFEST_FILE);
        let manifest = PartManifest::read(&path)?;
        if (manifest.rank, manifest.world) != (rank, world) {
            return Err(cache_error(
                &path,
                format!(
                    "says rank {} of {}, but its directory is named for rank {rank} of {world}",
                    manifest.rank, manifest.world
                ),
            ));
        }
        parts.push(Part { dir, manifest });
    }
    if parts.is_empty() {
        return Err(cache_error(
            &root,
            "holds no complete part (rank-RRRRR-of-WWWWW with a part.json)",
        ));
    }
    parts.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(parts)
}

fn check_identity(reference: &Part, part: &Part) -> Result<()> {
    match reference.manifest.cache.difference(&part.manifest.cache) {
        None => Ok(()),
        Some((field, ours, theirs)) => Err(cache_error(
            &part.dir.join(PART_MANIFEST_FILE),
            format!(
                "{field} is {theirs}, but {} has {ours}: the parts of one cache come from the same \
                 teacher, tokenizer, data, top-k and shard size; remove the stale part and rerun its rank",
                reference.dir.join(PART_MANIFEST_FILE).display()
            ),
        )),
    }
}

/// A part holds its rank's documents, in whole shards named by their place.
fn check_own_range(part: &Part) -> Result<()> {
    let m = &part.manifest;
    let path = part.dir.join(PART_MANIFEST_FILE);
    if m.world == 0 || m.rank >= m.world {
        return Err(cache_error(&path, format!("rank {} of {} is no rank", m.rank, m.world)));
    }
    let expected = rank_range(m.cache.documents, m.cache.shard_documents, m.rank, m.world);
    if m.range() != expected {
        return Err(cache_error(
            &path,
            format!(
                "covers documents {:?}, but rank {} of {} caches {expected:?} ({} documents in shards of {})",
                m.range(),
                m.rank,
                m.world,
                m.cache.documents,
                m.cache.shard_documents
            ),
        ));
    }
    let mut next = m.first_document;
    for s in &m.shards {
        let e = &s.shard;
        let name = shard_file(e.first_document / m.cache.shard_documents);
        let whole = e.documents == m.cache.shard_documents.min(m.end_document - e.first_document);
        if e.first_document != next || !whole || e.file != name {
            return Err(cache_error(
                &path,
                format!(
                    "lists {} for documents {}..{}, expected {name} from document {next} in shards of {}",
                    e.file,
                    e.first_document,
                    e.first_document + e.documents,
                    m.cache.shard_documents
                ),
            ));
        }
        next += e.documents;
    }
    if next != m.end_document {
        return Err(cache_error(
            &path,
            format!("its shards end at document {next}, the part at {}", m.end_document),
        ));
    }
    if m.permutation_sha256.is_some() == m.range().is_empty() {
        return Err(cache_error(
            &path,
            "a part has a permutation exactly when it has documents",
        ));
    }
    Ok(())
}

/// No document in two parts, none in no part.
fn check_coverage(cache_dir: &Path, parts: &[Part]) -> Result<()> {
    let mut by_start: Vec<&Part> = parts.iter().filter(|p| !p.manifest.range().is_empty()).collect();
    by_start.sort_by_key(|p| (p.manifest.first_document, p.manifest.end_document));
    let documents = parts[0].manifest.cache.documents;
    let mut next = 0u64;
    let mut previous: Option<&Part> = None;
    for part in by_start {
        let range = part.manifest.range();
        if range.start > next {
            return Err(gap(cache_dir, parts, next..range.start));
        }
        if range.start < next {
            let other = previous.expect("only a part ends before another starts");
            return Err(cache_error(
                &part.dir,
                format!(
                    "covers documents {range:?}, and {} covers {:?}: documents {:?} are in both; \
                     parts of another --world are left over, remove them",
                    other.dir.display(),
                    other.manifest.range(),
                    range.start..next.min(range.end)
                ),
            ));
        }
        next = range.end;
        previous = Some(part);
    }
    if next < documents {
        return Err(gap(cache_dir, parts, next..documents));
    }
    Ok(())
}

/// Names the documents no part covers and the ranks (of the first part's
/// split) that should have written them.
fn gap(cache_dir: &Path, parts: &[Part], missing: std::ops::Range<u64>) -> DatasetError {
    let cache = &parts[0].manifest.cache;
    let world = parts[0].manifest.world;
    let ranks: Vec<String> = (0..world)
        .filter(|&r| {
            let range = rank_range(cache.documents, cache.shard_documents, r, world);
            range.start < missing.end && missing.start < range.end
        })
        .map(|r| {
            format!(
                "{} (`--rank {r} --world {world}`)",
                parts_dir(cache_dir).join(part_name(r, world)).display()
            )
        })
        .collect();
    cache_error(
        &parts_dir(cache_dir),
        format!("documents {missing:?} are in no part: missing {}", ranks.join(", ")),
    )
}

/// One split: every part of the same world, every rank of it present.
fn check_split(cache_dir: &Path, parts: &[Part]) -> Result<()> {
    let world = parts[0].manifest.world;
    if let Some(other) = parts.iter().find(|p| p.manifest.world != world) {
        return Err(cache_error(
            &other.dir,
            format!(
                "is a part of {} ranks, {} of {world}; remove the parts of the other split",
                other.manifest.world,
                parts[0].dir.display()
            ),
        ));
    }
    for rank in 0..world {
        if !parts.iter().any(|p| p.manifest.rank == rank) {
            let dir = parts_dir(cache_dir).join(part_name(rank, world));
            return Err(cache_error(
                &dir,
                format!("is missing (rank {rank} of {world} has no documents, but a complete run writes it)"),
            ));
        }
    }
    Ok(())
}

/// Every rank ranked the same permutation on the same first documents; one
/// that differs computed the teacher differently.
fn check_permutations(parts: &[Part]) -> Result<()> {
    let mut with_documents = parts.iter().filter(|p| p.manifest.permutation_sha256.is_some());
    let Some(first) = with_documents.next() else {
        return Ok(());
    };
    for part in with_documents {
        if part.manifest.permutation_sha256 != first.manifest.permutation_sha256 {
            return Err(cache_error(
                &part.dir.join(PART_MANIFEST_FILE),
                format!(
                    "has another id permutation than {}: the ranks' teacher outputs on the first \
                     documents differ (another decant build or another kind of processor?)",
                    first.dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Each file is the one its rank wrote: size and sha256 as in `part.json`.
fn check_files(part: &Part) -> Result<()> {
    let m = &part.manifest;
    let Some(permutation) = &m.permutation_sha256 else {
        return Ok(());
    };
    let path = part.dir.join(PERMUTATION_FILE);
    let (_, sha) = hash_file(&path)?;
    if &sha != permutation {
        return Err(damaged(&path, &sha, permutation));
    }
    for s in &m.shards {
        let path = part.dir.join(&s.shard.file);
        let (bytes, sha) = hash_file(&path)?;
        if bytes != s.shard.bytes {
            return Err(cache_error(
                &path,
                format!("is {bytes} bytes, part.json says {}: rerun its rank", s.shard.bytes),
            ));
        }
        if sha != s.shard.sha256 {
            return Err(damaged(&path, &sha, &s.shard.sha256));
        }
    }
    Ok(())
}

fn damaged(path: &Path, sha: &str, expected: &str) -> DatasetError {
    cache_error(
        path,
        format!(
            "sha256 is {sha}, part.json says {expected}: the file changed after its rank wrote it; rerun that rank"
        ),
    )
}

fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(io(path))?;
    Ok((bytes, format!("{:x}", hasher.finalize())))
}

/// A hard link where the file system has them (no copy, and the part keeps
/// its file until the parts are removed), a synced copy otherwise.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(io(from))?;
    std::fs::File::open(to).and_then(|f| f.sync_all()).map_err(io(to))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}
