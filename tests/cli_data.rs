//! `decant data stats` end to end on JSON Lines and Parquet files written here,
//! with the reference teacher's tokenizer and chat template.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use common::{decant, reference_model, stderr, stdout};
use parquet::arrow::ArrowWriter;
use serde_json::Value as Json;

const QA: [(&str, &str); 4] = [
    ("What is the capital of France?", "Paris."),
    ("Name a primary colour.", "Red, for one."),
    (
        "Write a haiku about rain.",
        "Soft rain on the roof\nthe garden drinks in silence\nclouds drift further on",
    ),
    ("Say nothing.", "…"),
];

fn write_jsonl(dir: &Path) -> PathBuf {
    let path = dir.join("qa.jsonl");
    let lines: Vec<String> = QA
        .iter()
        .map(|(prompt, completion)| {
            serde_json::json!({"prompt": prompt, "completion": completion}).to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn write_parquet(dir: &Path) -> PathBuf {
    let path = dir.join("qa.parquet");
    let column = |values: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let batch = RecordBatch::try_from_iter([
        (
            "prompt",
            column(QA.iter().map(|(prompt, _)| *prompt).collect()),
        ),
        (
            "completion",
            column(QA.iter().map(|(_, completion)| *completion).collect()),
        ),
    ])
    .unwrap();
    let mut writer =
        ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

fn stats_json(args: &[&str]) -> Json {
    let model = reference_model();
    let mut all = vec![
        "data",
        "stats",
        "--json",
        "--model",
        model.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = decant(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("one JSON object")
}

#[test]
fn jsonl_and_parquet_give_the_same_stats() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write_jsonl(dir.path());
    let parquet = write_parquet(dir.path());
    let from_jsonl = stats_json(&["--data", jsonl.to_str().unwrap(), "--max-length", "48"]);
    let from_parquet = stats_json(&["--data", parquet.to_str().unwrap(), "--max-length", "48"]);
    assert_eq!(from_jsonl["stats"], from_parquet["stats"]);
    assert_eq!(from_jsonl["format"], "auto");
    assert_eq!(from_jsonl["train_on"], "all");
    assert_eq!(from_parquet["data"], serde_json::json!([parquet]));

    let stats = &from_jsonl["stats"];
    assert_eq!(stats["examples"], 4);
    assert_eq!(stats["max_length"], 48);
    assert_eq!(stats["truncation"], "right");
    let tokens = stats["tokens"].as_u64().unwrap();
    let trained = stats["trained_tokens"].as_u64().unwrap();
    assert!(
        trained > 4 && trained < tokens / 2,
        "replies only: {trained} of {tokens}"
    );
    let share = stats["trained_share"].as_f64().unwrap();
    assert!((share - trained as f64 / tokens as f64).abs() < 1e-12);
    let histogram = stats["histogram"].as_array().unwrap();
    let counted: u64 = histogram
        .iter()
        .map(|bin| bin["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 4);
    // The default system prompt alone is some 20 tokens: every example is over 16.
    let short = stats_json(&[
        "--data",
        jsonl.to_str().unwrap(),
        "--max-length",
        "24",
        "--truncation",
        "left",
    ]);
    assert_eq!(short["stats"]["over_max_length"], 4);
    assert_eq!(short["stats"]["over_max_length_share"], 1.0);
    assert_eq!(short["stats"]["truncated"], 4);
    assert_eq!(short["stats"]["tokens"], 4 * 24);
}

#[test]
fn plain_output_is_a_readable_report() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write_jsonl(dir.path());
    let model = reference_model();
    let out = decant(&[
        "data",
        "stats",
        "--data",
        jsonl.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--max-length",
        "40",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    let labels: Vec<&str> = report
        .lines()
        .filter_map(|line| line.split(':').next())
        .collect();
    assert_eq!(
        labels[..7],
        [
            "data",
            "model",
            "examples",
            "tokens",
            "too long",
            "length",
            "histogram (tokens per example)"
        ],
        "{report}"
    );
    assert!(
        report.contains(&format!("data:      {}\n", jsonl.display())),
        "{report}"
    );
    assert!(
        report.contains("examples:  4 (4 kept, 0 dropped as too long, 0 with nothing to train on)"),
        "{report}"
    );
}

#[test]
fn text_data_directories_and_renamed_columns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("shards")).unwrap();
    for (name, text) in [("b.jsonl", "second shard"), ("a.jsonl", "first shard")] {
        std::fs::write(
            dir.path().join("shards").join(name),
            format!("{{\"body\": \"{text}\"}}\n"),
        )
        .unwrap();
    }
    let shards = dir.path().join("shards");
    let report = stats_json(&[
        "--data",
        shards.to_str().unwrap(),
        "--format",
        "text",
        "--column",
        "text=body",
    ]);
    assert_eq!(
        report["data"],
        serde_json::json!([shards.join("a.jsonl"), shards.join("b.jsonl")])
    );
    assert_eq!(report["stats"]["examples"], 2);
    let tokens = report["stats"]["tokens"].as_u64().unwrap();
    assert_eq!(
        report["stats"]["trained_tokens"],
        tokens - 2,
        "all but each document's first token"
    );
}

fn failure(args: &[&str]) -> (i32, String) {
    let out = decant(args);
    assert!(stdout(&out).is_empty(), "nothing on stdout on failure");
    (out.status.code().unwrap(), stderr(&out))
}

#[test]
fn bad_input_is_a_user_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = reference_model();
    let model = model.to_str().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"prompt\": \"p\", \"completion\": \"c\"}\n{\"prompt\": \n",
    )
    .unwrap();
    let (code, message) = failure(&[
        "data",
        "stats",
        "--data",
        bad.to_str().unwrap(),
        "--model",
        model,
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        message,
        format!(
            "error: {}:2: invalid JSON: EOF while parsing a value at line 1 column 11\n",
            bad.display()
        )
    );

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let (code, message) = failure(&[
        "data",
        "stats",
        "--data",
        empty.to_str().unwrap(),
        "--model",
        model,
    ]);
    assert_eq!(
        (code, message),
        (1, format!("error: {}: no examples\n", empty.display()))
    );

    let jsonl = write_jsonl(dir.path());
    let args = [
        "data",
        "stats",
        "--data",
        jsonl.to_str().unwrap(),
        "--model",
        model,
    ];
    let (code, message) =
        failure(&[&args[..], &["--max-length", "16", "--truncation", "error"]].concat());
    assert_eq!(code, 1);
    assert!(
        message.starts_with(&format!("error: {}:1: example is ", jsonl.display())),
        "{message}"
    );
    assert!(
        message.contains("longer than the maximum length 16 (truncation = error"),
        "{message}"
    );

    let (code, message) =
        failure(&[&args[..], &["--max-length", "16", "--truncation", "drop"]].concat());
    assert_eq!(code, 1);
    assert_eq!(
        message,
        format!(
            "error: {}: all 4 examples were dropped (4 longer than the maximum length 16 under truncation = drop)\n",
            jsonl.display()
        )
    );

    let (code, message) = failure(&[&args[..], &["--format", "messages"]].concat());
    assert_eq!(code, 1);
    assert!(
        message.starts_with(&format!(
            "error: {}:1: missing field 'messages' (record format messages",
            jsonl.display()
        )),
        "{message}"
    );

    let (code, message) = failure(&[
        "data",
        "stats",
        "--data",
        "/nonexistent/x.jsonl",
        "--model",
        model,
    ]);
    assert_eq!(
        (code, message),
        (
            1,
            "error: /nonexistent/x.jsonl: no such file, directory or glob\n".to_owned()
        )
    );
}

#[test]
fn bad_options_are_usage_errors() {
    let model = reference_model();
    let model = model.to_str().unwrap();
    for (option, value, expected) in [
        ("--format", "chat", "unknown record format 'chat'"),
        ("--truncation", "middle", "unknown truncation 'middle'"),
        ("--column", "answer=x", "unknown field 'answer'"),
        ("--column", "prompt", "'prompt': expected FIELD=NAME"),
        ("--train-on", "some", "unknown assistant turns 'some'"),
    ] {
        let (code, message) = failure(&[
            "data", "stats", "--data", "x.jsonl", "--model", model, option, value,
        ]);
        assert_eq!(code, 2, "{option} {value}: {message}");
        assert!(message.contains(expected), "{option} {value}: {message}");
    }
    let (code, message) = failure(&["data", "stats", "--model", model]);
    assert_eq!(code, 2);
    assert!(message.contains("--data <FILE>"), "{message}");
}

#[test]
fn held_out_data_by_fraction_or_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..60)
        .map(|index| serde_json::json!({"text": format!("sentence number {index}")}).to_string())
        .collect();
    let data = dir.path().join("train.jsonl");
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let data = data.to_str().unwrap();

    let whole = stats_json(&["--data", data]);
    assert_eq!(whole["part"], Json::Null);
    let fraction = [
        "--data",
        data,
        "--held-out-fraction",
        "0.3",
        "--split-seed",
        "5",
    ];
    let train = stats_json(&fraction);
    let held_out = stats_json(&[&fraction[..], &["--part", "held-out"]].concat());
    assert_eq!(train["part"], "train");
    assert_eq!(held_out["part"], "held-out");
    assert_eq!(held_out["data"], serde_json::json!([data]));
    for key in ["examples", "tokens", "trained_tokens"] {
        let (train, held_out) = (&train["stats"][key], &held_out["stats"][key]);
        assert!(
            train.as_u64().unwrap() > 0 && held_out.as_u64().unwrap() > 0,
            "{key}"
        );
        assert_eq!(
            train.as_u64().unwrap() + held_out.as_u64().unwrap(),
            whole["stats"][key].as_u64().unwrap(),
            "{key}: the parts add up to the whole"
        );
    }
    let reseeded = stats_json(&[
        "--data",
        data,
        "--held-out-fraction",
        "0.3",
        "--split-seed",
        "6",
    ]);
    assert_ne!(
        reseeded["stats"], train["stats"],
        "the seed chooses the records"
    );

    let test = dir.path().join("test.jsonl");
    std::fs::write(
        &test,
        "{\"text\": \"held out\"}\n{\"text\": \"also held out\"}\n",
    )
    .unwrap();
    let test = test.to_str().unwrap();
    let directory = dir.path().to_str().unwrap();
    let train = stats_json(&["--data", directory, "--held-out", test]);
    assert_eq!(train["data"], serde_json::json!([data]));
    assert_eq!(train["stats"], whole["stats"]);
    let held_out = stats_json(&[
        "--data",
        directory,
        "--held-out",
        test,
        "--part",
        "held-out",
    ]);
    assert_eq!(held_out["data"], serde_json::json!([test]));
    assert_eq!(held_out["stats"]["examples"], 2);

    let model = reference_model();
    let model = model.to_str().unwrap();
    let base = ["data", "stats", "--data", data, "--model", model];
    let (code, message) = failure(&[&base[..], &["--held-out-fraction", "1.5"]].concat());
    assert_eq!(
        (code, message),
        (
            1,
            "error: invalid held-out fraction: 1.5 is not strictly between 0 and 1\n".to_owned()
        )
    );
    let (code, message) = failure(&[&base[..], &["--held-out", data]].concat());
    assert_eq!(
        (code, message),
        (
            1,
            format!(
                "error: invalid held-out files: {data} hold(s) out every training file, \
                 leaving nothing to train on\n"
            )
        )
    );
    let (code, message) = failure(
        &[
            &base[..],
            &[
                "--held-out-fraction",
                "0.999",
                "--split-seed",
                "1",
                "--part",
                "train",
            ],
        ]
        .concat(),
    );
    assert_eq!(
        (code, message),
        (1, format!("error: train part of {data}: no examples\n"))
    );
    for (args, expected) in [
        (&["--part", "held-out"][..], "--held-out-fraction <F>"),
        (&["--split-seed", "3"][..], "--held-out-fraction <F>"),
        (
            &["--held-out-fraction", "0.2", "--held-out", test][..],
            "cannot be used with",
        ),
        (
            &["--held-out-fraction", "0.2", "--part", "eval"][..],
            "unknown part 'eval' (expected train or held-out)",
        ),
    ] {
        let (code, message) = failure(&[&base[..], args].concat());
        assert_eq!(code, 2, "{args:?}: {message}");
        assert!(message.contains(expected), "{args:?}: {message}");
    }
}
