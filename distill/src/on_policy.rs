//! On-policy distillation (GKD's λ): on a share λ of batches the student
//! answers the batch's prompts itself, by sampling, and is trained towards the
//! teacher's distribution on its own answers, so that it learns to recover
//! from its own mistakes rather than only to follow gold text.

use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use datasets::order::SplitMix64;
use datasets::{Batch, Documents, Loader, LoaderConfig, Order, Shard};
use train::generate::{Sampling, generate};
use train::trainer::{LossSum, Objective};
use train::{TrainError, Transformer};

use crate::objective::OnlineDistillation;

/// How the student samples its answers.
#[derive(Clone, Debug, PartialEq)]
pub struct OnPolicyConfig {
    /// The share of batches answered by the student, in [0, 1].
    pub lambda: f64,
    pub max_new_tokens: usize,
    pub temperature: f32,
    /// The tokenizer's end-of-generation ids.
    pub end_of_generation: Vec<u32>,
}

pub struct OnPolicyDistillation<B: AutodiffBackend> {
    online: OnlineDistillation<B>,
    config: OnPolicyConfig,
}

impl<B: AutodiffBackend> OnPolicyDistillation<B> {
    pub fn new(online: OnlineDistillation<B>, config: OnPolicyConfig) -> Result<Self, TrainError> {
        if !(0.0..=1.0).contains(&config.lambda) {
            return Err(TrainError::Config(format!(
                "on-policy lambda must lie in [0, 1], not {}",
                config.lambda
            )));
        }
        if !(config.temperature.is_finite() && config.temperature > 0.0) {
            return Err(TrainError::Config(format!(
                "on-policy temperature must be a positive number, not {}",
                config.temperature
            )));
        }
        Ok(Self { online, config })
    }

    /// The batch's prompts (each document up to its first trained token)
    /// followed by the student's sampled answers, trained on the answers, in
    /// rows as long as the batch's.
    fn student_batch(&self, student: &Transformer<B>, batch: &Batch, rng: &mut SplitMix64) -> Option<Batch> {
        let sampler = student.valid();
        let seq = batch.seq_len;
        let mut documents: Vec<(Vec<u32>, Vec<bool>)> = Vec::new();
        for row in 0..batch.rows {
            let span = row * seq..(row + 1) * seq;
            let (ids, mask, docs) = (&batch.tokens[span.clone()], &batch.loss_mask[span.clone()], &batch.document_ids[span]);
            let mut start = 0;
            while start < seq && docs[start] != 0 {
                let end = (start..seq).find(|&i| docs[i] != docs[start]).unwrap_or(seq);
                if let Some(first) = (start..end).find(|&i| mask[i]) {
                    let prompt = &ids[start..=first];
                    let budget = self.config.max_new_tokens.min(seq - prompt.len());
                    let sampling = Sampling::Sample { temperature: self.config.temperature, top_p: 1.0, seed: rng.next_u64() };
                    let eog = &self.config.end_of_generation;
                    let answer = generate(&sampler, prompt, budget, sampling, |id| eog.contains(&id), |_| {}).ok()?;
                    let mut tokens = prompt.to_vec();
                    tokens.extend(&answer.tokens);
                    if let train::generate::StopReason::EndOfGeneration(id) = answer.stop
                        && tokens.len() < seq
                    {
                        tokens.push(id);
                    }
                    let trained = (0..tokens.len()).map(|i| i >= prompt.len()).collect();
                    documents.push((tokens, trained));
                }
                start = end;
            }
        }
        let documents = Documents::from_tokens(documents.iter().map(|(t, m)| (t.as_slice(), m.as_slice())), "on-policy")
            .ok()?;
        let config = LoaderConfig {
            batch_size: batch.rows.max(1),
            seq_len: seq,
            packing: true,
            order: Order { shuffle: false, seed: 0, shard: Shard::SINGLE },
            pad_token: 0,
            epochs: Some(1),
        };
        Loader::new(Arc::new(documents), config).ok()?.next()
    }
}

impl<B: AutodiffBackend> Objective<B> for OnPolicyDistillation<B> {
    fn components(&self) -> &'static [&'static str] {
        crate::mixture::COMPONENTS
    }

    fn loss(
        &mut self,
        student: &Transformer<B>,
        batch: &Batch,
        rng: &mut SplitMix64,
    ) -> Result<LossSum<B>, TrainError> {
        let draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        if draw >= self.config.lambda {
            return self.online.loss(student, batch, rng);
        }
        let Some(generated) = self.student_batch(student, batch, rng) else {
            return self.online.loss(student, batch, rng);
        };
        let mut loss = self.online.loss_with_alpha(student, &generated, 0.0)?;
        // The trainer averages over the gold batch's trained tokens; weigh the
        // student's answers so that each of their tokens counts as one of those.
        let gold = batch.loss_mask.iter().filter(|&&m| m).count();
        let own = generated.loss_mask.iter().filter(|&&m| m).count();
        if own > 0 && gold > 0 {
            let scale = gold as f64 / own as f64;
            loss.total = loss.total.mul_scalar(scale);
            for value in loss.components.values_mut() {
                *value *= scale;
            }
        }
        // Cross-entropy on the student's own samples is no label loss.
        loss.components.remove("ce");
        Ok(loss)
    }
}
