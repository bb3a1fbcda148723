//! `decant eval --metrics ppl` on the reference teacher against llama-perplexity's
//! algorithm run on llama.cpp's logits (`tools/goldens/perplexity_llamacpp.py`),
//! and `--teacher ... --metrics ppl,kld,top1` on the teacher quantized to q4_k_m
//! against llama-perplexity's KL-divergence mode (`tools/goldens/kld_llamacpp.py`).

mod common;
#[path = "../quantize/tests/mix_common/mod.rs"]
mod mix_common;

use std::path::{Path, PathBuf};

use common::{decant, reference_model, stderr, stdout};
use serde_json::Value;

/// Logits agree to ~1e-4, so the mean NLL does too; this leaves room for that.
const RELATIVE_TOLERANCE: f64 = 1e-3;

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("train/tests/goldens/ppl")
}

fn golden() -> Value {
    let path = goldens().join("smollm2_ctx128_llamacpp.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn assert_close(name: &str, ours: f64, theirs: f64) {
    let relative = (ours - theirs).abs() / theirs.abs();
    assert!(
        relative <= RELATIVE_TOLERANCE,
        "{name}: decant {ours}, llama.cpp {theirs} (relative difference {relative:.2e})"
    );
}

#[test]
fn perplexity_matches_llama_perplexity() {
    let model = reference_model();
    let data = goldens().join("prose.txt");
    let out = decant(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--metrics",
        "ppl",
        "--ctx",
        "128",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let theirs = golden();
    let ppl = &ours["ppl"];
    assert_eq!(ours["tokens"], theirs["tokens"], "same tokenization");
    for key in ["ctx", "chunks", "scored"] {
        assert_eq!(ppl[key], theirs[key], "{key}");
    }
    eprintln!(
        "decant PPL = {} +/- {}; llama.cpp {} +/- {}",
        ppl["value"], ppl["error"], theirs["ppl"], theirs["ppl_error"]
    );
    assert_close(
        "ppl",
        ppl["value"].as_f64().unwrap(),
        theirs["ppl"].as_f64().unwrap(),
    );
    assert_close(
        "ppl error",
        ppl["error"].as_f64().unwrap(),
        theirs["ppl_error"].as_f64().unwrap(),
    );
    let chunk_nll = floats(&ppl["chunk_nll"]);
    for (i, (ours, theirs)) in chunk_nll
        .iter()
        .zip(floats(&theirs["chunk_nll"]))
        .enumerate()
    {
        assert_close(&format!("chunk {} mean NLL", i + 1), *ours, theirs);
    }
}

#[test]
fn jsonl_records_and_chunk_limit_in_llama_perplexity_text() {
    // The prose as one record per paragraph: joined back by blank lines it is the
    // same text, so the first chunks score as in the golden.
    let prose = std::fs::read_to_string(goldens().join("prose.txt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("prose.jsonl");
    let records: Vec<String> = prose
        .trim_end()
        .split("\n\n")
        .map(|paragraph| serde_json::json!({ "text": paragraph, "source": "golden" }).to_string())
        .collect();
    std::fs::write(&data, records.join("\n")).unwrap();

    let model = reference_model();
    let out = decant(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--ctx",
        "128",
        "--max-chunks",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let [running, estimate] = lines[..] else {
        panic!("expected two lines: {text}");
    };
    let running: Vec<f64> = running
        .split(',')
        .enumerate()
        .map(|(i, entry)| {
            let value = entry.strip_prefix(&format!("[{}]", i + 1)).unwrap();
            value.parse().unwrap()
        })
        .collect();
    let golden_running = floats(&golden()["running_ppl"]);
    assert_eq!(running.len(), 2, "{text}");
    for (i, (ours, theirs)) in running.iter().zip(&golden_running).enumerate() {
        assert_close(&format!("running ppl {}", i + 1), *ours, *theirs);
    }
    assert!(
        estimate.starts_with(&format!("Final estimate: PPL = {:.4} +/- ", running[1])),
        "{text}"
    );
}

#[test]
fn unsupported_metrics_are_usage_errors_naming_the_supported_ones() {
    for (metric, message) in [("bleu", "unknown metric 'bleu'")] {
        let out = decant(&[
            "eval",
            "--model",
            "m.gguf",
            "--data",
            "d.txt",
            "--metrics",
            metric,
        ]);
        assert_eq!(out.status.code(), Some(2), "{metric}");
        let err = stderr(&out);
        assert!(
            err.contains(message) && err.contains("supported: ppl"),
            "{err}"
        );
    }
}

#[test]
fn data_errors_name_the_file() {
    let model = reference_model();
    let model = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let short = dir.path().join("short.txt");
    std::fs::write(&short, "Too short to fill a chunk.").unwrap();
    let out = decant(&["eval", "--model", model, "--data", short.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&short.display().to_string()) && err.contains("less than one chunk of 512"),
        "{err}"
    );

    let jsonl = dir.path().join("bad.jsonl");
    std::fs::write(&jsonl, "{\"text\": \"fine\"}\n{\"prompt\": \"no text\"}\n").unwrap();
    let out = decant(&["eval", "--model", model, "--data", jsonl.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:2", jsonl.display())) && err.contains("no field 'text'"),
        "{err}"
    );
}

#[test]
fn kl_divergence_and_same_top_match_llama_perplexity() {
    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/goldens/kld/smollm2_q4_k_m_ctx128_llamacpp.json");
    let theirs: Value =
        serde_json::from_str(&std::fs::read_to_string(golden_path).unwrap()).unwrap();
    let teacher = mix_common::reference_f32_copy();
    let dir = tempfile::tempdir().unwrap();
    // decant's q4_k_m is llama_model_quantize's byte for byte (tests/cli_quantize.rs).
    let quantized = dir.path().join("q4_k_m.gguf");
    let out = decant(&[
        "quantize",
        "--model",
        teacher.to_str().unwrap(),
        "--type",
        "q4_k_m",
        "--out",
        quantized.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = decant(&[
        "eval",
        "--model",
        quantized.to_str().unwrap(),
        "--teacher",
        teacher.to_str().unwrap(),
        "--data",
        goldens().join("prose.txt").to_str().unwrap(),
        "--metrics",
        "ppl,kld,top1",
        "--ctx",
        "128",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours: Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    eprintln!("decant: {ours}\nllama.cpp: {theirs}");
    let number = |v: &Value| v.as_f64().unwrap();
    assert_eq!(ours["ppl"]["chunks"], theirs["chunks"]);
    assert_close("ppl", number(&ours["ppl"]["value"]), number(&theirs["ppl"]));
    assert_close(
        "teacher ppl",
        number(&ours["teacher_ppl"]["value"]),
        number(&theirs["teacher_ppl"]),
    );
    // Logits that agree to ~1e-4 move a token's KL divergence by about 1e-5;
    // measured: 1.4e-5 relative on the mean, 1.5e-4 at worst on a percentile.
    let kld = &ours["kld"];
    for (key, golden_key) in [
        ("mean", "kld_mean"),
        ("median", "kld_median"),
        ("p90", "kld_p90"),
        ("p99", "kld_p99"),
    ] {
        let (a, b) = (number(&kld[key]), number(&theirs[golden_key]));
        assert!(
            (a - b).abs() <= 2e-3 * b.abs(),
            "kld {key}: decant {a}, llama.cpp {b}"
        );
    }
    // A near-tie between the two top tokens may flip either way: one token of
    // the few hundred scored.
    let count = number(&kld["count"]);
    let ours_top = number(&ours["top1"]["value"]);
    let theirs_top = number(&theirs["same_top_percent"]) / 100.0;
    assert!(
        (ours_top - theirs_top).abs() * count <= 1.5,
        "same top: decant {ours_top}, llama.cpp {theirs_top} over {count} tokens"
    );
}

#[test]
fn kld_without_a_teacher_is_a_user_error() {
    let out = decant(&[
        "eval",
        "--model",
        "m.gguf",
        "--data",
        "d.txt",
        "--metrics",
        "ppl,top1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--teacher"), "{}", stderr(&out));
}

/// The first `n` examples of the shipped extraction eval set.
fn extraction_examples(dir: &std::path::Path, n: usize) -> (PathBuf, Vec<Value>) {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/extract/eval.jsonl"),
    )
    .unwrap();
    let lines: Vec<&str> = shipped.lines().take(n).collect();
    let path = dir.join("eval.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (
        path,
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

#[test]
fn exact_match_generates_each_answer_as_generate_chat_does_and_scores_it() {
    let model = reference_model();
    let model = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data, records) = extraction_examples(dir.path(), 3);
    let out = decant(&[
        "eval",
        "--model",
        model,
        "--data",
        data.to_str().unwrap(),
        "--metrics",
        "exact",
        "--max-new-tokens",
        "48",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let exact = &report["exact"];
    assert_eq!(exact["examples"], 3);
    assert_eq!(exact["json_examples"], 3);
    let predictions = exact["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 3);
    let mut hits = 0;
    for (prediction, record) in predictions.iter().zip(&records) {
        let messages = record["messages"].as_array().unwrap();
        assert_eq!(prediction["gold"], messages[1]["content"]);
        assert!(prediction["mean_logprob"].as_f64().unwrap() <= 0.0);
        hits += usize::from(prediction["exact"].as_bool().unwrap());
        // The same answer as `decant generate --chat` gives the user turn.
        let generated = decant(&[
            "generate",
            "--model",
            model,
            "--chat",
            "--prompt",
            messages[0]["content"].as_str().unwrap(),
            "--max-tokens",
            "48",
            "--json",
        ]);
        assert!(generated.status.success(), "{}", stderr(&generated));
        let generated: Value = serde_json::from_str(&stdout(&generated)).unwrap();
        assert_eq!(prediction["prediction"], generated["text"]);
    }
    assert!((exact["exact_match"].as_f64().unwrap() - hits as f64 / 3.0).abs() < 1e-12);
    let fields = exact["per_field"].as_object().unwrap();
    let gold: Value =
        serde_json::from_str(records[0]["messages"][1]["content"].as_str().unwrap()).unwrap();
    for key in gold.as_object().unwrap().keys() {
        assert!(fields.contains_key(key), "{key}");
    }
}

#[test]
fn exact_match_needs_conversations_and_runs_alone() {
    let model = reference_model();
    let model = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.jsonl");
    std::fs::write(&text, "{\"text\": \"no answer here\"}\n").unwrap();
    let out = decant(&[
        "eval",
        "--model",
        model,
        "--data",
        text.to_str().unwrap(),
        "--metrics",
        "exact",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:1", text.display())) && err.contains("plain text"),
        "{err}"
    );

    let out = decant(&[
        "eval",
        "--model",
        model,
        "--data",
        text.to_str().unwrap(),
        "--metrics",
        "exact,ppl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("evaluate them in separate runs"),
        "{}",
        stderr(&out)
    );
}

/// The student drafting for itself accepts everything: k + 1 tokens per step
/// (less where an answer ends mid-draft); against a pruned copy, fewer.
#[test]
fn draft_acceptance_of_the_teacher_as_its_own_draft_is_total() {
    let model = reference_model();
    let model = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = extraction_examples(dir.path(), 2);
    let out = decant(&[
        "eval",
        "--model",
        model,
        "--teacher",
        model,
        "--data",
        data.to_str().unwrap(),
        "--metrics",
        "draft",
        "--max-new-tokens",
        "24",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let draft = &report["draft"];
    assert_eq!(draft["examples"], 2);
    let tokens = draft["tokens"].as_u64().unwrap();
    assert!(tokens >= 2);
    let lengths = draft["draft_lengths"].as_array().unwrap();
    assert_eq!(lengths.len(), 8);
    for figure in lengths {
        assert_eq!(figure["acceptance_rate"], 1.0, "{figure}");
    }
    assert_eq!(
        lengths[0]["tokens_per_step"].as_f64().unwrap() >= 1.9,
        true,
        "{}",
        lengths[0]
    );

    let out = decant(&[
        "eval",
        "--model",
        model,
        "--data",
        data.to_str().unwrap(),
        "--metrics",
        "draft",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("pass --teacher MODEL"),
        "{}",
        stderr(&out)
    );
}

/// Conversations are scored as training renders them: through the chat
/// template with its special tokens, each on its own, on the tokens training
/// trains on — those `decant data stats` counts.
#[test]
fn perplexity_of_conversations_scores_the_tokens_training_sees() {
    let model = reference_model();
    let model = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = extraction_examples(dir.path(), 12);
    let data = path.to_str().unwrap();
    let out = decant(&[
        "eval",
        "--model",
        model,
        "--data",
        data,
        "--metrics",
        "ppl,kld",
        "--teacher",
        model,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let stats = decant(&["data", "stats", "--data", data, "--model", model, "--json"]);
    assert!(stats.status.success(), "{}", stderr(&stats));
    let stats: Value = serde_json::from_str(&stdout(&stats)).unwrap();
    assert_eq!(report["tokens"], stats["stats"]["tokens"], "{report}");
    assert_eq!(
        report["trained_tokens"], stats["stats"]["trained_tokens"],
        "{report}"
    );
    assert_eq!(report["documents"], 12);
    let ppl = report["ppl"]["value"].as_f64().unwrap();
    assert!(ppl > 1.0 && ppl < 50.0, "{ppl}");
    // Against itself, the model diverges by float noise only.
    assert!(
        report["kld"]["mean"].as_f64().unwrap().abs() < 1e-6,
        "{report}"
    );
}
