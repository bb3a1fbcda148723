//! The merge loops of llama.cpp's two vocabulary kinds: byte-level BPE
//! (`llm_tokenizer_bpe_session`) and SentencePiece (`llm_tokenizer_spm_session`).
//!
//! Both start from one symbol per UTF-8 character and repeatedly join the best
//! adjacent pair: the lowest merge rank for BPE, the highest token score for
//! SentencePiece, the leftmost pair on ties. A queued pair goes stale when
//! either side has since been merged; both sides only ever grow, so a pair is
//! current exactly when its two symbols still have the lengths it saw.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

/// A run of bytes of the word being merged, linked to its neighbours.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// The word's symbols, one per character to begin with.
struct Symbols<'a> {
    text: &'a str,
    symbols: Vec<Symbol>,
}

impl<'a> Symbols<'a> {
    fn new(text: &'a str) -> Self {
        let count = text.chars().count();
        let symbols = text
            .char_indices()
            .enumerate()
            .map(|(index, (start, c))| Symbol {
                start,
                len: c.len_utf8(),
                prev: index.checked_sub(1),
                next: (index + 1 < count).then_some(index + 1),
            })
            .collect();
        Self { text, symbols }
    }

    fn text(&self, index: usize) -> &'a str {
        let symbol = self.symbols[index];
        &self.text[symbol.start..symbol.start + symbol.len]
    }

    fn pair_text(&self, left: usize, right: usize) -> &'a str {
        let start = self.symbols[left].start;
        &self.text[start..self.symbols[right].start + self.symbols[right].len]
    }

    fn is_current(&self, pair: &Pair) -> bool {
        let (left, right) = (self.symbols[pair.left], self.symbols[pair.right]);
        left.len != 0 && right.len != 0 && left.len + right.len == pair.len
    }

    /// Joins `pair.right` into `pair.left`; returns the new neighbours' pairs to try.
    fn merge(&mut self, pair: &Pair) -> [(Option<usize>, Option<usize>); 2] {
        let right = self.symbols[pair.right];
        let left = &mut self.symbols[pair.left];
        left.len += right.len;
        left.next = right.next;
        let prev = left.prev;
        self.symbols[pair.right].len = 0;
        if let Some(next) = right.next {
            self.symbols[next].prev = Some(pair.left);
        }
        [(prev, Some(pair.left)), (Some(pair.left), right.next)]
    }

    /// The surviving symbols' texts, in order.
    fn pieces(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.symbols.len())
            .filter(|&index| self.symbols[index].len != 0)
            .map(|index| self.text(index))
    }
}

#[derive(Clone, Copy, Debug)]
struct Pair {
    left: usize,
    right: usize,
    len: usize,
}

/// BPE merge ranks keyed by `"left right"`, the form GGUF and tokenizer.json
/// store them in. Byte-level tokens hold no spaces, so the key is unambiguous.
pub(super) struct MergeRanks {
    ranks: HashMap<String, u32>,
}

impl MergeRanks {
    /// Ranks in list order; a repeated merge keeps its first rank, and an entry
    /// with no space (which llama.cpp files under an empty pair) is never looked up.
    pub(super) fn new(merges: &[String]) -> Self {
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, merge) in (0u32..).zip(merges) {
            ranks.entry(merge.clone()).or_insert(rank);
        }
        Self { ranks }
    }

    fn rank(&self, key: &mut String, left: &str, right: &str) -> Option<u32> {
        key.clear();
        key.push_str(left);
        key.push(' ');
        key.push_str(right);
        self.ranks.get(key.as_str()).copied()
    }
}

/// Merges one byte-encoded word; returns its pieces, which the caller maps to ids.
pub(super) fn bpe<'a>(word: &'a str, ranks: &MergeRanks) -> Vec<&'a str> {
    let mut symbols = Symbols::new(word);
    let mut queue = BinaryHeap::new();
    let mut key = String::new();
    let mut push = |symbols: &Symbols, queue: &mut BinaryHeap<_>, left, right| {
        if let (Some(left), Some(right)) = (left, right)
            && let Some(rank) = ranks.rank(&mut key, symbols.text(left), symbols.text(right))
        {
            let len = symbols.symbols[left].len + symbols.symbols[right].len;
            queue.push(Reverse((rank, left, right, len)));
        }
    };
    for index in 1..symbols.symbols.len() {
        push(&symbols, &mut queue, Some(index - 1), Some(index));
    }
    while let Some(Reverse((_, left, right, len))) = queue.pop() {
        let pair = Pair { left, right, len };
        if !symbols.is_current(&pair) {
            continue;
        }
        for (left, right) in symbols.merge(&pair) {
            push(&symbols, &mut queue, left, right);
        }
    }
    symbols.pieces().collect()
}

/// A SentencePiece candidate: higher score first, then the leftmost.
#[derive(Clone, Copy, Debug)]
struct Scored {
    score: f32,
    pair: Pair,
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.pair.left.cmp(&self.pair.left))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scored {}

/// Merges one whitespace-escaped text; returns its pieces. `score` gives the
/// score of a piece that is a token, `None` otherwise.
///
/// llama.cpp also keeps a map to split a final symbol that is not a token back
/// into the pair it came from; every merged symbol is a token, so that map is
/// never read and the caller's byte fallback covers the rest.
pub(super) fn spm(text: &str, score: impl Fn(&str) -> Option<f32>) -> Vec<&str> {
    let mut symbols = Symbols::new(text);
    let mut queue = BinaryHeap::new();
    let push = |symbols: &Symbols, queue: &mut BinaryHeap<Scored>, left, right| {
        if let (Some(left), Some(right)) = (left, right)
            && let Some(score) = score(symbols.pair_text(left, right))
        {
            let len = symbols.symbols[left].len + symbols.symbols[right].len;
            queue.push(Scored {
                score,
                pair: Pair { left, right, len },
            });
        }
    };
    for index in 1..symbols.symbols.len() {
        push(&symbols, &mut queue, Some(index - 1), Some(index));
    }
    while let Some(Scored { pair, .. }) = queue.pop() {
        if !symbols.is_current(&pair) {
            continue;
        }
        for (left, right) in symbols.merge(&pair) {
            push(&symbols, &mut queue, left, right);
        }
    }
    symbols.pieces().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpe_merges_lowest_rank_first() {
        let ranks = MergeRanks::new(&["b c".into(), "a b".into(), "a bc".into()]);
        assert_eq!(bpe("abc", &ranks), ["abc"]);
        assert_eq!(bpe("abd", &ranks), ["ab", "d"]);
        assert_eq!(bpe("", &ranks), Vec::<&str>::new());
    }

    #[test]
    fn bpe_breaks_rank_ties_leftmost() {
        let ranks = MergeRanks::new(&["a a".into()]);
        assert_eq!(bpe("aaa", &ranks), ["aa", "a"]);
    }

    #[test]
    fn spm_merges_highest_score_first() {
        let scores: HashMap<&str, f32> = [("ab", -1.0), ("bc", -0.5), ("bcd", -2.0)].into();
        let score = |piece: &str| scores.get(piece).copied();
        assert_eq!(spm("abc", score), ["a", "bc"]);
        assert_eq!(spm("abcd", score), ["a", "bcd"]);
        assert_eq!(spm("abd", score), ["ab", "d"]);
    }
}
