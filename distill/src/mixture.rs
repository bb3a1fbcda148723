//! What every distillation objective shares: the student's logits at the
//! trained positions, and the loss `alpha·CE + (1 − alpha)·D` with both parts
//! reported.

use std::collections::BTreeMap;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use datasets::Batch;
use train::Transformer;
use train::trainer::{LossSum, TrainedPositions, cross_entropy_sum, layout, token_tensor};

/// The trained positions of `batch` and the student's logits there,
/// `[1, trained, vocab]`; `None` when nothing in the batch is trained.
pub(crate) fn student_logits<B: AutodiffBackend>(
    student: &Transformer<B>,
    batch: &Batch,
) -> Option<(TrainedPositions, Tensor<B, 3>)> {
    let device = student.embed_tokens.weight.device();
    let trained = TrainedPositions::of(batch);
    let hidden = student.hidden_states_rows(token_tensor(batch, &device), layout(batch));
    let hidden = trained.select(hidden)?;
    Some((trained, student.output_logits(hidden)))
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

/// `alpha·CE + (1 − alpha)·divergence`, with CE of `logits` on the targets.
pub(crate) fn mix<B: AutodiffBackend>(
    logits: Tensor<B, 3>,
    trained: &TrainedPositions,
    divergence: Tensor<B, 1>,
    alpha: f64,
) -> LossSum<B> {
    let ce = cross_entropy_sum(logits, &trained.targets);
    let host = |t: &Tensor<B, 1>| t.clone().into_scalar().elem::<f64>();
    let components = BTreeMap::from([("ce", host(&ce)), ("kd", host(&divergence))]);
    let total = ce.mul_scalar(alpha) + divergence.mul_scalar(1.0 - alpha);
    LossSum { total, components }
}
