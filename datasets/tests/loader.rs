//! Packing, shuffling, sharding and exact resumption of the batch loader.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use datasets::order::SplitMix64;
use datasets::{
    AssistantTurns, Batch, Documents, Example, IGNORE_INDEX, Loader, LoaderConfig, LoaderState,
    Location, Order, Prepare, Record, Renderer, Shard, Tokenizer, Truncation,
};
use quantize::gguf::GgufFile;

fn tokenizer() -> Tokenizer {
    Tokenizer::from_gguf(&GgufFile::open(common::reference_model()).unwrap()).unwrap()
}

/// `count` text documents of 2 to 24 tokens, a token a word.
fn documents(tokenizer: &Tokenizer, count: usize) -> Arc<Documents> {
    const WORDS: [&str; 10] = [
        "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far",
    ];
    let path: Arc<Path> = Path::new("memory.jsonl").into();
    let records = (0..count).map(|index| {
        let words: Vec<&str> = (0..2 + (index * 7) % 23)
            .map(|word| WORDS[(index + word) % WORDS.len()])
            .collect();
        Ok(Record {
            location: Location::Line {
                path: path.clone(),
                line: index as u64 + 1,
            },
            example: Example::Text(words.join(" ")),
        })
    });
    let prepare = Prepare::new(
        Renderer::new(tokenizer, None, AssistantTurns::All),
        Some(64),
        Truncation::Error,
    )
    .unwrap();
    Arc::new(
        Documents::build(records, &prepare, "memory.jsonl")
            .unwrap()
            .0,
    )
}

fn config(packing: bool, shuffle: bool) -> LoaderConfig {
    LoaderConfig {
        batch_size: 3,
        seq_len: 64,
        packing,
        order: Order {
            shuffle,
            seed: 7,
            shard: Shard::SINGLE,
        },
        pad_token: 0,
        epochs: None,
    }
}

/// The documents of each row, as (tokens, trained) read back from the batch,
/// after checking that positions, ids, targets and padding are consistent.
fn unpack(batch: &Batch, pad_token: u32) -> Vec<Vec<(Vec<u32>, Vec<bool>)>> {
    let seq_len = batch.seq_len;
    for field in [
        batch.tokens.len(),
        batch.targets.len(),
        batch.loss_mask.len(),
        batch.position_ids.len(),
        batch.document_ids.len(),
    ] {
        assert_eq!(field, batch.rows * seq_len);
    }
    let mut rows = Vec::new();
    for row in 0..batch.rows {
        let at = |i: usize| row * seq_len + i;
        let mut documents: Vec<(Vec<u32>, Vec<bool>)> = Vec::new();
        for i in 0..seq_len {
            let (id, position) = (batch.document_ids[at(i)], batch.position_ids[at(i)]);
            assert_eq!(batch.loss_mask[at(i)], batch.targets[at(i)] != IGNORE_INDEX);
            if id == 0 {
                assert_eq!(
                    (batch.tokens[at(i)], batch.targets[at(i)], position),
                    (pad_token, IGNORE_INDEX, 0),
                    "padding at row {row}, position {i}"
                );
                assert!(
                    batch.document_ids[at(i)..row * seq_len + seq_len]
                        .iter()
                        .all(|&id| id == 0),
                    "padding ends the row"
                );
                break;
            }
            if position == 0 {
                assert_eq!(
                    id as usize,
                    documents.len() + 1,
                    "document ids count up from 1"
                );
                documents.push((Vec::new(), vec![false]));
            }
            let (tokens, trained) = documents.last_mut().unwrap();
            assert_eq!(
                position as usize,
                tokens.len(),
                "positions restart per document"
            );
            tokens.push(batch.tokens[at(i)]);
            let same_document_next = i + 1 < seq_len && batch.document_ids[at(i + 1)] == id;
            if same_document_next {
                trained.push(batch.loss_mask[at(i)]);
                if batch.loss_mask[at(i)] {
                    assert_eq!(
                        batch.targets[at(i)],
                        batch.tokens[at(i + 1)] as i32,
                        "the target is the next token"
                    );
                }
            } else {
                assert_eq!(
                    batch.targets[at(i)],
                    IGNORE_INDEX,
                    "no loss across documents"
                );
            }
        }
        rows.push(documents);
    }
    rows
}

fn document(documents: &Documents, index: usize) -> (Vec<u32>, Vec<bool>) {
    let document = documents.get(index);
    (document.tokens.to_vec(), document.trained.to_vec())
}

#[test]
fn one_epoch_packed_holds_every_document_once_and_whole() {
    let tokenizer = tokenizer();
    let documents = documents(&tokenizer, 40);
    for shuffle in [false, true] {
        let config = LoaderConfig {
            epochs: Some(1),
            ..config(true, shuffle)
        };
        let mut seen = Vec::new();
        let mut rows = 0;
        for batch in Loader::new(documents.clone(), config).unwrap() {
            for row in unpack(&batch, config.pad_token) {
                assert!(
                    row.iter().map(|(tokens, _)| tokens.len()).sum::<usize>() <= config.seq_len
                );
                rows += 1;
                seen.extend(row);
            }
        }
        let mut expected: Vec<_> = (0..documents.len())
            .map(|index| document(&documents, index))
            .collect();
        if !shuffle {
            assert_eq!(
                seen, expected,
                "without shuffling, documents come in file order"
            );
        }
        assert!(
            rows < documents.len() / 2,
            "packing puts several documents in a row ({rows} rows)"
        );
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected);
    }
}

#[test]
fn padded_rows_hold_one_document_each() {
    let tokenizer = tokenizer();
    let documents = documents(&tokenizer, 10);
    let config = LoaderConfig {
        epochs: Some(1),
        pad_token: 99,
        ..config(false, false)
    };
    let batches: Vec<Batch> = Loader::new(documents.clone(), config).unwrap().collect();
    assert_eq!(
        batches.iter().map(|batch| batch.rows).collect::<Vec<_>>(),
        [3, 3, 3, 1]
    );
    let rows: Vec<_> = batches.iter().flat_map(|batch| unpack(batch, 99)).collect();
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(row, &[document(&documents, index)]);
    }
}

#[test]
fn a_row_spells_out_tokens_targets_positions_and_documents() {
    let tokenizer = tokenizer();
    let documents = documents(&tokenizer, 3);
    let (first, second) = (documents.get(0), documents.get(1));
    assert_eq!(
        (first.len(), second.len()),
        (2, 9),
        "\"the cat\" and \"cat sat … cat\""
    );
    let config = LoaderConfig {
        batch_size: 1,
        seq_len: 16,
        epochs: Some(1),
        pad_token: 5,
        ..config(true, false)
    };
    let batch = Loader::new(documents.clone(), config)
        .unwrap()
        .next()
        .unwrap();
    let padding = 16 - 2 - 9;
    let ignored = |count| vec![IGNORE_INDEX; count];
    assert_eq!(
        batch.tokens,
        [first.tokens, second.tokens, &[5; 5]].concat()
    );
    let next = |tokens: &[u32]| {
        tokens[1..]
            .iter()
            .map(|&token| token as i32)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        batch.targets,
        [
            next(first.tokens),
            ignored(1),
            next(second.tokens),
            ignored(1),
            ignored(padding)
        ]
        .concat()
    );
    assert_eq!(
        batch.loss_mask,
        batch
            .targets
            .iter()
            .map(|&target| target != IGNORE_INDEX)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        batch.position_ids,
        [vec![0, 1], (0..9).collect(), vec![0; padding]].concat()
    );
    assert_eq!(
        batch.document_ids,
        [vec![1; 2], vec![2; 9], vec![0; padding]].concat()
    );
}

/// `steps` batches and the state after each.
fn run(
    documents: &Arc<Documents>,
    config: LoaderConfig,
    steps: usize,
) -> Vec<(Batch, LoaderState)> {
    let mut loader = Loader::new(documents.clone(), config).unwrap();
    (0..steps)
        .map(|_| {
            let batch = loader.next().unwrap();
            (batch, loader.state())
        })
        .collect()
}

#[test]
fn a_resumed_loader_yields_the_batches_of_an_uninterrupted_run() {
    let tokenizer = tokenizer();
    let documents = documents(&tokenizer, 30);
    for (packing, world_size) in [(true, 1), (false, 1), (true, 2)] {
        let config = LoaderConfig {
            order: Order {
                shard: Shard::new(world_size - 1, world_size).unwrap(),
                ..config(packing, true).order
            },
            ..config(packing, true)
        };
        let uninterrupted = run(&documents, config, 40);
        let epochs: Vec<u64> = uninterrupted.iter().map(|(_, state)| state.epoch).collect();
        assert!(
            epochs[39] >= 2,
            "the run crosses epoch boundaries: {epochs:?}"
        );
        let mut crossed_boundary = false;
        for stop in 1..30 {
            let saved = serde_json::to_string(&uninterrupted[stop - 1].1).unwrap();
            let state: LoaderState = serde_json::from_str(&saved).unwrap();
            let resumed: Vec<Batch> = Loader::resume(documents.clone(), config, state)
                .unwrap()
                .take(10)
                .collect();
            let expected: Vec<Batch> = uninterrupted[stop..stop + 10]
                .iter()
                .map(|(batch, _)| batch.clone())
                .collect();
            assert_eq!(
                resumed, expected,
                "packing {packing}, world {world_size}, resumed after {stop} batches"
            );
            crossed_boundary |= epochs[stop - 1] != epochs[stop + 9];
        }
        assert!(crossed_boundary);
    }
}

#[test]
fn resuming_with_other_data_or_settings_is_refused() {
    let tokenizer = tokenizer();
    let documents = documents(&tokenizer, 12);
    let config = config(true, true);
    let state = run(&documents, config, 2)[1].1;
    let reseeded = LoaderConfig {
        order: Order {
            seed: 8,
            ..config.order
        },
        ..config
    };
    let other_data = self::documents(&tokenizer, 13);
    for error in [
        Loader::resume(documents.clone(), reseeded, state)
            .err()
            .unwrap(),
        Loader::resume(other_data, config, state).err().unwrap(),
        Loader::resume(
            documents.clone(),
            config,
            LoaderState {
                position: 12,
                ..state
            },
        )
        .err()
        .unwrap(),
    ] {
        let message = error.to_string();
        assert!(
            message.starts_with("the loader state was saved for other data or another loader configuration (fingerprint "),
            "{message}"
        );
        assert!(
            message.ends_with("resume with the same data, tokenizer, seed, ranks, batch size, sequence length and packing"),
            "{message}"
        );
    }
    let more_epochs = LoaderConfig {
        epochs: Some(5),
        ..config
    };
    assert!(
        Loader::resume(documents, more_epochs, state).is_ok(),
        "the number of epochs may change"
    );
}

#[test]
fn ranks_take_disjoint_equal_shares_of_each_epoch() {
    let order = |rank, shuffle| Order {
        shuffle,
        seed: 3,
        shard: Shard::new(rank, 3).unwrap(),
    };
    for shuffle in [false, true] {
        for epoch in 0..3 {
            let shares: Vec<Vec<u32>> = (0..3)
                .map(|rank| order(rank, shuffle).epoch(32, epoch))
                .collect();
            let all: HashSet<u32> = shares.iter().flatten().copied().collect();
            assert!(
                shares.iter().all(|share| share.len() == 10),
                "32 / 3 each, the rest left out"
            );
            assert_eq!(all.len(), 30, "no example on two ranks");
        }
    }
    assert_eq!(order(1, false).epoch(7, 0), [1, 4]);
    assert_ne!(
        order(0, true).epoch(32, 0),
        order(0, true).epoch(32, 1),
        "each epoch has its own order"
    );
}

#[test]
fn the_shuffle_is_pinned_to_splitmix64_and_fisher_yates() {
    // Published SplitMix64 outputs for seed 1234567 (Vigna's splitmix64.c).
    let mut rng = SplitMix64::new(1234567);
    let outputs: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
    assert_eq!(
        outputs,
        [
            6457827717110365317,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821
        ]
    );
    let mut rng = SplitMix64::new(9);
    let mut counts = [0u32; 3];
    for _ in 0..3000 {
        counts[rng.below(3) as usize] += 1;
    }
    assert!(
        counts.iter().all(|&count| (900..1100).contains(&count)),
        "{counts:?}"
    );
    // Any change to the order breaks resumption of saved runs: this pins it.
    let order = Order {
        shuffle: true,
        seed: 42,
        shard: Shard::SINGLE,
    };
    assert_eq!(order.epoch(10, 0), PINNED_EPOCH_0);
    assert_eq!(order.epoch(10, 1), PINNED_EPOCH_1);
}

const PINNED_EPOCH_0: [u32; 10] = [6, 2, 7, 1, 3, 0, 5, 4, 9, 8];
const PINNED_EPOCH_1: [u32; 10] = [2, 8, 7, 0, 6, 1, 5, 3, 4, 9];

#[test]
fn a_set_number_of_epochs_ends_with_a_short_batch() {
    let tokenizer = tokenizer();
    let documents = documents(&tokenizer, 10);
    let config = LoaderConfig {
        epochs: Some(2),
        ..config(false, true)
    };
    let batches: Vec<Batch> = Loader::new(documents, config).unwrap().collect();
    assert_eq!(
        batches.iter().map(|batch| batch.rows).collect::<Vec<_>>(),
        [3, 3, 3, 3, 3, 3, 2]
    );
}

fn loader_error(documents: &Arc<Documents>, config: LoaderConfig) -> String {
    Loader::new(documents.clone(), config)
        .err()
        .unwrap()
        .to_string()
}

#[test]
fn bad_loader_configurations_say_what_is_wrong() {
    let tokenizer = tokenizer();
    let documents = documents(&tokenizer, 4);
    let base = config(true, true);
    assert_eq!(
        loader_error(
            &documents,
            LoaderConfig {
                batch_size: 0,
                ..base
            }
        ),
        "invalid loader configuration: the batch size is 0"
    );
    assert_eq!(
        loader_error(&documents, LoaderConfig { seq_len: 8, ..base }),
        format!(
            "invalid loader configuration: the longest document has {} tokens, more than the sequence length 8",
            documents.longest()
        )
    );
    let shard = |rank, world_size| LoaderConfig {
        order: Order {
            shard: Shard { rank, world_size },
            ..base.order
        },
        ..base
    };
    assert_eq!(
        loader_error(&documents, shard(0, 5)),
        "invalid loader configuration: 4 document(s) cannot be shared among 5 ranks"
    );
    assert_eq!(
        loader_error(&documents, shard(2, 2)),
        "invalid shard: rank 2 is not below the world size 2"
    );
    assert_eq!(
        loader_error(&documents, shard(0, 0)),
        "invalid shard: rank 0 is not below the world size 0"
    );
}
