//! The decoder-only transformer shared by the Llama, Mistral, Qwen2 and Qwen3 families.

mod attention;
mod decoder_layer;
mod kv_cache;
mod mlp;
mod probe;
mod rope;
mod rows;
mod sequence;
mod transformer;

use burn::module::Initializer;

pub use attention::Attention;
pub use decoder_layer::DecoderLayer;
pub use kv_cache::KvCache;
pub use mlp::Mlp;
pub use probe::LayerActivations;
pub use rope::RopeTables;
pub use rows::RowLayout;
pub use sequence::InputError;
pub(crate) use sequence::host_f32;
pub use transformer::{LogitsFor, Transformer};

/// Random weights as transformers initializes these families (`initializer_range`).
const INITIALIZER: Initializer = Initializer::Normal {
    mean: 0.0,
    std: 0.02,
};

/// `linear` on every position of `x` `[batch, seq, d_in]` as one product of
/// `[batch · seq, d_in]` rows: Burn's linear on a 3-D input runs one product
/// per batch row and, backward, sums a weight gradient per batch row.
pub(crate) fn project<B: burn::tensor::backend::Backend>(
    linear: &burn::nn::Linear<B>,
    x: burn::tensor::Tensor<B, 3>,
) -> burn::tensor::Tensor<B, 3> {
    let [batch, seq, width] = x.dims();
    let y = linear.forward(x.reshape([batch * seq, width]));
    let out = y.dims()[1];
    y.reshape([batch, seq, out])
}

/// RMSNorm `norm` of `x`, through decant's kernel where the backend has one.
pub(crate) fn normalize<B: burn::tensor::backend::Backend, const D: usize>(
    norm: &burn::nn::RmsNorm<B>,
    x: burn::tensor::Tensor<B, D>,
) -> burn::tensor::Tensor<B, D> {
    crate::kernels::norm::try_rms_norm(x, norm.gamma.val(), norm.epsilon)
        .unwrap_or_else(|x| norm.forward(x))
}
