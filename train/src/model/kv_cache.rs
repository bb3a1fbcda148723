//! The keys and values of the positions a model has already read, so that each
//! new token attends to them without recomputing the whole sequence.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// One sequence batch's attention state across forward passes: per layer, the
/// keys (after RoPE) and values of every position so far,
/// `[batch, kv_heads, positions, head_dim]`, before the key/value heads are
/// shared out to the query heads.
#[derive(Clone, Debug)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerCache<B>>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model of `num_layers` layers.
    pub(super) fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![LayerCache::default(); num_layers],
            len: 0,
        }
    }

    /// The number of positions cached: the position the next token will take.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The caches of the layers in order, to be filled by one forward pass of
    /// `new_positions` tokens.
    pub(super) fn extend(&mut self, new_positions: usize) -> &mut [LayerCache<B>] {
        self.len += new_positions;
        &mut self.layers
    }
}

/// One layer's keys and values; empty until the first forward pass.
#[derive(Clone, Debug)]
pub(super) struct LayerCache<B: Backend> {
    keys_values: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
}

impl<B: Backend> Default for LayerCache<B> {
    fn default() -> Self {
        Self { keys_values: None }
    }
}

impl<B: Backend> LayerCache<B> {
    pub(super) fn is_empty(&self) -> bool {
        self.keys_values.is_none()
    }

    /// Appends the new positions' keys and values and returns those of all
    /// positions so far.
    pub(super) fn append(
        &mut self,
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let all = match self.keys_values.take() {
            None => (keys, values),
            Some((cached_keys, cached_values)) => (
                Tensor::cat(vec![cached_keys, keys], 2),
                Tensor::cat(vec![cached_values, values], 2),
            ),
        };
        self.keys_values = Some(all.clone());
        all
    }
}
