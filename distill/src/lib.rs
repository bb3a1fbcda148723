//! Distillation: teacher runners, the loss family, students pruned from the teacher.

pub mod loss;

pub use loss::{Divergence, DivergenceError};
