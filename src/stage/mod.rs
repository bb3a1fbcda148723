//! Pipeline stages: each reads a checked recipe, does one part of the run in
//! its own directory and reports what it wrote.

pub mod cascade;
mod cascade_stamp;
pub mod data;
pub mod distill;
mod error;
pub mod eval;
pub mod export;
pub mod pipeline;
pub mod qat;
pub mod replicas;
pub mod source;
pub mod state;
pub mod student;
pub mod teacher_cache;

pub use error::StageError;
