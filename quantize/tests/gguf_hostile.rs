//! Hostile and broken GGUF files: each is refused with an error naming the file and
//! what is wrong, never a panic and never an allocation sized by an unchecked field.
//!
//! The property tests run `PROPTEST_CASES` cases each (default in `cases()`); a
//! longer run: `PROPTEST_CASES=100000 cargo nextest run -p quantize --test gguf_hostile`.

use std::path::Path;

use proptest::prelude::*;
use quantize::gguf::{GgufError, GgufFile};

#[global_allocator]
static METER: testkit::PeakAlloc = testkit::PeakAlloc;

const F32: u32 = 0;
const Q8_0: u32 = 8;
const U32: u32 = 4;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const U64: u32 = 10;

/// Builds GGUF bytes field by field, valid or not.
#[derive(Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    /// Magic, version, tensor count, metadata count.
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Bytes {
        Bytes::default().raw(b"GGUF").u32(version).u64(n_tensors).u64(n_kv)
    }

    fn raw(mut self, bytes: &[u8]) -> Bytes {
        self.0.extend_from_slice(bytes);
        self
    }

    fn u32(self, v: u32) -> Bytes {
        self.raw(&v.to_le_bytes())
    }

    fn u64(self, v: u64) -> Bytes {
        self.raw(&v.to_le_bytes())
    }

    fn string(self, s: &[u8]) -> Bytes {
        self.u64(s.len() as u64).raw(s)
    }

    fn kv_u32(self, key: &str, v: u32) -> Bytes {
        self.string(key.as_bytes()).u32(U32).u32(v)
    }

    fn tensor(self, name: &str, shape: &[u64], ggml_type: u32, offset: u64) -> Bytes {
        let b = self.string(name.as_bytes()).u32(shape.len() as u32);
        shape.iter().fold(b, |b, &d| b.u64(d)).u32(ggml_type).u64(offset)
    }

    /// Zeros up to the next multiple of `alignment`.
    fn pad(self, alignment: usize) -> Bytes {
        let n = self.0.len().next_multiple_of(alignment) - self.0.len();
        self.raw(&vec![0; n])
    }

    fn zeros(self, n: usize) -> Bytes {
        self.raw(&vec![0; n])
    }
}

fn golden(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/gguf").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes `bytes` to a file named after the case, opens it, and checks the error
/// names that file and contains `expected`; the in-memory reader must agree.
fn assert_rejected(case: &str, bytes: &[u8], expected: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("hostile-{case}.gguf"));
    std::fs::write(&path, bytes).expect("write case");
    let err = GgufFile::open(&path).expect_err(case);
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{case}: path missing from {message:?}");
    assert!(message.contains(expected), "{case}: {expected:?} missing from {message:?}");
    assert!(matches!(err, GgufError::Malformed { .. }), "{case}: {err:?}");

    let in_memory =
        GgufFile::from_bytes(bytes.to_vec(), format!("{case}-in-memory")).expect_err(case);
    assert_eq!(in_memory.problem(), err.problem(), "{case}");
    assert!(in_memory.to_string().starts_with(&format!("{case}-in-memory: ")));
}

/// A valid file with one F32 tensor of `n` elements; the data starts at the
/// returned offset.
fn one_tensor(n: u64) -> (Bytes, usize) {
    let b = Bytes::header(3, 1, 1).kv_u32("a", 1).tensor("t", &[n], F32, 0).pad(32);
    let data_start = b.0.len();
    (b.zeros(4 * n as usize), data_start)
}

#[test]
fn the_builder_makes_valid_files() {
    let (b, data_start) = one_tensor(8);
    let file = GgufFile::from_bytes(b.0, "ok").expect("valid");
    assert_eq!(file.data_offset(), data_start as u64);
    assert_eq!(file.tensor_data(&file.tensors()[0]).len(), 32);
}

#[test]
fn bad_magic() {
    let b = Bytes::default().raw(b"GGML").u32(3).u64(0).u64(0).0;
    assert_rejected(
        "bad-magic",
        &b,
        r#"not a GGUF file: it starts with [47, 47, 4d, 4c], not the magic "GGUF""#,
    );
    assert_rejected("short-bad-magic", b"PK", "not a GGUF file");
}

#[test]
fn empty_and_truncated_headers() {
    assert_rejected(
        "empty",
        b"",
        "truncated GGUF header: 4 bytes needed at offset 0, but the file is 0 bytes",
    );
    assert_rejected("magic-only", b"GG", "truncated GGUF header");
    let header = Bytes::header(3, 0, 0).0;
    assert_rejected(
        "truncated-header",
        &header[..20],
        "truncated GGUF header: 8 bytes needed at offset 16",
    );
}

#[test]
fn unsupported_versions() {
    assert_rejected(
        "v1",
        &Bytes::header(1, 0, 0).0,
        "GGUF version 1 is not supported; only versions 2 and 3 are (v1 files",
    );
    assert_rejected("v0", &Bytes::header(0, 0, 0).0, "GGUF version 0 is not supported");
    assert_rejected("v4", &Bytes::header(4, 0, 0).0, "GGUF version 4 is not supported");
}

#[test]
fn big_endian_file() {
    let mut b = Bytes::header(3, 0, 0).0;
    b[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert_rejected("big-endian", &b, "big-endian GGUF file (the version field reads 0x03000000)");
}

#[test]
fn absurd_counts_in_the_header() {
    assert_rejected(
        "kv-count",
        &Bytes::header(3, 0, u64::MAX).0,
        "GGUF header claims 18446744073709551615 metadata entries, more than the 0 bytes left",
    );
    let b = Bytes::header(3, 1 << 40, 1).kv_u32("a", 1).0;
    assert_rejected("tensor-count", &b, "claims 1099511627776 tensors");
}

#[test]
fn truncated_metadata() {
    let b = Bytes::header(3, 0, 2).kv_u32("a", 1).string(b"b").u32(U64).u32(7).0;
    assert_rejected(
        "truncated-value",
        &b,
        "truncated value of metadata key 'b': 8 bytes needed at offset",
    );
    let b = Bytes::header(3, 0, 2).kv_u32("a", 1).u64(50).raw(b"abcdefghij").0;
    assert_rejected(
        "truncated-key",
        &b,
        "metadata key #1: string of 50 bytes is longer than the 10 bytes left",
    );
    let golden = golden("metadata.gguf");
    assert_rejected(
        "truncated-golden",
        &golden[..golden.len() / 2],
        "truncated metadata key #27: 8 bytes needed",
    );
}

#[test]
fn strings_longer_than_the_file() {
    let b = Bytes::header(3, 0, 1).string(b"s").u32(STRING).u64(1 << 40).raw(b"abc").0;
    assert_rejected(
        "long-string",
        &b,
        "value of metadata key 's': string of 1099511627776 bytes is longer than the 3 bytes left in the file",
    );
    let b = Bytes::header(3, 0, 1).u64(u64::MAX).raw(b"abcdefghijklmn").0;
    assert_rejected("long-key", &b, "metadata key #0: string of 18446744073709551615 bytes");
}

#[test]
fn absurd_array_lengths() {
    let b = Bytes::header(3, 0, 1).string(b"arr").u32(ARRAY).u32(U32).u64(1 << 60).u32(1).0;
    assert_rejected(
        "array-length",
        &b,
        "value of metadata key 'arr' claims 1152921504606846976 array elements, more than the 4 bytes left",
    );
    let b = Bytes::header(3, 0, 1).string(b"strs").u32(ARRAY).u32(STRING).u64(u64::MAX / 2).0;
    assert_rejected("string-array-length", &b, "claims 9223372036854775807 array elements");
    let b = Bytes::header(3, 0, 1).string(b"nested").u32(ARRAY).u32(ARRAY).u64(3).u32(U32).u64(0).0;
    assert_rejected("nested-array-length", &b, "claims 3 array elements");
}

#[test]
fn arrays_nested_too_deep() {
    let mut b = Bytes::header(3, 0, 1).string(b"deep").u32(ARRAY);
    for _ in 0..10_000 {
        b = b.u32(ARRAY).u64(1);
    }
    let b = b.u32(U32).u64(0);
    assert_rejected(
        "deep-arrays",
        &b.0,
        "metadata key 'deep' nests arrays more than 16 levels deep",
    );
}

#[test]
fn unknown_value_types() {
    let b = Bytes::header(3, 0, 1).string(b"k").u32(13).u32(0).0;
    assert_rejected("value-type", &b, "metadata key 'k' has unknown value type id 13");
    let b = Bytes::header(3, 0, 1).string(b"k").u32(ARRAY).u32(99).u64(0).0;
    assert_rejected("element-type", &b, "metadata key 'k' has unknown value type id 99");
}

#[test]
fn invalid_utf8() {
    let b = Bytes::header(3, 0, 1).string(b"bad\xff").u32(U32).u32(1).0;
    assert_rejected("utf8-key", &b, "metadata key #0 is not valid UTF-8");
    let b = Bytes::header(3, 0, 1).string(b"k").u32(STRING).string(b"\xc3\x28").0;
    assert_rejected("utf8-value", &b, "value of metadata key 'k' is not valid UTF-8");
    let b = Bytes::header(3, 1, 0)
        .string(b"\xe2\x82")
        .u32(1)
        .u64(8)
        .u32(F32)
        .u64(0)
        .pad(32)
        .zeros(32)
        .0;
    assert_rejected("utf8-tensor-name", &b, "name of tensor #0 is not valid UTF-8");
}

#[test]
fn empty_and_duplicate_keys() {
    let b = Bytes::header(3, 0, 1).kv_u32("", 1).0;
    assert_rejected("empty-key", &b, "metadata key #0 is empty");
    let b = Bytes::header(3, 0, 3).kv_u32("a", 1).kv_u32("b", 2).kv_u32("a", 3).0;
    assert_rejected("duplicate-key", &b, "duplicate metadata key 'a'");
}

#[test]
fn bad_alignment() {
    for (case, alignment) in [("alignment-48", 48), ("alignment-0", 0)] {
        let b = Bytes::header(3, 0, 1).kv_u32("general.alignment", alignment).0;
        assert_rejected(
            case,
            &b,
            &format!("general.alignment {alignment} is not a nonzero power of two"),
        );
    }
    let b = Bytes::header(3, 0, 1).string(b"general.alignment").u32(U64).u64(64).0;
    assert_rejected("alignment-type", &b, "general.alignment must be a u32, but it is a u64");
}

#[test]
fn duplicate_tensor_names() {
    let b = Bytes::header(3, 2, 0)
        .tensor("t", &[8], F32, 0)
        .tensor("t", &[8], F32, 32)
        .pad(32)
        .zeros(64)
        .0;
    assert_rejected("duplicate-tensor", &b, "duplicate tensor name 't'");
}

#[test]
fn truncated_tensor_info() {
    let b = Bytes::header(3, 1, 0).string(b"blk.0.attn_q.weight").u32(2).u64(8).0;
    assert_rejected(
        "truncated-tensor-info",
        &b,
        "truncated tensor info of 'blk.0.attn_q.weight': 8 bytes needed",
    );
}

#[test]
fn too_many_dimensions() {
    let b = Bytes::header(3, 1, 0).tensor("t5", &[1, 1, 1, 1, 1], F32, 0).pad(32).zeros(32).0;
    assert_rejected("five-dims", &b, "tensor 't5' has 5 dimensions; ggml allows at most 4");
    let b = Bytes::header(3, 1, 0).string(b"huge").u32(u32::MAX).zeros(64).0;
    assert_rejected("huge-n-dims", &b, "tensor 'huge' has 4294967295 dimensions");
}

#[test]
fn negative_and_overflowing_dimensions() {
    let b = Bytes::header(3, 1, 0).tensor("neg", &[8, 1 << 63], F32, 0).pad(32).0;
    assert_rejected(
        "negative-dim",
        &b,
        "tensor 'neg' dimension 1 is 9223372036854775808, negative as the i64 ggml stores",
    );
    let b = Bytes::header(3, 1, 0).tensor("big", &[1 << 32, 1 << 32], F32, 0).pad(32).0;
    assert_rejected(
        "element-overflow",
        &b,
        "tensor 'big' of shape [4294967296, 4294967296] has more elements than an i64 can count",
    );
    let b = Bytes::header(3, 1, 0).tensor("bytes", &[1 << 62], 28, 0).pad(32).0;
    assert_rejected(
        "byte-overflow",
        &b,
        "tensor 'bytes' of shape [4611686018427387904] and type f64 has more bytes than a u64 can count",
    );
}

#[test]
fn unknown_tensor_types() {
    for (case, id) in [("retired-type", 4), ("unknown-type", 1000)] {
        let b = Bytes::header(3, 1, 0).tensor("t", &[32], id, 0).pad(32).zeros(64).0;
        assert_rejected(case, &b, &format!("tensor 't' has unknown ggml type id {id}"));
    }
}

#[test]
fn rows_not_made_of_whole_blocks() {
    let b = Bytes::header(3, 1, 0).tensor("q", &[33, 2], Q8_0, 0).pad(32).zeros(128).0;
    assert_rejected(
        "partial-block",
        &b,
        "tensor 'q' of type q8_0 has rows of 33 elements, not a multiple of the block size 32",
    );
    // ggml checks rows, not totals: 16 × 2 elements are 32 but no row is a block.
    let b = Bytes::header(3, 1, 0).tensor("q", &[16, 2], Q8_0, 0).pad(32).zeros(64).0;
    assert_rejected("row-not-block", &b, "has rows of 16 elements");
}

#[test]
fn misaligned_offsets() {
    let b = Bytes::header(3, 1, 0).tensor("t", &[4], F32, 4).pad(32).zeros(64).0;
    assert_rejected(
        "misaligned",
        &b,
        "tensor 't' data offset 4 is not a multiple of the alignment 32",
    );
}

#[test]
fn tensor_data_out_of_bounds() {
    let (b, data_start) = one_tensor(8);
    let cut = &b.0[..b.0.len() - 5];
    assert_rejected(
        "truncated-data",
        cut,
        &format!(
            "tensor 't' data [offset {data_start}, 32 bytes) runs past the end of the file ({} bytes)",
            cut.len()
        ),
    );
    let b = Bytes::header(3, 1, 0)
        .tensor("blk.0.attn_q.weight", &[1024], F32, 1024)
        .pad(32)
        .zeros(3000 - 96)
        .0;
    assert_eq!(b.len(), 3000);
    assert_rejected(
        "out-of-bounds",
        &b,
        "tensor 'blk.0.attn_q.weight' data [offset 1120, 4096 bytes) runs past the end of the file (3000 bytes)",
    );
    let b = Bytes::header(3, 1, 0).tensor("far", &[8], F32, u64::MAX - 31).pad(32).zeros(32).0;
    assert_rejected(
        "offset-overflow",
        &b,
        "tensor 'far' data [offset 18446744073709551615, 32 bytes) runs past the end",
    );
    let golden = golden("tensors.gguf");
    assert_rejected("truncated-golden-data", &golden[..golden.len() - 20], "tensor 'i32_vec' data");
}

#[test]
fn data_section_past_the_end() {
    let b = Bytes::header(3, 1, 0).tensor("e", &[0], F32, 0).0;
    assert_rejected(
        "no-data-section",
        &b,
        "the tensor data section starts at offset 64, past the end of the file (57 bytes)",
    );
}

#[test]
fn overlapping_tensors() {
    let b = Bytes::header(3, 2, 0)
        .tensor("a", &[16], F32, 0)
        .tensor("b", &[8], F32, 32)
        .pad(32)
        .zeros(64)
        .0;
    assert_rejected(
        "overlap",
        &b,
        "tensors 'a' [offset 96, 64 bytes) and 'b' [offset 128, 32 bytes) overlap",
    );
    let b = Bytes::header(3, 2, 0)
        .tensor("x", &[8], F32, 0)
        .tensor("y", &[8], F32, 0)
        .pad(32)
        .zeros(32)
        .0;
    assert_rejected("same-offset", &b, "overlap");
}

#[test]
fn zero_sized_tensors_may_share_an_offset() {
    let b = Bytes::header(3, 2, 0)
        .tensor("z", &[0, 4], F32, 0)
        .tensor("t", &[8], F32, 0)
        .pad(32)
        .zeros(32)
        .0;
    let file = GgufFile::from_bytes(b, "zero").expect("valid");
    assert_eq!(file.tensor_data(file.tensor("z").expect("z")), b"");
}

#[test]
fn every_truncation_of_every_golden_is_an_error() {
    for name in
        ["metadata.gguf", "tensors.gguf", "alignment64.gguf", "v2.gguf", "empty_arrays.gguf"]
    {
        let bytes = golden(name);
        let file = GgufFile::from_bytes(bytes.clone(), name).expect("the golden itself is valid");
        // Only the padding after the last tensor (or after the tensor infos, when
        // there are no tensors) may go.
        let must_keep = match file
            .tensors()
            .iter()
            .map(|t| file.data_offset() + t.offset + t.n_bytes())
            .max()
        {
            Some(end) => end as usize,
            None => end_of_header(&bytes),
        };
        for len in 0..must_keep {
            let err = GgufFile::from_bytes(bytes[..len].to_vec(), name)
                .expect_err(&format!("{name} cut to {len}"));
            assert!(err.to_string().starts_with(&format!("{name}: ")));
        }
    }
}

/// A lower bound on where the header of a file without tensors ends: just past
/// its last nonzero byte.
fn end_of_header(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// Enough to run in a few seconds in a debug build; `PROPTEST_CASES` raises it.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000)
}

/// The most heap the parser may use for `len` input bytes. Every count in the file
/// is checked against the bytes left before it sizes a vector, so memory is linear
/// in the file's size, and the constant comes from the densest encodings:
/// - a metadata entry is 14 bytes at least and costs a `(String, Value)` (64 bytes),
///   a hash-map slot for its key (about 2 × 33 bytes at the load factor after a
///   resize) and two one-byte copies of the key: about 10× its encoded size, all
///   preallocated from the header's count; tensor infos (24 bytes, about 6×) are
///   preallocated from the same count check, before their bytes are read;
/// - an array of strings or arrays preallocates 24 or 32 bytes per claimed element
///   of at least 8 or 12 encoded bytes (3×), and up to `MAX_ARRAY_DEPTH` (16)
///   nested arrays claim the same remaining bytes at once.
///
/// 64× covers their sum with room; `K` is the fixed cost of an error message and
/// the empty tables.
fn heap_bound(len: usize) -> usize {
    64 * len + 16 * 1024
}

/// Parses `bytes` in memory and checks the parser stayed within [`heap_bound`].
fn parse_metered(
    bytes: Vec<u8>,
    label: &str,
) -> Result<Result<GgufFile, GgufError>, TestCaseError> {
    let len = bytes.len();
    let (parsed, peak) = testkit::peak_during(|| GgufFile::from_bytes(bytes, label));
    prop_assert!(peak <= heap_bound(len), "{} heap bytes for a {len}-byte file", peak);
    Ok(parsed)
}

fn mutated_golden(
    golden_index: usize,
    mutations: Vec<(prop::sample::Index, u8)>,
    cut: Option<prop::sample::Index>,
) -> (&'static str, Vec<u8>) {
    let name = GOLDENS[golden_index];
    let mut bytes = golden(name);
    for (at, byte) in mutations {
        let i = at.index(bytes.len());
        bytes[i] = byte;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut.index(bytes.len()));
    }
    (name, bytes)
}

const GOLDENS: [&str; 5] =
    ["metadata.gguf", "tensors.gguf", "alignment64.gguf", "v2.gguf", "empty_arrays.gguf"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_metered(bytes, "arbitrary")?;
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        version in prop_oneof![Just(2u32), Just(3u32)],
        rest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&rest);
        let _ = parse_metered(bytes, "arbitrary")?;
    }

    #[test]
    fn mutated_goldens_never_panic(
        golden_index in 0usize..GOLDENS.len(),
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let (name, bytes) = mutated_golden(golden_index, mutations, cut);
        if let Ok(file) = parse_metered(bytes, name)? {
            // Whatever parses must be consistent: every tensor's data is readable.
            for t in file.tensors() {
                prop_assert_eq!(file.tensor_data(t).len() as u64, t.n_bytes());
            }
        }
    }

    /// `open` maps the file instead of owning it; the map is not heap, so the same
    /// bound holds and the result must agree with the in-memory parse.
    #[test]
    fn mutated_goldens_opened_from_files_agree_with_memory(
        golden_index in 0usize..GOLDENS.len(),
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let (name, bytes) = mutated_golden(golden_index, mutations, cut);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).expect("write case");
        let (opened, peak) = testkit::peak_during(|| GgufFile::open(&path));
        prop_assert!(peak <= heap_bound(bytes.len()), "{} heap bytes opening a {}-byte file", peak, bytes.len());
        let in_memory = GgufFile::from_bytes(bytes, name);
        match (opened, in_memory) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a.tensors(), b.tensors()),
            (Err(a), Err(b)) => prop_assert_eq!(a.problem(), b.problem()),
            (a, b) => prop_assert!(false, "open gave {:?}, from_bytes {:?}", a.is_ok(), b.is_ok()),
        }
    }
}

/// The densest claims a file can make: header counts as large as the bytes left
/// allow, and arrays of arrays nested to the limit, each claiming as many elements
/// as the rest of the file could hold. The parser preallocates for each before
/// finding the claim false, so this is the worst case [`heap_bound`] must cover.
#[test]
fn the_largest_claims_stay_within_the_heap_bound() {
    let filler = 64 * 1024;
    let header = Bytes::header(3, filler / 24, filler / 14).zeros(filler as usize).0;
    let mut nested = Bytes::header(3, 0, 1).string(b"deep").u32(ARRAY);
    for _ in 0..15 {
        nested = nested.u32(ARRAY).u64(filler / 12);
    }
    let nested = nested.u32(STRING).u64(filler / 8).zeros(filler as usize).0;
    for (case, bytes) in [("header-counts", header), ("nested-arrays", nested)] {
        let len = bytes.len();
        let (parsed, peak) = testkit::peak_during(|| GgufFile::from_bytes(bytes, case));
        assert!(parsed.is_err(), "{case}");
        println!("{case}: {peak} heap bytes for {len} bytes");
        assert!(peak <= heap_bound(len), "{case}: {peak} heap bytes for {len} bytes");
    }
}
