//! Parquet and Arrow IPC files (file and stream format) of arbitrary bytes and
//! mutated valid ones: every record read is an example or an error naming the
//! file, never a panic, and the heap stays within a bound set by the file's size.
//!
//! Longer run: `PROPTEST_CASES=100000 cargo nextest run -p datasets -E 'test(/fuzz/)'`.

mod data_files;
mod fuzz_support;

use std::sync::LazyLock;

use arrow_array::RecordBatch;
use data_files::{batch, messages, strings, write_arrow_file, write_arrow_stream};
use datasets::{DataSource, RecordSpec};
use fuzz_support::{cases, edits, mutated, quiet_panics, read_records, write};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use proptest::prelude::*;

#[global_allocator]
static METER: testkit::PeakAlloc = testkit::PeakAlloc;

/// Readers decode a row group or record batch at a time, into Arrow buffers
/// sized by the file's page and buffer lengths, which must be checked against
/// the file before they size anything; a compressed page may legitimately
/// expand, and snappy and zstd both expand at most a few hundred times, but
/// these small test files compress little. Records then copy cells into JSON
/// values (up to 48×, see fuzz_jsonl.rs). 64× covers these; `K` is the
/// readers' fixed buffers (a zstd context is about 1 MiB, read buffers 8 KiB).
fn heap_bound(len: usize) -> usize {
    64 * len + (4 << 20)
}

fn sample() -> RecordBatch {
    let conversations: Vec<&[(&str, &str)]> = vec![
        &[("user", "Hi"), ("assistant", "Hello!")],
        &[
            ("system", "Be brief."),
            ("user", "2+2?"),
            ("assistant", "4"),
        ],
        &[("user", "é?"), ("assistant", "ü")],
    ];
    batch(vec![
        ("messages", messages(&conversations)),
        ("text", strings(&[Some("one"), None, Some("three")])),
    ])
}

fn parquet_bytes(compression: Compression) -> Vec<u8> {
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(2))
        .set_compression(compression)
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, sample().schema(), Some(properties)).unwrap();
    writer.write(&sample()).unwrap();
    writer.close().unwrap();
    bytes
}

/// Valid files of each kind, with the extension that selects their reader.
static VALID: LazyLock<Vec<(&'static str, Vec<u8>)>> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let arrow = |write: fn(&std::path::Path, &RecordBatch, usize) -> std::path::PathBuf, name| {
        std::fs::read(write(&dir.path().join(name), &sample(), 2)).unwrap()
    };
    vec![
        ("case.parquet", parquet_bytes(Compression::UNCOMPRESSED)),
        ("case.parquet", parquet_bytes(Compression::SNAPPY)),
        (
            "case.parquet",
            parquet_bytes(Compression::ZSTD(ZstdLevel::default())),
        ),
        ("case.arrow", arrow(write_arrow_file, "file.arrow")),
        ("case.arrow", arrow(write_arrow_stream, "stream.arrow")),
    ]
});

/// Reads every record of `bytes` as a file called `name`, checking each error
/// names the file; returns how many records were examples.
fn read_all(name: &str, bytes: &[u8]) -> Result<usize, TestCaseError> {
    read_records(name, bytes, heap_bound(bytes.len()))
}

#[test]
fn the_valid_files_read_three_examples_each() {
    for (name, bytes) in VALID.iter() {
        assert_eq!(read_all(name, bytes).unwrap(), 3, "{name}");
    }
}

/// The first error reading `bytes` as `name` in `dir`, or `None` when every
/// record reads.
fn first_error(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Option<String> {
    let path = write(dir, name, bytes);
    let source = DataSource::from_files(vec![path], RecordSpec::default());
    let first = source.records().find_map(Result::err);
    first.map(|e| e.to_string())
}

/// Findings of the fuzz tests, from overwritten bytes of valid files or a few
/// bytes framed by magic: the Arrow IPC reader allocated 16 MiB for a 22-byte
/// file's footer length, panicked slicing a batch buffer that lay outside its
/// body and asserting the alignment of an offsets buffer whose length was not
/// a whole number of offsets; the Parquet reader panicked on a column chunk
/// of negative offset. Single-byte overwrites are tried in turn, so each
/// field is hit wherever the writer put it.
#[test]
fn size_fields_that_do_not_fit_the_file_are_refused() {
    quiet_panics();
    let dir = tempfile::tempdir().unwrap();
    let footer_len = 0x00FF_FFFFi32.to_le_bytes();
    let tiny = [&b"ARROW1\0\0"[..], &[1, 2, 3, 4], &footer_len, b"ARROW1"].concat();
    let (error, peak) = testkit::peak_during(|| first_error(dir.path(), "case.arrow", &tiny));
    assert!(
        error
            .expect("refused")
            .contains("footer length 16777215 does not fit")
    );
    assert!(peak < 64 * 1024, "{peak} heap bytes");

    let expected = [
        (0, "outside the file's"),
        (3, "lies outside the"),
        (3, "outside its"),
        (4, "outside its"),
        (4, "the Arrow reader panicked"),
    ];
    for (which, fragment) in expected {
        let (name, valid) = &VALID[which];
        let found = (0..valid.len()).any(|at| {
            [0x80, 0xFF].into_iter().any(|byte| {
                let mut bytes = valid.clone();
                bytes[at] = byte;
                first_error(dir.path(), name, &bytes).is_some_and(|e| e.contains(fragment))
            })
        });
        assert!(found, "no overwrite of file {which} gives {fragment:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1000)))]

    #[test]
    fn fuzz_arbitrary_bytes(
        parquet in any::<bool>(),
        magic in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        // With its magic at both ends, a Parquet file's bytes reach the footer
        // parser; an Arrow file's reach the IPC file reader.
        let (name, bytes) = match (parquet, magic) {
            (true, true) => ("case.parquet", [b"PAR1", &body[..], b"PAR1"].concat()),
            (false, true) => ("case.arrow", [b"ARROW1\0\0", &body[..], b"ARROW1"].concat()),
            (true, false) => ("case.parquet", body),
            (false, false) => ("case.arrow", body),
        };
        read_all(name, &bytes)?;
    }

    #[test]
    fn fuzz_mutated_valid_file(which in 0..5usize, edits in edits()) {
        let (name, bytes) = &VALID[which];
        read_all(name, &mutated(bytes.clone(), &edits))?;
    }
}
