//! `decant generate` end to end against llama.cpp's greedy generations of the
//! reference teacher (golden from tools/goldens/generate_llamacpp.py): the chat
//! prompt rendered and tokenized as llama.cpp does, and the same tokens generated.

mod common;

use common::{decant, reference_model, stderr, stdout};
use serde_json::Value as Json;

fn golden() -> Json {
    serde_json::from_str(include_str!(
        "../train/tests/goldens/smollm2_generate_llamacpp.json"
    ))
    .expect("golden JSON")
}

#[test]
fn chat_generations_match_llama_cpp() {
    let model = reference_model();
    let model = model.to_str().expect("UTF-8 path");
    let golden = golden();
    let max_tokens = golden["max_tokens"].to_string();
    let cases = golden["cases"].as_array().expect("cases");
    assert!(cases.len() >= 3);
    let args = |prompt| {
        [
            "generate",
            "--model",
            model,
            "--prompt",
            prompt,
            "--chat",
            "--max-tokens",
            &max_tokens,
        ]
    };
    // One process per case, side by side: each spends most of its time loading the model.
    std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|case| {
                let prompt = case["prompt"].as_str().expect("prompt");
                (
                    case,
                    scope.spawn(move || decant(&[&args(prompt)[..], &["--json"]].concat())),
                )
            })
            .collect();
        let eog_case = cases
            .iter()
            .find(|case| case["stop"] == "eog")
            .expect("a case that stops at EOG");
        let eog_prompt = eog_case["prompt"].as_str().expect("prompt");
        let plain = scope.spawn(move || decant(&args(eog_prompt)));

        for (case, run) in runs {
            let run = run.join().expect("the run's thread");
            let prompt = &case["prompt"];
            assert!(run.status.success(), "{prompt}: {}", stderr(&run));
            let report: Json = serde_json::from_str(&stdout(&run)).expect("one JSON object");
            assert_eq!(report["prompt_text"], case["chat_text"], "{prompt}");
            assert_eq!(report["prompt_tokens"], case["prompt_tokens"], "{prompt}");
            assert_eq!(report["tokens"], case["tokens"], "{prompt}");
            assert_eq!(report["stop_reason"], case["stop"], "{prompt}");
            assert_eq!(report["stop_token"], case["stop_token"], "{prompt}");
            assert_eq!(report["text"], case["text"], "{prompt}");
            assert!(report["tokens_per_second"].as_f64().expect("a speed") > 0.0);
        }
        let plain = plain.join().expect("the run's thread");
        assert!(plain.status.success(), "{}", stderr(&plain));
        let text = eog_case["text"].as_str().expect("text");
        assert_eq!(
            stdout(&plain),
            format!("{text}\n"),
            "plain output is the text alone"
        );
    });
}

#[test]
fn plain_prompts_are_continued_as_they_are() {
    let model = reference_model();
    let model = model.to_str().expect("UTF-8 path");
    let prompt = "The capital of France is";
    let run = decant(&[
        "generate",
        "--model",
        model,
        "--prompt",
        prompt,
        "--max-tokens",
        "3",
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let report: Json = serde_json::from_str(&stdout(&run)).expect("one JSON object");
    let tokenized = decant(&["tokenize", "--model", model, "--text", prompt, "--json"]);
    let tokenized: Json = serde_json::from_str(&stdout(&tokenized)).expect("one JSON object");
    assert_eq!(
        report["prompt_tokens"], tokenized["tokens"],
        "SmolLM2 adds no BOS"
    );
    assert_eq!(report["tokens"].as_array().map(Vec::len), Some(3));
    assert_eq!(report["stop_reason"], "max_tokens");
    assert_eq!(report["stop_token"], Json::Null);
}

#[test]
fn bad_arguments_are_user_errors_naming_them() {
    let model = reference_model();
    let model = model.to_str().expect("UTF-8 path");
    let run = decant(&[
        "generate",
        "--model",
        "/nonexistent/m.gguf",
        "--prompt",
        "x",
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("/nonexistent/m.gguf: no such file or directory"),
        "{}",
        stderr(&run)
    );
    let run = decant(&["generate", "--model", model, "--prompt", ""]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("the token sequence is empty"),
        "{}",
        stderr(&run)
    );
}
