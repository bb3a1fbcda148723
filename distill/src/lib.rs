//! Distillation: teacher runners, the loss family, students pruned from the teacher.

pub mod cached;
pub mod hidden;
pub mod loss;
mod mixture;
pub mod objective;
pub mod on_policy;
pub mod prune;
pub mod teacher_cache;

pub use loss::{Divergence, DivergenceError};
pub use cached::CachedDistillation;
pub use hidden::{HiddenAlignment, HiddenError, HiddenLoss};
pub use objective::OnlineDistillation;
pub use on_policy::{OnPolicyConfig, OnPolicyDistillation};
