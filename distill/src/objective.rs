//! Distillation through the training core: an [`Objective`] that runs the
//! teacher on the same batch (online, no gradients) and mixes a divergence to
//! its distribution with cross-entropy on the labels,
//! `alpha·CE + (1 − alpha)·D`, both summed over the trained tokens.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use datasets::Batch;
use datasets::order::SplitMix64;
use train::trainer::{LossSum, Objective, layout, token_tensor};
use train::{TrainError, Transformer};

use crate::loss::{Divergence, DivergenceError};
use crate::mixture::{mix, nothing, student_logits};

pub struct OnlineDistillation<B: AutodiffBackend> {
    teacher: Transformer<B::InnerBackend>,
    divergence: Divergence,
    temperature: f64,
    alpha: f64,
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
        })
    }
}

impl<B: AutodiffBackend> Objective<B> for OnlineDistillation<B> {
    fn components(&self) -> &'static [&'static str] {
        crate::mixture::COMPONENTS
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
        let Some((trained, student_logits)) = student_logits(student, batch) else {
            return Ok(nothing(student));
        };
        let teacher_device = self.teacher.embed_tokens.weight.device();
        let teacher_hidden = self
            .teacher
            .hidden_states_rows(token_tensor(batch, &teacher_device), layout(batch));
        let teacher_logits = self.teacher.output_logits(
            trained
                .select(teacher_hidden)
                .expect("the same positions are trained"),
        );
        let teacher_logits = Tensor::<B, 3>::from_inner(teacher_logits);
        // A padded vocabulary (same tokenizer, rows added for alignment) is cut
        // to the part both models share.
        let [_, n, student_vocab] = student_logits.dims();
        let vocab = student_vocab.min(teacher_logits.dims()[2]);
        let flat = |t: Tensor<B, 3>| t.narrow(2, 0, vocab).reshape([n, vocab]);
        let divergence = self
            .divergence
            .sum(
                flat(student_logits.clone()),
                flat(teacher_logits),
                self.temperature,
            )
            .map_err(|e| TrainError::Config(e.to_string()))?;
        Ok(mix(student_logits, &trained, divergence, alpha))
    }
}
