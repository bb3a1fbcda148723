//! What the reader fuzz tests share: how many cases they run, how a valid file
//! is mutated, and how a reader's heap is metered. Each test binary uses part
//! of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;

use datasets::{DataSource, RecordSpec};
use proptest::prelude::*;
use proptest::sample::Index;

/// Cases per property: enough to run each file in seconds in a debug build;
/// `PROPTEST_CASES` raises it for a longer run.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// One change to a valid file. Overwrites hit length and offset fields, inserts
/// and removals shift everything after them, and a cut truncates.
#[derive(Clone, Debug)]
pub enum Edit {
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Cut(Index),
}

/// Any byte, or one that keeps text text: random bytes alone mostly make
/// invalid UTF-8, which text readers refuse before parsing anything.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        proptest::sample::select(b"0123456789-.eE\"{}[],: abnult\\".to_vec())
    ]
}

pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (any::<Index>(), byte()).prop_map(|(at, byte)| Edit::Set(at, byte)),
        1 => (any::<Index>(), byte()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        1 => any::<Index>().prop_map(Edit::Remove),
        1 => any::<Index>().prop_map(Edit::Cut),
    ];
    proptest::collection::vec(edit, 1..8)
}

pub fn mutated(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        if bytes.is_empty() {
            break;
        }
        match edit {
            Edit::Set(at, byte) => {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
            Edit::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), *byte),
            Edit::Remove(at) => {
                bytes.remove(at.index(bytes.len()));
            }
            Edit::Cut(at) => bytes.truncate(at.index(bytes.len())),
        }
    }
    bytes
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write the case");
    path
}

/// The default panic hook symbolizes a backtrace when RUST_BACKTRACE is set,
/// allocating tens of MiB on the panicking thread, which the meter would blame
/// on a reader that catches a dependency's panic; this one only prints the
/// message and where.
pub fn quiet_panics() {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
}

/// Runs `read` and fails the case when its peak heap exceeds `bound` bytes.
pub fn within<R>(bound: usize, what: &str, read: impl FnOnce() -> R) -> Result<R, TestCaseError> {
    quiet_panics();
    let (result, peak) = testkit::peak_during(read);
    prop_assert!(
        peak <= bound,
        "{}: {} heap bytes, bound {}",
        what,
        peak,
        bound
    );
    Ok(result)
}

/// Reads every record of `bytes` as a data file called `name`, within `bound`
/// heap bytes, checking that each error names the file; returns how many
/// records were examples.
pub fn read_records(name: &str, bytes: &[u8], bound: usize) -> Result<usize, TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), name, bytes);
    let source = DataSource::from_files(vec![path.clone()], RecordSpec::default());
    let results = within(bound, "reading the file", || {
        source
            .records()
            .map(|record| record.map(drop).map_err(|e| e.to_string()))
            .collect::<Vec<_>>()
    })?;
    let shown = path.display().to_string();
    let mut examples = 0;
    for result in results {
        match result {
            Ok(()) => examples += 1,
            Err(message) => prop_assert!(message.contains(&shown), "{}", message),
        }
    }
    Ok(examples)
}
