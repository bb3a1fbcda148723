//! Quantization-aware training against the exact rounding of the exported GGUF.
//!
//! The forward pass sees every planned weight as `dequantize(quantize(w))`,
//! computed by `quantize`'s kernels, the very ones `decant export` and
//! `decant quantize` write with; so the weights the student trains with are the
//! weights its GGUF holds. The backward pass is the straight-through estimator:
//! the gradient reaches the full-precision master weights unchanged, or only
//! inside the range each block can represent ([`Ste::Clipped`]).

mod model;
mod objective;
mod round_trip;

pub use model::{FakeQuantPlan, Ste, fake_quantized};
pub use objective::FakeQuant;
/// The block formats QAT trains against, each with the clip range its
/// clipped estimator needs.
pub use quantize::quant::CLIP_RANGE_TYPES as FAKE_QUANT_TYPES;
pub use round_trip::{RoundTrip, round_trip};
