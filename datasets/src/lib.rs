//! Dataset readers, chat-template rendering, tokenization, loss masks, packing
//! and deterministic shards.
//!
//! The way from files to batches: a [`DataSource`] streams [`Record`]s out of
//! JSON Lines, Parquet or Arrow IPC files; [`Prepare`] renders each through
//! the model's chat template ([`Renderer`]), tokenizes it, marks the trained
//! tokens and applies the [`Truncation`] policy; [`Documents`] keeps the
//! result as tokens; a [`Loader`] shuffles, shards and packs them into
//! [`Batch`]es, resumable from a [`LoaderState`]. [`Stats`] counts what a
//! dataset amounts to, and a [`Split`] holds part of it out, by fraction
//! ([`FractionSplit`]) or by file.

mod caught;
pub mod chat_template;
pub mod documents;
pub mod error;
mod hash;
pub mod loader;
pub mod logit_cache;
pub mod order;
pub mod pack;
pub mod prepare;
pub mod record;
pub mod render;
pub mod source;
pub mod split;
pub mod stats;
pub mod tokenizer;
pub mod truncate;

pub use chat_template::{ChatTemplate, Message, Role};
pub use documents::{Document, Documents};
pub use error::{DatasetError, Result};
pub use loader::{Loader, LoaderConfig, LoaderState};
pub use order::{Order, Shard};
pub use pack::{Batch, IGNORE_INDEX, PADDING_SOURCE};
pub use prepare::{Outcome, Prepare, Prepared};
pub use record::{Columns, Example, RecordFormat, RecordSpec};
pub use render::{AssistantTurns, Renderer, Tokenized};
pub use source::{DataSource, Location, Record};
pub use split::{FractionSplit, HeldOut, Part, Split};
pub use stats::Stats;
pub use tokenizer::{EncodeOptions, SpecialTokens, Tokenizer, VocabConfig};
pub use truncate::Truncation;
