//! The reference teacher, SmolLM2-135M-Instruct Q4_1 (written by llama.cpp's
//! quantizer): known facts read through `GgufFile`, checked against gguf-py's
//! `gguf-dump`, and a byte-exact rewrite by our writer.
//!
//! The model is not in the repository: `tools/fetch-reference-model.sh` puts it in
//! the cache, and `DECANT_REFERENCE_MODEL` may point elsewhere. A missing model fails
//! these tests rather than skipping them.

use std::collections::HashMap;
use std::path::PathBuf;

use quantize::GgmlType;
use quantize::gguf::{GgufFile, GgufWriter, Value};

fn reference_path() -> PathBuf {
    if let Some(path) = std::env::var_os("DECANT_REFERENCE_MODEL") {
        return path.into();
    }
    let cache = std::env::var_os("DECANT_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME or DECANT_CACHE must be set");
        PathBuf::from(home).join(".cache/decant")
    });
    cache.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn reference() -> GgufFile {
    let path = reference_path();
    assert!(
        path.is_file(),
        "reference model not found at {}: run tools/fetch-reference-model.sh \
         (or set DECANT_REFERENCE_MODEL to its path)",
        path.display()
    );
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn reference_model_metadata() {
    let file = reference();
    let get = |k: &str| file.get(k).unwrap_or_else(|| panic!("no {k}"));
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 32);
    assert_eq!(file.metadata().len(), 33);
    assert_eq!(file.metadata()[0].0, "general.architecture");
    assert_eq!(get("general.architecture").as_str(), Some("llama"));
    assert_eq!(get("llama.block_count"), &Value::U32(30));
    assert_eq!(get("llama.context_length"), &Value::U32(8192));
    assert_eq!(get("llama.embedding_length"), &Value::U32(576));
    assert_eq!(get("llama.feed_forward_length"), &Value::U32(1536));
    assert_eq!(get("llama.attention.head_count"), &Value::U32(9));
    assert_eq!(get("llama.attention.head_count_kv"), &Value::U32(3));
    assert_eq!(get("llama.vocab_size"), &Value::U32(49152));
    assert_eq!(get("llama.rope.freq_base"), &Value::F32(100_000.0));
    assert_eq!(
        get("llama.attention.layer_norm_rms_epsilon"),
        &Value::F32(f32::from_bits(925_353_388))
    );
    assert_eq!(get("general.file_type").as_u64(), Some(3), "LLAMA_FTYPE_MOSTLY_Q4_1");
    assert_eq!(get("tokenizer.ggml.model").as_str(), Some("gpt2"));
    assert_eq!(get("tokenizer.ggml.pre").as_str(), Some("smollm"));
    assert_eq!(get("tokenizer.ggml.bos_token_id").as_u64(), Some(1));
    assert_eq!(get("tokenizer.ggml.eos_token_id").as_u64(), Some(2));
    assert_eq!(get("tokenizer.ggml.add_bos_token").as_bool(), Some(false));
    assert!(get("tokenizer.chat_template").as_str().expect("template").contains("<|im_start|>"));

    let tokens =
        get("tokenizer.ggml.tokens").as_array().and_then(|a| a.as_strings()).expect("tokens");
    assert_eq!(tokens.len(), 49152);
    assert_eq!(
        (tokens[0].as_str(), tokens[1].as_str(), tokens[2].as_str()),
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    );
    assert_eq!(tokens[49151], "ectable");
    let merges =
        get("tokenizer.ggml.merges").as_array().and_then(|a| a.as_strings()).expect("merges");
    assert_eq!((merges.len(), merges[0].as_str()), (48900, "Ġ t"));
    let token_types = get("tokenizer.ggml.token_type").as_array().expect("token types");
    assert_eq!(token_types.len(), 49152);
}

#[test]
fn reference_model_tensors() {
    let file = reference();
    assert_eq!(file.tensors().len(), 272);
    assert_eq!(file.data_offset(), 1_785_664);
    let mut by_type = HashMap::new();
    for t in file.tensors() {
        *by_type.entry(t.ggml_type).or_insert(0) += 1;
    }
    assert_eq!(
        by_type,
        HashMap::from([(GgmlType::Q4_1, 210), (GgmlType::F32, 61), (GgmlType::Q8_0, 1)])
    );
    let parameters: u64 = file.tensors().iter().map(|t| t.n_elements()).sum();
    assert_eq!(parameters, 134_515_008);
    let layers =
        (0..).take_while(|i| file.tensor(&format!("blk.{i}.attn_q.weight")).is_some()).count();
    assert_eq!(layers, 30);

    let embd = file.tensor("token_embd.weight").expect("token_embd");
    assert_eq!(
        (embd.shape.as_slice(), embd.ggml_type, embd.offset),
        ([576, 49152].as_slice(), GgmlType::Q8_0, 0)
    );
    assert_eq!(embd.n_bytes(), 30_081_024);
    assert_eq!(file.tensor_data(embd)[..8], [0x32, 0x19, 0xd6, 0x0d, 0x13, 0xf7, 0xe5, 0xee]);

    let down = file.tensor("blk.29.ffn_down.weight").expect("ffn_down");
    assert_eq!(
        (down.shape.as_slice(), down.ggml_type, down.offset),
        ([1536, 576].as_slice(), GgmlType::Q4_1, 78_845_184)
    );

    let norm = file.tensors().last().expect("tensors");
    assert_eq!(norm.name, "output_norm.weight");
    let data = file.tensor_data(norm);
    assert_eq!(f32::from_le_bytes(data[..4].try_into().expect("4 bytes")), 1.7578125);
    assert_eq!(
        file.data_offset() + norm.offset + norm.n_bytes(),
        file.file_len(),
        "the last tensor ends the file"
    );
}

/// llama.cpp wrote this file; our writer, given its content, must write the same bytes.
#[test]
fn reference_model_rewrites_byte_for_byte() {
    let file = reference();
    let mut w = GgufWriter::new();
    for (key, value) in file.metadata() {
        w.metadata(key.as_str(), value.clone()).expect("metadata");
    }
    let mut infos = w.finish_metadata();
    for t in file.tensors() {
        infos.tensor_info(t.name.as_str(), &t.shape, t.ggml_type).expect("tensor info");
    }
    assert_eq!(infos.tensors(), file.tensors());
    let mut data = infos.write_to(Vec::with_capacity(file.file_len() as usize)).expect("header");
    for t in file.tensors() {
        data.write_tensor(&t.name, file.tensor_data(t)).expect("tensor data");
    }
    let ours = data.finish().expect("finish");
    let theirs = std::fs::read(file.path()).expect("read reference");
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours.iter().zip(&theirs).position(|(a, b)| a != b), None, "first differing byte");
}
