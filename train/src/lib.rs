//! The model family in Burn, its backends and the training loop.

pub mod allocator;
pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod eval;
pub mod generate;
pub mod imatrix;
pub mod import;
mod json_number;
mod kernels;
pub mod model;
pub mod optim;
pub mod qat;
pub mod trainer;

pub use backend::{BackendError, BackendKind, CpuBackend};
pub use config::{Architecture, ModelConfig, RopeConfig, RopeScaling};
pub use error::{ImportError, ModelError, TrainError};
pub use import::{load_gguf, load_hf_dir, load_model};
pub use model::Transformer;
