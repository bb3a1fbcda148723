//! What changes the weights: AdamW, the learning-rate schedule, and the named
//! view of a module's parameters that both, clipping and freezing share.

mod adamw;
mod params;
mod schedule;

pub use adamw::{AdamW, AdamWConfig, AdamWState};
pub use params::{
    FreezePatterns, NamedTensor, freeze, global_grad_norm, load_named, named_tensors, scale_grads,
};
pub use schedule::{LrSchedule, ScheduleKind};
