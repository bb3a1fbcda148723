//! Truncation policies, dataset statistics, the empty and all-dropped errors,
//! and held-out splits.

mod common;
mod data_files;

use std::path::Path;
use std::sync::Arc;

use data_files::write_jsonl;
use datasets::split::without_files;
use datasets::{
    AssistantTurns, ChatTemplate, DataSource, DatasetError, Documents, Example, FractionSplit,
    HeldOut, Location, Message, Outcome, Part, Prepare, Record, RecordFormat, RecordSpec, Renderer,
    Role, Split, Stats, Tokenizer, Truncation,
};
use quantize::gguf::GgufFile;

struct Model {
    tokenizer: Tokenizer,
    template: ChatTemplate,
}

fn model() -> Model {
    let file = GgufFile::open(common::reference_model()).unwrap();
    Model {
        tokenizer: Tokenizer::from_gguf(&file).unwrap(),
        template: ChatTemplate::from_gguf(&file).unwrap(),
    }
}

impl Model {
    fn prepare(&self, max_length: Option<usize>, truncation: Truncation) -> Prepare<'_> {
        let renderer = Renderer::new(&self.tokenizer, Some(&self.template), AssistantTurns::All);
        Prepare::new(renderer, max_length, truncation).unwrap()
    }
}

fn record(line: u64, example: Example) -> Record {
    Record {
        location: Location::Line {
            path: Arc::from(Path::new("mem.jsonl")),
            line,
        },
        example,
    }
}

fn qa(question: &str, answer: &str) -> Example {
    Example::Chat(vec![
        Message::new(Role::User, question),
        Message::new(Role::Assistant, answer),
    ])
}

fn text(words: usize) -> Example {
    Example::Text(vec!["word"; words].join(" "))
}

#[test]
fn truncation_policies_keep_cut_or_drop_long_examples() {
    let model = model();
    let example = record(
        7,
        qa(
            "Tell me a long story about a cat.",
            "Once upon a time there was a cat.",
        ),
    );
    let whole = match model
        .prepare(None, Truncation::Error)
        .record(&example)
        .unwrap()
        .outcome
    {
        Outcome::Whole(tokens) => tokens,
        other => panic!("{other:?}"),
    };
    let length = whole.len();
    let reply_start = whole.trained.iter().position(|&trained| trained).unwrap();

    let fitted = |max_length, truncation| {
        model
            .prepare(Some(max_length), truncation)
            .record(&example)
            .unwrap()
    };
    assert_eq!(
        fitted(length, Truncation::Error).outcome,
        Outcome::Whole(whole.clone())
    );

    let error = model
        .prepare(Some(length - 1), Truncation::Error)
        .record(&example)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "mem.jsonl:7: example is {length} tokens, longer than the maximum length {} \
             (truncation = error; choose left, right or drop to accept such examples)",
            length - 1
        )
    );

    let right = fitted(reply_start + 3, Truncation::Right);
    assert_eq!(right.length, length);
    match right.outcome {
        Outcome::Truncated(tokens) => {
            assert_eq!(tokens.tokens, whole.tokens[..reply_start + 3]);
            assert_eq!(tokens.trained, whole.trained[..reply_start + 3]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fitted(reply_start, Truncation::Right).outcome,
        Outcome::DroppedUntrained,
        "the reply is cut off"
    );

    match fitted(12, Truncation::Left).outcome {
        Outcome::Truncated(tokens) => {
            assert_eq!(tokens.tokens, whole.tokens[length - 12..]);
            assert!(!tokens.trained[0], "the first token is never a target");
            assert_eq!(tokens.trained[1..], whole.trained[length - 11..]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fitted(length - 1, Truncation::Drop).outcome,
        Outcome::DroppedTooLong
    );
}

#[test]
fn a_maximum_length_below_two_is_refused() {
    let model = model();
    let renderer = Renderer::new(&model.tokenizer, None, AssistantTurns::All);
    let error = Prepare::new(renderer, Some(1), Truncation::Right).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid maximum length: 1 tokens leave nothing to predict (at least 2 are needed)"
    );
}

#[test]
fn policy_names_parse_and_print() {
    for name in ["error", "left", "right", "drop"] {
        assert_eq!(name.parse::<Truncation>().unwrap().to_string(), name);
    }
    assert_eq!(
        "middle".parse::<Truncation>().unwrap_err(),
        "unknown truncation 'middle' (expected error, left, right or drop)"
    );
    for name in ["auto", "text", "prompt-completion", "messages"] {
        assert_eq!(name.parse::<RecordFormat>().unwrap().to_string(), name);
    }
    assert_eq!(
        "chat".parse::<RecordFormat>().unwrap_err(),
        "unknown record format 'chat' (expected auto, text, prompt-completion or messages)"
    );
    assert_eq!(
        "some".parse::<AssistantTurns>().unwrap_err(),
        "unknown assistant turns 'some' (expected all or last)"
    );
}

#[test]
fn stats_count_examples_tokens_lengths_and_shares() {
    let model = model();
    let words = [1, 3, 10, 20, 40, 80];
    let records: Vec<_> = words
        .iter()
        .enumerate()
        .map(|(index, &count)| Ok(record(index as u64 + 1, text(count))))
        .collect();
    let lengths: Vec<usize> = words
        .iter()
        .map(|&count| {
            model
                .prepare(None, Truncation::Error)
                .record(&record(1, text(count)))
                .unwrap()
                .length
        })
        .collect();
    assert_eq!(lengths, words, "one token per word");

    let stats = Stats::collect(
        records,
        &model.prepare(Some(32), Truncation::Right),
        "mem.jsonl",
    )
    .unwrap();
    assert_eq!(
        (
            stats.examples,
            stats.kept,
            stats.over_max_length,
            stats.truncated
        ),
        (6, 5, 2, 2)
    );
    assert_eq!(
        (stats.dropped_too_long, stats.dropped_untrained),
        (0, 1),
        "a one-token document has nothing to predict"
    );
    assert_eq!(stats.over_max_length_share, 2.0 / 6.0);
    assert_eq!(stats.tokens, 3 + 10 + 20 + 32 + 32);
    assert_eq!(
        stats.trained_tokens,
        stats.tokens - 5,
        "all but each document's first token"
    );
    assert_eq!(
        stats.trained_share,
        stats.trained_tokens as f64 / stats.tokens as f64
    );
    assert_eq!(
        (
            stats.length.min,
            stats.length.p50,
            stats.length.p90,
            stats.length.p99,
            stats.length.max
        ),
        (1, 10, 40, 40, 80)
    );
    assert_eq!(stats.length.mean, 154.0 / 6.0);
    let bins: Vec<(u32, u32, u64)> = stats
        .histogram
        .iter()
        .map(|bin| (bin.min, bin.max, bin.count))
        .collect();
    assert_eq!(bins, [(0, 16, 3), (17, 32, 1), (33, 64, 1), (65, 128, 1)]);
}

#[test]
fn chat_stats_count_only_the_reply_as_trained() {
    let model = model();
    let records = vec![Ok(record(1, qa("Hi", "Hello")))];
    let stats = Stats::collect(
        records,
        &model.prepare(None, Truncation::Error),
        "mem.jsonl",
    )
    .unwrap();
    assert_eq!(stats.trained_tokens, 2, "\"Hello\" and <|im_end|>");
    assert_eq!(stats.max_length, None);
}

#[test]
fn an_empty_dataset_is_an_error() {
    let model = model();
    let prepare = model.prepare(Some(16), Truncation::Drop);
    let error = Stats::collect(Vec::new(), &prepare, "empty.jsonl").unwrap_err();
    assert_eq!(error.to_string(), "empty.jsonl: no examples");
    let error = Documents::build(Vec::new(), &prepare, "empty.jsonl").unwrap_err();
    assert_eq!(error.to_string(), "empty.jsonl: no examples");

    let dir = tempfile::tempdir().unwrap();
    let file = write_jsonl(dir.path(), "blank.jsonl", &["", "   "]);
    let source = DataSource::from_files(vec![file.clone()], RecordSpec::default());
    let error = Stats::collect(source.records(), &prepare, &source.origin()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{}: no examples", file.display())
    );
}

#[test]
fn a_dataset_with_every_example_dropped_is_an_error() {
    let model = model();
    let long = || {
        (1..=3)
            .map(|line| Ok(record(line, text(40))))
            .collect::<Vec<_>>()
    };
    let error = Documents::build(
        long(),
        &model.prepare(Some(16), Truncation::Drop),
        "long.jsonl",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "long.jsonl: all 3 examples were dropped (3 longer than the maximum length 16 under truncation = drop)"
    );
    let records = vec![
        Ok(record(1, text(40))),
        Ok(record(
            2,
            qa("A question long enough to fill every position", "cut"),
        )),
        Ok(record(3, text(1))),
    ];
    let error = Stats::collect(
        records,
        &model.prepare(Some(16), Truncation::Drop),
        "mixed.jsonl",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "mixed.jsonl: all 3 examples were dropped (2 longer than the maximum length 16 under truncation = drop, \
         1 with no token left to train on)"
    );
}

#[test]
fn record_errors_name_the_record() {
    let model = model();
    let renderer = Renderer::new(&model.tokenizer, None, AssistantTurns::All);
    let prepare = Prepare::new(renderer, None, Truncation::Error).unwrap();
    let error = Documents::build(
        vec![Ok(record(1, text(2))), Ok(record(2, qa("q", "a")))],
        &prepare,
        "mem.jsonl",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "mem.jsonl:2: a chat record needs the model's chat template, and the model has none"
    );
    // Records are prepared in parallel chunks; the error is still the first
    // in record order, even with a read error after it in the same chunk.
    let records = vec![
        Ok(record(1, text(2))),
        Ok(record(2, qa("q", "a"))),
        Err(DatasetError::EmptyDataset {
            origin: "later".into(),
        }),
    ];
    let error = Stats::collect(records, &prepare, "mem.jsonl").unwrap_err();
    assert!(error.to_string().starts_with("mem.jsonl:2: "), "{error}");
    let no_reply = Example::Chat(vec![Message::new(Role::User, "q")]);
    let error = model
        .prepare(None, Truncation::Error)
        .record(&record(9, no_reply))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "mem.jsonl:9: the conversation has no assistant message: nothing to train on"
    );
}

#[test]
fn documents_keep_what_preparation_kept_in_order() {
    let model = model();
    // The reference teacher's template adds a default system prompt longer
    // than 16 tokens, so right truncation leaves nothing of the reply.
    let records = vec![
        Ok(record(1, text(3))),
        Ok(record(2, text(30))),
        Ok(record(3, qa("q", "a"))),
    ];
    let (documents, stats) = Documents::build(
        records,
        &model.prepare(Some(16), Truncation::Right),
        "mem.jsonl",
    )
    .unwrap();
    assert_eq!(
        (
            documents.len(),
            stats.kept,
            stats.truncated,
            stats.dropped_untrained
        ),
        (2, 2, 1, 1)
    );
    assert_eq!(
        (
            documents.get(0).len(),
            documents.get(1).len(),
            documents.longest()
        ),
        (3, 16, 16)
    );
    assert_eq!(
        documents
            .get(1)
            .trained
            .iter()
            .filter(|&&trained| trained)
            .count(),
        15
    );
}

#[test]
fn documents_come_in_record_order_across_parallel_chunks() {
    let model = model();
    let lengths: Vec<usize> = (0..3000).map(|index| 2 + index % 37).collect();
    let records = lengths
        .iter()
        .enumerate()
        .map(|(index, &length)| Ok(record(index as u64, text(length))));
    let (documents, stats) = Documents::build(
        records,
        &model.prepare(None, Truncation::Error),
        "mem.jsonl",
    )
    .unwrap();
    assert_eq!(stats.examples, 3000);
    let built: Vec<usize> = (0..documents.len())
        .map(|index| documents.get(index).len())
        .collect();
    assert_eq!(built, lengths);
}

fn texts(count: usize) -> Vec<Example> {
    (0..count)
        .map(|index| Example::Text(format!("example number {index}")))
        .collect()
}

#[test]
fn a_fraction_split_is_deterministic_and_keeps_duplicates_together() {
    let split = FractionSplit::new(0.2, 1).unwrap();
    let examples = texts(2000);
    let held_out: Vec<bool> = examples
        .iter()
        .map(|example| split.part(example) == Part::HeldOut)
        .collect();
    let count = held_out.iter().filter(|&&held| held).count();
    assert!(
        (340..460).contains(&count),
        "{count} of 2000 held out at 0.2"
    );
    let again: Vec<bool> = examples
        .iter()
        .map(|example| FractionSplit::new(0.2, 1).unwrap().part(example) == Part::HeldOut)
        .collect();
    assert_eq!(held_out, again);
    let reseeded: Vec<bool> = examples
        .iter()
        .map(|example| FractionSplit::new(0.2, 2).unwrap().part(example) == Part::HeldOut)
        .collect();
    assert_ne!(held_out, reseeded);
    let duplicate = examples[7].clone();
    assert_eq!(
        split.part(&duplicate),
        split.part(&examples[7]),
        "duplicates land on the same side"
    );

    let records = || {
        examples
            .iter()
            .enumerate()
            .map(|(index, example)| Ok(record(index as u64, example.clone())))
    };
    let train = split.select(records(), Part::Train).count();
    let test = split.select(records(), Part::HeldOut).count();
    assert_eq!((train, test), (2000 - count, count));
}

#[test]
fn a_split_fraction_must_be_strictly_between_0_and_1() {
    for fraction in [0.0, 1.0, -0.5, f64::NAN] {
        assert_eq!(
            FractionSplit::new(fraction, 0).unwrap_err().to_string(),
            format!("invalid held-out fraction: {fraction} is not strictly between 0 and 1")
        );
    }
}

#[test]
fn held_out_files_leave_the_training_files() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.jsonl", "b.jsonl", "test.jsonl"] {
        write_jsonl(dir.path(), name, &[r#"{"text": "x"}"#]);
    }
    let source =
        DataSource::open(&[dir.path().display().to_string()], RecordSpec::default()).unwrap();
    let held_out = vec![dir.path().join(".").join("test.jsonl")];
    let train = without_files(source.files().to_vec(), &held_out).unwrap();
    assert_eq!(
        train,
        [dir.path().join("a.jsonl"), dir.path().join("b.jsonl")]
    );
    let missing = dir.path().join("missing.jsonl");
    let error = without_files(train, std::slice::from_ref(&missing))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!("{}: ", missing.display())),
        "{error}"
    );
}

fn texts_of(records: impl Iterator<Item = datasets::Result<Record>>) -> Vec<String> {
    records
        .map(|record| match record.unwrap().example {
            Example::Text(text) => text,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_split_by_fraction_divides_every_file_between_its_parts() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..400)
        .map(|index| format!(r#"{{"text": "record {index}"}}"#))
        .collect();
    let (first, second) = lines.split_at(150);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    write_jsonl(dir.path(), "a.jsonl", &first);
    write_jsonl(dir.path(), "b.jsonl", &second);
    let source =
        DataSource::open(&[dir.path().display().to_string()], RecordSpec::default()).unwrap();
    let fraction = FractionSplit::new(0.25, 3).unwrap();
    let split = Split::new(source.clone(), HeldOut::Fraction(fraction)).unwrap();
    let train = texts_of(split.records(Part::Train));
    let held_out = texts_of(split.records(Part::HeldOut));
    assert_eq!(train.len() + held_out.len(), 400);
    assert!((70..130).contains(&held_out.len()), "{}", held_out.len());
    for text in &held_out {
        assert_eq!(fraction.part(&Example::Text(text.clone())), Part::HeldOut);
        assert!(!train.contains(text), "{text} is on both sides");
    }
    let mut all = [train.clone(), held_out].concat();
    all.sort_by_key(|text| text[7..].parse::<u32>().unwrap());
    let expected: Vec<String> = (0..400).map(|index| format!("record {index}")).collect();
    assert_eq!(all, expected, "every record on one side, none twice");
    assert_eq!(split.source(Part::HeldOut).files(), source.files());
    assert_eq!(
        split.origin(Part::HeldOut),
        format!("held-out part of {}", source.origin())
    );
}

#[test]
fn a_split_by_file_holds_those_files_out_of_the_training_data() {
    let dir = tempfile::tempdir().unwrap();
    let train_dir = dir.path().join("shards");
    std::fs::create_dir(&train_dir).unwrap();
    write_jsonl(&train_dir, "a.jsonl", &[r#"{"text": "a"}"#]);
    write_jsonl(&train_dir, "b.jsonl", &[r#"{"text": "b"}"#]);
    write_jsonl(&train_dir, "test.jsonl", &[r#"{"text": "test"}"#]);
    let source =
        DataSource::open(&[train_dir.display().to_string()], RecordSpec::default()).unwrap();
    let held_out = format!("{}/test*.jsonl", train_dir.display());
    let split = Split::new(source.clone(), HeldOut::Files(vec![held_out.clone()])).unwrap();
    assert_eq!(texts_of(split.records(Part::Train)), ["a", "b"]);
    assert_eq!(texts_of(split.records(Part::HeldOut)), ["test"]);
    assert_eq!(
        split.source(Part::HeldOut).files(),
        [train_dir.join("test.jsonl")]
    );

    let everything = format!("{}/*.jsonl", train_dir.display());
    let error = Split::new(source.clone(), HeldOut::Files(vec![everything.clone()]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "invalid held-out files: {everything} hold(s) out every training file, \
             leaving nothing to train on"
        )
    );
    let missing = dir.path().join("missing.jsonl").display().to_string();
    let error = Split::new(source, HeldOut::Files(vec![missing.clone()]))
        .unwrap_err()
        .to_string();
    assert_eq!(error, format!("{missing}: no such file, directory or glob"));
}
