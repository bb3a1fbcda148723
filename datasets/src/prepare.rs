//! One record to the tokens a model trains on: rendered, tokenized, and held
//! to the maximum length by the truncation policy.

use std::num::NonZeroUsize;
use std::thread;

use crate::error::{DatasetError, Result};
use crate::render::{Renderer, Tokenized};
use crate::source::Record;
use crate::truncate::{Fitted, Truncation, fit};

/// A record after preparation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// Tokens before truncation.
    pub length: usize,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Whole(Tokenized),
    Truncated(Tokenized),
    /// Longer than the maximum, and the policy drops such examples.
    DroppedTooLong,
    /// No token left to train on, as when truncation cut off the whole reply.
    DroppedUntrained,
}

impl Outcome {
    pub fn kept(&self) -> Option<&Tokenized> {
        match self {
            Outcome::Whole(tokens) | Outcome::Truncated(tokens) => Some(tokens),
            Outcome::DroppedTooLong | Outcome::DroppedUntrained => None,
        }
    }

    pub fn into_kept(self) -> Option<Tokenized> {
        match self {
            Outcome::Whole(tokens) | Outcome::Truncated(tokens) => Some(tokens),
            Outcome::DroppedTooLong | Outcome::DroppedUntrained => None,
        }
    }
}

/// Renders records and applies the length limit.
#[derive(Clone, Copy, Debug)]
pub struct Prepare<'a> {
    renderer: Renderer<'a>,
    max_length: Option<usize>,
    truncation: Truncation,
    threads: NonZeroUsize,
}

impl<'a> Prepare<'a> {
    /// `max_length` of `None` keeps examples whole.
    pub fn new(
        renderer: Renderer<'a>,
        max_length: Option<usize>,
        truncation: Truncation,
    ) -> Result<Self> {
        if let Some(max_length @ 0..2) = max_length {
            return Err(DatasetError::InvalidConfig {
                what: "maximum length",
                message: format!(
                    "{max_length} tokens leave nothing to predict (at least 2 are needed)"
                ),
            });
        }
        Ok(Self {
            renderer,
            max_length,
            truncation,
            threads: thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        })
    }

    /// Prepares on `threads` threads rather than one per core; the outcome
    /// is the same for any number.
    pub fn with_threads(mut self, threads: NonZeroUsize) -> Self {
        self.threads = threads;
        self
    }

    pub fn max_length(&self) -> Option<usize> {
        self.max_length
    }

    pub fn truncation(&self) -> Truncation {
        self.truncation
    }

    /// Errors name the record's location.
    pub fn record(&self, record: &Record) -> Result<Prepared> {
        let at = |error: DatasetError| error.at(&record.location);
        let tokenized = self.renderer.tokenize(&record.example).map_err(at)?;
        let length = tokenized.len();
        let fitted = match self.max_length {
            Some(max_length) => fit(tokenized, max_length, self.truncation).map_err(at)?,
            None => Fitted::Whole(tokenized),
        };
        let outcome = match fitted {
            Fitted::Dropped => Outcome::DroppedTooLong,
            Fitted::Whole(tokens) | Fitted::Truncated(tokens) if tokens.trained_count() == 0 => {
                Outcome::DroppedUntrained
            }
            Fitted::Whole(tokens) => Outcome::Whole(tokens),
            Fitted::Truncated(tokens) => Outcome::Truncated(tokens),
        };
        Ok(Prepared { length, outcome })
    }

    /// Prepares `records` on every core (or the threads set) and hands the results to `consume`
    /// in record order, so the outcome is the same for any number of
    /// threads. Records are read in chunks: memory holds one chunk of text.
    /// The first bad record, in record order, is the error.
    pub fn each(
        &self,
        records: impl IntoIterator<Item = Result<Record>>,
        mut consume: impl FnMut(Prepared),
    ) -> Result<()> {
        let threads = self.threads.get();
        let chunk_size = RECORDS_PER_THREAD * threads;
        let mut records = records.into_iter();
        loop {
            let mut chunk = Vec::with_capacity(chunk_size);
            let mut read_error = None;
            for record in records.by_ref().take(chunk_size) {
                match record {
                    Ok(record) => chunk.push(record),
                    Err(error) => {
                        read_error = Some(error);
                        break;
                    }
                }
            }
            let part_size = chunk.len().div_ceil(threads).max(1);
            let prepared: Vec<Vec<Result<Prepared>>> = thread::scope(|scope| {
                let workers: Vec<_> = chunk
                    .chunks(part_size)
                    .map(|part| {
                        scope.spawn(move || part.iter().map(|record| self.record(record)).collect())
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|worker| worker.join().expect("preparing a record does not panic"))
                    .collect()
            });
            for result in prepared.into_iter().flatten() {
                consume(result?);
            }
            if let Some(error) = read_error {
                return Err(error);
            }
            if chunk.len() < chunk_size {
                return Ok(());
            }
        }
    }
}

/// Records a thread prepares per chunk: enough that starting the threads costs
/// little beside tokenizing them.
const RECORDS_PER_THREAD: usize = 256;
