//! The codec against the Python encoder's golden bytes, round trips, and
//! arbitrary or damaged input.

use super::*;

/// Written by tools/bench/cache_encoding.py --golden from real teacher records.
const GOLDEN: &str = include_str!("../codec_golden.txt");

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
        tail: Vec::new(),
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
        encode(&record.topk, g.k, 0, &g.perm, &mut out).unwrap();
        assert_eq!(out, record.bytes, "record {n}");

        let (decoded, used) = decode(&record.bytes, g.k, 0, &g.perm).unwrap();
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
    let err = encode(topk, k, 0, &perm, &mut out).unwrap_err();
    assert_eq!(out, vec![9], "nothing appended on error");
    err.to_string()
}

#[test]
fn encode_rejects_bad_top_k() {
    let topk = |ids: Vec<u32>, logprobs: Vec<f32>, rest| TopK {
        ids,
        logprobs,
        rest,
        tail: Vec::new(),
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

#[test]
fn encode_rejects_bad_tail_samples() {
    let perm = Permutation::by_frequency(&[0; 5]);
    let err = |tail: Vec<u32>, k: usize, samples: usize| {
        let ids: Vec<u32> = (0..k as u32).collect();
        let topk = TopK {
            logprobs: vec![-1.0; k],
            ids,
            rest: 0.25,
            tail,
        };
        encode(&topk, k, samples, &perm, &mut vec![])
            .unwrap_err()
            .to_string()
    };
    // Rest 0.25 at 8 per unit of mass: 2 samples.
    assert_eq!(
        err(vec![3], 2, 8),
        "record with 1 tail samples, expected 2 for its rest mass 0.25"
    );
    assert_eq!(
        err(vec![3, 1], 2, 8),
        "tail sample 1 is in the top-k; tail samples come from outside it"
    );
    assert_eq!(
        err(vec![3, 9], 2, 8),
        "token id 9 is outside the vocab of 5 ids"
    );
    assert_eq!(
        err(vec![], 5, 1),
        "1 tail samples with k = the whole vocabulary: there is no tail to sample"
    );
    assert_eq!(
        err(vec![], 2, MAX_TAIL + 1),
        "65537 tail samples per unit of mass: at most 65536 are written"
    );
}

#[test]
fn a_record_holds_tail_samples_in_proportion_to_its_rest_mass() {
    assert_eq!(tail_count(0.25, 8), 2);
    assert_eq!(tail_count(0.0, 512), 0);
    assert_eq!(tail_count(1.0, 512), 512);
    // 0.3 * 10 = 3 and 0.05 * 10 = 0.5 rounds up; below half a sample is none.
    assert_eq!(tail_count(0.3, 10), 3);
    assert_eq!(tail_count(0.05, 10), 1);
    assert_eq!(tail_count(0.049, 10), 0);
    assert_eq!(tail_count(0.5, 0), 0);

    // A record whose rest earns no sample has no tail section at all.
    let perm = Permutation::by_frequency(&[0; 5]);
    let topk = |rest: f32, tail: Vec<u32>| TopK {
        ids: vec![0, 1],
        logprobs: vec![-1.0, -2.0],
        rest,
        tail,
    };
    let (mut bare, mut sampled) = (vec![], vec![]);
    encode(&topk(0.01, vec![]), 2, 0, &perm, &mut bare).unwrap();
    encode(&topk(0.01, vec![]), 2, 10, &perm, &mut sampled).unwrap();
    assert_eq!(bare, sampled);
    let mut two = vec![];
    encode(&topk(0.2, vec![4, 4]), 2, 10, &perm, &mut two).unwrap();
    let (decoded, used) = decode(&two, 2, 10, &perm).unwrap();
    assert_eq!((decoded.tail, used), (vec![4, 4], two.len()));
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
fn random_top_k(rng: &mut Rng, k: usize, tail: usize, vocab: usize, scale: f64) -> TopK {
    let mut ids: Vec<u32> = (0..vocab as u32).collect();
    for i in 0..k {
        let j = i + rng.below(vocab - i);
        ids.swap(i, j);
    }
    let rest = if rng.below(8) == 0 {
        0.0
    } else {
        rng.unit() as f32
    };
    // Repeats are drawn on purpose: a sample can come up twice.
    let outside = &ids[k..];
    let tail = (0..tail_count(rest, tail))
        .map(|_| {
            let window = outside.len().min(3 + rng.below(vocab));
            outside[rng.below(window)]
        })
        .collect();
    ids.truncate(k);
    let logits: Vec<f64> = (0..k).map(|_| scale * (rng.unit() - 0.5) * 4.0).collect();
    let norm = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
    let mass = (1.0 - f64::from(rest)).max(1e-30).ln();
    let logprobs = logits.iter().map(|l| (l - norm + mass) as f32).collect();
    TopK {
        ids,
        logprobs,
        rest,
        tail,
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
    let mut tail = topk.tail.clone();
    tail.sort_by_key(|&id| perm.ranks()[id as usize]);
    assert_eq!(decoded.tail, tail);

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
        for (k, tail) in [(1, 0), (8, 0), (64, 0), (vocab, 0), (1, 1), (8, 3), (64, 8), (64, 512)] {
            let trials = if k == vocab { 2 } else { 30 };
            let records: Vec<TopK> = (0..trials)
                .map(|t| random_top_k(&mut rng, k, tail, vocab, [0.5, 3.0, 10.0][t % 3]))
                .collect();
            // Records are concatenated as in a shard: each decode must stop at its end.
            let mut stream = vec![];
            for topk in &records {
                encode(topk, k, tail, &perm, &mut stream).unwrap();
            }
            let mut at = 0;
            for topk in &records {
                let (decoded, used) = decode(&stream[at..], k, tail, &perm).unwrap();
                check_within_quantizer_error(topk, &decoded, &perm);
                at += used;
            }
            assert_eq!(at, stream.len(), "vocab {vocab}, k {k}, tail {tail}");
        }
    }
}

#[test]
fn decode_rejects_corrupt_records() {
    let perm = Permutation::by_frequency(&[0; 10]);
    // Rest 0, order 0, gap 0 ("1"), Rice 0, value code 0 ("1"): no probability anywhere.
    let err = decode(&[0, 0, 0b0000_1000, 0b1000_0000], 1, 0, &perm).unwrap_err();
    assert_eq!(err, CodecError::AllValuesZero);
    let err = decode(&[0, 0, 0b0000_1000], 1, 0, &perm).unwrap_err();
    assert_eq!(
        err.to_string(),
        "record truncated: needs at least 1 bits, only 0 left"
    );
    // Order 0, gap 15 ("0000 10000"): rank 15 of a 10-id vocab.
    let err = decode(&[0, 0, 0, 0b1000_0000], 1, 0, &perm).unwrap_err();
    assert_eq!(
        err.to_string(),
        "corrupt record: entry 0 has rank 15, outside the vocab of 10 ids"
    );
    // Rice 7 leaves room for a 7-bit code: "1" then 1111111 is 127.
    let err = decode(&[0, 0, 0b0000_1111, 0b1111_1111], 1, 0, &perm).unwrap_err();
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
        tail: Vec::new(),
    };
    encode(&topk, 1, 0, &perm, &mut valid).unwrap();
    *valid.last_mut().unwrap() |= 1;
    assert_eq!(
        decode(&valid, 1, 0, &perm).unwrap_err(),
        CodecError::NonzeroPadding
    );
    assert_eq!(
        decode(&[0; 5], 1, 0, &perm).unwrap_err().to_string(),
        "corrupt record: id gap 0 is longer than any u16 rank allows"
    );
}

#[test]
fn decode_never_panics_on_arbitrary_bytes() {
    let mut rng = Rng(42);
    let small = random_permutation(&mut rng, 300);
    let large = random_permutation(&mut rng, 49152);
    for (perm, k, tail) in [(&small, 8, 0), (&large, 64, 0), (&small, 8, 3), (&large, 64, 512)] {
        for _ in 0..10_000 {
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Ok((_, used)) = decode(&bytes, k, tail, perm) {
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
        encode(
            &random_top_k(&mut rng, k, 0, 300, 3.0),
            k,
            0,
            &small,
            &mut bytes,
        )
        .unwrap();
        cases.push((bytes, k, &small));
    }
    for (bytes, k, perm) in cases {
        for len in 0..bytes.len() {
            // The last byte always holds record bits, so every shorter prefix is incomplete.
            assert!(
                decode(&bytes[..len], k, 0, perm).is_err(),
                "prefix of {len} bytes"
            );
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 0x80 >> (bit % 8);
            if let Ok((_, used)) = decode(&flipped, k, 0, perm) {
                assert!(used <= flipped.len());
            }
        }
    }
}
