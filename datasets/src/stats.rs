//! What a dataset amounts to for one model: examples, tokens, lengths, and
//! what the length limit and the loss mask leave of them.

use serde::Serialize;

use crate::error::{DatasetError, Result};
use crate::prepare::{Outcome, Prepare, Prepared};
use crate::source::Record;
use crate::truncate::Truncation;

/// Counts gathered over prepared records; [`StatsBuilder::finish`] turns them
/// into [`Stats`], or into the error an empty or all-dropped dataset is.
#[derive(Clone, Debug)]
pub struct StatsBuilder {
    max_length: Option<usize>,
    truncation: Truncation,
    lengths: Vec<u32>,
    over_max_length: u64,
    truncated: u64,
    dropped_too_long: u64,
    dropped_untrained: u64,
    tokens: u64,
    trained_tokens: u64,
}

impl StatsBuilder {
    /// Counts for records prepared with `prepare`'s length limit.
    pub fn new(prepare: &Prepare) -> Self {
        Self {
            max_length: prepare.max_length(),
            truncation: prepare.truncation(),
            lengths: Vec::new(),
            over_max_length: 0,
            truncated: 0,
            dropped_too_long: 0,
            dropped_untrained: 0,
            tokens: 0,
            trained_tokens: 0,
        }
    }

    pub fn add(&mut self, prepared: &Prepared) {
        self.lengths
            .push(u32::try_from(prepared.length).unwrap_or(u32::MAX));
        if self
            .max_length
            .is_some_and(|max_length| prepared.length > max_length)
        {
            self.over_max_length += 1;
        }
        match &prepared.outcome {
            Outcome::Truncated(_) => self.truncated += 1,
            Outcome::DroppedTooLong => self.dropped_too_long += 1,
            Outcome::DroppedUntrained => self.dropped_untrained += 1,
            Outcome::Whole(_) => {}
        }
        if let Some(kept) = prepared.outcome.kept() {
            self.tokens += kept.len() as u64;
            self.trained_tokens += kept.trained_count() as u64;
        }
    }

    /// `origin` names the data in errors.
    pub fn finish(mut self, origin: &str) -> Result<Stats> {
        let Self {
            max_length,
            truncation,
            ..
        } = self;
        let examples = self.lengths.len() as u64;
        if examples == 0 {
            return Err(DatasetError::EmptyDataset {
                origin: origin.to_owned(),
            });
        }
        let dropped = self.dropped_too_long + self.dropped_untrained;
        if dropped == examples {
            let mut reasons = Vec::new();
            if let (Some(max_length), 1..) = (max_length, self.dropped_too_long) {
                reasons.push(format!(
                    "{} longer than the maximum length {max_length} under truncation = {truncation}",
                    self.dropped_too_long
                ));
            }
            if self.dropped_untrained > 0 {
                reasons.push(format!(
                    "{} with no token left to train on",
                    self.dropped_untrained
                ));
            }
            return Err(DatasetError::AllDropped {
                origin: origin.to_owned(),
                examples,
                reasons: reasons.join(", "),
            });
        }
        self.lengths.sort_unstable();
        let lengths = &self.lengths;
        let percentile = |p: usize| lengths[(lengths.len() - 1) * p / 100];
        let share = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 / whole as f64
            }
        };
        Ok(Stats {
            examples,
            kept: examples - dropped,
            max_length,
            truncation,
            over_max_length: self.over_max_length,
            over_max_length_share: share(self.over_max_length, examples),
            truncated: self.truncated,
            dropped_too_long: self.dropped_too_long,
            dropped_untrained: self.dropped_untrained,
            tokens: self.tokens,
            trained_tokens: self.trained_tokens,
            trained_share: share(self.trained_tokens, self.tokens),
            length: LengthSummary {
                min: lengths[0],
                mean: lengths.iter().map(|&length| f64::from(length)).sum::<f64>()
                    / examples as f64,
                p50: percentile(50),
                p90: percentile(90),
                p99: percentile(99),
                max: lengths[lengths.len() - 1],
            },
            histogram: histogram(lengths),
        })
    }
}

/// The report `decant data stats` prints. Lengths are counted before
/// truncation; tokens after it, over the examples kept.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub examples: u64,
    pub kept: u64,
    pub max_length: Option<usize>,
    pub truncation: Truncation,
    /// Examples longer than the maximum length, whatever the policy did.
    pub over_max_length: u64,
    pub over_max_length_share: f64,
    pub truncated: u64,
    pub dropped_too_long: u64,
    pub dropped_untrained: u64,
    pub tokens: u64,
    pub trained_tokens: u64,
    pub trained_share: f64,
    pub length: LengthSummary,
    pub histogram: Vec<Bin>,
}

impl Stats {
    /// Prepares every record and counts; the first bad record is the error.
    pub fn collect(
        records: impl IntoIterator<Item = Result<Record>>,
        prepare: &Prepare,
        origin: &str,
    ) -> Result<Self> {
        let mut builder = StatsBuilder::new(prepare);
        prepare.each(records, |prepared| builder.add(&prepared))?;
        builder.finish(origin)
    }
}

/// Example lengths in tokens; percentiles by the nearest rank below.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LengthSummary {
    pub min: u32,
    pub mean: f64,
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub max: u32,
}

/// Examples whose length is in `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bin {
    pub min: u32,
    pub max: u32,
    pub count: u64,
}

/// The smallest bin ends at this length; each next one is twice as wide.
const FIRST_BIN_MAX: u32 = 16;

/// Bins `0..=16`, `17..=32`, `33..=64`, … up to the one holding the longest
/// example, empty ones included, over `sorted` lengths.
fn histogram(sorted: &[u32]) -> Vec<Bin> {
    let mut bins = Vec::new();
    let mut min = 0;
    let mut max = FIRST_BIN_MAX;
    let mut rest = sorted;
    while !rest.is_empty() {
        let count = rest.partition_point(|&length| length <= max);
        bins.push(Bin {
            min,
            max,
            count: count as u64,
        });
        rest = &rest[count..];
        min = max + 1;
        max = max.saturating_mul(2);
    }
    bins
}
