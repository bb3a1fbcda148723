//! Text generation over the model's key/value cache: greedy or sampled.

mod greedy;

pub(crate) use greedy::argmax;
pub use greedy::{Generation, Sampling, StopReason, generate, generate_greedy};
