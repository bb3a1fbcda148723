//! Fixed-length rows of documents, as a trainer consumes them.
//!
//! A row holds one document (padded) or several (packed), never part of one.
//! Every document restarts its position ids at 0 and has its own document id
//! (1, 2, … within the row; 0 is padding), so a model builds the
//! block-diagonal causal mask from the ids: position `i` attends to position
//! `j` when `j <= i` and both have the same nonzero document id. A document's
//! last token predicts nothing, so no loss crosses from one document into
//! the next.

use crate::documents::Document;

/// The label of a position that has no loss, as in PyTorch's `ignore_index`.
pub const IGNORE_INDEX: i32 = -100;

/// `rows` rows of `seq_len` positions, each field row-major `[rows, seq_len]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub rows: usize,
    pub seq_len: usize,
    /// Input token ids; padding positions hold the pad token.
    pub tokens: Vec<u32>,
    /// The next token of the same document where it is trained, otherwise
    /// [`IGNORE_INDEX`].
    pub targets: Vec<i32>,
    /// Whether the position's target counts: `targets[i] != IGNORE_INDEX`.
    pub loss_mask: Vec<bool>,
    /// Position within the document, from 0; 0 on padding.
    pub position_ids: Vec<u32>,
    /// Which document of the row the position belongs to, from 1; 0 on padding.
    pub document_ids: Vec<u32>,
    /// The position's document as an index into the loader's documents;
    /// [`PADDING_SOURCE`] on padding. Lets a stage look up what it stored
    /// per document, such as a teacher cache's records.
    pub sources: Vec<u32>,
}

/// [`Batch::sources`] on padding positions.
pub const PADDING_SOURCE: u32 = u32::MAX;

impl Batch {
    pub(crate) fn new(seq_len: usize) -> Self {
        Self {
            seq_len,
            ..Self::default()
        }
    }

    /// The rows `rows` of this batch, as a batch of their own: a data-parallel
    /// replica's share.
    pub fn select_rows(&self, rows: std::ops::Range<usize>) -> Batch {
        let span = rows.start * self.seq_len..rows.end * self.seq_len;
        Batch {
            rows: rows.len(),
            seq_len: self.seq_len,
            tokens: self.tokens[span.clone()].to_vec(),
            targets: self.targets[span.clone()].to_vec(),
            loss_mask: self.loss_mask[span.clone()].to_vec(),
            position_ids: self.position_ids[span.clone()].to_vec(),
            document_ids: self.document_ids[span.clone()].to_vec(),
            sources: self.sources[span].to_vec(),
        }
    }

    /// Appends a row of `documents`, which fit in `seq_len` together, then padding.
    pub(crate) fn push_row(&mut self, documents: &[(u32, Document<'_>)], pad_token: u32) {
        let start = self.tokens.len();
        for (document_id, &(source, document)) in (1..).zip(documents) {
            self.sources.extend(std::iter::repeat_n(source, document.len()));
            self.tokens.extend_from_slice(document.tokens);
            let next = document.tokens.iter().zip(document.trained).skip(1);
            for (&token, &trained) in next {
                self.targets
                    .push(if trained { token as i32 } else { IGNORE_INDEX });
                self.loss_mask.push(trained);
            }
            if !document.is_empty() {
                self.targets.push(IGNORE_INDEX);
                self.loss_mask.push(false);
            }
            self.position_ids.extend(0..document.len() as u32);
            self.document_ids
                .extend(std::iter::repeat_n(document_id, document.len()));
        }
        let used = self.tokens.len() - start;
        assert!(
            used <= self.seq_len,
            "documents of {used} tokens packed into a row of {}",
            self.seq_len
        );
        let padding = self.seq_len - used;
        self.tokens.extend(std::iter::repeat_n(pad_token, padding));
        self.targets
            .extend(std::iter::repeat_n(IGNORE_INDEX, padding));
        self.loss_mask.extend(std::iter::repeat_n(false, padding));
        self.position_ids.extend(std::iter::repeat_n(0, padding));
        self.document_ids.extend(std::iter::repeat_n(0, padding));
        self.sources.extend(std::iter::repeat_n(PADDING_SOURCE, padding));
        self.rows += 1;
    }
}
