//! Reading records from JSON Lines, Parquet and Arrow IPC files, directories
//! and globs, and the messages bad input gets.

mod data_files;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Date32Array, Int64Array};
use data_files::{
    batch, messages, strings, write_arrow_file, write_arrow_stream, write_jsonl, write_parquet,
};
use datasets::{Columns, DataSource, Example, Location, Message, RecordFormat, RecordSpec, Role};

fn spec(format: RecordFormat) -> RecordSpec {
    RecordSpec {
        format,
        columns: Columns::default(),
    }
}

fn read(files: Vec<PathBuf>, spec: RecordSpec) -> Vec<Example> {
    DataSource::from_files(files, spec)
        .records()
        .map(|record| record.unwrap().example)
        .collect()
}

fn first_error(files: Vec<PathBuf>, spec: RecordSpec) -> String {
    DataSource::from_files(files, spec)
        .records()
        .find_map(Result::err)
        .expect("an error")
        .to_string()
}

fn chat(turns: &[(Role, &str)]) -> Example {
    Example::Chat(
        turns
            .iter()
            .map(|&(role, content)| Message::new(role, content))
            .collect(),
    )
}

const CONVERSATIONS: [&[(&str, &str)]; 2] = [
    &[("user", "Hi"), ("assistant", "Hello!")],
    &[
        ("system", "Be brief."),
        ("user", "2+2?"),
        ("assistant", "4"),
        ("user", "3+3?"),
        ("assistant", "6"),
    ],
];

fn expected_conversations() -> Vec<Example> {
    vec![
        chat(&[(Role::User, "Hi"), (Role::Assistant, "Hello!")]),
        chat(&[
            (Role::System, "Be brief."),
            (Role::User, "2+2?"),
            (Role::Assistant, "4"),
            (Role::User, "3+3?"),
            (Role::Assistant, "6"),
        ]),
    ]
}

#[test]
fn messages_read_the_same_from_every_file_type() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write_jsonl(
        dir.path(),
        "chat.jsonl",
        &[
            r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "id": 1}"#,
            "",
            r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}, {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}]}"#,
        ],
    );
    let columns = batch(vec![
        ("messages", messages(&CONVERSATIONS)),
        ("source", strings(&[Some("a"), None])),
    ]);
    let parquet = write_parquet(&dir.path().join("chat.parquet"), &columns, 1);
    let arrow = write_arrow_file(&dir.path().join("chat.arrow"), &columns, 1);
    let stream = write_arrow_stream(&dir.path().join("chat-stream.arrow"), &columns, 2);
    for file in [jsonl, parquet, arrow, stream] {
        for format in [RecordFormat::Auto, RecordFormat::Messages] {
            assert_eq!(
                read(vec![file.clone()], spec(format)),
                expected_conversations(),
                "{}",
                file.display()
            );
        }
    }
}

#[test]
fn prompt_completion_and_text_read_the_same_from_every_file_type() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write_jsonl(
        dir.path(),
        "pc.jsonl",
        &[
            r#"{"prompt": "Capital of France?", "completion": "Paris.", "system": "Answer in one word."}"#,
            r#"{"prompt": "Colour of the sky?", "completion": "Blue.", "system": null}"#,
        ],
    );
    let columns = batch(vec![
        (
            "prompt",
            strings(&[Some("Capital of France?"), Some("Colour of the sky?")]),
        ),
        ("completion", strings(&[Some("Paris."), Some("Blue.")])),
        ("system", strings(&[Some("Answer in one word."), None])),
    ]);
    let parquet = write_parquet(&dir.path().join("pc.parquet"), &columns, 10);
    let arrow = write_arrow_file(&dir.path().join("pc.feather"), &columns, 10);
    let expected = vec![
        chat(&[
            (Role::System, "Answer in one word."),
            (Role::User, "Capital of France?"),
            (Role::Assistant, "Paris."),
        ]),
        chat(&[
            (Role::User, "Colour of the sky?"),
            (Role::Assistant, "Blue."),
        ]),
    ];
    for file in [jsonl, parquet, arrow] {
        assert_eq!(
            read(vec![file.clone()], spec(RecordFormat::PromptCompletion)),
            expected,
            "{}",
            file.display()
        );
        assert_eq!(
            read(vec![file.clone()], spec(RecordFormat::Auto)),
            expected,
            "{}",
            file.display()
        );
    }

    let text = batch(vec![("text", strings(&[Some("one"), Some("two")]))]);
    let parquet = write_parquet(&dir.path().join("text.parquet"), &text, 1);
    let jsonl = write_jsonl(
        dir.path(),
        "text.ndjson",
        &[r#"{"text": "one"}"#, r#"{"text": "two"}"#],
    );
    for file in [jsonl, parquet] {
        assert_eq!(
            read(vec![file], spec(RecordFormat::Text)),
            [Example::Text("one".into()), Example::Text("two".into())]
        );
    }
}

#[test]
fn auto_takes_messages_then_prompt_completion_then_text() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_jsonl(
        dir.path(),
        "mixed.jsonl",
        &[
            r#"{"text": "t", "prompt": "p", "completion": "c", "messages": [{"role": "user", "content": "m"}, {"role": "assistant", "content": "r"}]}"#,
            r#"{"text": "t", "prompt": "p", "completion": "c"}"#,
            r#"{"text": "t", "prompt": "p"}"#,
        ],
    );
    assert_eq!(
        read(vec![file], spec(RecordFormat::Auto)),
        [
            chat(&[(Role::User, "m"), (Role::Assistant, "r")]),
            chat(&[(Role::User, "p"), (Role::Assistant, "c")]),
            Example::Text("t".into()),
        ]
    );
}

#[test]
fn column_names_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let columns = batch(vec![
        ("question", strings(&[Some("Why?")])),
        ("answer", strings(&[Some("Because.")])),
    ]);
    let parquet = write_parquet(&dir.path().join("qa.parquet"), &columns, 1);
    let jsonl = write_jsonl(
        dir.path(),
        "qa.jsonl",
        &[r#"{"question": "Why?", "answer": "Because."}"#],
    );
    let mut spec = spec(RecordFormat::Auto);
    spec.columns.set("prompt", "question").unwrap();
    spec.columns.set("completion", "answer").unwrap();
    for file in [jsonl, parquet] {
        assert_eq!(
            read(vec![file], spec.clone()),
            [chat(&[(Role::User, "Why?"), (Role::Assistant, "Because.")])]
        );
    }
    assert_eq!(
        Columns::default().set("answer", "x").unwrap_err(),
        "unknown field 'answer' (expected text, prompt, completion, system, messages)"
    );
}

#[test]
fn records_carry_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let texts: Vec<Option<&str>> = vec![Some("a"), Some("b"), Some("c"), Some("d"), Some("e")];
    let columns = batch(vec![("text", strings(&texts))]);
    let parquet = write_parquet(&dir.path().join("t.parquet"), &columns, 2);
    let arrow = write_arrow_file(&dir.path().join("t.arrow"), &columns, 3);
    let jsonl = write_jsonl(
        dir.path(),
        "t.jsonl",
        &[r#"{"text": "a"}"#, "  ", r#"{"text": "b"}"#],
    );
    let locations: Vec<String> =
        DataSource::from_files(vec![jsonl, parquet, arrow], spec(RecordFormat::Text))
            .records()
            .map(|record| record.unwrap().location.to_string())
            .collect();
    let at = |name: &str| dir.path().join(name).display().to_string();
    let expected = vec![
        format!("{}:1", at("t.jsonl")),
        format!("{}:3", at("t.jsonl")),
        format!("{}: row 0 (row group 0)", at("t.parquet")),
        format!("{}: row 1 (row group 0)", at("t.parquet")),
        format!("{}: row 2 (row group 1)", at("t.parquet")),
        format!("{}: row 3 (row group 1)", at("t.parquet")),
        format!("{}: row 4 (row group 2)", at("t.parquet")),
        format!("{}: row 0 (record batch 0)", at("t.arrow")),
        format!("{}: row 1 (record batch 0)", at("t.arrow")),
        format!("{}: row 2 (record batch 0)", at("t.arrow")),
        format!("{}: row 3 (record batch 1)", at("t.arrow")),
        format!("{}: row 4 (record batch 1)", at("t.arrow")),
    ];
    assert_eq!(locations, expected);
    assert!(matches!(
        DataSource::from_files(vec![dir.path().join("t.parquet")], spec(RecordFormat::Text)).records().next(),
        Some(Ok(record)) if matches!(&record.location, Location::ParquetRow { row: 0, row_group: 0, .. })
    ));
}

#[test]
fn directories_and_globs_list_data_files_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for name in [
        "b.jsonl",
        "a/2.jsonl",
        "a/10.jsonl",
        ".hidden/x.jsonl",
        ".skip.jsonl",
    ] {
        write_jsonl(root, name, &[r#"{"text": "x"}"#]);
    }
    std::fs::write(root.join("README.md"), "not data").unwrap();
    write_parquet(
        &root.join("c.parquet"),
        &batch(vec![("text", strings(&[Some("y")]))]),
        1,
    );
    let relative = |files: &[PathBuf]| -> Vec<String> {
        files
            .iter()
            .map(|file| file.strip_prefix(root).unwrap().display().to_string())
            .collect()
    };
    let root_text = root.display().to_string();
    let source = DataSource::open(&[root_text.as_str()], spec(RecordFormat::Auto)).unwrap();
    assert_eq!(
        relative(source.files()),
        ["a/10.jsonl", "a/2.jsonl", "b.jsonl", "c.parquet"]
    );
    assert_eq!(source.records().count(), 4);

    let glob = format!("{root_text}/**/*.jsonl");
    let file = format!("{root_text}/b.jsonl");
    let files = datasets::source::resolve_files(&[glob.as_str(), file.as_str()]).unwrap();
    assert_eq!(
        relative(&files),
        ["a/10.jsonl", "a/2.jsonl", "b.jsonl"],
        "a file named twice is read once"
    );
    assert_eq!(
        source.origin(),
        format!("{} and 3 more file(s)", root.join("a/10.jsonl").display())
    );
}

fn source_error(patterns: &[&str]) -> String {
    DataSource::open(patterns, spec(RecordFormat::Auto))
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_data_arguments_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    assert_eq!(
        source_error(&[&format!("{root}/notes.txt")]),
        format!(
            "{root}/notes.txt: unknown data file type (expected .jsonl, .ndjson or .json for JSON Lines, \
             .parquet, or .arrow, .ipc, .feather for Arrow IPC)"
        )
    );
    assert_eq!(
        source_error(&[&root]),
        format!(
            "{root}: no data files (.jsonl, .ndjson, .json, .parquet, .arrow, .ipc, .feather) there"
        )
    );
    assert_eq!(
        source_error(&[&format!("{root}/*.parquet")]),
        format!(
            "{root}/*.parquet: no data files (.jsonl, .ndjson, .json, .parquet, .arrow, .ipc, .feather) there"
        )
    );
    assert_eq!(
        source_error(&[&format!("{root}/missing.jsonl")]),
        format!("{root}/missing.jsonl: no such file, directory or glob")
    );
    assert!(
        source_error(&[&format!("{root}/[.jsonl")])
            .starts_with(&format!("{root}/[.jsonl: invalid glob: ")),
        "{}",
        source_error(&[&format!("{root}/[.jsonl")])
    );
    let none: [&str; 0] = [];
    assert_eq!(
        source_error(&none),
        "data: no data file, directory or glob given"
    );
}

fn jsonl_error(line: &str, format: RecordFormat) -> (String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_jsonl(dir.path(), "data.jsonl", &["", line]);
    let message = first_error(vec![file.clone()], spec(format));
    (message, file)
}

fn assert_jsonl_error(line: &str, format: RecordFormat, expected: &str) {
    let (message, file) = jsonl_error(line, format);
    assert_eq!(
        message,
        format!("{}:2: {expected}", file.display()),
        "for line {line}"
    );
}

#[test]
fn malformed_json_names_file_line_and_parse_error() {
    assert_jsonl_error(
        r#"{"text": "unterminated}"#,
        RecordFormat::Text,
        "invalid JSON: EOF while parsing a string at line 1 column 23",
    );
    assert_jsonl_error(
        r#"["text"]"#,
        RecordFormat::Text,
        "expected a JSON object on each line (JSON Lines), found a list",
    );
    assert_jsonl_error(
        "{\"text\": \"\u{0}\"}",
        RecordFormat::Text,
        "invalid JSON: control character (\\u0000-\\u001F) found while parsing a string at line 1 column 11",
    );
}

#[test]
fn missing_fields_name_the_field_and_the_formats_tried() {
    assert_jsonl_error(
        r#"{"prompt": "p", "answer": "a"}"#,
        RecordFormat::PromptCompletion,
        "missing field 'completion' (record format prompt-completion reads 'prompt' and 'completion'); \
         the record has the fields 'prompt', 'answer'",
    );
    assert_jsonl_error(
        r#"{"question": "q"}"#,
        RecordFormat::Auto,
        "no record format fits: tried messages ('messages'), prompt-completion ('prompt' and 'completion'), \
         text ('text'); the record has only the field 'question'",
    );
    assert_jsonl_error(
        "{}",
        RecordFormat::Messages,
        "missing field 'messages' (record format messages reads 'messages'); the record has no fields",
    );
}

#[test]
fn wrong_types_name_the_field_and_what_was_expected() {
    let cases = [
        (
            r#"{"text": 42}"#,
            RecordFormat::Text,
            "field 'text': expected a string, found a number (42)",
        ),
        (
            r#"{"text": null}"#,
            RecordFormat::Text,
            "field 'text': expected a string, found null",
        ),
        (
            r#"{"prompt": "p", "completion": ["c"]}"#,
            RecordFormat::Auto,
            "field 'completion': expected a string, found a list",
        ),
        (
            r#"{"prompt": "p", "completion": "c", "system": true}"#,
            RecordFormat::PromptCompletion,
            "field 'system': expected a string, found a boolean (true)",
        ),
        (
            r#"{"messages": []}"#,
            RecordFormat::Auto,
            "field 'messages': expected a non-empty list of {role, content} messages, found an empty list",
        ),
        (
            r#"{"messages": "hello"}"#,
            RecordFormat::Messages,
            "field 'messages': expected a non-empty list of {role, content} messages, found \"hello\"",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]}"#,
            RecordFormat::Messages,
            "field 'messages[1].role': expected \"system\", \"user\" or \"assistant\", found \"tool\"",
        ),
        (
            r#"{"messages": [{"role": "user"}]}"#,
            RecordFormat::Messages,
            "field 'messages[0].content': expected a string, found no such key",
        ),
        (
            r#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}"#,
            RecordFormat::Messages,
            "field 'messages[0].content': expected a string, found a list",
        ),
        (
            r#"{"messages": ["hi"]}"#,
            RecordFormat::Messages,
            "field 'messages[0]': expected a {role, content} object, found \"hi\"",
        ),
    ];
    for (line, format, expected) in cases {
        assert_jsonl_error(line, format, expected);
    }
}

#[test]
fn reading_stops_at_the_first_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_jsonl(dir.path(), "data.jsonl", &["{", r#"{"text": "after"}"#]);
    let results: Vec<_> = DataSource::from_files(vec![file], spec(RecordFormat::Text))
        .records()
        .collect();
    assert_eq!(results.len(), 1);
    assert!(results[0].is_err());
}

fn columnar_error(name: &str, column: ArrayRef) -> (String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let columns = batch(vec![("text", column)]);
    let path = dir.path().join(name);
    if name.ends_with(".parquet") {
        write_parquet(&path, &columns, 2);
    } else {
        write_arrow_file(&path, &columns, 2);
    }
    let message = first_error(vec![path.clone()], spec(RecordFormat::Text));
    (message, path)
}

#[test]
fn columnar_type_errors_name_row_and_row_group() {
    let (message, path) =
        columnar_error("bad.parquet", Arc::new(Int64Array::from(vec![1, 2, 3, 4])));
    assert_eq!(
        message,
        format!(
            "{}: row 0 (row group 0): field 'text': expected a string, found a number (1)",
            path.display()
        )
    );
    let (message, path) = columnar_error(
        "null.parquet",
        strings(&[Some("a"), Some("b"), Some("c"), None]),
    );
    assert_eq!(
        message,
        format!(
            "{}: row 3 (row group 1): field 'text': expected a string, found null",
            path.display()
        )
    );
    let (message, path) = columnar_error("date.arrow", Arc::new(Date32Array::from(vec![1, 2])));
    assert_eq!(
        message,
        format!(
            "{}: row 0 (record batch 0): field 'text': expected a string, number, boolean, list or struct column, \
             found Arrow type Date32",
            path.display()
        )
    );
}

fn corrupt(name: &str, bytes: &[u8]) -> (String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (
        first_error(vec![path.clone()], spec(RecordFormat::Auto)),
        path,
    )
}

#[test]
fn unreadable_columnar_files_name_the_file() {
    let (message, path) = corrupt("broken.parquet", b"PAR1 this is not parquet PAR1");
    assert!(
        message.starts_with(&format!(
            "{}: not a readable Parquet file: ",
            path.display()
        )),
        "{message}"
    );
    let (message, path) = corrupt("broken.arrow", b"ARROW1\0\0garbage");
    assert!(
        message.starts_with(&format!(
            "{}: not a readable Arrow IPC file: ",
            path.display()
        )),
        "{message}"
    );
    let (message, path) = corrupt("empty.arrow", b"");
    assert!(
        message.starts_with(&format!(
            "{}: not a readable Arrow IPC file: ",
            path.display()
        )),
        "{message}"
    );
}

#[test]
fn a_vanished_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("gone.jsonl");
    let message = first_error(vec![path.to_path_buf()], spec(RecordFormat::Auto));
    assert!(
        message.starts_with(&format!("{}: ", path.display())),
        "{message}"
    );
    assert!(message.contains("No such file"), "{message}");
}

/// A JSON Lines file is read a line at a time: records come out of a named
/// pipe whose writer has not finished, as they would out of a file too large
/// to hold in memory.
#[cfg(unix)]
#[test]
fn json_lines_yield_records_before_the_file_ends() {
    use std::io::Write;

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stream.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (done, wait_done) = std::sync::mpsc::channel::<()>();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            for index in 0..3 {
                writeln!(file, r#"{{"text": "line {index}"}}"#).unwrap();
            }
            file.flush().unwrap();
            // The file stays open, unfinished, until the reader has every line.
            wait_done.recv().unwrap();
        })
    };
    let source = DataSource::from_files(vec![fifo], spec(RecordFormat::Text));
    let mut records = source.records();
    for index in 0..3 {
        assert_eq!(
            records.next().unwrap().unwrap().example,
            Example::Text(format!("line {index}"))
        );
    }
    done.send(()).unwrap();
    writer.join().unwrap();
    assert!(records.next().is_none());
}
