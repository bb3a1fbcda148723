//! Teacher caches with mutated, truncated or extended shards, manifests and
//! permutations: opening, reading every document and verifying give results
//! or errors naming a file of the cache, never a panic, and the heap stays
//! within a bound set by the cache's size.
//!
//! Longer run: `PROPTEST_CASES=100000 cargo nextest run -p datasets -E 'test(/fuzz/)'`.

mod fuzz_support;

use std::path::Path;
use std::sync::LazyLock;

use datasets::logit_cache::manifest::{FORMAT, VERSION, write_permutation};
use datasets::logit_cache::{
    CacheQuality, MANIFEST_FILE, Manifest, PERMUTATION_FILE, Permutation, ShardWriter,
    TeacherCache, TopK,
};
use fuzz_support::{Edit, cases, edits, mutated, within};
use proptest::prelude::*;

#[global_allocator]
static METER: testkit::PeakAlloc = testkit::PeakAlloc;

const VOCAB: usize = 300;
const K: usize = 8;
const FILES: [&str; 4] = [
    MANIFEST_FILE,
    PERMUTATION_FILE,
    "shard-00000.dlc",
    "shard-00001.dlc",
];

/// Everything read is linear in the cache's bytes: the manifest text and its
/// parsed entries (a few times its size), the permutation (1× read, 2× as
/// ranks and ids), each shard's index (16 bytes in memory per 12 on disk) and
/// a document's records, preallocated at 56 bytes per 3 claimed bytes (19×);
/// a decoded record holds 8 bytes per entry and spends at least 2 bits on
/// each (32×). The shards themselves are mapped, not heap. 64× covers the sum;
/// `K` is one record's vectors at the manifest's k (bounded by the vocabulary,
/// 2¹⁶) and the fixed cost of errors and paths.
fn heap_bound(cache_bytes: usize, k: usize) -> usize {
    64 * cache_bytes + 16 * k + 64 * 1024
}

fn record(seed: u32) -> TopK {
    let ids = (0..K as u32)
        .map(|i| (seed * 37 + i * 11) % VOCAB as u32)
        .collect();
    let logprobs = (0..K)
        .map(|i| -0.3 - i as f32 * (0.1 + seed as f32 / 50.0))
        .collect();
    TopK {
        ids,
        logprobs,
        rest: 0.05,
        tail: vec![],
    }
}

/// A cache of four documents in two shards, written by the crate's own writers.
fn write_cache(dir: &Path) {
    let mut counts = vec![1u64; VOCAB];
    (0..40).for_each(|i| counts[i * 7] = 100 - i as u64);
    let permutation = Permutation::by_frequency(&counts);
    write_permutation(&dir.join(PERMUTATION_FILE), &permutation).unwrap();
    let mut first = ShardWriter::create(&dir.join(FILES[2]), K, 0, 0).unwrap();
    first
        .push_document(&[record(1), record(2)], &permutation)
        .unwrap();
    first.push_document(&[record(3)], &permutation).unwrap();
    let mut second = ShardWriter::create(&dir.join(FILES[3]), K, 0, 2).unwrap();
    second
        .push_document(&[record(4), record(5), record(6)], &permutation)
        .unwrap();
    second.push_document(&[], &permutation).unwrap();
    Manifest {
        format: FORMAT.into(),
        version: VERSION,
        k: K,
        tail_samples: 0,
        vocab: VOCAB,
        teacher_sha256: "t".into(),
        tokenizer_sha256: "v".into(),
        data_fingerprint: 1,
        documents: 4,
        positions: 6,
        record_bytes: 0,
        bytes_per_position: 0.0,
        permutation_sha256: String::new(),
        quality: CacheQuality::default(),
        shards: vec![first.finish().unwrap(), second.finish().unwrap()],
    }
    .write(&dir.join(MANIFEST_FILE))
    .unwrap();
}

/// The valid cache's files, written once: the writers sync every file, which
/// would dominate each case's time.
fn valid_files() -> &'static [(&'static str, Vec<u8>)] {
    static FILES_WRITTEN: LazyLock<Vec<(&str, Vec<u8>)>> = LazyLock::new(|| {
        let dir = tempfile::tempdir().unwrap();
        write_cache(dir.path());
        FILES
            .iter()
            .map(|&f| (f, std::fs::read(dir.path().join(f)).unwrap()))
            .collect()
    });
    &FILES_WRITTEN
}

/// A copy of the valid cache with `change` made to each file's bytes.
fn cache_with(change: impl Fn(usize, Vec<u8>) -> Vec<u8>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, bytes)) in valid_files().iter().enumerate() {
        std::fs::write(dir.path().join(name), change(i, bytes.clone())).unwrap();
    }
    dir
}

fn cache_bytes(dir: &Path) -> usize {
    FILES
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len() as usize))
        .sum()
}

/// Opens the cache, reads every document it claims (and one past them) and
/// verifies it; returns the documents read, checking every error names a
/// file of the cache.
fn read_all(dir: &Path) -> Result<usize, TestCaseError> {
    let bound = heap_bound(cache_bytes(dir), 1 << 16);
    let results = within(bound, "reading the cache", || -> Result<Vec<_>, String> {
        let cache = TeacherCache::open(dir).map_err(|e| e.to_string())?;
        let documents = cache.manifest().documents;
        let mut read: Vec<_> = (0..=documents)
            .map(|d| {
                cache
                    .document(d)
                    .map(|records| records.len())
                    .map_err(|e| e.to_string())
            })
            .collect();
        read.push(cache.verify().map(|()| 0).map_err(|e| e.to_string()));
        Ok(read)
    })?;
    let dir_name = dir.display().to_string();
    let errors = match &results {
        Ok(read) => read.iter().filter_map(|r| r.as_ref().err()).collect(),
        Err(e) => vec![e],
    };
    for e in &errors {
        prop_assert!(e.contains(&dir_name), "{}", e);
    }
    Ok(results.map_or(0, |read| read.iter().filter(|r| r.is_ok()).count()))
}

#[test]
fn the_valid_cache_reads_every_document_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    write_cache(dir.path());
    let cache = TeacherCache::open(dir.path()).unwrap();
    cache.verify().unwrap();
    let lengths: Vec<usize> = (0..4).map(|d| cache.document(d).unwrap().len()).collect();
    assert_eq!(lengths, [2, 1, 3, 0]);
    assert!(cache.document(4).is_err());
}

fn file_edits() -> impl Strategy<Value = Vec<(usize, Vec<Edit>)>> {
    proptest::collection::vec((0..FILES.len(), edits()), 1..3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1000)))]

    #[test]
    fn fuzz_mutated_cache(changes in file_edits()) {
        let dir = cache_with(|file, bytes| {
            changes.iter().filter(|(f, _)| *f == file).fold(bytes, |b, (_, e)| mutated(b, e))
        });
        read_all(dir.path())?;
    }

    #[test]
    fn fuzz_arbitrary_shard(
        file in 2..FILES.len(),
        arbitrary in proptest::collection::vec(any::<u8>(), 0..256),
        keep_frame in any::<bool>(),
    ) {
        // With the valid header and footer kept, the bytes reach the index and records.
        let dir = cache_with(|f, valid| match f {
            _ if f != file => valid,
            _ if keep_frame => [&valid[..16], &arbitrary[..], &valid[valid.len() - 32..]].concat(),
            _ => arbitrary.clone(),
        });
        read_all(dir.path())?;
    }
}
