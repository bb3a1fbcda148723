//! The forward pass over training rows, where one row may hold several packed
//! documents: each document restarts its positions at 0 and attends only to
//! itself (a block-diagonal causal mask), so that nothing leaks between them.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use super::rope::RopeTables;
use super::transformer::Transformer;

/// Where each token of a `[rows, seq]` batch sits, row-major: its position
/// within its document and the document's id within the row (from 1; 0 marks
/// padding), as `datasets::Batch` lays them out.
#[derive(Clone, Copy, Debug)]
pub struct RowLayout<'a> {
    pub rows: usize,
    pub seq: usize,
    pub position_ids: &'a [u32],
    pub document_ids: &'a [u32],
}

impl RowLayout<'_> {
    /// Whether every row holds at most one document, which starts the row: then
    /// the shared positions `0..seq` and the plain causal mask are exact for every
    /// real token (padding follows the document and no real token sees it).
    fn is_one_document_per_row(&self) -> bool {
        self.document_ids.iter().all(|&d| d <= 1)
            && self
                .position_ids
                .chunks(self.seq)
                .zip(self.document_ids.chunks(self.seq))
                .all(|(positions, documents)| {
                    positions
                        .iter()
                        .zip(documents)
                        .enumerate()
                        .all(|(i, (&p, &d))| d == 0 || p as usize == i)
                })
    }

    /// `[rows, 1, seq, seq]`, true where query `q` must not see key `k` beyond the
    /// causal rule: another document, or outside the sliding window. A padding
    /// position sees only itself, so that its softmax stays finite.
    fn hidden_mask(&self, window: Option<usize>) -> Vec<bool> {
        let seq = self.seq;
        let mut hidden = Vec::with_capacity(self.rows * seq * seq);
        for row in 0..self.rows {
            let documents = &self.document_ids[row * seq..(row + 1) * seq];
            let positions = &self.position_ids[row * seq..(row + 1) * seq];
            for q in 0..seq {
                hidden.extend((0..seq).map(|k| {
                    let other = if documents[q] == 0 {
                        k != q
                    } else {
                        documents[k] != documents[q]
                    };
                    let outside =
                        window.is_some_and(|w| positions[k] as usize + w <= positions[q] as usize);
                    other || outside
                }));
            }
        }
        hidden
    }
}

impl<B: Backend> Transformer<B> {
    /// Final-norm hidden states, `[rows, seq, hidden]`, for token ids `[rows, seq]`
    /// laid out as `layout` says. [`Transformer::output_logits`] turns them into
    /// logits; losses that work through the vocabulary in chunks take them as they are.
    pub fn hidden_states_rows(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: RowLayout<'_>,
    ) -> Tensor<B, 3> {
        self.hidden_states_rows_observed(tokens, layout, |_, _| {})
    }

    /// [`Self::hidden_states_rows`], handing `observe` the residual stream
    /// entering each decoder layer `i` (`observe(i, x)`) and, as
    /// `observe(num_layers, x)`, the one leaving the last: what layer-importance
    /// ranking on calibration data measures.
    pub fn hidden_states_rows_observed(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: RowLayout<'_>,
        mut observe: impl FnMut(usize, &Tensor<B, 3>),
    ) -> Tensor<B, 3> {
        let (tables, mask) = self.row_attention(&tokens, layout);
        let mut cache = self.new_cache();
        let x = self.layers_forward_observed(tokens, &tables, mask, &mut cache, &mut observe);
        super::normalize(&self.norm, x)
    }

    /// The RoPE tables and the attention mask beyond the causal rule for
    /// `tokens` laid out as `layout` says: shared positions and no mask when
    /// that is exact, per-token positions and a block-diagonal mask otherwise.
    pub(super) fn row_attention(
        &self,
        tokens: &Tensor<B, 2, Int>,
        layout: RowLayout<'_>,
    ) -> (RopeTables<B>, Option<Tensor<B, 4, Bool>>) {
        let device = tokens.device();
        let RowLayout { rows, seq, .. } = layout;
        assert_eq!(tokens.dims(), [rows, seq], "tokens match the layout");
        let (rope, config) = (&self.config.rope, &self.config);
        let window = config.sliding_window.filter(|&w| w < seq);
        if layout.is_one_document_per_row() && window.is_none() {
            (
                RopeTables::new(rope, config.head_dim, 0..seq, &device),
                None,
            )
        } else {
            let tables = RopeTables::per_row(
                rope,
                config.head_dim,
                layout.position_ids,
                [rows, seq],
                &device,
            );
            let mask = TensorData::new(layout.hidden_mask(window), [rows, 1, seq, seq]);
            (tables, Some(Tensor::<B, 4, Bool>::from_data(mask, &device)))
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Tolerance;

    use super::*;
    use crate::CpuBackend;
    use crate::config::{Architecture, ModelConfig, RopeConfig, RopeScaling};

    fn tiny(sliding_window: Option<usize>) -> Transformer<CpuBackend> {
        ModelConfig {
            architecture: Architecture::Llama,
            vocab_size: 40,
            hidden_size: 16,
            intermediate_size: 24,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 4,
            rms_norm_eps: 1e-5,
            rope: RopeConfig {
                theta: 10_000.0,
                scaling: RopeScaling::None,
            },
            max_position_embeddings: 64,
            tie_word_embeddings: true,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            sliding_window,
        }
        .init(&Default::default())
        .unwrap()
    }

    fn tokens(ids: &[i64], rows: usize) -> Tensor<CpuBackend, 2, Int> {
        let seq = ids.len() / rows;
        Tensor::from_data(
            TensorData::new(ids.to_vec(), [rows, seq]),
            &Default::default(),
        )
    }

    /// Packed documents give each document the hidden states it has alone.
    fn packing_matches_separate_documents(window: Option<usize>) {
        let model = tiny(window);
        let (a, b) = ([5i64, 6, 7, 8, 9], [11i64, 12, 13]);
        let packed: Vec<i64> = a.iter().chain(&b).copied().collect();
        let layout = RowLayout {
            rows: 1,
            seq: 8,
            position_ids: &[0, 1, 2, 3, 4, 0, 1, 2],
            document_ids: &[1, 1, 1, 1, 1, 2, 2, 2],
        };
        let together = model.hidden_states_rows(tokens(&packed, 1), layout);
        for (doc, start) in [(&a[..], 0), (&b[..], 5)] {
            let n = doc.len();
            let positions: Vec<u32> = (0..n as u32).collect();
            let alone = model.hidden_states_rows(
                tokens(doc, 1),
                RowLayout {
                    rows: 1,
                    seq: n,
                    position_ids: &positions,
                    document_ids: &vec![1; n],
                },
            );
            together
                .clone()
                .narrow(1, start, n)
                .into_data()
                .assert_approx_eq::<f32>(&alone.into_data(), Tolerance::absolute(1e-5));
        }
    }

    #[test]
    fn packed_documents_do_not_see_each_other() {
        packing_matches_separate_documents(None);
    }

    #[test]
    fn packed_documents_keep_their_sliding_window() {
        packing_matches_separate_documents(Some(2));
    }

    #[test]
    fn padded_rows_match_the_plain_forward() {
        let model = tiny(None);
        let ids = [3i64, 4, 5, 0, 0, 7, 8, 9, 10, 11];
        let layout = RowLayout {
            rows: 2,
            seq: 5,
            position_ids: &[0, 1, 2, 0, 0, 0, 1, 2, 3, 4],
            document_ids: &[1, 1, 1, 0, 0, 1, 1, 1, 1, 1],
        };
        let rows = model.output_logits(model.hidden_states_rows(tokens(&ids, 2), layout));
        let plain = model.forward(tokens(&ids, 2));
        rows.into_data()
            .assert_approx_eq::<f32>(&plain.into_data(), Tolerance::absolute(1e-6));
    }
}
