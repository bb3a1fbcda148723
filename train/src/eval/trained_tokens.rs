//! Scores on the tokens training trains on (a chat example's answers, say):
//! each document on its own from position 0, as packed training sees it, and
//! each trained token predicted from its document's tokens before it. Chunked
//! perplexity over one stream (llama-perplexity's way) would score a
//! task-tuned student on prompts it never learnt and across document
//! boundaries it never attended over.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use datasets::Documents;

use super::nll::{NllStats, token_nll};
use crate::model::Transformer;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainedScores {
    pub documents: usize,
    /// Trained tokens scored.
    pub tokens: usize,
    pub nll_mean: f64,
    pub ppl: f64,
    /// Mean KL(teacher ‖ model) per token, with a teacher.
    pub kld_mean: Option<f64>,
    /// Share of tokens where both rank the same token first, with a teacher.
    pub same_top: Option<f64>,
}

/// `None` when no document has a trained token after its first.
pub fn score_trained<B: Backend>(
    model: &Transformer<B>,
    teacher: Option<&Transformer<B>>,
    documents: &Documents,
) -> Option<TrainedScores> {
    let mut nll = NllStats::default();
    let (mut kld, mut same, mut scored_documents) = (0.0, 0usize, 0usize);
    for index in 0..documents.len() {
        let document = documents.get(index);
        let positions: Vec<usize> = (1..document.tokens.len())
            .filter(|&i| document.trained[i])
            .collect();
        if positions.is_empty() {
            continue;
        }
        scored_documents += 1;
        let ours = logits(model, document.tokens);
        let theirs = teacher.map(|t| logits(t, document.tokens));
        let width = theirs.as_ref().map_or(ours.1, |t| ours.1.min(t.1));
        for &position in &positions {
            let student = row(&ours, position, width);
            nll.add(token_nll(student, document.tokens[position] as usize));
            if let Some(teacher) = &theirs {
                let teacher = row(teacher, position, width);
                kld += kl(teacher, student);
                same += usize::from(argmax(teacher) == argmax(student));
            }
        }
    }
    let tokens = nll.count();
    (tokens > 0).then(|| TrainedScores {
        documents: scored_documents,
        tokens,
        nll_mean: nll.mean(),
        ppl: nll.perplexity(),
        kld_mean: teacher.map(|_| kld / tokens as f64),
        same_top: teacher.map(|_| same as f64 / tokens as f64),
    })
}

/// Every position's logits of `tokens`, row-major, and the vocabulary size.
fn logits<B: Backend>(model: &Transformer<B>, tokens: &[u32]) -> (Vec<f32>, usize) {
    let device = model.embed_tokens.weight.device();
    let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
    let input = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, tokens.len()]), &device);
    let out = model.forward(input);
    let vocab = out.dims()[2];
    let values = out
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("f32 logits");
    (values, vocab)
}

/// The first `width` logits predicting the token at `position`.
fn row((values, vocab): &(Vec<f32>, usize), position: usize, width: usize) -> &[f32] {
    &values[(position - 1) * vocab..][..width]
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_sum = sum.ln();
    row.iter().map(|&l| f64::from(l - max) - log_sum).collect()
}

fn kl(teacher: &[f32], student: &[f32]) -> f64 {
    let (p, q) = (log_softmax(teacher), log_softmax(student));
    p.iter()
        .zip(&q)
        .map(|(&lp, &lq)| lp.exp() * (lp - lq))
        .sum()
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}
