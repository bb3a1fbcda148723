//! Evaluation metrics of a model over token streams.

mod nll;
mod perplexity;

pub use nll::token_nll;
pub use perplexity::{
    ChunkScore, PerplexityError, PerplexityOptions, PerplexityReport, perplexity,
};
