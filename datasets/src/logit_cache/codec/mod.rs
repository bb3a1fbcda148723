//! The record of one position's teacher distribution: its top-k ids with their
//! probabilities and the rest mass, in about 90 bytes at k = 64 (the layout that
//! tools/bench/cache_encoding.py measured best on real teacher distributions).
//!
//! Layout, MSB-first, zero-padded to a byte:
//! - u16 rest mass, `round(rest * 65535)`;
//! - u4 exp-Golomb order, then the k ids as gaps of their ascending ranks in a
//!   [`Permutation`] (first gap: the first rank; then `rank_i - rank_{i-1} - 1`),
//!   each exp-Golomb coded: frequent tokens have small ranks, so gaps are small;
//! - u3 Rice parameter, then k 6-bit value codes in the same rank order,
//!   `c = round(63 * (p / p_top)^(1/3))`, Rice coded: most probs of a top-64 are far
//!   below the top one, so most codes are small.
//!
//! - with tail samples (`tail > 0`) and a record whose [`tail_count`] is not
//!   zero: u4 exp-Golomb order, then that many ids drawn from the teacher's
//!   distribution outside the top-k, as gaps of their ascending ranks (first
//!   gap: the first rank; then `rank_i - rank_{i-1}`, 0 for an id drawn twice).
//!   Each stands for `rest / count` of the mass, which makes the forward-KL
//!   gradient through them that of the whole vocabulary in expectation.
//!
//! `tail` is samples per unit of tail mass: a record gets `round(tail * rest)`
//! of them, computed from the stored 16-bit rest so that the decoder knows the
//! count without storing it. The gradient noise of a record's samples grows
//! with `rest² / count`, and the rest mass of a top-64 is mostly tiny with a
//! few large ones, so sharing a budget in proportion to the rest mass makes
//! the noise several times smaller than the same number of samples everywhere.
//!
//! The parameters are chosen per record to make it smallest. The top prob is not
//! stored separately: the values are renormalized to `1 - rest` on decode.

mod bits;

use std::fmt;

use bits::{BitReader, BitWriter};

const REST_BITS: u32 = 16;
const REST_MAX: f64 = 65535.0;
const ID_ORDER_BITS: u32 = 4;
const VALUE_PARAM_BITS: u32 = 3;
const VALUE_MAX: u32 = 63;
/// Ranks are u16, so a gap plus `2^order` stays below 2^17: no valid exp-Golomb
/// code has more than 16 bits after its leading one.
const MAX_GAP_SUFFIX_BITS: u32 = 16;
const MAX_VOCAB: usize = 1 << 16;
/// Tail samples per unit of mass; more would cost kilobytes per position.
pub const MAX_TAIL: usize = 1 << 16;

/// `(c / 63)^3`: the weight, relative to the top entry, that value code `c` stands for.
const WEIGHTS: [f64; 64] = {
    let mut table = [0.0; 64];
    let mut c = 0;
    while c < 64 {
        table[c] = (c * c * c) as f64 / (VALUE_MAX * VALUE_MAX * VALUE_MAX) as f64;
        c += 1;
    }
    table
};

/// A vocabulary permutation: `rank[id]` and its inverse `id[rank]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Permutation {
    rank: Vec<u16>,
    id: Vec<u16>,
}

impl Permutation {
    /// Ranks ids by how often they occur (descending), ties by id. `counts.len()` is the vocab.
    ///
    /// # Panics
    /// If the vocab exceeds 65536 ids, which u16 ranks cannot hold.
    pub fn by_frequency(counts: &[u64]) -> Permutation {
        assert!(
            counts.len() <= MAX_VOCAB,
            "a permutation holds at most {MAX_VOCAB} ids, got a vocab of {}",
            counts.len()
        );
        let mut id: Vec<u16> = (0..counts.len()).map(|i| i as u16).collect();
        // Stable sort over ascending ids keeps ties in id order.
        id.sort_by_key(|&i| std::cmp::Reverse(counts[i as usize]));
        let mut rank = vec![0u16; id.len()];
        for (r, &i) in id.iter().enumerate() {
            rank[i as usize] = r as u16;
        }
        Permutation { rank, id }
    }

    /// From stored ranks (one u16 per id); errors unless it is a permutation of 0..len.
    pub fn from_ranks(rank: Vec<u16>) -> Result<Permutation, CodecError> {
        let vocab = rank.len();
        if vocab > MAX_VOCAB {
            return Err(CodecError::VocabTooLarge { vocab });
        }
        let mut id: Vec<Option<u16>> = vec![None; vocab];
        for (i, &r) in rank.iter().enumerate() {
            let slot = id.get_mut(r as usize).ok_or(CodecError::RankOutOfRange {
                id: i,
                rank: r,
                vocab,
            })?;
            if let Some(first) = *slot {
                return Err(CodecError::DuplicateRank {
                    rank: r,
                    first_id: first as usize,
                    second_id: i,
                });
            }
            *slot = Some(i as u16);
        }
        // Every rank below `vocab` got exactly one id (vocab ids, no duplicates).
        let id = id.into_iter().flatten().collect();
        Ok(Permutation { rank, id })
    }

    pub fn ranks(&self) -> &[u16] {
        &self.rank
    }

    pub fn vocab(&self) -> usize {
        self.rank.len()
    }
}

/// One position's teacher distribution as stored: top-k ids with probabilities,
/// the rest mass, and ids sampled from the rest (any order, repeats allowed).
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    pub ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    pub rest: f32,
    pub tail: Vec<u32>,
}

/// A decoded record: ids ascending by rank, their probs (summing to `1 - rest`),
/// the rest mass, and the tail samples ascending by rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub ids: Vec<u32>,
    pub probs: Vec<f32>,
    pub rest: f32,
    pub tail: Vec<u32>,
}

/// Why a record or permutation cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum CodecError {
    VocabTooLarge {
        vocab: usize,
    },
    RankOutOfRange {
        id: usize,
        rank: u16,
        vocab: usize,
    },
    DuplicateRank {
        rank: u16,
        first_id: usize,
        second_id: usize,
    },
    BadK {
        k: usize,
        vocab: usize,
    },
    LengthMismatch {
        k: usize,
        ids: usize,
        logprobs: usize,
    },
    NoTail {
        tail: usize,
    },
    TailLength {
        expected: usize,
        rest: f32,
        got: usize,
    },
    TailTooLarge {
        tail: usize,
    },
    TailInTop {
        id: u32,
    },
    IdOutOfVocab {
        id: u32,
        vocab: usize,
    },
    DuplicateId {
        id: u32,
    },
    BadLogprob {
        id: u32,
        logprob: f32,
    },
    NoFiniteLogprob,
    BadRest {
        rest: f32,
    },
    Truncated {
        bits_needed: usize,
        bits_available: usize,
    },
    GapCodeTooLong {
        entry: usize,
    },
    RankOutOfVocab {
        entry: usize,
        rank: usize,
        vocab: usize,
    },
    ValueCodeTooLarge {
        entry: usize,
    },
    AllValuesZero,
    NonzeroPadding,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::VocabTooLarge { vocab } => write!(
                f,
                "vocab of {vocab} ids: a permutation holds at most {MAX_VOCAB} (u16 ranks)"
            ),
            CodecError::RankOutOfRange { id, rank, vocab } => write!(
                f,
                "not a permutation: id {id} has rank {rank}, expected a rank below the vocab {vocab}"
            ),
            CodecError::DuplicateRank {
                rank,
                first_id,
                second_id,
            } => write!(
                f,
                "not a permutation: ids {first_id} and {second_id} both have rank {rank}"
            ),
            CodecError::BadK { k, vocab } => {
                write!(
                    f,
                    "k = {k}: expected 1 to the vocab size {vocab} entries per record"
                )
            }
            CodecError::LengthMismatch { k, ids, logprobs } => write!(
                f,
                "top-k with {ids} ids and {logprobs} log-probs, expected {k} of each"
            ),
            CodecError::NoTail { tail } => write!(
                f,
                "{tail} tail samples with k = the whole vocabulary: there is no tail to sample"
            ),
            CodecError::TailLength { expected, rest, got } => write!(
                f,
                "record with {got} tail samples, expected {expected} for its rest mass {rest}"
            ),
            CodecError::TailTooLarge { tail } => write!(
                f,
                "{tail} tail samples per unit of mass: at most {MAX_TAIL} are written"
            ),
            CodecError::TailInTop { id } => {
                write!(f, "tail sample {id} is in the top-k; tail samples come from outside it")
            }
            CodecError::IdOutOfVocab { id, vocab } => {
                write!(f, "token id {id} is outside the vocab of {vocab} ids")
            }
            CodecError::DuplicateId { id } => write!(f, "token id {id} is in the top-k twice"),
            CodecError::BadLogprob { id, logprob } => write!(
                f,
                "token id {id} has log-prob {logprob}, expected a finite number or -inf"
            ),
            CodecError::NoFiniteLogprob => {
                write!(
                    f,
                    "no finite log-prob in the top-k: at least one entry needs a probability"
                )
            }
            CodecError::BadRest { rest } => {
                write!(f, "rest mass {rest} is not a probability between 0 and 1")
            }
            CodecError::Truncated {
                bits_needed,
                bits_available,
            } => write!(
                f,
                "record truncated: needs at least {bits_needed} bits, only {bits_available} left"
            ),
            CodecError::GapCodeTooLong { entry } => write!(
                f,
                "corrupt record: id gap {entry} is longer than any u16 rank allows"
            ),
            CodecError::RankOutOfVocab { entry, rank, vocab } => write!(
                f,
                "corrupt record: entry {entry} has rank {rank}, outside the vocab of {vocab} ids"
            ),
            CodecError::ValueCodeTooLarge { entry } => write!(
                f,
                "corrupt record: value code {entry} exceeds the 6-bit maximum {VALUE_MAX}"
            ),
            CodecError::AllValuesZero => write!(
                f,
                "corrupt record: every value code is zero, so the top-k has no probability"
            ),
            CodecError::NonzeroPadding => {
                write!(f, "corrupt record: the padding bits after it are not zero")
            }
        }
    }
}

impl std::error::Error for CodecError {}

/// Appends the record of `topk` to `out`. Errors: ids out of vocab, duplicate ids, len != k,
/// `tail` samples expected and not given, or given from the top-k. Also log-probs that
/// are NaN or +inf (or all -inf) and a rest mass outside [0, 1].
/// On error nothing is appended.
pub fn encode(
    topk: &TopK,
    k: usize,
    tail: usize,
    perm: &Permutation,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let vocab = perm.vocab();
    check_k(k, tail, vocab)?;
    if topk.ids.len() != k || topk.logprobs.len() != k {
        return Err(CodecError::LengthMismatch {
            k,
            ids: topk.ids.len(),
            logprobs: topk.logprobs.len(),
        });
    }
    if !(0.0..=1.0).contains(&topk.rest) {
        return Err(CodecError::BadRest { rest: topk.rest });
    }
    let rest_code = rest_code(topk.rest);
    let expected = count_of(rest_code, tail);
    if topk.tail.len() != expected {
        return Err(CodecError::TailLength { expected, rest: topk.rest, got: topk.tail.len() });
    }
    let mut top = f32::NEG_INFINITY;
    for (&id, &logprob) in topk.ids.iter().zip(&topk.logprobs) {
        if logprob.is_nan() || logprob == f32::INFINITY {
            return Err(CodecError::BadLogprob { id, logprob });
        }
        top = top.max(logprob);
    }
    if top == f32::NEG_INFINITY {
        return Err(CodecError::NoFiniteLogprob);
    }

    let mut entries = Vec::with_capacity(k);
    for (&id, &logprob) in topk.ids.iter().zip(&topk.logprobs) {
        let rank = *perm
            .rank
            .get(id as usize)
            .ok_or(CodecError::IdOutOfVocab { id, vocab })?;
        entries.push((rank, value_code(f64::from(top) - f64::from(logprob))));
    }
    entries.sort_unstable_by_key(|&(rank, _)| rank);
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(CodecError::DuplicateId {
            id: u32::from(perm.id[pair[0].0 as usize]),
        });
    }

    let mut previous = None;
    let gaps: Vec<u32> = entries
        .iter()
        .map(|&(rank, _)| {
            let rank = u32::from(rank);
            let gap = previous.map_or(rank, |p| rank - p - 1);
            previous = Some(rank);
            gap
        })
        .collect();
    let codes: Vec<u32> = entries.iter().map(|&(_, code)| code).collect();
    let tail_gaps = tail_gaps(topk, perm, &entries)?;
    let param = cheapest(1 << VALUE_PARAM_BITS, |param| rice_bits(&codes, param));

    let mut writer = BitWriter::new(out);
    writer.fixed(rest_code, REST_BITS);
    write_gaps(&mut writer, &gaps);
    writer.fixed(param, VALUE_PARAM_BITS);
    for &code in &codes {
        writer.fixed(0, code >> param);
        writer.fixed(1, 1);
        writer.fixed(code & ((1 << param) - 1), param);
    }
    if expected > 0 {
        write_gaps(&mut writer, &tail_gaps);
    }
    writer.finish();
    Ok(())
}

/// The order that codes `gaps` smallest, then each gap exp-Golomb coded.
fn write_gaps(writer: &mut BitWriter<'_>, gaps: &[u32]) {
    let order = cheapest(1 << ID_ORDER_BITS, |order| exp_golomb_bits(gaps, order));
    writer.fixed(order, ID_ORDER_BITS);
    for &gap in gaps {
        let v = gap + (1 << order);
        let len = 32 - v.leading_zeros();
        writer.fixed(0, len - order - 1);
        writer.fixed(v, len);
    }
}

/// The tail samples' ranks, ascending, as gaps (0 for a repeat); `top` are the
/// top-k entries sorted by rank.
fn tail_gaps(topk: &TopK, perm: &Permutation, top: &[(u16, u32)]) -> Result<Vec<u32>, CodecError> {
    let vocab = perm.vocab();
    let mut ranks = Vec::with_capacity(topk.tail.len());
    for &id in &topk.tail {
        let rank = *perm.rank.get(id as usize).ok_or(CodecError::IdOutOfVocab { id, vocab })?;
        if top.binary_search_by_key(&rank, |&(r, _)| r).is_ok() {
            return Err(CodecError::TailInTop { id });
        }
        ranks.push(u32::from(rank));
    }
    ranks.sort_unstable();
    let mut previous = 0;
    Ok(ranks
        .iter()
        .map(|&rank| {
            let gap = rank - previous;
            previous = rank;
            gap
        })
        .collect())
}

/// Decodes one record of `k` entries and `tail` samples from the start of `bytes`, returning
/// it and the bytes it used. Never panics or reads out of bounds on arbitrary bytes: truncated
/// or corrupt input is an error.
pub fn decode(bytes: &[u8], k: usize, tail: usize, perm: &Permutation) -> Result<(Decoded, usize), CodecError> {
    let vocab = perm.vocab();
    check_k(k, tail, vocab)?;
    let mut reader = BitReader { bytes, pos: 0 };
    let rest_code = reader.fixed(REST_BITS)?;
    let rest = f64::from(rest_code) / REST_MAX;
    let ids = read_gaps(&mut reader, k, 1, perm)?;

    let param = reader.fixed(VALUE_PARAM_BITS)?;
    let mut weights = Vec::with_capacity(k);
    for entry in 0..k {
        let high = reader
            .zeros_then_one(VALUE_MAX >> param)
            .ok_or(CodecError::ValueCodeTooLarge { entry })??;
        let code = (high << param) | reader.fixed(param)?;
        // Parameters 6 and 7 leave room for 7-bit codes, which no encoder writes.
        let weight = WEIGHTS
            .get(code as usize)
            .ok_or(CodecError::ValueCodeTooLarge { entry })?;
        weights.push(*weight);
    }
    let count = count_of(rest_code, tail);
    let tail = if count > 0 { read_gaps(&mut reader, count, 0, perm)? } else { Vec::new() };
    let used = reader.finish()?;

    let total: f64 = weights.iter().sum();
    if total == 0.0 {
        return Err(CodecError::AllValuesZero);
    }
    let scale = (1.0 - rest) / total;
    let probs = weights.iter().map(|w| (w * scale) as f32).collect();
    Ok((
        Decoded {
            ids,
            probs,
            rest: rest as f32,
            tail,
        },
        used,
    ))
}

/// `count` ids whose ascending ranks are coded as gaps after an order; each
/// rank is at least `step` past the one before (1 for distinct ids, 0 where
/// repeats are allowed).
fn read_gaps(reader: &mut BitReader<'_>, count: usize, step: usize, perm: &Permutation) -> Result<Vec<u32>, CodecError> {
    let vocab = perm.vocab();
    let order = reader.fixed(ID_ORDER_BITS)?;
    // Every id takes at least a bit, so what is left bounds the count.
    let mut ids = Vec::with_capacity(count.min(reader.available()));
    let mut next_rank = 0usize;
    for entry in 0..count {
        let zeros = reader
            .zeros_then_one(MAX_GAP_SUFFIX_BITS - order)
            .ok_or(CodecError::GapCodeTooLong { entry })??;
        let suffix_bits = zeros + order;
        let v = (1 << suffix_bits) | reader.fixed(suffix_bits)?;
        let rank = next_rank + (v - (1 << order)) as usize;
        if rank >= vocab {
            return Err(CodecError::RankOutOfVocab { entry, rank, vocab });
        }
        ids.push(u32::from(perm.id[rank]));
        next_rank = rank + step;
    }
    Ok(ids)
}

/// `k` in 1..=vocab, and a tail to sample only when the top-k leaves one.
pub fn check_k(k: usize, tail: usize, vocab: usize) -> Result<(), CodecError> {
    if k == 0 || k > vocab {
        return Err(CodecError::BadK { k, vocab });
    }
    if tail > 0 && k == vocab {
        return Err(CodecError::NoTail { tail });
    }
    if tail > MAX_TAIL {
        return Err(CodecError::TailTooLarge { tail });
    }
    Ok(())
}

/// How many tail samples a record with rest mass `rest` holds when the cache
/// has `tail` per unit of mass: `round(tail * rest)`, from the rest as stored.
pub fn tail_count(rest: f32, tail: usize) -> usize {
    count_of(rest_code(rest.clamp(0.0, 1.0)), tail)
}

fn rest_code(rest: f32) -> u32 {
    (f64::from(rest) * REST_MAX).round_ties_even() as u32
}

/// `round(tail * code / 65535)` in integers, half up, so that every platform
/// agrees on the count.
fn count_of(rest_code: u32, tail: usize) -> usize {
    let max = REST_MAX as u64;
    ((2 * tail as u64 * u64::from(rest_code) + max) / (2 * max)) as usize
}

/// `round(63 * (p / p_top)^(1/3))` from `d = log p_top - log p`, computed exactly as the
/// Python reference does so that records match it bit for bit.
fn value_code(d: f64) -> u32 {
    ((-(1.0 / 3.0) * d).exp() * f64::from(VALUE_MAX)).round_ties_even() as u32
}

/// The parameter in `0..count` giving the fewest bits; the smallest on ties, like the reference.
fn cheapest(count: u32, bits: impl Fn(u32) -> u64) -> u32 {
    (0..count).min_by_key(|&p| bits(p)).unwrap_or(0)
}

fn exp_golomb_bits(gaps: &[u32], order: u32) -> u64 {
    gaps.iter()
        .map(|&g| u64::from(order + 2 * (32 - ((g >> order) + 1).leading_zeros()) - 1))
        .sum()
}

fn rice_bits(codes: &[u32], param: u32) -> u64 {
    codes
        .iter()
        .map(|&c| u64::from((c >> param) + 1 + param))
        .sum()
}

#[cfg(test)]
mod tests;
