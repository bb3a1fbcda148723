//! decant: distil a teacher language model into a small, quantized, task-specific
//! student. This crate is the facade over the workspace's libraries and holds the
//! command implementations the `decant` binary dispatches to.

pub mod inspect;
pub mod label;
pub mod lock;
pub mod model_arg;
pub mod publish;
pub mod recipe;
pub mod report;
pub mod stage;
pub mod task_eval;
pub mod tokenize;

pub use quantize;
pub use train;
