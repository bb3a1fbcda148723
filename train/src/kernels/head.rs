//! The output head's chunked loss on Flex. One logits buffer of a chunk's
//! `[rows, vocab]` serves every chunk; its gradient (computed in place for
//! cross-entropy, by the chunk's own small autodiff graph for any other
//! loss) is turned into the hidden-state gradient and accumulated into the
//! head weight's gradient by two products, and [`inject`] hands both to the
//! autodiff graph. Nothing of the size of the head weight is allocated per
//! chunk, and no pass over it is made but the products'.

use std::collections::BTreeMap;
use std::ops::Range;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorPrimitive};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::gemm::{View, gemm};
use super::inject::inject;
use super::simd::{self, vectorized};
use super::{Ad, AdTensor, flex_autodiff, flex_tensor, from_flex_autodiff, values};
use crate::error::TrainError;
use crate::model::Transformer;
use crate::trainer::LossSum;

/// What a chunk of logits is scored by.
pub enum ChunkLoss<'a, B: AutodiffBackend> {
    /// Cross-entropy against these targets, one per position (summed).
    CrossEntropy(&'a [i64]),
    /// Any differentiable loss of a chunk's logits `[len, vocab]` and its
    /// positions, summed over them, with its parts.
    Custom(&'a mut dyn FnMut(Tensor<B, 2>, Range<usize>) -> Result<LossSum<B>, TrainError>),
}

/// The loss of `hidden` (`[n, hidden]`) through `model`'s head, `rows`
/// positions at a time, when `B` is Flex under autodiff; `Err` hands the
/// arguments back for the stock-op path otherwise.
pub(crate) fn chunked_loss<B: AutodiffBackend>(
    model: &Transformer<B>,
    hidden: Tensor<B, 2>,
    rows: usize,
    loss: &mut ChunkLoss<'_, B>,
) -> Result<Result<LossSum<B>, TrainError>, Tensor<B, 2>> {
    let hidden = flex_autodiff(hidden)?;
    let (weight, tied) = match &model.lm_head {
        Some(head) => (head.weight.val(), false),
        None => (model.embed_tokens.weight.val(), true),
    };
    let weight = flex_autodiff(weight)
        .unwrap_or_else(|_| unreachable!("the model is on the hidden states' backend"));
    let bias = model
        .lm_head
        .as_ref()
        .and_then(|head| head.bias.as_ref())
        .map(|bias| {
            flex_autodiff(bias.val())
                .unwrap_or_else(|_| unreachable!("the model is on the hidden states' backend"))
        });
    Ok(run(hidden, weight, tied, bias, rows.max(1), loss))
}

fn run<B: AutodiffBackend>(
    hidden: AdTensor,
    weight: AdTensor,
    tied: bool,
    bias: Option<AdTensor>,
    rows: usize,
    loss: &mut ChunkLoss<'_, B>,
) -> Result<LossSum<B>, TrainError> {
    let [n, width] = dims(&hidden.primitive);
    let [w_rows, w_cols] = dims(&weight.primitive);
    let vocab = if tied { w_rows } else { w_cols };
    let h = values(&hidden.primitive);
    let w = values(&weight.primitive);
    let b = bias.as_ref().map(|b| values(&b.primitive));
    // The head as `[hidden, vocab]`: a tied embedding read transposed.
    let head = if tied {
        View::new(&w, w_rows, w_cols).t()
    } else {
        View::new(&w, w_rows, w_cols)
    };
    let mut grad_h = vec![0.0f32; n * width];
    let mut grad_w = vec![0.0f32; w.len()];
    let mut grad_b = b.as_ref().map(|_| vec![0.0f32; vocab]);
    let mut value = 0.0f64;
    let mut components: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut buffer = vec![0.0f32; rows.min(n) * vocab];
    let mut start = 0;
    while start < n {
        let len = rows.min(n - start);
        let h_chunk = View::new(&h[start * width..(start + len) * width], len, width);
        let mut logits = std::mem::take(&mut buffer);
        logits.truncate(len * vocab);
        gemm(&mut logits, h_chunk, head, false);
        if let Some(b) = &b {
            logits
                .par_chunks_mut(vocab)
                .for_each(|row| row.iter_mut().zip(b.iter()).for_each(|(l, b)| *l += b));
        }
        let positions = start..start + len;
        let d_logits = match loss {
            ChunkLoss::CrossEntropy(targets) => {
                let part = cross_entropy_in_place(&mut logits, vocab, &targets[positions]);
                value += part;
                *components.entry("ce").or_default() += part;
                logits
            }
            ChunkLoss::Custom(chunk_loss) => {
                let (part, parts, gradient) =
                    custom::<B>(chunk_loss, logits, [len, vocab], positions)?;
                value += part;
                for (name, v) in parts {
                    *components.entry(name).or_default() += v;
                }
                gradient
            }
        };
        let d = View::new(&d_logits, len, vocab);
        gemm(
            &mut grad_h[start * width..(start + len) * width],
            d,
            head.t(),
            false,
        );
        if tied {
            gemm(&mut grad_w, d.t(), h_chunk, true);
        } else {
            gemm(&mut grad_w, h_chunk.t(), d, true);
        }
        if let Some(grad_b) = &mut grad_b {
            for row in d_logits.chunks(vocab) {
                grad_b.iter_mut().zip(row).for_each(|(g, d)| *g += d);
            }
        }
        buffer = d_logits;
        buffer.resize(rows.min(n) * vocab, 0.0);
        start += len;
    }
    let grad_h = flex_tensor(grad_h, [n, width]);
    let grad_w = flex_tensor(grad_w, [w_rows, w_cols]);
    let total = match (bias, grad_b) {
        (Some(bias), Some(grad_b)) => inject(
            value as f32,
            [&hidden, &weight, &bias],
            [grad_h, grad_w, flex_tensor(grad_b, [vocab])],
        ),
        _ => inject(value as f32, [&hidden, &weight], [grad_h, grad_w]),
    };
    Ok(LossSum {
        total: from_flex_autodiff::<B, 1>(total),
        components,
    })
}

fn dims(tensor: &FlexTensor) -> [usize; 2] {
    let shape = tensor.layout().shape();
    [shape[0], shape[1]]
}

/// The summed cross-entropy of `logits` (`[len, vocab]`, row-major) against
/// `targets`, leaving in `logits` its gradient, `softmax − one_hot`.
fn cross_entropy_in_place(logits: &mut [f32], vocab: usize, targets: &[i64]) -> f64 {
    logits
        .par_chunks_mut(vocab)
        .zip(targets.par_iter())
        .map(|(row, &target)| {
            vectorized(|| {
                let target = target as usize;
                let max = simd::max(row);
                let shifted_target = row[target] - max;
                row.iter_mut().for_each(|x| *x = simd::exp(*x - max));
                let sum = simd::sum(row);
                let inverse = 1.0 / sum;
                row.iter_mut().for_each(|x| *x *= inverse);
                row[target] -= 1.0;
                f64::from(sum.ln() - shifted_target)
            })
        })
        .sum()
}

/// A chunk scored by `chunk_loss` through its own small autodiff graph:
/// its loss, parts and the gradient of the loss with respect to `logits`.
fn custom<B: AutodiffBackend>(
    chunk_loss: &mut dyn FnMut(Tensor<B, 2>, Range<usize>) -> Result<LossSum<B>, TrainError>,
    logits: Vec<f32>,
    shape: [usize; 2],
    positions: Range<usize>,
) -> Result<(f64, BTreeMap<&'static str, f64>, Vec<f32>), TrainError> {
    let inner =
        Tensor::<Flex, 2>::from_primitive(TensorPrimitive::Float(flex_tensor(logits, shape)));
    let leaf = Tensor::<Ad, 2>::from_inner(inner).require_grad();
    let leaf: Tensor<B, 2> =
        from_flex_autodiff(flex_autodiff(leaf).unwrap_or_else(|_| unreachable!("an Ad tensor")));
    let part = chunk_loss(leaf.clone(), positions)?;
    let value = part.total.clone().into_scalar().elem::<f64>();
    let grads = part.total.backward();
    let gradient = match leaf.grad(&grads) {
        Some(gradient) => values(&inner_flex(gradient)).into_owned(),
        None => vec![0.0; shape[0] * shape[1]],
    };
    Ok((value, part.components, gradient))
}

/// The Flex tensor of a tensor of `B`, which must be Flex.
fn inner_flex<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FlexTensor {
    let primitive: Box<dyn std::any::Any> = match tensor.into_primitive() {
        TensorPrimitive::Float(primitive) => Box::new(primitive),
        TensorPrimitive::QFloat(_) => unreachable!("a float gradient"),
    };
    *primitive
        .downcast::<FlexTensor>()
        .expect("the inner backend of Autodiff<Flex> is Flex")
}
