//! `[student.init] kind = "width"`: the distill stage prunes the reference
//! teacher's FFN channels, attention heads and hidden size, trains the
//! student, and records what it kept.

mod common;

use std::path::Path;

use common::{decant, stderr, stdout, tiny_recipe};
use serde_json::Value;

fn distill(recipe: &Path, out: &Path) -> std::process::Output {
    decant(&[
        "distill",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])
}

fn losses(stage: &Path) -> Vec<f64> {
    std::fs::read_to_string(stage.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

fn indices(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn a_width_pruned_student_has_the_recipe_widths_trains_and_records_what_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    // SmolLM2-135M: hidden 576, FFN 1536, 9 heads sharing 3 key/value heads.
    let student = "kind = \"width\"\nffn = 768\nheads = 6\nhidden = 384\ncalibration_samples = 8";
    let recipe = tiny_recipe(dir.path(), student, 6, "", "");
    let run = dir.path().join("run");
    let output = distill(&recipe, &run);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["steps"], 6);

    let student_dir = run.join("distill/student");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(student_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["intermediate_size"], 768);
    assert_eq!(config["num_attention_heads"], 6);
    assert_eq!(config["num_key_value_heads"], 3);
    assert_eq!(config["hidden_size"], 384);
    assert_eq!(config["head_dim"], 64);
    assert_eq!(config["num_hidden_layers"], 30);

    // Distillation closes some of the gap pruning opened.
    let losses = losses(&run.join("distill"));
    assert_eq!(losses.len(), 6);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let (first, last) = (losses[0] + losses[1], losses[4] + losses[5]);
    assert!(last < first, "{losses:?}");

    // Every layer stays, each narrowed as the report records.
    assert_eq!(
        indices(&report["student_layers"]),
        (0..30).collect::<Vec<_>>()
    );
    let width = &report["width"];
    let hidden = indices(&width["hidden"]);
    assert_eq!(hidden.len(), 384);
    assert!(hidden.windows(2).all(|pair| pair[0] < pair[1]) && hidden[383] < 576);
    assert_eq!(width["hidden_importance"].as_array().unwrap().len(), 576);
    assert_eq!(
        width["calibration_tokens"].as_u64().map(|t| t > 0),
        Some(true)
    );
    for layer in 0..30 {
        assert_eq!(indices(&width["ffn"][layer]).len(), 768);
        let heads = indices(&width["heads"][layer]);
        // Two of the three query heads of each key/value head.
        for group in 0..3 {
            assert_eq!(
                heads.iter().filter(|&&h| h / 3 == group).count(),
                2,
                "layer {layer}: {heads:?}"
            );
        }
        assert_eq!(width["head_importance"][layer].as_array().unwrap().len(), 9);
    }
    let stage: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("distill/stage.json")).unwrap())
            .unwrap();
    assert_eq!(stage["width"], report["width"]);

    // Its directory loads as a model with attention wider than its hidden size.
    let generate = decant(&[
        "generate",
        "--model",
        student_dir.to_str().unwrap(),
        "--prompt",
        "Invoice",
        "--max-tokens",
        "3",
        "--json",
    ]);
    assert!(generate.status.success(), "{}", stderr(&generate));
}

#[test]
fn widths_the_teacher_cannot_be_pruned_to_are_refused_naming_the_key_and_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "heads = 4",
            "cannot prune `heads` to 4: grouped-query attention keeps all of the teacher's 3 key/value \
             heads and the same number of query heads for each, so `heads` must be a multiple of 3 up to \
             the teacher's 9",
        ),
        (
            "ffn = 2048",
            "cannot prune `ffn` to 2048: the teacher has 1536 FFN channels per layer, expected 1..=1536",
        ),
    ];
    for (width, expected) in cases {
        let recipe = tiny_recipe(dir.path(), &format!("kind = \"width\"\n{width}"), 2, "", "");
        let output = distill(&recipe, &dir.path().join("run"));
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(
            stderr(&output).contains(&format!("student init: {expected}")),
            "{}",
            stderr(&output)
        );
    }
}
