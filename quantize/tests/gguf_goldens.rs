//! The GGUF reader and writer against files written by gguf-py's GGUFWriter
//! (tools/goldens/gguf_writer.py): every golden reads back with the content its
//! description lists, and the writer, given that content, reproduces it byte for byte.

use std::path::{Path, PathBuf};

use quantize::GgmlType;
use quantize::gguf::{Array, GgufFile, GgufWriter, TensorInfo, Value, ValueType};
use serde_json::Value as Json;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/gguf")
}

fn description() -> Json {
    let path = golden_dir().join("goldens.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("goldens.json parses")
}

fn files() -> Vec<Json> {
    description()["files"].as_array().expect("files").clone()
}

struct Golden {
    file: String,
    version: u32,
    alignment: u64,
    data_offset: u64,
    file_len: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<(TensorInfo, Vec<u8>)>,
}

fn goldens() -> Vec<Golden> {
    files().iter().map(golden).collect()
}

fn golden(f: &Json) -> Golden {
    let metadata = f["metadata"]
        .as_array()
        .expect("metadata")
        .iter()
        .map(|kv| (kv["key"].as_str().expect("key").to_owned(), value(&kv["value"])))
        .collect();
    let tensors = f["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| {
            let ggml_type =
                GgmlType::from_name(t["type"].as_str().expect("type")).expect("known type");
            assert_eq!(u64::from(ggml_type.id()), t["type_id"].as_u64().expect("type_id"));
            let info = TensorInfo {
                name: t["name"].as_str().expect("name").to_owned(),
                shape: t["shape"]
                    .as_array()
                    .expect("shape")
                    .iter()
                    .map(|d| d.as_u64().expect("dim"))
                    .collect(),
                ggml_type,
                offset: t["offset"].as_u64().expect("offset"),
            };
            assert_eq!(info.n_bytes(), t["n_bytes"].as_u64().expect("n_bytes"), "{}", info.name);
            (info, hex(t["data_hex"].as_str().expect("data_hex")))
        })
        .collect();
    Golden {
        file: f["file"].as_str().expect("file").to_owned(),
        version: f["version"].as_u64().expect("version") as u32,
        alignment: f["alignment"].as_u64().expect("alignment"),
        data_offset: f["data_offset"].as_u64().expect("data_offset"),
        file_len: f["file_len"].as_u64().expect("file_len"),
        metadata,
        tensors,
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn value_type(name: &str) -> ValueType {
    ValueType::ALL.into_iter().find(|t| t.name() == name).unwrap_or_else(|| panic!("type {name}"))
}

fn value(j: &Json) -> Value {
    let ty = value_type(j["type"].as_str().expect("type"));
    let int = || {
        j["value"]
            .as_i64()
            .map(i128::from)
            .or(j["value"].as_u64().map(i128::from))
            .expect("integer")
    };
    let bits = || u64::from_str_radix(j["bits"].as_str().expect("bits"), 16).expect("hex bits");
    match ty {
        ValueType::U8 => Value::U8(int().try_into().expect("u8")),
        ValueType::I8 => Value::I8(int().try_into().expect("i8")),
        ValueType::U16 => Value::U16(int().try_into().expect("u16")),
        ValueType::I16 => Value::I16(int().try_into().expect("i16")),
        ValueType::U32 => Value::U32(int().try_into().expect("u32")),
        ValueType::I32 => Value::I32(int().try_into().expect("i32")),
        ValueType::U64 => Value::U64(int().try_into().expect("u64")),
        ValueType::I64 => Value::I64(int().try_into().expect("i64")),
        ValueType::F32 => Value::F32(f32::from_bits(bits() as u32)),
        ValueType::F64 => Value::F64(f64::from_bits(bits())),
        ValueType::Bool => Value::Bool(j["value"].as_bool().expect("bool")),
        ValueType::String => Value::String(j["value"].as_str().expect("string").to_owned()),
        ValueType::Array => {
            let items: Vec<Value> =
                j["items"].as_array().expect("items").iter().map(value).collect();
            Value::Array(array(
                value_type(j["element_type"].as_str().expect("element_type")),
                items,
            ))
        }
    }
}

fn array(element_type: ValueType, items: Vec<Value>) -> Array {
    macro_rules! collect {
        ($variant:ident) => {
            Array::$variant(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::$variant(x) => x,
                        other => panic!("{other:?} in a {element_type} array"),
                    })
                    .collect(),
            )
        };
    }
    match element_type {
        ValueType::U8 => collect!(U8),
        ValueType::I8 => collect!(I8),
        ValueType::U16 => collect!(U16),
        ValueType::I16 => collect!(I16),
        ValueType::U32 => collect!(U32),
        ValueType::I32 => collect!(I32),
        ValueType::F32 => collect!(F32),
        ValueType::Bool => collect!(Bool),
        ValueType::String => collect!(String),
        ValueType::Array => collect!(Array),
        ValueType::U64 => collect!(U64),
        ValueType::I64 => collect!(I64),
        ValueType::F64 => collect!(F64),
    }
}

/// Equality that tells floats apart by their bits, so NaN equals the same NaN and
/// -0.0 differs from 0.0.
fn assert_same(key: &str, got: &Value, want: &Value) {
    match (got, want) {
        (Value::F32(a), Value::F32(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{key}"),
        (Value::F64(a), Value::F64(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{key}"),
        (Value::Array(a), Value::Array(b)) => assert_same_array(key, a, b),
        _ => assert_eq!(got, want, "{key}"),
    }
}

fn assert_same_array(key: &str, got: &Array, want: &Array) {
    assert_eq!(got.element_type(), want.element_type(), "{key}");
    assert_eq!(got.len(), want.len(), "{key}");
    match (got, want) {
        (Array::F32(a), Array::F32(b)) => {
            assert!(
                a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{key}: {a:?} != {b:?}"
            )
        }
        (Array::F64(a), Array::F64(b)) => {
            assert!(
                a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{key}: {a:?} != {b:?}"
            )
        }
        (Array::Array(a), Array::Array(b)) => {
            a.iter().zip(b).for_each(|(x, y)| assert_same_array(key, x, y))
        }
        _ => assert_eq!(got, want, "{key}"),
    }
}

fn golden_bytes(g: &Golden) -> Vec<u8> {
    std::fs::read(golden_dir().join(&g.file)).expect("golden file")
}

/// The golden's content through our writer, into memory, with each tensor written whole.
fn write_whole(g: &Golden) -> Vec<u8> {
    let mut w = GgufWriter::new();
    for (key, value) in &g.metadata {
        w.metadata(key.as_str(), value.clone()).expect("metadata");
    }
    let mut infos = w.finish_metadata();
    for (t, _) in &g.tensors {
        infos.tensor_info(t.name.as_str(), &t.shape, t.ggml_type).expect("tensor info");
    }
    assert_eq!(infos.tensors(), g.tensors.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>());
    let mut data = infos.write_to(Vec::new()).expect("header");
    for (t, bytes) in &g.tensors {
        data.write_tensor(&t.name, bytes).expect("tensor data");
    }
    data.finish().expect("finish")
}

/// Our writer writes only v3; a v2 golden is the same layout with version 2.
fn as_version(mut bytes: Vec<u8>, version: u32) -> Vec<u8> {
    bytes[4..8].copy_from_slice(&version.to_le_bytes());
    bytes
}

#[test]
fn the_goldens_cover_what_they_should() {
    let goldens = goldens();
    let names: Vec<&str> = goldens.iter().map(|g| g.file.as_str()).collect();
    assert_eq!(
        names,
        ["metadata.gguf", "tensors.gguf", "alignment64.gguf", "v2.gguf", "empty_arrays.gguf"]
    );
    let mut value_types = Vec::new();
    let mut element_types = Vec::new();
    for (_, v) in goldens.iter().flat_map(|g| &g.metadata) {
        value_types.push(v.value_type());
        if let Value::Array(a) = v {
            element_types.push(a.element_type());
        }
    }
    for t in ValueType::ALL {
        assert!(value_types.contains(&t), "no {t} value");
        assert!(element_types.contains(&t), "no array of {t}");
    }
}

#[test]
fn every_golden_reads_back_with_its_described_content() {
    for g in goldens() {
        let file = GgufFile::open(golden_dir().join(&g.file)).unwrap_or_else(|e| panic!("{e}"));
        let name = &g.file;
        assert_eq!(file.version(), g.version, "{name}");
        assert_eq!(file.alignment(), g.alignment, "{name}");
        assert_eq!(file.data_offset(), g.data_offset, "{name}");
        assert_eq!(file.file_len(), g.file_len, "{name}");
        let keys: Vec<&str> = file.metadata().iter().map(|(k, _)| k.as_str()).collect();
        let want_keys: Vec<&str> = g.metadata.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, want_keys, "{name}: metadata order");
        for ((key, got), (_, want)) in file.metadata().iter().zip(&g.metadata) {
            assert_same(key, got, want);
            assert_same(key, file.get(key).expect("lookup by key"), want);
        }
        assert_eq!(file.get("no.such.key"), None);
        assert_eq!(file.tensors().len(), g.tensors.len(), "{name}");
        for ((got, (want, data)), index) in file.tensors().iter().zip(&g.tensors).zip(0..) {
            assert_eq!(got, want, "{name}: tensor #{index}");
            assert_eq!(file.tensor(&want.name), Some(got));
            assert_eq!(file.tensor_data(got), &data[..], "{name}: data of {}", want.name);
            assert_eq!(got.offset % g.alignment, 0);
        }
        assert_eq!(file.tensor("no.such.tensor"), None);
    }
}

#[test]
fn the_writer_reproduces_every_golden_byte_for_byte() {
    for g in goldens() {
        let ours = as_version(write_whole(&g), g.version);
        let theirs = golden_bytes(&g);
        assert_eq!(ours.len(), theirs.len(), "{}: length", g.file);
        let first_difference = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        assert_eq!(first_difference, None, "{}: first differing byte", g.file);
    }
}

#[test]
fn streaming_tensor_data_in_chunks_writes_the_same_bytes() {
    for g in goldens() {
        let mut w = GgufWriter::new();
        for (key, value) in &g.metadata {
            w.metadata(key.as_str(), value.clone()).expect("metadata");
        }
        let mut infos = w.finish_metadata();
        for (t, _) in &g.tensors {
            infos.tensor_info(t.name.as_str(), &t.shape, t.ggml_type).expect("tensor info");
        }
        let mut data = infos.write_to(Vec::new()).expect("header");
        for (t, bytes) in &g.tensors {
            assert_eq!(data.next_tensor().map(|n| n.name.as_str()), Some(t.name.as_str()));
            let mut stream = data.begin_tensor(&t.name).expect("begin");
            for chunk in bytes.chunks(7) {
                stream.write(chunk).expect("chunk");
            }
            assert_eq!(stream.remaining(), 0);
            stream.finish().expect("end of tensor");
        }
        assert_eq!(data.next_tensor(), None);
        assert_eq!(
            as_version(data.finish().expect("finish"), g.version),
            golden_bytes(&g),
            "{}",
            g.file
        );
    }
}

#[test]
fn a_file_read_and_written_again_is_unchanged() {
    for g in goldens() {
        let file = GgufFile::open(golden_dir().join(&g.file)).expect("open");
        let mut w = GgufWriter::new();
        for (key, value) in file.metadata() {
            w.metadata(key.as_str(), value.clone()).expect("metadata");
        }
        let mut infos = w.finish_metadata();
        for t in file.tensors() {
            infos.tensor_info(t.name.as_str(), &t.shape, t.ggml_type).expect("tensor info");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join(&g.file);
        let mut data = infos.write_file(&out).expect("create");
        for t in file.tensors() {
            data.write_tensor(&t.name, file.tensor_data(t)).expect("tensor data");
        }
        assert_eq!(data.finish().expect("finish"), out);
        let written = std::fs::read(&out).expect("written file");
        assert_eq!(as_version(written, g.version), golden_bytes(&g), "{}", g.file);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, [std::ffi::OsString::from(&g.file)], "only the final file remains");
    }
}

#[test]
fn empty_arrays_keep_their_element_type() {
    let file = GgufFile::open(golden_dir().join("empty_arrays.gguf")).expect("open");
    for t in ValueType::ALL {
        let value = file.get(&format!("golden.empty.{t}")).expect("key");
        let array = value.as_array().expect("array");
        assert!(array.is_empty());
        assert_eq!(array.element_type(), t);
        assert_eq!(array, &Array::empty(t));
    }
    let nested = file.get("golden.nested.with_empty").and_then(Value::as_array).expect("nested");
    assert_eq!(
        nested,
        &Array::Array(vec![Array::U32(vec![]), Array::from(vec!["x"]), Array::Array(vec![])])
    );
}

#[test]
fn value_accessors_read_the_metadata_golden() {
    let file = GgufFile::open(golden_dir().join("metadata.gguf")).expect("open");
    let get = |k: &str| file.get(k).unwrap_or_else(|| panic!("{k}"));
    assert_eq!(get("general.architecture").as_str(), Some("decant-golden"));
    assert_eq!(get("golden.u8").as_u64(), Some(255));
    assert_eq!(get("golden.u64").as_u64(), Some(u64::MAX));
    assert_eq!(get("golden.i8").as_u64(), None);
    assert_eq!(get("golden.i64").as_i64(), Some(i64::MIN));
    assert_eq!(get("golden.u64").as_i64(), None);
    assert_eq!(get("golden.f32").as_f64(), Some(1.5));
    assert_eq!(get("golden.f64").as_f64(), Some(0.1));
    assert_eq!(get("golden.bool_true").as_bool(), Some(true));
    assert_eq!(get("golden.string_unicode").as_str(), Some("héllo wörld ✓ 日本語 🦀"));
    assert_eq!(get("golden.ключ.ユニコード").as_str(), Some("a unicode key"));
    assert_eq!(get("golden.string").as_u64(), None);
    let strings =
        get("golden.array.string").as_array().and_then(Array::as_strings).expect("strings");
    assert_eq!(strings, ["<|endoftext|>", "", "Ġt", "日本", "🦀🦀"]);
    assert_eq!(
        get("golden.nested.i32").as_array().map(Array::element_type),
        Some(ValueType::Array)
    );
}

#[test]
fn tensor_sizes_follow_the_block_geometry() {
    let file = GgufFile::open(golden_dir().join("tensors.gguf")).expect("open");
    let q8 = file.tensor("q8_0.weight").expect("q8_0");
    assert_eq!(
        (q8.shape.as_slice(), q8.n_elements(), q8.n_bytes()),
        ([64, 3].as_slice(), 192, 3 * 2 * 34)
    );
    let empty = file.tensor("empty").expect("empty");
    assert_eq!((empty.n_elements(), empty.n_bytes()), (0, 0));
    let scalar = file.tensor("scalar").expect("scalar");
    assert_eq!((scalar.shape.len(), scalar.n_elements()), (0, 1));
    assert_eq!(file.tensor_data(scalar), 2.75f32.to_le_bytes());
    let cube = file.tensor("f32_3d").expect("3-D");
    assert_eq!(cube.shape, [4, 3, 2]);
}
