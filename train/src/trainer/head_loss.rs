//! The output head and a loss on its logits, a chunk of positions at a time, so
//! that the `[positions, vocab]` logits of a step never exist at once: at a
//! vocabulary of 49k, 4k trained positions would need 800 MB per copy and
//! autodiff keeps several copies (logits, softmax, their gradients).
//!
//! Each chunk's logits are computed on the inner backend and given a small
//! autodiff graph of their own (cross-entropy's gradient is written directly
//! on Flex); its backward pass yields the gradient with respect to those
//! logits, which two products turn into the gradients of the chunk's hidden
//! states and of the head's weight. The outer graph gets both as the
//! gradients of one op worth the loss, so the trainer's backward pass and
//! every module upstream of the head (fake quantization included) are
//! unchanged. On Flex this runs in `kernels::head`.

use std::collections::BTreeMap;
use std::ops::Range;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, ElementConversion, Tensor, TensorData};

use super::objective::{LossSum, cross_entropy_sum};
use crate::error::TrainError;
use crate::kernels::head::{self, ChunkLoss};
use crate::model::Transformer;

/// Logit values per chunk: 8 Mi floats (32 MiB), 170 positions at a 49k
/// vocabulary. Smaller chunks cost more in the weight gradient, whose whole
/// `[hidden, vocab]` sum is read and written once per chunk.
pub const CHUNK_LOGITS: usize = 8 << 20;

/// Positions per chunk of about `chunk_logits` logits at a vocabulary of `vocab`.
pub fn chunk_rows(vocab: usize, chunk_logits: usize) -> usize {
    (chunk_logits / vocab.max(1)).max(1)
}

/// The summed loss of `hidden` (`[n, hidden]`, the final-norm states of the
/// trained positions) through `model`'s output head, computed `rows` positions
/// at a time. `chunk_loss(logits, positions)` gets the logits `[len, vocab]` of
/// the positions `positions` (a range of `0..n`) as a fresh autodiff leaf and
/// returns their summed loss, differentiable in those logits, with its parts.
pub fn chunked_head_loss<B: AutodiffBackend>(
    model: &Transformer<B>,
    hidden: Tensor<B, 2>,
    rows: usize,
    mut chunk_loss: impl FnMut(Tensor<B, 2>, Range<usize>) -> Result<LossSum<B>, TrainError>,
) -> Result<LossSum<B>, TrainError> {
    match head::chunked_loss(model, hidden, rows, &mut ChunkLoss::Custom(&mut chunk_loss)) {
        Ok(loss) => loss,
        Err(hidden) => stock_chunked_loss(model, hidden, rows, chunk_loss),
    }
}

/// Cross-entropy of `hidden` (`[n, hidden]`) through `model`'s output head
/// against `targets` (one per position), summed, `rows` positions at a time.
pub fn chunked_cross_entropy<B: AutodiffBackend>(
    model: &Transformer<B>,
    hidden: Tensor<B, 2>,
    targets: &[i64],
    rows: usize,
) -> Result<LossSum<B>, TrainError> {
    match head::chunked_loss(model, hidden, rows, &mut ChunkLoss::CrossEntropy(targets)) {
        Ok(loss) => loss,
        Err(hidden) => stock_chunked_loss(model, hidden, rows, |logits, positions| {
            let total = cross_entropy_sum(logits, &targets[positions]);
            let value = total.clone().into_scalar().elem::<f64>();
            Ok(LossSum {
                total,
                components: BTreeMap::from([("ce", value)]),
            })
        }),
    }
}

/// [`chunked_head_loss`] in Burn's own ops, for any backend: the gradients
/// reach the model through a surrogate, `Σ h·∂L/∂h + Σ W·∂L/∂W` (both
/// gradients detached) minus its own value plus the loss's, which is worth
/// exactly the loss and differentiates to exactly those gradients.
fn stock_chunked_loss<B: AutodiffBackend>(
    model: &Transformer<B>,
    hidden: Tensor<B, 2>,
    rows: usize,
    mut chunk_loss: impl FnMut(Tensor<B, 2>, Range<usize>) -> Result<LossSum<B>, TrainError>,
) -> Result<LossSum<B>, TrainError> {
    let [n, _] = hidden.dims();
    let device = hidden.device();
    let head = Head::of(model);
    let (h, w) = (hidden.clone().inner(), head.weight.clone().inner());
    // `[hidden, vocab]` for the products below, a view of a tied embedding.
    let w_hv = if head.tied {
        w.clone().transpose()
    } else {
        w.clone()
    };
    let bias = head.bias.clone().map(Tensor::inner);
    let mut value = 0.0f64;
    let mut components: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut grad_h = Vec::with_capacity(n.div_ceil(rows.max(1)));
    let mut grad_w = None;
    let mut grad_b = None;
    let mut start = 0;
    while start < n {
        let len = rows.max(1).min(n - start);
        let h_chunk = h.clone().narrow(0, start, len);
        let mut logits = h_chunk.clone().matmul(w_hv.clone());
        if let Some(bias) = &bias {
            logits = logits + bias.clone().unsqueeze_dim(0);
        }
        // The loss and its softmax in f32 whatever the step computes in.
        let logits = Tensor::<B, 2>::from_inner(logits.cast(DType::F32)).require_grad();
        let part = chunk_loss(logits.clone(), start..start + len)?;
        value += part.total.clone().into_scalar().elem::<f64>();
        for (name, v) in part.components {
            *components.entry(name).or_default() += v;
        }
        let grads = part.total.backward();
        let d_logits = match logits.grad(&grads) {
            Some(d) => d.cast(h.dtype()),
            None => Tensor::zeros([len, w_hv.dims()[1]], (&h.device(), h.dtype())),
        };
        grad_h.push(d_logits.clone().matmul(w_hv.clone().transpose()));
        if bias.is_some() {
            grad_b = Some(add(grad_b, d_logits.clone().sum_dim(0).squeeze_dim(0)));
        }
        // In the weight's own layout, so that the surrogate multiplies contiguous memory.
        let d_w = if head.tied {
            d_logits.transpose().matmul(h_chunk)
        } else {
            h_chunk.transpose().matmul(d_logits)
        };
        grad_w = Some(add(grad_w, d_w));
        start += len;
    }
    let Some(grad_w) = grad_w else {
        return Ok(LossSum {
            total: Tensor::zeros([1], &device),
            components,
        });
    };
    let mut surrogate = (hidden * Tensor::from_inner(Tensor::cat(grad_h, 0))).sum()
        + (head.weight * Tensor::from_inner(grad_w)).sum();
    if let (Some(b), Some(grad_b)) = (head.bias, grad_b) {
        surrogate = surrogate + (b * Tensor::from_inner(grad_b)).sum();
    }
    let surrogate = surrogate.cast(DType::F32);
    let loss = Tensor::<B, 1>::from_data(TensorData::new(vec![value as f32], [1]), &device);
    Ok(LossSum {
        total: surrogate.clone() - surrogate.detach() + loss,
        components,
    })
}

fn add<T: std::ops::Add<Output = T>>(sum: Option<T>, term: T) -> T {
    match sum {
        Some(sum) => sum + term,
        None => term,
    }
}

/// The output head's parameters as stored: a `[hidden, vocab]` linear weight
/// with its bias, or the tied `[vocab, hidden]` embedding.
struct Head<B: AutodiffBackend> {
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    tied: bool,
}

impl<B: AutodiffBackend> Head<B> {
    fn of(model: &Transformer<B>) -> Self {
        match &model.lm_head {
            Some(head) => Self {
                weight: head.weight.val(),
                bias: head.bias.as_ref().map(|b| b.val()),
                tied: false,
            },
            None => Self {
                weight: model.embed_tokens.weight.val(),
                bias: None,
                tied: true,
            },
        }
    }
}
