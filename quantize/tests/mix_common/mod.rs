//! Shared by the mix tests here and the CLI tests of `decant quantize`
//! (tests/cli_quantize.rs includes this file): the golden, and the F32 models the
//! golden script quantized, rebuilt byte for byte with decant's own writer and
//! dequantizer so that no Python is needed. Each builder mirrors a function of
//! tools/goldens/quantize_llamacpp.py, named at it.
#![allow(dead_code)]

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use quantize::GgmlType;
use quantize::gguf::{GgufFile, GgufWriter, Sink, TensorInfo, TensorInfoWriter, Value};
use quantize::mix::{Mix, MixOptions};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

pub fn golden() -> Json {
    let text = include_str!("../goldens/mix/llamacpp.json");
    serde_json::from_str(text).expect("the golden is JSON")
}

/// A run's options, as the golden records them.
pub fn options(run: &Json) -> MixOptions {
    let mix: Mix = run["mix"]
        .as_str()
        .expect("mix")
        .parse()
        .expect("a decant mix");
    let ggml_type = |key: &str| {
        run[key]
            .as_str()
            .map(|n| GgmlType::from_name(n).expect("known type"))
    };
    MixOptions {
        mix,
        pure: run["pure"].as_bool().unwrap_or(false),
        has_imatrix: run["imatrix"].as_bool().unwrap_or(false),
        output_type: ggml_type("output_tensor_type"),
        token_embedding_type: ggml_type("token_embedding_type"),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn file_sha256(path: &Path) -> String {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).expect("file opens");
    io::copy(&mut file, &mut hasher).expect("file reads");
    hex(&hasher.finalize())
}

/// Checks a quantized file against a golden run: the whole file's sha256, and when
/// that differs, the first tensor or metadata entry that does, by name.
pub fn assert_matches_run(path: &Path, run: &Json, order: &[Json], what: &str) {
    let want = run["file_sha256"].as_str().expect("file_sha256");
    if file_sha256(path) == want {
        return;
    }
    let file = GgufFile::open(path).expect("output reads back");
    let names: Vec<&str> = file.tensors().iter().map(|t| t.name.as_str()).collect();
    let order: Vec<&str> = order.iter().map(|n| n.as_str().expect("name")).collect();
    assert_eq!(names, order, "{what}: tensor order");
    let types = run["types"].as_array().expect("types");
    let shas = run["tensor_sha256_16"].as_array().expect("tensor sha256");
    for ((info, ty), sha) in file.tensors().iter().zip(types).zip(shas) {
        assert_eq!(
            info.ggml_type.name(),
            ty.as_str().expect("type"),
            "{what}: type of {}",
            info.name
        );
        let got = sha256_hex(file.tensor_data(info));
        assert_eq!(
            &got[..16],
            sha.as_str().expect("sha"),
            "{what}: bytes of {}",
            info.name
        );
    }
    let keys: Vec<&str> = file.metadata().iter().map(|(k, _)| k.as_str()).collect();
    let want_keys: Vec<&str> = run["metadata"]
        .as_array()
        .expect("metadata")
        .iter()
        .map(|kv| kv[0].as_str().expect("key"))
        .collect();
    assert_eq!(keys, want_keys, "{what}: metadata keys");
    panic!("{what}: every tensor and key matches, yet the file's sha256 differs from llama.cpp's");
}

/// A sink that only hashes, for checking a large file without writing it.
pub struct HashSink(Sha256);

impl HashSink {
    pub fn new() -> HashSink {
        HashSink(Sha256::new())
    }
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for HashSink {
    type Output = String;

    fn path(&self) -> &Path {
        Path::new("<sha256>")
    }

    fn complete(self) -> io::Result<String> {
        Ok(hex(&self.0.finalize()))
    }
}

// ---------------------------------------------------------------------------
// Deterministic values: `splitmix64`, `unit`, `values` in the script.
// ---------------------------------------------------------------------------

fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(seed: u64, n: usize) -> impl Iterator<Item = f32> {
    (0..n as u64)
        .map(move |i| ((splitmix64(seed, i) >> 40) as i64 - (1 << 23)) as f32 * 2f32.powi(-23))
}

fn values(index: usize, n: usize, norm: bool) -> Vec<f32> {
    let seed = (index as u64 + 1) << 32;
    unit(seed, n)
        .enumerate()
        .map(|(i, v)| {
            if norm {
                return 1.0 + v * 0.125;
            }
            let w = (v * v * v + v * 0.25) * 0.125;
            if i % 97 == 0 { w * 8.0 } else { w }
        })
        .collect()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `random_llama(.., name="decant tiny llama", hidden=256, ffn=512, vocab=512,
/// layers=8, heads=4, kv_heads=1, tied=False)` of the script.
pub fn write_tiny_model(path: &Path) {
    let (hidden, ffn, vocab, layers, heads, kv_heads) = (256u64, 512u64, 512u64, 8, 4u32, 1u32);
    let head_dim = hidden / u64::from(heads);
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama").unwrap();
    w.metadata("general.name", "decant tiny llama").unwrap();
    w.metadata("general.file_type", 0u32).unwrap();
    w.metadata("llama.block_count", layers as u32).unwrap();
    w.metadata("llama.context_length", 256u32).unwrap();
    w.metadata("llama.embedding_length", hidden as u32).unwrap();
    w.metadata("llama.feed_forward_length", ffn as u32).unwrap();
    w.metadata("llama.attention.head_count", heads).unwrap();
    w.metadata("llama.attention.head_count_kv", kv_heads)
        .unwrap();
    w.metadata("llama.rope.freq_base", 10000.0f32).unwrap();
    w.metadata("llama.attention.layer_norm_rms_epsilon", 1e-5f32)
        .unwrap();
    w.metadata("llama.rope.dimension_count", head_dim as u32)
        .unwrap();
    w.metadata("llama.vocab_size", vocab as u32).unwrap();

    let kv = u64::from(kv_heads) * head_dim;
    let mut shapes: Vec<(String, Vec<u64>, bool)> =
        vec![("token_embd.weight".into(), vec![hidden, vocab], false)];
    for i in 0..layers {
        let b = |s: &str| format!("blk.{i}.{s}");
        shapes.extend([
            (b("attn_norm.weight"), vec![hidden], true),
            (b("attn_q.weight"), vec![hidden, hidden], false),
            (b("attn_k.weight"), vec![hidden, kv], false),
            (b("attn_v.weight"), vec![hidden, kv], false),
            (b("attn_output.weight"), vec![hidden, hidden], false),
            (b("ffn_norm.weight"), vec![hidden], true),
            (b("ffn_gate.weight"), vec![hidden, ffn], false),
            (b("ffn_up.weight"), vec![hidden, ffn], false),
            (b("ffn_down.weight"), vec![ffn, hidden], false),
        ]);
    }
    shapes.push(("output_norm.weight".into(), vec![hidden], true));
    shapes.push(("output.weight".into(), vec![hidden, vocab], false));

    let mut infos = w.finish_metadata();
    for (name, shape, _) in &shapes {
        infos
            .tensor_info(name.as_str(), shape, GgmlType::F32)
            .unwrap();
    }
    let mut data = infos.write_file(path).unwrap();
    for (index, (name, shape, norm)) in shapes.iter().enumerate() {
        let n = shape.iter().product::<u64>() as usize;
        data.write_tensor(name, &f32_bytes(&values(index, n, *norm)))
            .unwrap();
    }
    data.finish().unwrap();
}

/// `imatrix_for` of the script: an imatrix GGUF for every matmul weight of `model`.
pub fn write_tiny_imatrix(model: &Path, path: &Path) {
    let model = GgufFile::open(model).unwrap();
    let entries: Vec<&TensorInfo> = model
        .tensors()
        .iter()
        .filter(|t| {
            t.shape.len() >= 2
                && t.name.ends_with(".weight")
                && !t.name.contains("_norm")
                && t.name != "token_embd.weight"
                && !t.name.contains("ffn_gate_inp")
        })
        .collect();
    let mut w = GgufWriter::new();
    w.metadata("general.type", "imatrix").unwrap();
    w.metadata("imatrix.datasets", vec!["decant-tiny.txt"])
        .unwrap();
    w.metadata("imatrix.chunk_count", 4u32).unwrap();
    w.metadata("imatrix.chunk_size", 512u32).unwrap();
    let mut infos = w.finish_metadata();
    let dims = |t: &TensorInfo| (t.shape[0], t.shape.get(2).copied().unwrap_or(1));
    for t in &entries {
        let (ne0, n_mat) = dims(t);
        infos
            .tensor_info(format!("{}.in_sum2", t.name), &[ne0, n_mat], GgmlType::F32)
            .unwrap();
        infos
            .tensor_info(format!("{}.counts", t.name), &[1, n_mat], GgmlType::F32)
            .unwrap();
    }
    let mut data = infos.write_file(path).unwrap();
    for (e, t) in entries.iter().enumerate() {
        let (ne0, n_mat) = dims(t);
        let sums: Vec<f32> = unit((1000 + e as u64) << 32, (ne0 * n_mat) as usize)
            .map(|v| (v * v + 1.0 / 64.0) * 64.0)
            .collect();
        let count = if e == entries.len() - 1 { 0.0f32 } else { 64.0 };
        data.write_tensor(&format!("{}.in_sum2", t.name), &f32_bytes(&sums))
            .unwrap();
        data.write_tensor(
            &format!("{}.counts", t.name),
            &f32_bytes(&vec![count; n_mat as usize]),
        )
        .unwrap();
    }
    data.finish().unwrap();
}

// ---------------------------------------------------------------------------
// The reference teacher in F32: `write_f32_copy` of the script.
// ---------------------------------------------------------------------------

/// The reference teacher, fetched by tools/fetch-reference-model.sh.
pub fn reference_model() -> PathBuf {
    let path = std::env::var_os("DECANT_REFERENCE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(
        path.is_file(),
        "reference model {} is missing: run `bash tools/fetch-reference-model.sh` \
         (or set DECANT_REFERENCE_MODEL)",
        path.display()
    );
    path
}

fn cache_dir() -> PathBuf {
    std::env::var_os("DECANT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME or DECANT_CACHE is set"))
                .join(".cache/decant")
        })
}

/// Every metadata entry as it is but `general.file_type` 0, every tensor in F32.
pub fn f32_copy<S: Sink>(source: &GgufFile, sink: S) -> S::Output {
    let mut w = GgufWriter::new();
    for (key, value) in source.metadata() {
        let value = if key == "general.file_type" {
            Value::U32(0)
        } else {
            value.clone()
        };
        w.metadata(key.as_str(), value).unwrap();
    }
    let mut infos: TensorInfoWriter = w.finish_metadata();
    for t in source.tensors() {
        infos
            .tensor_info(t.name.as_str(), &t.shape, GgmlType::F32)
            .unwrap();
    }
    let mut data = infos.write_to(sink).unwrap();
    for t in source.tensors() {
        let values = quantize::dequantize_to_vec(t.ggml_type, source.tensor_data(t)).unwrap();
        data.write_tensor(&t.name, &f32_bytes(&values)).unwrap();
    }
    data.finish().unwrap()
}

/// The F32 copy in the cache (where the golden script also writes it), made once:
/// its size is checked against the golden, its bytes by the mix_e2e test. Test
/// processes running at once take turns through a lock file, so one makes it.
pub fn reference_f32_copy() -> PathBuf {
    let golden = golden();
    let size = golden["models"]["smollm2"]["f32_size"]
        .as_u64()
        .expect("f32_size");
    let path = cache_dir().join("models/SmolLM2-135M-Instruct.F32.gguf");
    let complete = || std::fs::metadata(&path).ok().map(|m| m.len()) == Some(size);
    if !complete() {
        let lock =
            std::fs::File::create(path.with_extension("gguf.lock")).expect("the cache is writable");
        lock.lock().expect("the lock file locks");
        if !complete() {
            let source = GgufFile::open(reference_model()).unwrap();
            let file = quantize::gguf::AtomicFile::create(&path).expect("the cache is writable");
            f32_copy(&source, file);
        }
    }
    path
}
