//! The draft metric against a direct simulation of greedy speculative decoding:
//! the draft proposes tokens with its own key/value cache, the target verifies
//! them in one forward pass, and the run must produce the target's greedy
//! continuation in exactly the steps that `verification_steps` counts.

mod common;

use common::{hf_config, random_weights, write_hf_dir};
use safetensors::tensor::Dtype;
use train::eval::{DraftTally, MAX_DRAFT_LENGTH, draft_matches, verification_steps};
use train::generate::generate_greedy;
use train::{CpuBackend, Transformer, load_hf_dir};

type B = CpuBackend;

fn target() -> Transformer<B> {
    let tmp = tempfile::tempdir().unwrap();
    let config = hf_config("qwen2");
    write_hf_dir(
        tmp.path(),
        &config,
        &random_weights(&config, 11),
        Dtype::F32,
    );
    load_hf_dir(tmp.path(), &Default::default()).unwrap()
}

/// The target without its last layer: close to it, but not the same.
fn draft(target: &Transformer<B>) -> Transformer<B> {
    let mut draft = target.clone();
    draft.layers.pop();
    draft.config.num_layers -= 1;
    draft
}

fn greedy_argmax(model: &Transformer<B>, ids: &[u32]) -> Vec<u32> {
    let logits: Vec<f32> = model
        .forward(burn::tensor::Tensor::from_data(
            burn::tensor::TensorData::new(
                ids.iter().map(|&i| i64::from(i)).collect(),
                [1, ids.len()],
            ),
            &Default::default(),
        ))
        .into_data()
        .to_vec()
        .unwrap();
    let vocab = model.config.vocab_size;
    logits
        .chunks(vocab)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

/// Greedy speculative decoding of `n` tokens: returns the output and the
/// number of target verification passes.
fn speculate(
    target: &Transformer<B>,
    draft: &Transformer<B>,
    prompt: &[u32],
    n: usize,
    k: usize,
) -> (Vec<u32>, u64) {
    let mut out: Vec<u32> = Vec::new();
    let mut steps = 0;
    while out.len() < n {
        let prefix: Vec<u32> = prompt.iter().chain(&out).copied().collect();
        let proposed = generate_greedy(draft, &prefix, k.min(n - out.len()), |_| false, |_| {})
            .unwrap()
            .tokens;
        let checked: Vec<u32> = prefix.iter().chain(&proposed).copied().collect();
        let verdicts = greedy_argmax(target, &checked);
        let verdicts = &verdicts[prefix.len() - 1..];
        let accepted = proposed
            .iter()
            .zip(verdicts)
            .take_while(|(d, t)| d == t)
            .count();
        out.extend(&proposed[..accepted]);
        if out.len() < n {
            out.push(verdicts[accepted]);
        }
        steps += 1;
    }
    (out, steps)
}

#[test]
fn counted_steps_equal_a_direct_simulation_of_speculative_decoding() {
    let target = target();
    let draft = draft(&target);
    let prompts: [&[u32]; 3] = [&[1, 5, 9, 33], &[2, 63, 17, 40, 40, 3], &[12]];
    let n = 24;
    let mut tally = DraftTally::default();
    let mut all_matches = Vec::new();
    for prompt in prompts {
        let continuation = generate_greedy(&target, prompt, n, |_| false, |_| {})
            .unwrap()
            .tokens;
        let matches = draft_matches(&draft, prompt, &continuation).unwrap();
        for k in 1..=MAX_DRAFT_LENGTH {
            let (output, steps) = speculate(&target, &draft, prompt, n, k);
            assert_eq!(
                output, continuation,
                "k = {k}: greedy verification yields the target's text"
            );
            assert_eq!(
                verification_steps(&matches, k).0,
                steps,
                "k = {k}, prompt {prompt:?}"
            );
        }
        tally.add(&matches);
        all_matches.extend(matches);
    }
    // The draft agrees often but not always, so every count above was exercised.
    let hits = all_matches.iter().filter(|&&m| m).count();
    assert!(
        hits > 0 && hits < all_matches.len(),
        "{hits} of {}",
        all_matches.len()
    );
    let figures = tally.figures();
    assert_eq!(tally.tokens, 72);
    assert!(figures[0].tokens_per_step >= 1.0);
    for pair in figures.windows(2) {
        assert!(
            pair[1].steps <= pair[0].steps,
            "longer drafts never need more steps"
        );
    }
}
