//! JSON Lines files of arbitrary bytes and mutated valid ones: every record
//! read is an example or an error naming the file, never a panic, and the heap
//! stays within a bound set by the file's size.
//!
//! Longer run: `PROPTEST_CASES=100000 cargo nextest run -p datasets -E 'test(/fuzz/)'`.

mod fuzz_support;

use fuzz_support::{cases, edits, mutated, read_records};
use proptest::prelude::*;

#[global_allocator]
static METER: testkit::PeakAlloc = testkit::PeakAlloc;

/// The reader holds a 64 KiB read buffer and one line, which grows by
/// doubling (2× the line). serde_json's tree is the dense part: `[{},{},…]`
/// spends 3 bytes on each value, and a `Value` with an insertion-ordered map
/// is 72 bytes, in a vector that may have doubled, so up to 48× the line
/// (33× measured for a line of 100 000 of them); examples
/// copy only strings out of it. 64× covers both; `K` is the read buffer and
/// the fixed cost of an error message.
fn heap_bound(len: usize) -> usize {
    64 * len + 128 * 1024
}

const VALID: &str = concat!(
    r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}"#,
    "\n",
    r#"{"prompt": "Capital of France?", "completion": "Paris", "system": "Geography"}"#,
    "\r\n\n",
    r#"{"text": "plain text \u00e9 \"quoted\"", "id": 7, "tags": [1.5, null, true]}"#,
    "\n",
);

/// Reads every record of `bytes` as a `.jsonl` file, checking each error
/// names the file; returns how many records were examples.
fn read_all(bytes: &[u8]) -> Result<usize, TestCaseError> {
    read_records("case.jsonl", bytes, heap_bound(bytes.len()))
}

#[test]
fn the_valid_file_reads_three_examples() {
    assert_eq!(read_all(VALID.as_bytes()).unwrap(), 3);
}

/// The densest JSON the bound allows for: empty objects, three bytes each.
#[test]
fn a_line_of_empty_objects_stays_within_the_bound() {
    let line = format!("[{}{{}}]\n", "{},".repeat(100_000));
    let messages = format!("{{\"messages\": {line}");
    for text in [line, messages] {
        read_all(text.as_bytes()).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    #[test]
    fn fuzz_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        read_all(&bytes)?;
    }

    #[test]
    fn fuzz_mutated_valid_file(edits in edits()) {
        read_all(&mutated(VALID.as_bytes().to_vec(), &edits))?;
    }
}
