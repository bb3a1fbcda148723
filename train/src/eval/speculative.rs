//! How well a draft model serves a target in greedy speculative decoding.
//!
//! With greedy verification the output is the target's own greedy continuation,
//! and as long as the draft agrees with it, the draft's prefix is the target's.
//! So the draft's proposal at each position is its greedy token given the
//! target's continuation so far: one teacher-forced pass of the draft over that
//! continuation tells, position by position, whether its token would be
//! accepted, and the verification steps for any draft length follow from those
//! matches alone.

use burn::tensor::backend::Backend;
use serde::Serialize;

use crate::generate::argmax;
use crate::model::{InputError, Transformer, host_f32};

/// Draft lengths reported, 1 up to this.
pub const MAX_DRAFT_LENGTH: usize = 8;

/// Whether `draft`'s greedy next token at each position of `continuation`
/// (which follows `prompt`) is that position's token.
pub fn draft_matches<B: Backend>(
    draft: &Transformer<B>,
    prompt: &[u32],
    continuation: &[u32],
) -> Result<Vec<bool>, InputError> {
    if continuation.is_empty() {
        return Ok(Vec::new());
    }
    let input: Vec<u32> = prompt
        .iter()
        .chain(&continuation[..continuation.len() - 1])
        .copied()
        .collect();
    draft.check_input(&input)?;
    let logits = draft.forward(draft.token_tensor(&input));
    let n = continuation.len();
    let logits = host_f32(logits.narrow(1, prompt.len() - 1, n));
    let vocab = logits.len() / n;
    Ok(continuation
        .iter()
        .enumerate()
        .map(|(i, &token)| argmax(&logits[i * vocab..(i + 1) * vocab]) == token)
        .collect())
}

/// Verification steps of greedy speculative decoding with `draft_length`
/// tokens drafted per step, to produce a continuation whose draft matches are
/// `matches`, and the draft tokens accepted on the way. Each step accepts the
/// drafted tokens up to the first mismatch and adds the target's own token.
pub fn verification_steps(matches: &[bool], draft_length: usize) -> (u64, u64, u64) {
    let n = matches.len();
    let (mut position, mut steps, mut accepted, mut drafted) = (0, 0u64, 0u64, 0u64);
    while position < n {
        let proposed = draft_length.min(n - position);
        let run = matches[position..position + proposed]
            .iter()
            .take_while(|&&m| m)
            .count();
        steps += 1;
        accepted += run as u64;
        drafted += proposed as u64;
        position += run + 1;
    }
    (steps, accepted, drafted)
}

/// Verification steps and tokens over many continuations, per draft length.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DraftTally {
    pub tokens: u64,
    /// `[steps, accepted, drafted]` for draft lengths 1..=MAX_DRAFT_LENGTH.
    counts: [[u64; 3]; MAX_DRAFT_LENGTH],
}

/// One draft length's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DraftFigure {
    pub draft_length: usize,
    /// Tokens produced per verification step (target forward pass): the
    /// expected accepted draft tokens plus the target's own.
    pub tokens_per_step: f64,
    /// Share of drafted tokens the target accepted.
    pub acceptance_rate: f64,
    pub steps: u64,
}

impl DraftTally {
    pub fn add(&mut self, matches: &[bool]) {
        self.tokens += matches.len() as u64;
        for (k, counts) in self.counts.iter_mut().enumerate() {
            let (steps, accepted, drafted) = verification_steps(matches, k + 1);
            counts[0] += steps;
            counts[1] += accepted;
            counts[2] += drafted;
        }
    }

    pub fn figures(&self) -> Vec<DraftFigure> {
        self.counts
            .iter()
            .enumerate()
            .map(|(k, &[steps, accepted, drafted])| DraftFigure {
                draft_length: k + 1,
                tokens_per_step: self.tokens as f64 / steps.max(1) as f64,
                acceptance_rate: accepted as f64 / drafted.max(1) as f64,
                steps,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_runs_of_matches() {
        let m = [true, true, false, true, true, true, true, false];
        // k = 1: every step drafts one token; a match gains two tokens.
        assert_eq!(verification_steps(&m, 1), (5, 3, 5));
        // k = 4: [t t f] → 3 tokens; [t t t t] → 5 tokens; done at 8.
        assert_eq!(verification_steps(&m, 4), (2, 6, 8));
        assert_eq!(verification_steps(&[], 3), (0, 0, 0));
        assert_eq!(verification_steps(&[false; 3], 8), (3, 0, 6));
        let mut tally = DraftTally::default();
        tally.add(&m);
        let figures = tally.figures();
        assert_eq!(figures.len(), MAX_DRAFT_LENGTH);
        assert_eq!(figures[0].tokens_per_step, 8.0 / 5.0);
        assert_eq!(figures[3].acceptance_rate, 6.0 / 8.0);
    }
}
