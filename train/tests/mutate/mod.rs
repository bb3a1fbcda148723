//! Mutations of valid files for the reader fuzz tests: what a corrupt download,
//! a truncated copy or a hostile author hands a reader. Byte edits here, edits
//! that keep a safetensors header or a JSON document parseable in the
//! submodules, so that cases get past the first syntax check to the size and
//! offset checks behind it.

#![allow(dead_code)] // each test binary uses part of this module

pub mod header;
pub mod json;

use proptest::prelude::*;

/// The longer run's size: `PROPTEST_CASES=100000` overrides each file's CI default.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Debug)]
pub enum ByteEdit {
    Set {
        at: usize,
        byte: u8,
    },
    /// Size fields and offsets are little-endian u64s; a whole one overwritten
    /// reaches them far more often than single bytes do.
    Word {
        at: usize,
        value: u64,
    },
    Truncate {
        len: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
}

/// Sizes a reader might trust: small, just past a boundary, and ones that
/// overflow or exhaust memory when multiplied or allocated.
pub fn hostile_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=4096,
        (0u32..64).prop_map(|bit| 1u64 << bit),
        (0u32..64).prop_map(|bit| (1u64 << bit) - 1),
        any::<u64>(),
    ]
}

pub fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| ByteEdit::Set { at, byte }),
        (any::<usize>(), hostile_u64()).prop_map(|(at, value)| ByteEdit::Word { at, value }),
        any::<usize>().prop_map(|len| ByteEdit::Truncate { len }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| ByteEdit::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| ByteEdit::Remove { at, len }),
    ]
}

/// Positions are taken modulo the length so that every edit lands. Half the
/// edits aim at the first 256 bytes, where the length prefix and the header are.
pub fn apply(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let place = |at: usize, len: usize| {
        if len == 0 {
            0
        } else if at % 2 == 0 {
            (at / 2) % len.min(256)
        } else {
            (at / 2) % len
        }
    };
    match edit {
        ByteEdit::Set { at, byte } => {
            if !bytes.is_empty() {
                let i = place(*at, bytes.len());
                bytes[i] = *byte;
            }
        }
        ByteEdit::Word { at, value } => {
            if bytes.len() >= 8 {
                let i = place(*at, bytes.len() - 7);
                bytes[i..i + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
        ByteEdit::Truncate { len } => bytes.truncate(len % (bytes.len() + 1)),
        ByteEdit::Insert { at, bytes: new } => {
            let i = place(*at, bytes.len() + 1);
            bytes.splice(i..i, new.iter().copied());
        }
        ByteEdit::Remove { at, len } => {
            let i = place(*at, bytes.len() + 1);
            let end = (i + len).min(bytes.len());
            bytes.drain(i..end);
        }
    }
}

pub fn apply_all(mut bytes: Vec<u8>, edits: &[ByteEdit]) -> Vec<u8> {
    for edit in edits {
        apply(&mut bytes, edit);
    }
    bytes
}
