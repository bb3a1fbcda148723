//! The model family in Burn, its backends and the training loop.

pub mod backend;

pub use backend::{BackendError, BackendKind, CpuBackend};
