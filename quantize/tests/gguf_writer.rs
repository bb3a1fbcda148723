//! The writer's rules: what it refuses, in which order data must come, and that a
//! file appears at its path only when complete.

use std::path::Path;

use proptest::prelude::*;
use quantize::GgmlType;
use quantize::gguf::{
    Array, GgufError, GgufFile, GgufWriter, Problem, Sink, TensorDataWriter, TensorInfoWriter,
    Value,
};

fn problem(result: Result<impl Sized, GgufError>) -> Problem {
    match result {
        Err(GgufError::Invalid(problem)) => problem,
        Err(other) => panic!("expected a content error, got {other}"),
        Ok(_) => panic!("expected an error"),
    }
}

/// Three tensors: a 2×8 F32, a 32-element Q8_0 and a 3-element F16.
fn three_tensors() -> TensorInfoWriter {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama").expect("metadata");
    let mut infos = w.finish_metadata();
    infos
        .tensor_info("a", &[8, 2], GgmlType::F32)
        .and_then(|i| i.tensor_info("b", &[32], GgmlType::Q8_0))
        .and_then(|i| i.tensor_info("c", &[3], GgmlType::F16))
        .expect("tensor infos");
    infos
}

fn started() -> TensorDataWriter<Vec<u8>> {
    three_tensors().write_to(Vec::new()).expect("header")
}

#[test]
fn duplicate_and_empty_keys_are_refused() {
    let mut w = GgufWriter::new();
    w.metadata("general.name", "x").expect("first");
    let err = w.metadata("general.name", 3u32).expect_err("duplicate");
    assert_eq!(err.to_string(), "cannot write GGUF: duplicate metadata key 'general.name'");
    assert_eq!(problem(w.metadata("", 1u8)), Problem::EmptyKey { index: 1 });
}

#[test]
fn duplicate_tensor_names_are_refused() {
    let mut infos = GgufWriter::new().finish_metadata();
    infos.tensor_info("blk.0.attn_q.weight", &[4], GgmlType::F32).expect("first");
    let err = infos.tensor_info("blk.0.attn_q.weight", &[8], GgmlType::F16).expect_err("duplicate");
    assert_eq!(err.to_string(), "cannot write GGUF: duplicate tensor name 'blk.0.attn_q.weight'");
}

#[test]
fn general_alignment_sets_the_alignment_and_must_be_a_power_of_two_u32() {
    let mut w = GgufWriter::new();
    assert_eq!(w.alignment(), 32);
    w.metadata("general.alignment", 64u32).expect("64");
    assert_eq!(w.alignment(), 64);
    let mut infos = w.finish_metadata();
    infos.tensor_info("a", &[3], GgmlType::F32).expect("a");
    infos.tensor_info("b", &[3], GgmlType::F32).expect("b");
    assert_eq!(infos.tensors()[1].offset, 64);

    assert_eq!(
        problem(GgufWriter::new().metadata("general.alignment", 48u32)),
        Problem::BadAlignment { value: 48 }
    );
    assert_eq!(
        problem(GgufWriter::new().metadata("general.alignment", 0u32)),
        Problem::BadAlignment { value: 0 }
    );
    let err = GgufWriter::new().metadata("general.alignment", 64u64).expect_err("u64");
    assert_eq!(
        err.to_string(),
        "cannot write GGUF: general.alignment must be a u32, but it is a u64"
    );
}

#[test]
fn shapes_llama_cpp_cannot_load_are_refused() {
    let mut infos = GgufWriter::new().finish_metadata();
    let err = infos.tensor_info("t", &[1, 1, 1, 1, 1], GgmlType::F32).expect_err("5-D");
    assert_eq!(
        err.to_string(),
        "cannot write GGUF: tensor 't' has 5 dimensions; ggml allows at most 4"
    );
    assert!(matches!(
        problem(infos.tensor_info("q", &[48, 2], GgmlType::Q4_0)),
        Problem::NotWholeBlocks { row: 48, block: 32, .. }
    ));
    assert!(matches!(
        problem(infos.tensor_info("big", &[1 << 40, 1 << 40], GgmlType::F32)),
        Problem::ElementCountOverflow { .. }
    ));
    assert!(matches!(
        problem(infos.tensor_info("neg", &[1 << 63], GgmlType::F32)),
        Problem::NegativeDim { axis: 0, .. }
    ));
    let long = "x".repeat(64);
    assert_eq!(
        problem(infos.tensor_info(long.as_str(), &[1], GgmlType::F32)),
        Problem::NameTooLong { name: long, len: 64, max: 63 }
    );
    infos.tensor_info("x".repeat(63), &[1], GgmlType::F32).expect("63 bytes fit");
    assert_eq!(infos.tensors().len(), 1, "refused tensors are not declared");
}

#[test]
fn offsets_are_padded_sizes_in_declaration_order() {
    let infos = three_tensors();
    let offsets: Vec<u64> = infos.tensors().iter().map(|t| t.offset).collect();
    assert_eq!(offsets, [0, 64, 64 + 64]);
}

#[test]
fn tensor_data_must_come_in_declaration_order() {
    let mut data = started();
    let err = data.write_tensor("b", &[0; 34]).expect_err("out of order");
    assert_eq!(
        err.to_string(),
        "cannot write GGUF: tensor data out of order: expected 'a' next, got 'b'"
    );
    data.write_tensor("a", &[0; 64]).expect("a");
    data.write_tensor("b", &[0; 34]).expect("b");
    data.write_tensor("c", &[0; 6]).expect("c");
    assert_eq!(problem(data.write_tensor("d", &[])), Problem::NoTensorLeft { got: "d".into() });
    data.finish().expect("finish");
}

#[test]
fn tensor_data_must_have_the_size_its_shape_needs() {
    let mut data = started();
    let err = data.write_tensor("a", &[0; 60]).expect_err("short");
    assert_eq!(
        err.to_string(),
        "cannot write GGUF: tensor 'a' needs 64 bytes of data, but 60 were given"
    );
    assert_eq!(
        problem(data.write_tensor("a", &[0; 65])),
        Problem::TensorLength { name: "a".into(), expected: 64, got: 65 }
    );
    data.write_tensor("a", &[0; 64]).expect("a after the refusals");

    let mut stream = data.begin_tensor("b").expect("b");
    stream.write(&[1; 30]).expect("30");
    assert_eq!(stream.remaining(), 4);
    assert_eq!(
        problem(stream.write(&[1; 5])),
        Problem::TensorLength { name: "b".into(), expected: 34, got: 35 }
    );
    assert_eq!(
        problem(stream.finish()),
        Problem::TensorLength { name: "b".into(), expected: 34, got: 30 }
    );
    let err = data.begin_tensor("b").expect_err("unfinished");
    assert_eq!(
        err.to_string(),
        "cannot write GGUF: tensor 'b' is unfinished: 30 of its 34 bytes were written"
    );
    assert!(matches!(problem(data.finish()), Problem::TensorUnfinished { .. }));
}

#[test]
fn finishing_before_all_tensors_are_written_is_refused() {
    let mut data = started();
    data.write_tensor("a", &[0; 64]).expect("a");
    let err = data.finish().expect_err("missing b");
    assert_eq!(
        err.to_string(),
        "cannot write GGUF: tensor 'b' was declared but its data was never written"
    );
}

#[test]
fn a_file_appears_only_when_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.gguf");
    let entries = |dir: &Path| std::fs::read_dir(dir).expect("dir").count();

    let mut data = three_tensors().write_file(&path).expect("create");
    data.write_tensor("a", &[0; 64]).expect("a");
    assert!(!path.exists(), "nothing at the final path while writing");
    assert_eq!(entries(dir.path()), 1, "only the temporary file");
    drop(data);
    assert_eq!(entries(dir.path()), 0, "an abandoned write leaves nothing behind");

    let mut data = three_tensors().write_file(&path).expect("create");
    data.write_tensor("a", &[0; 64]).expect("a");
    data.finish().expect_err("missing tensors");
    assert_eq!(entries(dir.path()), 0, "a refused finish leaves nothing behind");

    std::fs::write(&path, b"old content").expect("old file");
    let mut data = three_tensors().write_file(&path).expect("create");
    for (name, len) in [("a", 64), ("b", 34), ("c", 6)] {
        data.write_tensor(name, &vec![7; len]).expect(name);
    }
    assert_eq!(std::fs::read(&path).expect("old"), b"old content", "replaced only at the end");
    assert_eq!(data.finish().expect("finish"), path);
    assert_eq!(entries(dir.path()), 1);
    let file = GgufFile::open(&path).expect("reads back");
    assert_eq!(file.tensor_data(file.tensor("b").expect("b")), [7; 34]);
}

#[test]
fn unwritable_paths_report_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing-dir").join("model.gguf");
    let err = three_tensors().write_file(&path).expect_err("no such directory");
    assert!(matches!(err, GgufError::Io { .. }));
    assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
}

#[test]
fn arrays_nested_deeper_than_the_reader_accepts_are_refused() {
    let nest = |levels: usize| (1..levels).fold(Array::U8(vec![1]), |a, _| Array::Array(vec![a]));
    assert_eq!(nest(16).depth(), 16);
    GgufWriter::new().metadata("ok", nest(16)).expect("16 levels");
    let err = GgufWriter::new().metadata("deep", nest(17)).expect_err("17 levels");
    assert_eq!(
        err.to_string(),
        "cannot write GGUF: metadata key 'deep' nests arrays more than 16 levels deep"
    );
}

/// Accepts `limit` bytes, then fails every write.
struct FailingSink {
    written: Vec<u8>,
    limit: usize,
}

impl std::io::Write for FailingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("disk full"));
        }
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink for FailingSink {
    type Output = Vec<u8>;

    fn path(&self) -> &Path {
        Path::new("failing.gguf")
    }

    fn complete(self) -> std::io::Result<Vec<u8>> {
        Ok(self.written)
    }
}

#[test]
fn after_a_failed_write_nothing_more_is_written() {
    let mut data =
        three_tensors().write_to(FailingSink { written: Vec::new(), limit: 300 }).expect("header");
    data.write_tensor("a", &[0; 64]).expect("a fits");
    let err = data.write_tensor("b", &[0; 34]).expect_err("disk full");
    assert_eq!(err.to_string(), "failing.gguf: disk full");
    assert_eq!(problem(data.write_tensor("b", &[0; 34])), Problem::Abandoned);
    assert_eq!(problem(data.finish()), Problem::Abandoned);
}

#[test]
fn a_file_without_tensors_is_padded_like_gguf_py_writes_it() {
    let mut w = GgufWriter::new();
    w.metadata("k", 1u8).expect("k");
    let bytes = w.finish_metadata().write_to(Vec::new()).expect("header").finish().expect("finish");
    // 24 header bytes + 8 + 1 + 4 + 1 = 38, padded to 64.
    assert_eq!(bytes.len(), 64);
    assert!(bytes[38..].iter().all(|&b| b == 0));
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u8>().prop_map(Value::U8),
        any::<i8>().prop_map(Value::I8),
        any::<u16>().prop_map(Value::U16),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        any::<u32>().prop_map(|b| Value::F32(f32::from_bits(b))),
        any::<bool>().prop_map(Value::Bool),
        ".{0,12}".prop_map(Value::String),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        any::<u64>().prop_map(|b| Value::F64(f64::from_bits(b))),
    ]
}

fn array() -> impl Strategy<Value = Array> {
    let flat = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(Array::U8),
        proptest::collection::vec(any::<i16>(), 0..4).prop_map(Array::I16),
        proptest::collection::vec(any::<u32>().prop_map(f32::from_bits), 0..4).prop_map(Array::F32),
        proptest::collection::vec(any::<bool>(), 0..4).prop_map(Array::Bool),
        proptest::collection::vec(".{0,6}", 0..4).prop_map(Array::String),
        proptest::collection::vec(any::<i64>(), 0..4).prop_map(Array::I64),
    ];
    flat.prop_recursive(3, 16, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(Array::Array)
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![leaf(), array().prop_map(Value::Array)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the writer accepts reads back as written, and writes again to the same bytes.
    #[test]
    fn written_files_read_back_unchanged(
        entries in proptest::collection::vec(("[a-z.]{1,10}", value()), 0..8),
        tensors in proptest::collection::vec((1u64..5, 0usize..3), 0..4),
    ) {
        let mut w = GgufWriter::new();
        let mut written = Vec::new();
        for (key, value) in entries {
            if w.metadata(key.as_str(), value.clone()).is_ok() {
                written.push((key, value));
            }
        }
        let mut infos = w.finish_metadata();
        let types = [GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4K];
        for (i, &(rows, t)) in tensors.iter().enumerate() {
            let ggml_type = types[t];
            infos.tensor_info(format!("t{i}"), &[ggml_type.block_size() as u64, rows], ggml_type).expect("tensor info");
        }
        let mut data = infos.write_to(Vec::new()).expect("header");
        let declared = data.tensors().to_vec();
        for (i, t) in declared.iter().enumerate() {
            data.write_tensor(&t.name, &vec![i as u8; t.n_bytes() as usize]).expect("data");
        }
        let bytes = data.finish().expect("finish");

        let file = GgufFile::from_bytes(bytes.clone(), "roundtrip").expect("reads back");
        prop_assert_eq!(file.metadata().len(), written.len());
        for ((key, got), (want_key, want)) in file.metadata().iter().zip(&written) {
            prop_assert_eq!(key, want_key);
            prop_assert_eq!(format!("{got:?}"), format!("{want:?}"));
        }
        prop_assert_eq!(file.tensors(), declared.as_slice());
        for (i, t) in file.tensors().iter().enumerate() {
            prop_assert!(file.tensor_data(t).iter().all(|&b| b == i as u8));
        }

        let mut again = GgufWriter::new();
        for (key, value) in file.metadata() {
            again.metadata(key.as_str(), value.clone()).expect("metadata");
        }
        let mut infos = again.finish_metadata();
        for t in file.tensors() {
            infos.tensor_info(t.name.as_str(), &t.shape, t.ggml_type).expect("tensor info");
        }
        let mut data = infos.write_to(Vec::new()).expect("header");
        for t in file.tensors() {
            data.write_tensor(&t.name, file.tensor_data(t)).expect("data");
        }
        prop_assert_eq!(data.finish().expect("finish"), bytes);
    }
}
