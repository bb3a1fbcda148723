//! Distillation from a teacher cache: the student's distribution is reduced to
//! the cached top-k tokens plus one bucket for the rest, the teacher's is read
//! from the cache in the same buckets, and the divergence is taken between the
//! two (k + 1)-way distributions, mixed with cross-entropy on the labels as
//! online distillation does. With k the whole vocabulary the rest bucket is
//! empty and this is the online loss up to the cache's 6-bit value codes.
//!
//! The buckets leave the shape of the student's tail untaught. A cache with
//! tail samples teaches it under forward KL, which splits exactly into the
//! bucket KL plus `rest × KL(teacher tail ‖ student tail)`, both tails
//! normalized: the samples, drawn from the teacher's tail, each stand for
//! `rest / m` of the mass, so `rest / m · Σ −log q_tail(sample)` has the
//! gradient of the second term in expectation. The value reported is then
//! higher than the KL by the teacher tail's entropy term, a constant. The
//! other divergences do not split that way and use the buckets alone.

use std::collections::HashMap;
use std::sync::Arc;

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use datasets::logit_cache::{Decoded, TeacherCache};
use datasets::order::SplitMix64;
use datasets::{Batch, Documents};
use train::trainer::{CHUNK_LOGITS, LossSum, Objective, TrainedPositions};
use train::{TrainError, Transformer};

use crate::loss::{Divergence, DivergenceError};
use crate::mixture::{mix, nothing, student_hidden};

/// Probabilities below this are taken as this, so that a log stays finite.
const FLOOR: f64 = 1e-30;

pub struct CachedDistillation {
    cache: TeacherCache,
    documents: Arc<Documents>,
    divergence: Divergence,
    alpha: f64,
    /// Logits per chunk of the loss ([`train::trainer::CHUNK_LOGITS`]).
    chunk_logits: usize,
}

impl CachedDistillation {
    /// `documents` must be those the cache was written from (checked by
    /// fingerprint). The cache holds distributions at temperature 1 only.
    pub fn new(
        cache: TeacherCache,
        documents: Arc<Documents>,
        divergence: Divergence,
        alpha: f64,
    ) -> Result<Self, CachedError> {
        divergence.validate(1.0)?;
        if !(0.0..=1.0).contains(&alpha) {
            return Err(DivergenceError::Mixture { name: "alpha", value: alpha }.into());
        }
        let manifest = cache.manifest();
        if manifest.data_fingerprint != documents.fingerprint() || manifest.documents != documents.len() as u64 {
            return Err(CachedError::OtherData {
                dir: cache.dir().display().to_string(),
            });
        }
        Ok(Self { cache, documents, divergence, alpha, chunk_logits: CHUNK_LOGITS })
    }

    /// Computes the loss for about `chunk_logits` logits at a time.
    pub fn with_chunk_logits(mut self, chunk_logits: usize) -> Self {
        self.chunk_logits = chunk_logits;
        self
    }

    /// The cached record of each trained position, in batch order.
    fn records(&self, batch: &Batch, trained: &TrainedPositions) -> Result<Vec<Decoded>, TrainError> {
        let mut by_document: HashMap<u32, Vec<Decoded>> = HashMap::new();
        let mut records = Vec::with_capacity(trained.indices.len());
        for &flat in &trained.indices {
            let flat = flat as usize;
            let (source, position) = (batch.sources[flat], batch.position_ids[flat] as usize);
            if !by_document.contains_key(&source) {
                let decoded = self
                    .cache
                    .document(u64::from(source))
                    .map_err(|e| TrainError::Config(e.to_string()))?;
                by_document.insert(source, decoded);
            }
            // The record index is the number of trained positions before this
            // one in its document; position p predicts token p + 1.
            let trained_flags = self.documents.get(source as usize).trained;
            let index = trained_flags[1..=position + 1].iter().filter(|&&t| t).count() - 1;
            let decoded = &by_document[&source];
            let record = decoded.get(index).ok_or_else(|| {
                TrainError::Config(format!(
                    "{}: document {source} has {} cached positions, position {position} needs record {index}",
                    self.cache.dir().display(),
                    decoded.len()
                ))
            })?;
            records.push(record.clone());
        }
        Ok(records)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CachedError {
    #[error("[distill]: {0}")]
    Divergence(#[from] DivergenceError),
    #[error(
        "{dir}: was cached from other data (its fingerprint differs from the prepared documents'); \
         rebuild the cache for this data"
    )]
    OtherData { dir: String },
}

impl<B: AutodiffBackend> Objective<B> for CachedDistillation {
    fn components(&self) -> &'static [&'static str] {
        crate::mixture::COMPONENTS
    }

    fn loss(
        &mut self,
        student: &Transformer<B>,
        batch: &Batch,
        _rng: &mut SplitMix64,
    ) -> Result<LossSum<B>, TrainError> {
        let Some((trained, hidden)) = student_hidden(student, batch) else {
            return Ok(nothing(student));
        };
        let records = self.records(batch, &trained)?;
        let k = self.cache.manifest().k;
        let vocab = student.config.vocab_size;
        if self.cache.manifest().vocab > vocab {
            return Err(TrainError::Config(format!(
                "{}: cached over a vocabulary of {}, the student has {vocab}",
                self.cache.dir().display(),
                self.cache.manifest().vocab
            )));
        }
        let divergence = self.divergence;
        mix(student, hidden, &trained, self.alpha, self.chunk_logits, |logits, positions| {
            cached_divergence(divergence, logits, &records[positions], k).map_err(|e| TrainError::Config(e.to_string()))
        })
    }
}

/// The divergence summed over positions between the student's `logits`
/// `[n, vocab]` and the cached records of those positions, each of `k` ids
/// (see the module's note for how tail samples enter).
pub fn cached_divergence<B: Backend>(
    divergence: Divergence,
    logits: Tensor<B, 2>,
    records: &[Decoded],
    k: usize,
) -> Result<Tensor<B, 1>, DivergenceError> {
    let device = logits.device();
    let n = records.len();
    let gather = |log_probs: Tensor<B, 2>, ids: Vec<i64>, width: usize| {
        log_probs.gather(1, Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, width]), &device))
    };
    let log_probs = log_softmax(logits, 1);
    let ids = records.iter().flat_map(|r| r.ids.iter().map(|&i| i64::from(i))).collect();
    let top = gather(log_probs.clone(), ids, k);
    let rest = (top.clone().exp().sum_dim(1).neg().add_scalar(1.0)).clamp_min(FLOOR).log();
    let student_buckets = Tensor::cat(vec![top, rest.clone()], 1);
    let teacher: Vec<f32> = records
        .iter()
        .flat_map(|r| {
            r.probs
                .iter()
                .map(|&p| f64::from(p))
                .chain([f64::from(r.rest)])
                .map(|p| p.max(FLOOR).ln() as f32)
        })
        .collect();
    let teacher_buckets = Tensor::<B, 2>::from_data(TensorData::new(teacher, [n, k + 1]), &device);
    let buckets = divergence.sum(student_buckets, teacher_buckets, 1.0)?;
    let m = records.iter().map(|r| r.tail.len()).max().unwrap_or(0);
    if m == 0 || divergence != Divergence::ForwardKl {
        return Ok(buckets);
    }
    // Records hold different numbers of samples: pad each row to the most
    // with id 0 at weight 0.
    let mut ids = Vec::with_capacity(n * m);
    let mut weights = Vec::with_capacity(n * m);
    for record in records {
        let count = record.tail.len();
        ids.extend(record.tail.iter().map(|&i| i64::from(i)).chain(std::iter::repeat_n(0, m - count)));
        let weight = if count > 0 { record.rest / count as f32 } else { 0.0 };
        weights.extend(std::iter::repeat_n(weight, count).chain(std::iter::repeat_n(0.0, m - count)));
    }
    let tail_log_probs = gather(log_probs, ids, m) - rest;
    let weights = Tensor::<B, 2>::from_data(TensorData::new(weights, [n, m]), &device);
    Ok(buckets - (tail_log_probs * weights).sum())
}
