//! `decant export` end to end on the reference teacher: GGUF → Hugging Face
//! directory → GGUF keeps every tensor bit-identical to the source dequantized
//! to F32 and the tokenizer intact; llama.cpp (the oracle script
//! tools/oracles/llamacpp_export.py, run with DECANT_PYTHON) loads the result
//! with no pre-tokenizer warning, tokenizes as Hugging Face `tokenizers` does on
//! the exported tokenizer.json, and generates the tokens `decant generate` does.
//! Error paths: the messages, and nothing left at the target.

mod common;

use std::path::{Path, PathBuf};

use common::{decant, reference_model, stderr, stdout};
use quantize::gguf::{GgufFile, Value};
use serde_json::Value as Json;

const MAX_TOKENS: usize = 16;

fn export(args: &[&str]) -> Json {
    let out = decant(&[&["export"], args, &["--json"]].concat());
    assert!(
        out.status.success(),
        "decant export {args:?}: {}",
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).expect("one JSON object on stdout")
}

fn strings<'a>(file: &'a GgufFile, key: &str) -> &'a [String] {
    file.get(key)
        .and_then(Value::as_array)
        .and_then(|a| a.as_strings())
        .unwrap_or_else(|| panic!("{key}"))
}

#[test]
fn gguf_to_hf_to_gguf_is_lossless_and_loads_in_llama_cpp() {
    let python = common::python();
    let source_path = reference_model();
    let source_str = source_path.to_str().expect("UTF-8 path");
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("hf");
    let gguf = dir.path().join("round-trip.gguf");
    let (hf_str, gguf_str) = (hf.to_str().unwrap(), gguf.to_str().unwrap());

    let report = export(&[
        "--model",
        source_str,
        "--format",
        "safetensors",
        "--out",
        hf_str,
    ]);
    assert_eq!(
        (report["format"].as_str(), report["type"].as_str()),
        (Some("safetensors"), Some("f32"))
    );
    for name in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
        "README.md",
    ] {
        assert!(
            hf.join(name).is_file(),
            "{name} missing from {:?}",
            report["files"]
        );
    }
    let config: Json =
        serde_json::from_str(&std::fs::read_to_string(hf.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    let tokenizer_config: Json =
        serde_json::from_str(&std::fs::read_to_string(hf.join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert!(
        tokenizer_config["chat_template"]
            .as_str()
            .unwrap()
            .contains("<|im_start|>")
    );

    let report = export(&[
        "--model",
        hf_str,
        "--format",
        "gguf",
        "--out",
        gguf_str,
        "--name",
        "SmolLM2 round trip",
        "--base-model",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "--dataset",
        "tests/texts",
        "--license",
        "apache-2.0",
    ]);
    assert_eq!(report["tensors"]["f32"], 272);
    assert_eq!(report["chat_format"], "chatml");
    let modelfile = std::fs::read_to_string(dir.path().join("round-trip.Modelfile")).unwrap();
    assert!(
        modelfile.starts_with("FROM ./round-trip.gguf\nTEMPLATE"),
        "{modelfile}"
    );

    let source = GgufFile::open(&source_path).unwrap();
    let out = GgufFile::open(&gguf).unwrap();
    assert_eq!(out.tensors().len(), source.tensors().len());
    for info in out.tensors() {
        let original = source
            .tensor(&info.name)
            .unwrap_or_else(|| panic!("{} not in the source", info.name));
        assert_eq!(info.shape, original.shape, "{}", info.name);
        let expected =
            quantize::dequantize_to_vec(original.ggml_type, source.tensor_data(original)).unwrap();
        let expected: Vec<u8> = expected.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(
            out.tensor_data(info) == expected,
            "{}: not bit-identical to the source's values",
            info.name
        );
    }
    for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"] {
        assert_eq!(strings(&out, key), strings(&source, key), "{key}");
    }
    let text =
        |file: &GgufFile, key: &str| file.get(key).and_then(Value::as_str).map(str::to_owned);
    assert_eq!(text(&out, "tokenizer.ggml.pre").as_deref(), Some("smollm"));
    assert_eq!(
        text(&out, "tokenizer.chat_template"),
        text(&source, "tokenizer.chat_template")
    );
    assert_eq!(
        text(&out, "general.name").as_deref(),
        Some("SmolLM2 round trip")
    );
    assert_eq!(
        text(&out, "general.base_model.0.name").as_deref(),
        Some("HuggingFaceTB/SmolLM2-135M-Instruct")
    );
    assert_eq!(
        text(&out, "general.dataset.0.name").as_deref(),
        Some("tests/texts")
    );
    assert_eq!(text(&out, "general.license").as_deref(), Some("apache-2.0"));
    for key in [
        "bos_token_id",
        "eos_token_id",
        "padding_token_id",
        "unknown_token_id",
    ] {
        let key = format!("tokenizer.ggml.{key}");
        assert_eq!(out.get(&key), source.get(&key), "{key}");
    }

    let texts = dir.path().join("texts.json");
    let cases = [
        "Hello world",
        "  3.14159 is pi; 12345 apples!\n\tTabs",
        "<|im_start|>user\nHi<|im_end|>\n",
        "Ünïcödé — 我想在apple工作 🦙",
        "I've been 'told he's there, 'RE you sure?",
    ];
    std::fs::write(&texts, serde_json::to_string(&cases).unwrap()).unwrap();
    let check = common::llamacpp_oracle(
        &python,
        &[
            "tokenizer",
            gguf_str,
            "--hf-dir",
            hf_str,
            "--texts",
            texts.to_str().unwrap(),
        ],
    );
    assert!(
        check["log_lines"].as_u64().unwrap() > 0,
        "llama.cpp's log was not captured: {check}"
    );
    assert_eq!(
        check["pre_warnings"],
        Json::Array(vec![]),
        "llama.cpp warned about the pre-tokenizer"
    );
    for case in check["cases"].as_array().unwrap() {
        assert_eq!(case["llama"], case["hf"], "{}", case["text"]);
    }

    let generated = decant(&[
        "generate",
        "--model",
        gguf_str,
        "--prompt",
        "What is the capital of France?",
        "--chat",
        "--max-tokens",
        &MAX_TOKENS.to_string(),
        "--json",
    ]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    let ours: Json = serde_json::from_str(&stdout(&generated)).unwrap();
    let prompt: Vec<String> = ours["prompt_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(Json::to_string)
        .collect();
    let theirs = common::llamacpp_oracle(
        &python,
        &[
            "generate",
            gguf_str,
            "--prompt-tokens",
            &prompt.join(","),
            "--max-tokens",
            &MAX_TOKENS.to_string(),
        ],
    );
    assert_eq!(
        ours["tokens"], theirs["tokens"],
        "decant generate and llama.cpp differ on the exported file"
    );
    assert!(!ours["tokens"].as_array().unwrap().is_empty());
}

fn tiny_llama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("train/tests/goldens/hf/llama")
}

fn failure(args: &[&str]) -> String {
    let out = decant(&[&["export"], args].concat());
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
    assert!(stdout(&out).is_empty());
    stderr(&out)
}

#[test]
fn quantized_types_are_refused_for_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf");
    let err = failure(&[
        "--model",
        tiny_llama().to_str().unwrap(),
        "--format",
        "safetensors",
        "--out",
        out.to_str().unwrap(),
        "--type",
        "q4_k_m",
    ]);
    assert!(
        err.contains("--type q4_k_m") && err.contains("f32, f16 or bf16"),
        "{err}"
    );
    assert!(!out.exists());
    let err = failure(&[
        "--model",
        tiny_llama().to_str().unwrap(),
        "--format",
        "safetensors",
        "--out",
        out.to_str().unwrap(),
        "--pure",
    ]);
    assert!(err.contains("--pure applies to --format gguf"), "{err}");
    assert!(!out.exists());
}

#[test]
fn an_existing_directory_is_never_written_over() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = failure(&[
        "--model",
        tiny_llama().to_str().unwrap(),
        "--format",
        "safetensors",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("already exists") && err.contains(out.to_str().unwrap()),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn the_tiny_checkpoint_exports_to_safetensors_in_bf16() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf");
    let report = export(&[
        "--model",
        tiny_llama().to_str().unwrap(),
        "--format",
        "safetensors",
        "--out",
        out.to_str().unwrap(),
        "--type",
        "bf16",
    ]);
    assert_eq!(report["type"], "bf16");
    let config: Json =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
}

/// A copy of the tiny checkpoint with a byte-level tokenizer of its 300 ids.
fn with_tokenizer(dir: &Path, pre_tokenizer: Json) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir(&model).unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(tiny_llama().join(name), model.join(name)).unwrap();
    }
    let vocab: serde_json::Map<String, Json> =
        (0..300).map(|i| (format!("t{i}"), Json::from(i))).collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": pre_tokenizer,
        "post_processor": null, "decoder": null,
        "model": {"type": "BPE", "vocab": vocab, "merges": [], "unk_token": "t0"},
    });
    std::fs::write(model.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    model
}

#[test]
fn an_unknown_pre_tokenizer_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = with_tokenizer(dir.path(), serde_json::json!({"type": "Whitespace"}));
    let out = dir.path().join("model.gguf");
    let err = failure(&[
        "--model",
        model.to_str().unwrap(),
        "--format",
        "gguf",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("tokenizer.json")
            && err.contains("pre-tokenizer is not one llama.cpp knows")
            && err.contains("sha256"),
        "{err}"
    );
    assert!(!out.exists() && !dir.path().join("model.Modelfile").exists());
}

#[test]
fn a_checkpoint_without_a_tokenizer_cannot_become_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.gguf");
    let err = failure(&[
        "--model",
        tiny_llama().to_str().unwrap(),
        "--format",
        "gguf",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("has no tokenizer.json"), "{err}");
    assert!(!out.exists());
}
