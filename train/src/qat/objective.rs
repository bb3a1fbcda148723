//! Any objective, computed on the fake-quantized model: quantization-aware
//! distillation is [`FakeQuant`] around a distillation objective.

use burn::tensor::backend::AutodiffBackend;
use datasets::Batch;
use datasets::order::SplitMix64;

use super::model::{FakeQuantPlan, fake_quantized};
use crate::error::TrainError;
use crate::model::Transformer;
use crate::trainer::{LossSum, Objective};

pub struct FakeQuant<O> {
    inner: O,
    plan: FakeQuantPlan,
}

impl<O> FakeQuant<O> {
    pub fn new(inner: O, plan: FakeQuantPlan) -> Self {
        Self { inner, plan }
    }

    pub fn plan(&self) -> &FakeQuantPlan {
        &self.plan
    }
}

impl<B: AutodiffBackend, O: Objective<B>> Objective<B> for FakeQuant<O> {
    fn components(&self) -> &'static [&'static str] {
        self.inner.components()
    }

    fn loss(
        &mut self,
        model: &Transformer<B>,
        batch: &Batch,
        rng: &mut SplitMix64,
    ) -> Result<LossSum<B>, TrainError> {
        let quantized = fake_quantized(model, &self.plan)?;
        self.inner.loss(&quantized, batch, rng)
    }
}
