//! Distillation: teacher runners, the loss family, students pruned from the teacher.

pub mod loss;
pub mod objective;
pub mod prune;

pub use loss::{Divergence, DivergenceError};
pub use objective::OnlineDistillation;
