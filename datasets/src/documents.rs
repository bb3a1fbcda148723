//! The prepared documents of a dataset, kept as tokens: read and rendered once,
//! then shuffled, sharded and packed for every epoch without reading the files
//! again. A token costs five bytes here (id and trained flag), about what its
//! text costs on disk.

use crate::error::{DatasetError, Result};
use crate::hash::StableHasher;
use crate::prepare::Prepare;
use crate::source::Record;
use crate::stats::{Stats, StatsBuilder};

/// Prepared documents, in the order the records were read.
#[derive(Clone, Debug)]
pub struct Documents {
    tokens: Vec<u32>,
    trained: Vec<bool>,
    /// Document `i` is `offsets[i]..offsets[i + 1]`.
    offsets: Vec<usize>,
    longest: usize,
    fingerprint: u64,
}

/// One document's tokens and training targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Document<'a> {
    pub tokens: &'a [u32],
    pub trained: &'a [bool],
}

impl Document<'_> {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl Documents {
    /// Prepares every record, keeping those the length limit and the loss
    /// mask leave something of. The first bad record is the error, and so is
    /// a dataset with no example kept; `origin` names the data there.
    pub fn build(
        records: impl IntoIterator<Item = Result<Record>>,
        prepare: &Prepare,
        origin: &str,
    ) -> Result<(Self, Stats)> {
        let mut stats = StatsBuilder::new(prepare);
        let mut documents = Self::empty();
        let mut hasher = StableHasher::new();
        prepare.each(records, |prepared| {
            stats.add(&prepared);
            if let Some(document) = prepared.outcome.into_kept() {
                documents.push(&mut hasher, &document.tokens, &document.trained);
            }
        })?;
        let stats = stats.finish(origin)?;
        documents.fingerprint = hasher.finish();
        Ok((documents, stats))
    }

    /// Documents already tokenized, each as its tokens and which of them are
    /// trained: data that another stage produced, or a test's. `origin` names
    /// the data if there is none.
    pub fn from_tokens<'a>(
        documents: impl IntoIterator<Item = (&'a [u32], &'a [bool])>,
        origin: &str,
    ) -> Result<Self> {
        let mut kept = Self::empty();
        let mut hasher = StableHasher::new();
        for (tokens, trained) in documents {
            assert_eq!(tokens.len(), trained.len(), "one flag per token");
            if !tokens.is_empty() {
                kept.push(&mut hasher, tokens, trained);
            }
        }
        if kept.is_empty() {
            return Err(DatasetError::EmptyDataset {
                origin: origin.to_owned(),
            });
        }
        kept.fingerprint = hasher.finish();
        Ok(kept)
    }

    fn empty() -> Self {
        Self {
            tokens: Vec::new(),
            trained: Vec::new(),
            offsets: vec![0],
            longest: 0,
            fingerprint: 0,
        }
    }

    fn push(&mut self, hasher: &mut StableHasher, tokens: &[u32], trained: &[bool]) {
        hasher.u64(tokens.len() as u64);
        for (&token, &flag) in tokens.iter().zip(trained) {
            hasher.u64(u64::from(token) << 1 | u64::from(flag));
        }
        self.longest = self.longest.max(tokens.len());
        self.tokens.extend_from_slice(tokens);
        self.trained.extend_from_slice(trained);
        self.offsets.push(self.tokens.len());
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, index: usize) -> Document<'_> {
        let range = self.offsets[index]..self.offsets[index + 1];
        Document {
            tokens: &self.tokens[range.clone()],
            trained: &self.trained[range],
        }
    }

    /// Tokens of the longest document.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// A hash of every document's tokens and targets, in order: a resume
    /// checks it to know it continues over the same data.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}
