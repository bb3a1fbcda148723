//! What every distillation objective shares: the student's final-norm states
//! at the trained positions, and the loss `alpha·CE + (1 − alpha)·D` through
//! the student's output head, a chunk of positions at a time, with both parts
//! reported.

use std::collections::BTreeMap;
use std::ops::Range;

use burn::tensor::backend::{AutodiffBackend, Backend};
use datasets::Batch;
use burn::tensor::{ElementConversion, Tensor};
use train::trainer::{
    LossSum, TrainedPositions, chunk_rows, chunked_head_loss, cross_entropy_sum, layout, token_tensor,
};
use train::{TrainError, Transformer};

/// Each layer's output at the trained positions, for the layers `wanted`
/// picks, in layer order, and the final-norm states there.
pub(crate) fn layer_outputs<B: Backend>(
    model: &Transformer<B>,
    batch: &Batch,
    trained: &TrainedPositions,
    wanted: impl Fn(usize) -> bool,
) -> (Vec<Tensor<B, 2>>, Option<Tensor<B, 2>>) {
    let device = model.embed_tokens.weight.device();
    let mut outputs = Vec::new();
    let hidden = model.hidden_states_rows_observed(token_tensor(batch, &device), layout(batch), |i, x| {
        // What enters layer i is what left layer i − 1.
        if i > 0 && wanted(i - 1) {
            outputs.extend(trained.select_flat(x.clone()));
        }
    });
    (outputs, trained.select_flat(hidden))
}

/// The trained positions of `batch` and the student's final-norm hidden states
/// there, `[trained, hidden]`; `None` when nothing in the batch is trained.
pub(crate) fn student_hidden<B: AutodiffBackend>(
    student: &Transformer<B>,
    batch: &Batch,
) -> Option<(TrainedPositions, Tensor<B, 2>)> {
    let trained = TrainedPositions::of(batch);
    let (_, hidden) = layer_outputs(student, batch, &trained, |_| false);
    Some((trained, hidden?))
}

/// The parts [`mix`] reports: label cross-entropy and the divergence.
pub(crate) const COMPONENTS: &[&str] = &["ce", "kd"];

/// A batch with nothing to train: a zero loss with no parts.
pub(crate) fn nothing<B: AutodiffBackend>(student: &Transformer<B>) -> LossSum<B> {
    LossSum {
        total: Tensor::zeros([1], &student.embed_tokens.weight.device()),
        components: BTreeMap::new(),
    }
}

/// `alpha·CE + (1 − alpha)·D` summed over the trained positions, where
/// `hidden` are the student's states there and `divergence(logits, positions)`
/// gives D summed over the student logits `[len, vocab]` of `positions`,
/// computed for about `chunk_logits` logits at a time.
pub(crate) fn mix<B: AutodiffBackend>(
    student: &Transformer<B>,
    hidden: Tensor<B, 2>,
    trained: &TrainedPositions,
    alpha: f64,
    chunk_logits: usize,
    mut divergence: impl FnMut(Tensor<B, 2>, Range<usize>) -> Result<Tensor<B, 1>, TrainError>,
) -> Result<LossSum<B>, TrainError> {
    let rows = chunk_rows(student.config.vocab_size, chunk_logits);
    let mut loss = chunked_head_loss(student, hidden, rows, |logits, positions| {
        let ce = cross_entropy_sum(logits.clone(), &trained.targets[positions.clone()]);
        let kd = divergence(logits, positions)?;
        let host = |t: &Tensor<B, 1>| t.clone().into_scalar().elem::<f64>();
        let components = BTreeMap::from([("ce", host(&ce)), ("kd", host(&kd))]);
        Ok(LossSum {
            total: ce.mul_scalar(alpha) + kd.mul_scalar(1.0 - alpha),
            components,
        })
    })?;
    for name in COMPONENTS {
        loss.components.entry(name).or_insert(0.0);
    }
    Ok(loss)
}
