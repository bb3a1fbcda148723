//! Held-out data: a fraction of the records, chosen by a hash of each
//! record's content, or whole files set aside.
//!
//! Hashing the content rather than drawing by position keeps a record on its
//! side when files are reordered or grow, and sends duplicates to the same
//! side, so a held-out score is never inflated by copies of training records.

use std::path::{Path, PathBuf};

use crate::chat_template::Message;
use crate::error::{DatasetError, Result};
use crate::hash::StableHasher;
use crate::record::Example;
use crate::source::Record;

/// Which side of a split a record is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Train,
    HeldOut,
}

/// Holds out about `fraction` of the records, the same ones for the same seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FractionSplit {
    /// Records whose hash is below this are held out.
    threshold: u64,
    seed: u64,
}

impl FractionSplit {
    pub fn new(fraction: f64, seed: u64) -> Result<Self> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(DatasetError::InvalidConfig {
                what: "held-out fraction",
                message: format!("{fraction} is not strictly between 0 and 1"),
            });
        }
        Ok(Self {
            threshold: (fraction * 2f64.powi(64)) as u64,
            seed,
        })
    }

    pub fn part(&self, example: &Example) -> Part {
        let mut hasher = StableHasher::new();
        hasher.u64(self.seed);
        match example {
            Example::Text(text) => {
                hasher.u64(0).bytes(text.as_bytes());
            }
            Example::Chat(messages) => {
                hasher.u64(1);
                for Message { role, content } in messages {
                    hasher
                        .bytes(role.as_str().as_bytes())
                        .bytes(content.as_bytes());
                }
            }
        }
        if hasher.finish() < self.threshold {
            Part::HeldOut
        } else {
            Part::Train
        }
    }

    /// The records of `part`; errors pass through.
    pub fn select<I>(self, records: I, part: Part) -> impl Iterator<Item = Result<Record>>
    where
        I: IntoIterator<Item = Result<Record>>,
    {
        records.into_iter().filter(move |record| match record {
            Ok(record) => self.part(&record.example) == part,
            Err(_) => true,
        })
    }
}

/// `files` without those held out, compared as canonical paths, so that a
/// directory or glob of training shards may include the held-out file.
pub fn without_files(files: Vec<PathBuf>, held_out: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let canonical = |path: &Path| {
        path.canonicalize().map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let held_out = held_out
        .iter()
        .map(|path| canonical(path))
        .collect::<Result<Vec<_>>>()?;
    let mut kept = Vec::with_capacity(files.len());
    for file in files {
        if !held_out.contains(&canonical(&file)?) {
            kept.push(file);
        }
    }
    Ok(kept)
}
