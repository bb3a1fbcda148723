//! One token sequence given as plain ids: the checks a model's input must pass,
//! and its logits as a plain vector, for callers that hold no Burn tensors.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::transformer::Transformer;

/// A token sequence the model cannot read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("the token sequence is empty")]
    Empty,
    #[error("token {index} is id {id}, outside the model's vocabulary of {vocab_size}")]
    OutOfVocabulary {
        index: usize,
        id: u32,
        vocab_size: usize,
    },
    #[error("{tokens} tokens are more than the model's context of {context}")]
    TooLong { tokens: usize, context: usize },
}

impl<B: Backend> Transformer<B> {
    /// Checks that `ids` is a sequence this model can read: not empty, every id
    /// in the vocabulary (the embedding would read out of bounds otherwise), no
    /// longer than the context it was trained for.
    pub fn check_input(&self, ids: &[u32]) -> Result<(), InputError> {
        let config = &self.config;
        if ids.is_empty() {
            return Err(InputError::Empty);
        }
        if let Some((index, &id)) = ids
            .iter()
            .enumerate()
            .find(|&(_, &id)| id as usize >= config.vocab_size)
        {
            return Err(InputError::OutOfVocabulary {
                index,
                id,
                vocab_size: config.vocab_size,
            });
        }
        if ids.len() > config.max_position_embeddings {
            return Err(InputError::TooLong {
                tokens: ids.len(),
                context: config.max_position_embeddings,
            });
        }
        Ok(())
    }

    /// Next-token logits at every position of one sequence starting at position 0,
    /// row-major `[ids.len(), vocab]`.
    pub fn sequence_logits(&self, ids: &[u32]) -> Result<Vec<f32>, InputError> {
        self.check_input(ids)?;
        let logits = self.forward(self.token_tensor(ids));
        Ok(host_f32(logits))
    }

    /// `ids` as a batch of one, `[1, ids.len()]`, on the model's device.
    pub(crate) fn token_tensor(&self, ids: &[u32]) -> Tensor<B, 2, Int> {
        let data = TensorData::new(
            ids.iter().map(|&id| i64::from(id)).collect(),
            [1, ids.len()],
        );
        Tensor::from_data(data, &self.embed_tokens.weight.device())
    }
}

/// A tensor's values as f32 on the host, whatever float type the backend computes in.
pub(crate) fn host_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("converted to f32")
}
