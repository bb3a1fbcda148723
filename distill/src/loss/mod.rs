//! The distillation loss family on teacher and student logits.

mod divergence;

pub use divergence::{Divergence, DivergenceError};
