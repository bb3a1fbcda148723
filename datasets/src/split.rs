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
use crate::source::{DataSource, Record, resolve_files};

/// Which side of a split a record is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Train,
    HeldOut,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::HeldOut => "held-out",
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Part {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        [Part::Train, Part::HeldOut]
            .into_iter()
            .find(|part| part.name() == name)
            .ok_or_else(|| format!("unknown part '{name}' (expected train or held-out)"))
    }
}

/// How the held-out data is chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum HeldOut {
    /// A share of every file's records.
    Fraction(FractionSplit),
    /// These data files, directories or globs; where the training data names
    /// the same files, they leave it.
    Files(Vec<String>),
}

/// Training data and the data held out beside it.
#[derive(Clone, Debug)]
pub struct Split {
    train: DataSource,
    held_out: DataSource,
    /// For a fraction split, both sides read the same files and keep the
    /// records of their part.
    fraction: Option<FractionSplit>,
}

impl Split {
    pub fn new(source: DataSource, held_out: HeldOut) -> Result<Self> {
        match held_out {
            HeldOut::Fraction(fraction) => Ok(Self {
                train: source.clone(),
                held_out: source,
                fraction: Some(fraction),
            }),
            HeldOut::Files(patterns) => {
                let held_out_files = resolve_files(&patterns)?;
                let train_files = without_files(source.files().to_vec(), &held_out_files)?;
                if train_files.is_empty() {
                    return Err(DatasetError::InvalidConfig {
                        what: "held-out files",
                        message: format!(
                            "{} hold(s) out every training file, leaving nothing to train on",
                            patterns.join(", ")
                        ),
                    });
                }
                let spec = source.spec().clone();
                Ok(Self {
                    train: DataSource::from_files(train_files, spec.clone()),
                    held_out: DataSource::from_files(held_out_files, spec),
                    fraction: None,
                })
            }
        }
    }

    /// The files `part` reads.
    pub fn source(&self, part: Part) -> &DataSource {
        match part {
            Part::Train => &self.train,
            Part::HeldOut => &self.held_out,
        }
    }

    /// Names `part` of the data in messages.
    pub fn origin(&self, part: Part) -> String {
        format!("{} part of {}", part, self.source(part).origin())
    }

    /// The records of `part`, in file order; errors pass through.
    pub fn records(&self, part: Part) -> Box<dyn Iterator<Item = Result<Record>> + '_> {
        let records = self.source(part).records();
        match self.fraction {
            Some(fraction) => Box::new(fraction.select(records, part)),
            None => Box::new(records),
        }
    }
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
