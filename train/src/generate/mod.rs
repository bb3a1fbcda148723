//! Text generation: greedy decoding over the model's key/value cache.

mod greedy;

pub use greedy::{Generation, StopReason, generate_greedy};
