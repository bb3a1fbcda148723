//! Distillation through the training core: an [`Objective`] that runs the
//! teacher on the same batch (online, no gradients) and mixes a divergence to
//! its distribution with cross-entropy on the labels,
//! `alpha·CE + (1 − alpha)·D`, both summed over the trained tokens, plus
//! optionally the alignment of hidden states.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use datasets::Batch;
use datasets::order::SplitMix64;
use train::trainer::{CHUNK_LOGITS, LossSum, Objective, TrainedPositions};
use train::{TrainError, Transformer};

use crate::hidden::HiddenAlignment;
use crate::loss::{Divergence, DivergenceError};
use crate::mixture::{COMPONENTS, layer_outputs, mix, nothing};

/// The parts of the loss with hidden-state alignment.
const ALIGNED_COMPONENTS: &[&str] = &["ce", "kd", "hidden"];

pub struct OnlineDistillation<B: AutodiffBackend> {
    teacher: Transformer<B::InnerBackend>,
    divergence: Divergence,
    temperature: f64,
    alpha: f64,
    hidden: Option<HiddenAlignment>,
    /// Logits per chunk of the loss ([`train::trainer::CHUNK_LOGITS`]).
    chunk_logits: usize,
}

impl<B: AutodiffBackend> OnlineDistillation<B> {
    /// `alpha` is the weight of cross-entropy on the labels, in [0, 1].
    pub fn new(
        teacher: Transformer<B::InnerBackend>,
        divergence: Divergence,
        temperature: f64,
        alpha: f64,
    ) -> Result<Self, DivergenceError> {
        divergence.validate(temperature)?;
        if !(0.0..=1.0).contains(&alpha) {
            return Err(DivergenceError::Mixture {
                name: "alpha",
                value: alpha,
            });
        }
        Ok(Self {
            teacher,
            divergence,
            temperature,
            alpha,
            hidden: None,
            chunk_logits: CHUNK_LOGITS,
        })
    }

    /// Adds the alignment of hidden states to the loss.
    pub fn with_hidden(mut self, alignment: HiddenAlignment) -> Self {
        self.hidden = Some(alignment);
        self
    }

    /// Computes the loss for about `chunk_logits` logits at a time.
    pub fn with_chunk_logits(mut self, chunk_logits: usize) -> Self {
        self.chunk_logits = chunk_logits;
        self
    }
}

impl<B: AutodiffBackend> Objective<B> for OnlineDistillation<B> {
    fn components(&self) -> &'static [&'static str] {
        if self.hidden.is_some() { ALIGNED_COMPONENTS } else { COMPONENTS }
    }

    fn loss(
        &mut self,
        student: &Transformer<B>,
        batch: &Batch,
        _rng: &mut SplitMix64,
    ) -> Result<LossSum<B>, TrainError> {
        self.loss_with_alpha(student, batch, self.alpha)
    }
}

impl<B: AutodiffBackend> OnlineDistillation<B> {
    /// The loss with cross-entropy weighted `alpha` instead of the configured
    /// weight (on-policy batches have no labels: alpha = 0).
    pub(crate) fn loss_with_alpha(
        &mut self,
        student: &Transformer<B>,
        batch: &Batch,
        alpha: f64,
    ) -> Result<LossSum<B>, TrainError> {
        let trained = TrainedPositions::of(batch);
        let map = match &self.hidden {
            Some(alignment) => Some(
                alignment
                    .layer_map(student.config.num_layers, self.teacher.config.num_layers)
                    .map_err(|e| TrainError::Config(format!("[distill.hidden]: {e}")))?,
            ),
            None => None,
        };
        let (student_layers, hidden) = layer_outputs(student, batch, &trained, |_| map.is_some());
        let Some(hidden) = hidden else {
            return Ok(nothing(student));
        };
        let (teacher_layers, teacher_hidden) =
            layer_outputs(&self.teacher, batch, &trained, |i| map.as_ref().is_some_and(|m| m.contains(&i)));
        let teacher_hidden = teacher_hidden.expect("the same positions are trained");
        let (teacher, divergence, temperature) = (&self.teacher, self.divergence, self.temperature);
        let mut loss = mix(student, hidden, &trained, alpha, self.chunk_logits, |student_logits, positions| {
            let rows = teacher_hidden.clone().narrow(0, positions.start, positions.len());
            let teacher_logits = teacher.output_logits(rows.unsqueeze_dim(0)).squeeze_dim(0);
            let teacher_logits = Tensor::<B, 2>::from_inner(teacher_logits);
            // A padded vocabulary (same tokenizer, rows added for alignment) is
            // cut to the part both models share.
            let vocab = student_logits.dims()[1].min(teacher_logits.dims()[1]);
            divergence
                .sum(
                    student_logits.narrow(1, 0, vocab),
                    teacher_logits.narrow(1, 0, vocab),
                    temperature,
                )
                .map_err(|e| TrainError::Config(e.to_string()))
        })?;
        if let (Some(alignment), Some(map)) = (&self.hidden, map) {
            // Teacher layers come in layer order; a student layer takes its own's.
            let mut kept: Vec<usize> = map.clone();
            kept.sort_unstable();
            kept.dedup();
            let targets = map
                .iter()
                .map(|layer| {
                    let at = kept.binary_search(layer).expect("every mapped layer was kept");
                    Tensor::<B, 2>::from_inner(teacher_layers[at].clone())
                })
                .collect();
            let aligned = alignment
                .sum(student_layers, targets, student.hidden_projection.as_ref())
                .map_err(|e| TrainError::Config(format!("[distill.hidden]: {e}")))?;
            loss.components.insert("hidden", aligned.clone().into_scalar().elem::<f64>());
            loss.total = loss.total + aligned;
        }
        Ok(loss)
    }
}
