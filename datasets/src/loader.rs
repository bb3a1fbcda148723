//! Batches for one data-parallel rank, epoch after epoch, resumable.
//!
//! Rows are filled in the epoch's order: a document goes into the current row
//! if it fits, and otherwise starts the next one (next-fit packing, which
//! never reorders documents). A batch therefore ends on a document boundary
//! with nothing carried over, and the position of the next document is all a
//! checkpoint has to save: a loader resumed from [`LoaderState`] yields exactly
//! the batches the interrupted one would have.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::documents::{Document, Documents};
use crate::error::{DatasetError, Result};
use crate::hash::StableHasher;
use crate::order::{Order, Shard};
use crate::pack::Batch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoaderConfig {
    /// Rows per batch.
    pub batch_size: usize,
    /// Positions per row; no document may be longer.
    pub seq_len: usize,
    /// Several documents per row where they fit, rather than one.
    pub packing: bool,
    pub order: Order,
    /// The token on padding positions (masked out, so any id will do).
    pub pad_token: u32,
    /// Stop after this many epochs, the last batch possibly short; `None`
    /// goes on forever and leaves stopping to the trainer.
    pub epochs: Option<u64>,
}

/// Where a loader is: the position of the next document in this rank's order
/// of the epoch, and a fingerprint of the data and the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    pub epoch: u64,
    pub position: u64,
    pub fingerprint: u64,
}

pub struct Loader {
    documents: Arc<Documents>,
    config: LoaderConfig,
    fingerprint: u64,
    epoch: u64,
    /// This rank's document indices for `epoch`.
    order: Vec<u32>,
    position: usize,
}

impl Loader {
    pub fn new(documents: Arc<Documents>, config: LoaderConfig) -> Result<Self> {
        Self::at_epoch(documents, config, 0)
    }

    /// Continues where the loader that saved `state` stopped, over the same
    /// documents with the same configuration (the number of epochs may
    /// differ).
    pub fn resume(
        documents: Arc<Documents>,
        config: LoaderConfig,
        state: LoaderState,
    ) -> Result<Self> {
        let mut loader = Self::at_epoch(documents, config, state.epoch)?;
        if state.fingerprint != loader.fingerprint || state.position >= loader.order.len() as u64 {
            return Err(DatasetError::ResumeMismatch {
                saved: state.fingerprint,
                current: loader.fingerprint,
            });
        }
        loader.position = state.position as usize;
        Ok(loader)
    }

    fn at_epoch(documents: Arc<Documents>, config: LoaderConfig, epoch: u64) -> Result<Self> {
        validate(&documents, &config)?;
        Ok(Self {
            fingerprint: fingerprint(&documents, &config),
            order: config.order.epoch(documents.len(), epoch),
            documents,
            config,
            epoch,
            position: 0,
        })
    }

    /// The state to save with a checkpoint taken after the last batch yielded.
    pub fn state(&self) -> LoaderState {
        LoaderState {
            epoch: self.epoch,
            position: self.position as u64,
            fingerprint: self.fingerprint,
        }
    }

    /// The index of the next document, unless the last epoch is over.
    fn peek(&self) -> Option<usize> {
        if self
            .config
            .epochs
            .is_some_and(|epochs| self.epoch >= epochs)
        {
            return None;
        }
        Some(self.order[self.position] as usize)
    }

    fn advance(&mut self) {
        self.position += 1;
        if self.position == self.order.len() {
            self.epoch += 1;
            self.position = 0;
            self.order = self.config.order.epoch(self.documents.len(), self.epoch);
        }
    }
}

impl Iterator for Loader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let documents = Arc::clone(&self.documents);
        let LoaderConfig {
            batch_size,
            seq_len,
            packing,
            pad_token,
            ..
        } = self.config;
        let mut batch = Batch::new(seq_len);
        let mut row: Vec<(u32, Document<'_>)> = Vec::new();
        while batch.rows < batch_size {
            row.clear();
            let mut used = 0;
            while let Some(index) = self.peek() {
                let document = documents.get(index);
                if !row.is_empty() && (!packing || used + document.len() > seq_len) {
                    break;
                }
                used += document.len();
                row.push((index as u32, document));
                self.advance();
            }
            if row.is_empty() {
                break;
            }
            batch.push_row(&row, pad_token);
        }
        (batch.rows > 0).then_some(batch)
    }
}

fn validate(documents: &Documents, config: &LoaderConfig) -> Result<()> {
    let LoaderConfig {
        batch_size,
        seq_len,
        order,
        ..
    } = *config;
    Shard::new(order.shard.rank, order.shard.world_size)?;
    let invalid = |message: String| {
        Err(DatasetError::InvalidConfig {
            what: "loader configuration",
            message,
        })
    };
    if batch_size == 0 {
        return invalid("the batch size is 0".to_owned());
    }
    if seq_len < documents.longest() {
        return invalid(format!(
            "the longest document has {} tokens, more than the sequence length {seq_len}",
            documents.longest()
        ));
    }
    if order.per_rank(documents.len()) == 0 {
        return invalid(format!(
            "{} document(s) cannot be shared among {} ranks",
            documents.len(),
            order.shard.world_size
        ));
    }
    Ok(())
}

fn fingerprint(documents: &Documents, config: &LoaderConfig) -> u64 {
    let LoaderConfig {
        batch_size,
        seq_len,
        packing,
        order,
        pad_token,
        epochs: _,
    } = *config;
    StableHasher::new()
        .u64(documents.fingerprint())
        .u64(batch_size as u64)
        .u64(seq_len as u64)
        .u64(u64::from(packing))
        .u64(u64::from(order.shuffle))
        .u64(order.seed)
        .u64(order.shard.rank as u64)
        .u64(order.shard.world_size as u64)
        .u64(u64::from(pad_token))
        .finish()
}
