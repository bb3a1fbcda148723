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
//! Both parameters are chosen per record to make it smallest. The top prob is not
//! stored separately: the values are renormalized to `1 - rest` on decode.

use std::fmt;

const REST_BITS: u32 = 16;
const REST_MAX: f64 = 65535.0;
const ID_ORDER_BITS: u32 = 4;
const VALUE_PARAM_BITS: u32 = 3;
const VALUE_MAX: u32 = 63;
/// Ranks are u16, so a gap plus `2^order` stays below 2^17: no valid exp-Golomb
/// code has more than 16 bits after its leading one.
const MAX_GAP_SUFFIX_BITS: u32 = 16;
const MAX_VOCAB: usize = 1 << 16;

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

/// One position's teacher distribution as stored: top-k ids with probabilities, and the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    pub ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    pub rest: f32,
}

/// A decoded record: ids ascending by rank, their probs (summing to `1 - rest`), the rest mass.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub ids: Vec<u32>,
    pub probs: Vec<f32>,
    pub rest: f32,
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

/// Appends the record of `topk` to `out`. Errors: ids out of vocab, duplicate ids, len != k.
/// Also log-probs that are NaN or +inf (or all -inf) and a rest mass outside [0, 1].
/// On error nothing is appended.
pub fn encode(
    topk: &TopK,
    k: usize,
    perm: &Permutation,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let vocab = perm.vocab();
    check_k(k, vocab)?;
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
    let order = cheapest(1 << ID_ORDER_BITS, |order| exp_golomb_bits(&gaps, order));
    let param = cheapest(1 << VALUE_PARAM_BITS, |param| rice_bits(&codes, param));

    let mut writer = BitWriter::new(out);
    writer.fixed(
        (f64::from(topk.rest) * REST_MAX).round_ties_even() as u32,
        REST_BITS,
    );
    writer.fixed(order, ID_ORDER_BITS);
    for &gap in &gaps {
        let v = gap + (1 << order);
        let len = 32 - v.leading_zeros();
        writer.fixed(0, len - order - 1);
        writer.fixed(v, len);
    }
    writer.fixed(param, VALUE_PARAM_BITS);
    for &code in &codes {
        writer.fixed(0, code >> param);
        writer.fixed(1, 1);
        writer.fixed(code & ((1 << param) - 1), param);
    }
    writer.finish();
    Ok(())
}

/// Decodes one record of `k` entries from the start of `bytes`, returning it and the bytes it used.
/// Never panics or reads out of bounds on arbitrary bytes: truncated or corrupt input is an error.
pub fn decode(bytes: &[u8], k: usize, perm: &Permutation) -> Result<(Decoded, usize), CodecError> {
    let vocab = perm.vocab();
    check_k(k, vocab)?;
    let mut reader = BitReader { bytes, pos: 0 };
    let rest = f64::from(reader.fixed(REST_BITS)?) / REST_MAX;

    let order = reader.fixed(ID_ORDER_BITS)?;
    let mut ids = Vec::with_capacity(k);
    let mut next_rank = 0usize;
    for entry in 0..k {
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
        next_rank = rank + 1;
    }

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
        },
        used,
    ))
}

fn check_k(k: usize, vocab: usize) -> Result<(), CodecError> {
    if k == 0 || k > vocab {
        return Err(CodecError::BadK { k, vocab });
    }
    Ok(())
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

/// MSB-first bit appender onto a byte vector.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    len: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            len: 0,
        }
    }

    /// Writes the low `width` bits of `value`; `width` may exceed 32 only for zeros.
    fn fixed(&mut self, value: u32, width: u32) {
        let mut width = width;
        // A Rice code's zero run reaches 63 bits, more than the accumulator takes at once.
        while width > 32 {
            self.push(0, 32);
            width -= 32;
        }
        self.push(u64::from(value) & ((1u64 << width) - 1), width);
    }

    fn push(&mut self, value: u64, width: u32) {
        self.acc = (self.acc << width) | value;
        self.len += width;
        while self.len >= 8 {
            self.len -= 8;
            self.out.push((self.acc >> self.len) as u8);
        }
        self.acc &= (1u64 << self.len) - 1;
    }

    fn finish(self) {
        if self.len > 0 {
            self.out.push((self.acc << (8 - self.len)) as u8);
        }
    }
}

/// MSB-first bit reader that errors instead of reading past the end.
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn available(&self) -> usize {
        self.bytes.len() * 8 - self.pos
    }

    fn bit(&mut self) -> Result<u32, CodecError> {
        let byte = *self.bytes.get(self.pos / 8).ok_or(CodecError::Truncated {
            bits_needed: 1,
            bits_available: 0,
        })?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    /// Reads `width <= 32` bits as an unsigned number.
    fn fixed(&mut self, width: u32) -> Result<u32, CodecError> {
        if self.available() < width as usize {
            return Err(CodecError::Truncated {
                bits_needed: width as usize,
                bits_available: self.available(),
            });
        }
        let mut value = 0u32;
        for _ in 0..width {
            value = (value << 1) | self.bit()?;
        }
        Ok(value)
    }

    /// Counts zeros up to the next one, which it consumes; `None` when more than `max`
    /// zeros come first, as no valid code has.
    fn zeros_then_one(&mut self, max: u32) -> Option<Result<u32, CodecError>> {
        for zeros in 0..=max {
            match self.bit() {
                Ok(1) => return Some(Ok(zeros)),
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    /// The bytes used, after checking the padding of the last one is zero.
    fn finish(mut self) -> Result<usize, CodecError> {
        while !self.pos.is_multiple_of(8) {
            if self.bit()? != 0 {
                return Err(CodecError::NonzeroPadding);
            }
        }
        Ok(self.pos / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by tools/bench/cache_encoding.py --golden from real teacher records.
    const GOLDEN: &str = include_str!("codec_golden.txt");

    struct GoldenRecord {
        topk: TopK,
        bytes: Vec<u8>,
        probs: Vec<f64>,
    }

    struct Golden {
        perm: Permutation,
        k: usize,
        records: Vec<GoldenRecord>,
        freq_counts: Vec<u64>,
        freq_ranks: Vec<u16>,
    }

    fn numbers<T: std::str::FromStr>(line: &str) -> Vec<T>
    where
        T::Err: fmt::Debug,
    {
        line.split(' ').map(|x| x.parse().expect(x)).collect()
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The golden gives the ranks of the ids its records use; the other ids take the
    /// remaining ranks in id order, which leaves every record's bytes the same.
    fn golden_permutation(vocab: usize, pairs: &str) -> Permutation {
        let mut rank = vec![None; vocab];
        let mut taken = vec![false; vocab];
        for pair in pairs.split(' ') {
            let (id, r) = pair.split_once(':').unwrap();
            let (id, r): (usize, u16) = (id.parse().unwrap(), r.parse().unwrap());
            rank[id] = Some(r);
            taken[r as usize] = true;
        }
        let mut free = (0..vocab).filter(|&r| !taken[r]).map(|r| r as u16);
        let rank = rank
            .into_iter()
            .map(|r| r.unwrap_or_else(|| free.next().unwrap()))
            .collect();
        Permutation::from_ranks(rank).unwrap()
    }

    fn golden() -> Golden {
        let (mut vocab, mut k, mut perm) = (0, 0, None);
        let (mut freq_counts, mut freq_ranks, mut records) = (vec![], vec![], vec![]);
        let mut topk = TopK {
            ids: vec![],
            logprobs: vec![],
            rest: 0.0,
        };
        let mut bytes = vec![];
        for line in GOLDEN.lines().filter(|l| !l.starts_with('#')) {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "vocab" => vocab = value.parse().unwrap(),
                "k" => k = value.parse().unwrap(),
                "ranks" => perm = Some(golden_permutation(vocab, value)),
                "freq_counts" => freq_counts = numbers(value),
                "freq_ranks" => freq_ranks = numbers(value),
                "record" => {}
                "ids" => topk.ids = numbers(value),
                "logprobs" => topk.logprobs = numbers(value),
                "rest" => topk.rest = value.parse().unwrap(),
                "bytes" => bytes = hex(value),
                "probs_e8" => records.push(GoldenRecord {
                    topk: topk.clone(),
                    bytes: std::mem::take(&mut bytes),
                    probs: numbers::<f64>(value).iter().map(|p| p * 1e-8).collect(),
                }),
                other => panic!("golden: unknown key {other:?}"),
            }
        }
        Golden {
            perm: perm.unwrap(),
            k,
            records,
            freq_counts,
            freq_ranks,
        }
    }

    #[test]
    fn golden_records_match_the_python_encoder() {
        let g = golden();
        assert_eq!((g.perm.vocab(), g.k, g.records.len()), (49152, 64, 20));
        for (n, record) in g.records.iter().enumerate() {
            let mut out = vec![];
            encode(&record.topk, g.k, &g.perm, &mut out).unwrap();
            assert_eq!(out, record.bytes, "record {n}");

            let (decoded, used) = decode(&record.bytes, g.k, &g.perm).unwrap();
            assert_eq!(used, record.bytes.len(), "record {n}");
            let mut expected_ids = record.topk.ids.clone();
            expected_ids.sort_by_key(|&id| g.perm.ranks()[id as usize]);
            assert_eq!(decoded.ids, expected_ids, "record {n}");
            for (i, (&p, &want)) in decoded.probs.iter().zip(&record.probs).enumerate() {
                assert!(
                    (f64::from(p) - want).abs() <= 1e-6,
                    "record {n} entry {i}: {p} vs {want}"
                );
            }
            let rest = (f64::from(record.topk.rest) * 65535.0).round_ties_even() / 65535.0;
            assert!((f64::from(decoded.rest) - rest).abs() <= 1e-7, "record {n}");
        }
    }

    #[test]
    fn frequency_ranking_matches_the_python_one() {
        let g = golden();
        assert_eq!(g.freq_counts.len(), 300);
        assert_eq!(
            Permutation::by_frequency(&g.freq_counts).ranks(),
            &g.freq_ranks[..]
        );
    }

    #[test]
    fn by_frequency_ranks_frequent_first_and_ties_by_id() {
        let perm = Permutation::by_frequency(&[3, 0, 7, 3, 0]);
        assert_eq!(perm.ranks(), &[1, 3, 0, 2, 4]);
        assert_eq!(perm.id, vec![2, 0, 3, 1, 4]);
        assert_eq!(
            Permutation::from_ranks(perm.ranks().to_vec()).unwrap(),
            perm
        );
    }

    #[test]
    fn from_ranks_rejects_what_is_not_a_permutation() {
        let err = Permutation::from_ranks(vec![0, 3, 1]).unwrap_err();
        assert_eq!(
            err,
            CodecError::RankOutOfRange {
                id: 1,
                rank: 3,
                vocab: 3
            }
        );
        assert_eq!(
            err.to_string(),
            "not a permutation: id 1 has rank 3, expected a rank below the vocab 3"
        );
        let err = Permutation::from_ranks(vec![2, 0, 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a permutation: ids 0 and 2 both have rank 2"
        );
        let err = Permutation::from_ranks(vec![0; MAX_VOCAB + 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "vocab of 65537 ids: a permutation holds at most 65536 (u16 ranks)"
        );
    }

    fn encode_err(topk: &TopK, k: usize, vocab: usize) -> String {
        let perm = Permutation::by_frequency(&vec![0; vocab]);
        let mut out = vec![9];
        let err = encode(topk, k, &perm, &mut out).unwrap_err();
        assert_eq!(out, vec![9], "nothing appended on error");
        err.to_string()
    }

    #[test]
    fn encode_rejects_bad_top_k() {
        let topk = |ids: Vec<u32>, logprobs: Vec<f32>, rest| TopK {
            ids,
            logprobs,
            rest,
        };
        assert_eq!(
            encode_err(&topk(vec![1, 7], vec![-1.0, -2.0], 0.5), 2, 5),
            "token id 7 is outside the vocab of 5 ids"
        );
        assert_eq!(
            encode_err(&topk(vec![3, 1, 3], vec![-1.0, -2.0, -3.0], 0.5), 3, 5),
            "token id 3 is in the top-k twice"
        );
        assert_eq!(
            encode_err(&topk(vec![1, 2], vec![-1.0, -2.0], 0.5), 3, 5),
            "top-k with 2 ids and 2 log-probs, expected 3 of each"
        );
        assert_eq!(
            encode_err(&topk(vec![1, 2], vec![-1.0], 0.5), 2, 5),
            "top-k with 2 ids and 1 log-probs, expected 2 of each"
        );
        assert_eq!(
            encode_err(&topk(vec![1, 2], vec![-1.0, -2.0], 0.5), 6, 5),
            "k = 6: expected 1 to the vocab size 5 entries per record"
        );
        assert_eq!(
            encode_err(&topk(vec![1, 2], vec![-1.0, f32::NAN], 0.5), 2, 5),
            "token id 2 has log-prob NaN, expected a finite number or -inf"
        );
        assert_eq!(
            encode_err(&topk(vec![1], vec![f32::NEG_INFINITY], 0.5), 1, 5),
            "no finite log-prob in the top-k: at least one entry needs a probability"
        );
        assert_eq!(
            encode_err(&topk(vec![1], vec![-1.0], 1.5), 1, 5),
            "rest mass 1.5 is not a probability between 0 and 1"
        );
    }

    /// xorshift64*: reproducible randomness without crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn shuffle<T>(&mut self, items: &mut [T]) {
            for i in (1..items.len()).rev() {
                items.swap(i, self.below(i + 1));
            }
        }
    }

    fn random_permutation(rng: &mut Rng, vocab: usize) -> Permutation {
        let mut rank: Vec<u16> = (0..vocab).map(|r| r as u16).collect();
        rng.shuffle(&mut rank);
        Permutation::from_ranks(rank).unwrap()
    }

    /// k distinct random ids with log-probs of a random softmax scaled to `1 - rest`;
    /// `scale` sets how peaked it is.
    fn random_top_k(rng: &mut Rng, k: usize, vocab: usize, scale: f64) -> TopK {
        let mut ids: Vec<u32> = (0..vocab as u32).collect();
        for i in 0..k {
            let j = i + rng.below(vocab - i);
            ids.swap(i, j);
        }
        ids.truncate(k);
        let rest = if rng.below(8) == 0 {
            0.0
        } else {
            rng.unit() as f32
        };
        let logits: Vec<f64> = (0..k).map(|_| scale * (rng.unit() - 0.5) * 4.0).collect();
        let norm = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
        let mass = (1.0 - f64::from(rest)).max(1e-30).ln();
        let logprobs = logits.iter().map(|l| (l - norm + mass) as f32).collect();
        TopK {
            ids,
            logprobs,
            rest,
        }
    }

    /// The decoded probs against the input, within what the quantizer can move them:
    /// each cube root is off by at most 1/126, the weights by `e_i`, their sum by the total
    /// of those, the rest by half a 16-bit step.
    fn check_within_quantizer_error(topk: &TopK, decoded: &Decoded, perm: &Permutation) {
        let mut by_rank: Vec<(u16, f64)> = topk
            .ids
            .iter()
            .zip(&topk.logprobs)
            .map(|(&id, &lp)| (perm.ranks()[id as usize], f64::from(lp)))
            .collect();
        by_rank.sort_by_key(|&(rank, _)| rank);
        let ids: Vec<u32> = by_rank
            .iter()
            .map(|&(r, _)| u32::from(perm.id[r as usize]))
            .collect();
        assert_eq!(decoded.ids, ids);

        let top = by_rank
            .iter()
            .map(|&(_, lp)| lp)
            .fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = by_rank.iter().map(|&(_, lp)| (lp - top).exp()).collect();
        let total: f64 = weights.iter().sum();
        let delta = 0.5 / 63.0;
        let errors: Vec<f64> = weights
            .iter()
            .map(|w| {
                let u = w.cbrt();
                3.0 * u * u * delta + 3.0 * u * delta * delta + delta.powi(3)
            })
            .collect();
        let total_error: f64 = errors.iter().sum();
        let rest = f64::from(topk.rest);
        let rest_error = 0.5 / 65535.0 + 1e-7;
        assert!((f64::from(decoded.rest) - rest).abs() <= rest_error);
        for i in 0..weights.len() {
            let exact = (1.0 - rest) * weights[i] / total;
            let bound =
                (1.0 - rest) * (errors[i] + weights[i] / total * total_error) + rest_error + 1e-6;
            let got = f64::from(decoded.probs[i]);
            assert!(
                (got - exact).abs() <= bound,
                "entry {i}: {got} vs {exact} (bound {bound})"
            );
        }
    }

    #[test]
    fn random_records_round_trip_within_the_quantizer_error() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for vocab in [100, 49152, 65536] {
            let perm = random_permutation(&mut rng, vocab);
            for k in [1, 8, 64, vocab] {
                let trials = if k == vocab { 2 } else { 30 };
                let records: Vec<TopK> = (0..trials)
                    .map(|t| random_top_k(&mut rng, k, vocab, [0.5, 3.0, 10.0][t % 3]))
                    .collect();
                // Records are concatenated as in a shard: each decode must stop at its end.
                let mut stream = vec![];
                for topk in &records {
                    encode(topk, k, &perm, &mut stream).unwrap();
                }
                let mut at = 0;
                for topk in &records {
                    let (decoded, used) = decode(&stream[at..], k, &perm).unwrap();
                    check_within_quantizer_error(topk, &decoded, &perm);
                    at += used;
                }
                assert_eq!(at, stream.len(), "vocab {vocab}, k {k}");
            }
        }
    }

    #[test]
    fn decode_rejects_corrupt_records() {
        let perm = Permutation::by_frequency(&[0; 10]);
        // Rest 0, order 0, gap 0 ("1"), Rice 0, value code 0 ("1"): no probability anywhere.
        let err = decode(&[0, 0, 0b0000_1000, 0b1000_0000], 1, &perm).unwrap_err();
        assert_eq!(err, CodecError::AllValuesZero);
        let err = decode(&[0, 0, 0b0000_1000], 1, &perm).unwrap_err();
        assert_eq!(
            err.to_string(),
            "record truncated: needs at least 1 bits, only 0 left"
        );
        // Order 0, gap 15 ("0000 10000"): rank 15 of a 10-id vocab.
        let err = decode(&[0, 0, 0, 0b1000_0000], 1, &perm).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt record: entry 0 has rank 15, outside the vocab of 10 ids"
        );
        // Rice 7 leaves room for a 7-bit code: "1" then 1111111 is 127.
        let err = decode(&[0, 0, 0b0000_1111, 0b1111_1111], 1, &perm).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt record: value code 0 exceeds the 6-bit maximum 63"
        );
        // A valid record with a stray one in its padding.
        let mut valid = vec![];
        let topk = TopK {
            ids: vec![0],
            logprobs: vec![-0.5],
            rest: 0.0,
        };
        encode(&topk, 1, &perm, &mut valid).unwrap();
        *valid.last_mut().unwrap() |= 1;
        assert_eq!(
            decode(&valid, 1, &perm).unwrap_err(),
            CodecError::NonzeroPadding
        );
        assert_eq!(
            decode(&[0; 5], 1, &perm).unwrap_err().to_string(),
            "corrupt record: id gap 0 is longer than any u16 rank allows"
        );
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes() {
        let mut rng = Rng(42);
        let small = random_permutation(&mut rng, 300);
        let large = random_permutation(&mut rng, 49152);
        for (perm, k) in [(&small, 8), (&large, 64)] {
            for _ in 0..10_000 {
                let len = rng.below(200);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if let Ok((_, used)) = decode(&bytes, k, perm) {
                    assert!(used <= bytes.len());
                }
            }
        }
    }

    #[test]
    fn decode_of_truncated_or_bit_flipped_records_never_panics() {
        let g = golden();
        let mut rng = Rng(7);
        let small = random_permutation(&mut rng, 300);
        let mut cases: Vec<(Vec<u8>, usize, &Permutation)> = g
            .records
            .iter()
            .map(|r| (r.bytes.clone(), g.k, &g.perm))
            .collect();
        for k in [1, 8, 300] {
            let mut bytes = vec![];
            encode(&random_top_k(&mut rng, k, 300, 3.0), k, &small, &mut bytes).unwrap();
            cases.push((bytes, k, &small));
        }
        for (bytes, k, perm) in cases {
            for len in 0..bytes.len() {
                // The last byte always holds record bits, so every shorter prefix is incomplete.
                assert!(
                    decode(&bytes[..len], k, perm).is_err(),
                    "prefix of {len} bytes"
                );
            }
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 0x80 >> (bit % 8);
                if let Ok((_, used)) = decode(&flipped, k, perm) {
                    assert!(used <= flipped.len());
                }
            }
        }
    }
}
