//! What a step minimises. The trainer hands each micro-batch to an
//! [`Objective`]; supervised fine-tuning is [`CrossEntropy`], distillation adds
//! its own objectives in the `distill` crate.

use std::collections::BTreeMap;

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use datasets::order::SplitMix64;
use datasets::{Batch, IGNORE_INDEX};

use super::head_loss::{CHUNK_LOGITS, chunk_rows, chunked_cross_entropy};
use crate::error::TrainError;
use crate::model::{RowLayout, Transformer};

/// A micro-batch's loss as a sum over its trained tokens: the trainer divides by
/// the trained tokens of the whole step, so that gradient accumulation gives the
/// same update as one large batch.
pub struct LossSum<B: Backend> {
    /// The value to differentiate, `[1]`.
    pub total: Tensor<B, 1>,
    /// Named parts of the loss (also summed over tokens) for the metrics.
    pub components: BTreeMap<&'static str, f64>,
}

pub trait Objective<B: AutodiffBackend> {
    /// The loss of `model` on `batch`. `rng` is this step's random stream,
    /// the same on a resumed run.
    fn loss(
        &mut self,
        model: &Transformer<B>,
        batch: &Batch,
        rng: &mut SplitMix64,
    ) -> Result<LossSum<B>, TrainError>;

    /// Every name [`LossSum::components`] can hold, in a fixed order: replicas
    /// sum their parts by position.
    fn components(&self) -> &'static [&'static str];
}

/// Token-level cross-entropy on the trained positions (supervised fine-tuning).
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossEntropy;

impl<B: AutodiffBackend> Objective<B> for CrossEntropy {
    fn components(&self) -> &'static [&'static str] {
        &["ce"]
    }

    fn loss(
        &mut self,
        model: &Transformer<B>,
        batch: &Batch,
        _rng: &mut SplitMix64,
    ) -> Result<LossSum<B>, TrainError> {
        let device = model.embed_tokens.weight.device();
        let hidden = model.hidden_states_rows(token_tensor(batch, &device), layout(batch));
        let trained = TrainedPositions::of(batch);
        let Some(hidden) = trained.select_flat(hidden) else {
            return Ok(LossSum {
                total: Tensor::zeros([1], &device),
                components: BTreeMap::from([("ce", 0.0)]),
            });
        };
        let rows = chunk_rows(model.config.vocab_size, CHUNK_LOGITS);
        let mut loss = chunked_cross_entropy(model, hidden, &trained.targets, rows)?;
        loss.components.entry("ce").or_insert(0.0);
        Ok(loss)
    }
}

/// The positions of a batch that carry a loss, and their targets. Only these go
/// through the output head: a chat example trains on its answer alone, and the
/// vocabulary projection is most of a small model's step.
pub struct TrainedPositions {
    /// Flat indices into `[rows · seq]`.
    pub indices: Vec<i64>,
    pub targets: Vec<i64>,
}

impl TrainedPositions {
    pub fn of(batch: &Batch) -> Self {
        let (indices, targets) = batch
            .targets
            .iter()
            .enumerate()
            .filter(|&(_, &t)| t != IGNORE_INDEX)
            .map(|(i, &t)| (i as i64, i64::from(t)))
            .unzip();
        Self { indices, targets }
    }

    /// The hidden states `[rows, seq, hidden]` of the trained positions,
    /// `[1, trained, hidden]`; `None` when nothing is trained.
    pub fn select<B: Backend>(&self, hidden: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
        if self.indices.is_empty() {
            return None;
        }
        let [rows, seq, width] = hidden.dims();
        let device = hidden.device();
        let indices = Tensor::<B, 1, Int>::from_data(
            TensorData::new(self.indices.clone(), [self.indices.len()]),
            &device,
        );
        Some(
            hidden
                .reshape([rows * seq, width])
                .select(0, indices)
                .unsqueeze_dim(0),
        )
    }

    /// [`Self::select`] as `[trained, hidden]`.
    pub fn select_flat<B: Backend>(&self, hidden: Tensor<B, 3>) -> Option<Tensor<B, 2>> {
        self.select(hidden).map(|h| h.squeeze_dim(0))
    }
}

/// The batch's token ids on `device`, `[rows, seq_len]`.
pub fn token_tensor<B: Backend>(batch: &Batch, device: &B::Device) -> Tensor<B, 2, Int> {
    let ids = batch.tokens.iter().map(|&t| i64::from(t)).collect();
    Tensor::from_data(TensorData::new(ids, [batch.rows, batch.seq_len]), device)
}

pub fn layout(batch: &Batch) -> RowLayout<'_> {
    RowLayout {
        rows: batch.rows,
        seq: batch.seq_len,
        position_ids: &batch.position_ids,
        document_ids: &batch.document_ids,
    }
}

/// The summed negative log-likelihood of `targets` under `logits`,
/// `[targets.len(), vocab]`.
pub fn cross_entropy_sum<B: Backend>(logits: Tensor<B, 2>, targets: &[i64]) -> Tensor<B, 1> {
    let [n, _] = logits.dims();
    let device = logits.device();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(targets.to_vec(), [n, 1]), &device);
    let log_probs = log_softmax(logits, 1);
    log_probs.gather(1, ids).sum().neg()
}
