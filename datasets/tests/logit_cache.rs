//! Teacher-cache shards and manifests as a reader meets them: whole, cut short,
//! overwritten, or out of step with their manifest — errors naming the file,
//! never a panic.

use datasets::logit_cache::manifest::{FORMAT, VERSION, write_permutation};
use datasets::logit_cache::{
    CacheQuality, MANIFEST_FILE, Manifest, PERMUTATION_FILE, Permutation, ShardReader, ShardWriter,
    TeacherCache, TopK,
};

const VOCAB: usize = 50;
const K: usize = 4;

fn record(seed: u32) -> TopK {
    let ids: Vec<u32> = (0..K as u32).map(|i| (seed * 7 + i * 11) % VOCAB as u32).collect();
    TopK { ids, logprobs: vec![-0.5, -1.5, -2.0, -4.0], rest: 0.1, tail: vec![] }
}

/// A cache of three documents in two shards, and its manifest.
fn write(dir: &std::path::Path) -> Manifest {
    let permutation = Permutation::by_frequency(&vec![1; VOCAB]);
    write_permutation(&dir.join(PERMUTATION_FILE), &permutation).unwrap();
    let mut first = ShardWriter::create(&dir.join("shard-00000.dlc"), K, 0, 0).unwrap();
    first.push_document(&[record(1), record(2)], &permutation).unwrap();
    first.push_document(&[record(3)], &permutation).unwrap();
    let mut second = ShardWriter::create(&dir.join("shard-00001.dlc"), K, 0, 2).unwrap();
    second.push_document(&[record(4), record(5), record(6)], &permutation).unwrap();
    let shards = vec![first.finish().unwrap(), second.finish().unwrap()];
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        k: K,
        tail_samples: 0,
        vocab: VOCAB,
        teacher_sha256: "t".into(),
        tokenizer_sha256: "v".into(),
        data_fingerprint: 1,
        documents: 3,
        positions: 6,
        record_bytes: 0,
        bytes_per_position: 0.0,
        permutation_sha256: String::new(),
        quality: CacheQuality::default(),
        shards,
    };
    manifest.write(&dir.join(MANIFEST_FILE)).unwrap();
    manifest
}

#[test]
fn a_written_cache_reads_back_its_documents() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path());
    let cache = TeacherCache::open(dir.path()).unwrap();
    cache.verify().unwrap();
    let lengths: Vec<usize> = (0..3).map(|d| cache.document(d).unwrap().len()).collect();
    assert_eq!(lengths, [2, 1, 3]);
    let mut ids = cache.document(2).unwrap()[0].ids.clone();
    ids.sort_unstable();
    let mut expected = record(4).ids;
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let err = cache.document(3).err().unwrap().to_string();
    assert!(err.contains("has no document 3: it holds 3"), "{err}");
}

#[test]
fn damaged_shards_are_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path());
    let shard = dir.path().join("shard-00000.dlc");
    let good = std::fs::read(&shard).unwrap();
    let open = |bytes: &[u8]| {
        std::fs::write(&shard, bytes).unwrap();
        ShardReader::open(&shard, K, 0).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let name = shard.display().to_string();
    let err = open(&good[..20]);
    assert!(err.contains(&name) && err.contains("shorter than a shard's header and footer"), "{err}");
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(open(&bad).contains("no DCLC magic"));
    let mut bad = good.clone();
    let at = bad.len() - 16;
    bad[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(open(&bad).contains("does not fit the file"));
    assert!(ShardReader::open(&dir.path().join("shard-00001.dlc"), 8, 0).err().unwrap().to_string().contains("holds top-4 records, the manifest says top-8"));
    // Every truncation and every flipped byte is an error or a readable shard, never a panic.
    let permutation = Permutation::by_frequency(&vec![1; VOCAB]);
    for cut in 0..good.len() {
        std::fs::write(&shard, &good[..cut]).unwrap();
        assert!(ShardReader::open(&shard, K, 0).is_err());
    }
    for at in 0..good.len() {
        let mut flipped = good.clone();
        flipped[at] ^= 0x5a;
        std::fs::write(&shard, &flipped).unwrap();
        if let Ok(reader) = ShardReader::open(&shard, K, 0) {
            for document in 0..2 {
                let _ = reader.document(document, &permutation);
            }
        }
    }
}

#[test]
fn a_manifest_out_of_step_with_its_shards_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = write(dir.path());
    manifest.shards[1].first_document = 3;
    manifest.write(&dir.path().join(MANIFEST_FILE)).unwrap();
    let err = TeacherCache::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("shard shard-00001.dlc starts at document 3, expected 2"), "{err}");

    let mut manifest = write(dir.path());
    manifest.shards[0].sha256 = "0".repeat(64);
    manifest.write(&dir.path().join(MANIFEST_FILE)).unwrap();
    let err = TeacherCache::open(dir.path()).unwrap().verify().err().unwrap().to_string();
    assert!(err.contains("shard-00000.dlc") && err.contains("the manifest says 0000"), "{err}");

    for outside in ["../shard-00000.dlc", "/tmp/shard-00000.dlc", "sub/shard-00000.dlc"] {
        let mut manifest = write(dir.path());
        manifest.shards[0].file = outside.to_owned();
        manifest.write(&dir.path().join(MANIFEST_FILE)).unwrap();
        let err = TeacherCache::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains(&format!("shard file {outside:?} is not a file name in the cache directory")), "{err}");
    }

    write(dir.path());
    std::fs::write(dir.path().join(PERMUTATION_FILE), [0u8; 10]).unwrap();
    let err = TeacherCache::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("is 10 bytes, expected 100"), "{err}");
}
