//! `decant inspect`: what a model file holds — architecture, size, tokenizer,
//! chat template and a per-type account of its tensors.

mod human;
mod json;
mod summary;

pub use human::render_text;
pub use json::render_json;
pub use summary::{Summary, TypeCount};
