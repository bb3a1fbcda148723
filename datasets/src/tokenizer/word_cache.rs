//! The tokens of words already merged. Text repeats its words (a Zipf law: a
//! few thousand words make up most of any corpus), and byte-level BPE merges
//! each pre-tokenized word on its own, so a word's tokens depend on the word
//! alone and are looked up instead of merged again, as `tokenizers` does.
//!
//! One cache serves every thread that tokenizes with the vocabulary: a thread
//! that finds the lock taken merges the word itself rather than wait, so the
//! cache never makes tokenizing slower than without it.

use std::collections::HashMap;
use std::sync::RwLock;

/// Words kept: enough for the vocabulary of a large corpus, a few MiB at most.
const CAPACITY: usize = 1 << 16;

/// Longer words are rare and merged each time; they would crowd out common ones.
const MAX_WORD_BYTES: usize = 48;

#[derive(Debug, Default)]
pub(super) struct WordCache {
    words: RwLock<HashMap<Box<str>, Box<[u32]>>>,
}

impl WordCache {
    /// Appends the tokens of `word` to `output`: the cached ones, or those
    /// `merge` appends, which are then cached.
    pub(super) fn tokens(
        &self,
        word: &str,
        output: &mut Vec<u32>,
        merge: impl FnOnce(&mut Vec<u32>),
    ) {
        if word.len() > MAX_WORD_BYTES {
            merge(output);
            return;
        }
        if let Ok(words) = self.words.try_read()
            && let Some(tokens) = words.get(word)
        {
            output.extend_from_slice(tokens);
            return;
        }
        let start = output.len();
        merge(output);
        if let Ok(mut words) = self.words.try_write()
            && words.len() < CAPACITY
        {
            words.insert(word.into(), output[start..].into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_word_is_not_merged_again() {
        let cache = WordCache::default();
        let mut output = vec![7];
        cache.tokens("hello", &mut output, |out| out.extend([1, 2]));
        cache.tokens("hello", &mut output, |_| panic!("merged twice"));
        cache.tokens("world", &mut output, |out| out.push(3));
        assert_eq!(output, [7, 1, 2, 1, 2, 3]);
    }

    #[test]
    fn long_words_are_merged_each_time() {
        let cache = WordCache::default();
        let long = "x".repeat(MAX_WORD_BYTES + 1);
        let mut merges = 0;
        let mut output = Vec::new();
        for _ in 0..2 {
            cache.tokens(&long, &mut output, |out| {
                merges += 1;
                out.push(9);
            });
        }
        assert_eq!((merges, output), (2, vec![9, 9]));
    }
}
