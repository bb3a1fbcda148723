//! Evaluation metrics of a model over token streams.

mod kl_divergence;
mod nll;
mod perplexity;
mod speculative;
mod trained_tokens;

pub use kl_divergence::{KlError, KlReport, kl_divergence};
pub(crate) use nll::NllStats;

pub use nll::token_nll;
pub use perplexity::{
    ChunkScore, PerplexityError, PerplexityOptions, PerplexityReport, perplexity,
};
pub use speculative::{
    DraftFigure, DraftTally, MAX_DRAFT_LENGTH, draft_matches, verification_steps,
};
pub use trained_tokens::{TrainedScores, score_trained};
