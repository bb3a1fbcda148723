//! `decant run`: the recipe's stages into one run directory, reused on a
//! rerun, with a manifest whose hashes are those of the files on disk.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{decant, stderr, stdout, tiny_recipe};
use serde_json::Value;

const EXPORT: &str = "[export]\nname = \"tiny-student\"\n";

fn recipe(root: &Path, sections: &str) -> std::path::PathBuf {
    let qat = "\n[qat]\ntype = \"q4_0\"\nsteps = 2\n";
    let path = tiny_recipe(root, "kind = \"layers\"\nlayers = [0, 29]", 2, qat, "");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(EXPORT));
    std::fs::write(&path, text.replace(EXPORT, sections)).unwrap();
    path
}

fn run(recipe: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let args = [
        &[
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        extra,
    ]
    .concat();
    decant(&args)
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn run_distils_quantization_aware_trains_exports_and_lists_every_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let export = "[export]\nname = \"tiny-student\"\nformats = [\"gguf\", \"safetensors\"]\ntypes = [\"q4_0\", \"q8_0\"]\n";
    let recipe = recipe(dir.path(), export);
    let out = dir.path().join("run");
    let first = run(&recipe, &out, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let report: Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert_eq!(report["published"], Value::Null);
    let manifest = &report["manifest"];
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest, &on_disk);
    assert_eq!(manifest["name"], "tiny-student");

    let stages: Vec<(&str, bool)> = manifest["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["reused"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        stages,
        [("distill", false), ("qat", false), ("export", false)]
    );
    let artifacts = manifest["artifacts"].as_array().unwrap();
    let paths: Vec<&str> = artifacts
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "distill/student",
            "qat/student",
            "export/tiny-student-q4_0.gguf",
            "export/tiny-student-q8_0.gguf",
            "export/tiny-student-hf",
        ]
    );
    assert_eq!(artifacts[1]["parents"][0], "distill/student");
    assert_eq!(artifacts[2]["parents"][0], "qat/student");
    for artifact in &artifacts[2..4] {
        let path = out.join(artifact["path"].as_str().unwrap());
        assert_eq!(
            artifact["sha256"].as_str().unwrap(),
            sha256(&path),
            "{}",
            path.display()
        );
        assert_eq!(
            artifact["size"].as_u64().unwrap(),
            std::fs::metadata(&path).unwrap().len()
        );
        let inspect = decant(&["inspect", path.to_str().unwrap(), "--json"]);
        assert!(inspect.status.success(), "{}", stderr(&inspect));
        let summary: Value = serde_json::from_str(&stdout(&inspect)).unwrap();
        assert_eq!(
            summary["metadata"]["decant.qat_type"],
            "q4_0",
            "{}",
            path.display()
        );
    }
    assert!(out.join("export/tiny-student-hf/config.json").is_file());
    assert!(!out.join("export.partial").exists());

    let started = Instant::now();
    let again = run(&recipe, &out, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let rerun: Value = serde_json::from_str(&stdout(&again)).unwrap();
    let rerun = &rerun["manifest"];
    assert!(
        rerun["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["reused"] == true),
        "{rerun}"
    );
    assert_eq!(rerun["artifacts"], manifest["artifacts"]);
    assert!(
        started.elapsed().as_secs() < 60,
        "a finished run took {:?} to rerun",
        started.elapsed()
    );
}

#[test]
fn the_eval_stage_scores_the_teacher_and_every_export_and_picks_a_cascade_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/extract/eval.jsonl"),
    )
    .unwrap();
    let examples: String = shipped.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("eval.jsonl"), examples).unwrap();
    let sections = format!(
        "{EXPORT}formats = [\"gguf\", \"safetensors\"]\n[eval]\nmetrics = [\"ppl\", \"kld\", \"top1\", \"exact\"]\ndata = \"{}\"\nmax_new_tokens = 48\ncascade = {{ target_accuracy = 0.5 }}\n",
        dir.path().join("eval.jsonl").display()
    );
    let recipe = recipe(dir.path(), &sections);
    let out = dir.path().join("run");

    let distilled = run(&recipe, &out, &["--until", "distill"]);
    assert!(distilled.status.success(), "{}", stderr(&distilled));
    let report: Value = serde_json::from_str(&stdout(&distilled)).unwrap();
    assert_eq!(report["manifest"]["stages"].as_array().unwrap().len(), 1);
    assert_eq!(report["eval"], Value::Null);

    let full = run(&recipe, &out, &[]);
    assert!(full.status.success(), "{}", stderr(&full));
    let report: Value = serde_json::from_str(&stdout(&full)).unwrap();
    let stages: Vec<&str> = report["manifest"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["distill", "qat", "export", "eval"]);
    let models = report["eval"]["models"].as_array().unwrap();
    let labels: Vec<&str> = models
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["teacher", "q4_0"]);
    assert_eq!(report["eval"]["examples"], 4);
    let (teacher, student) = (&models[0], &models[1]);
    assert!(
        teacher["ppl"].as_f64().unwrap() > 1.0 && teacher["kld"].is_null(),
        "{teacher}"
    );
    assert!(student["ppl"].as_f64().unwrap() > 1.0, "{student}");
    assert!(student["kld"].as_f64().unwrap() > 0.0, "{student}");
    assert!(
        (0.0..=1.0).contains(&student["top1"].as_f64().unwrap()),
        "{student}"
    );
    for model in models {
        assert!(
            (0.0..=1.0).contains(&model["exact_match"].as_f64().unwrap()),
            "{model}"
        );
        assert!(model["tokens_per_s"].as_f64().unwrap() > 0.0, "{model}");
        let curve = model["cascade"]["curve"].as_array().unwrap();
        assert!(
            !curve.is_empty() && curve.last().unwrap()["coverage"] == 1.0,
            "{model}"
        );
    }
    let gguf = report["manifest"]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "gguf")
        .unwrap();
    assert_eq!(gguf["metrics"]["eval"]["kld"], student["kld"]);

    // The cascade is in the GGUF for a router to read, and in the model card;
    // the manifest hashes the file as stamped.
    let gguf_path = out.join(gguf["path"].as_str().unwrap());
    assert_eq!(gguf["sha256"].as_str().unwrap(), sha256(&gguf_path));
    let file = quantize::gguf::GgufFile::open(&gguf_path).unwrap();
    let meta = |key: &str| file.get(key).cloned();
    use quantize::gguf::Value as Meta;
    assert_eq!(
        meta("decant.cascade.confidence"),
        Some(Meta::from("mean_token_logprob"))
    );
    assert_eq!(meta("decant.cascade.target_accuracy"), Some(Meta::F32(0.5)));
    let chosen = &student["cascade"]["chosen"];
    let threshold = chosen["threshold"].as_f64().map(|t| Meta::F32(t as f32));
    assert_eq!(meta("decant.cascade.threshold"), threshold, "{chosen}");
    let hf = report["manifest"]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "safetensors")
        .unwrap();
    let card =
        std::fs::read_to_string(out.join(hf["path"].as_str().unwrap()).join("README.md")).unwrap();
    assert!(
        card.contains("## Serving cascade") && card.contains("tiny-student-q4_0.gguf"),
        "{card}"
    );
    assert_eq!(card.matches("## Serving cascade").count(), 1);

    // The report: loss curves of both training stages, the models, the lineage.
    assert_eq!(
        report["report"].as_str().unwrap(),
        out.join("report.md").to_str().unwrap()
    );
    let text = std::fs::read_to_string(out.join("report.md")).unwrap();
    for part in [
        "![training loss per step](report/loss.svg)",
        "| distill | 2 |",
        "| qat | 2 |",
        "| teacher |",
        "| q4_0 | `export/tiny-student-q4_0.gguf` |",
        "## Lineage",
        "| `qat/student` | student |",
    ] {
        assert!(text.contains(part), "no {part:?} in\n{text}");
    }
    let svg = std::fs::read_to_string(out.join("report/loss.svg")).unwrap();
    assert!(
        svg.starts_with("<svg")
            && svg.contains("\ndistill\n</text>")
            && svg.contains("\nqat\n</text>"),
        "{svg}"
    );
    let stdout_table = decant(&[
        "run",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let table = stdout(&stdout_table);
    assert!(
        table.contains("teacher")
            && table.contains("q4_0")
            && table.contains("exact")
            && table.contains("tok/s"),
        "{table}"
    );
}

#[test]
fn a_second_process_on_the_same_run_directory_is_refused_and_a_stale_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), EXPORT);
    let out = dir.path().join("run");
    let (recipe_arg, out_arg) = (recipe.to_str().unwrap(), out.to_str().unwrap());

    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_decant"))
        .args(["run", recipe_arg, "--out", out_arg, "--until", "distill"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.join(".lock");
    let started = Instant::now();
    while !lock.is_file() || std::fs::read_to_string(&lock).unwrap().is_empty() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the first run never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for command in ["run", "distill", "qat"] {
        let refused = decant(&[command, recipe_arg, "--out", out_arg]);
        assert_eq!(refused.status.code(), Some(1), "{command}");
        let message = stderr(&refused);
        assert!(
            message.contains(&format!(
                "this run directory is in use by decant pid {}",
                first.id()
            )),
            "{command}: {message}"
        );
    }
    assert!(first.wait().unwrap().success());
    assert!(!lock.exists(), "the lock outlived its run");

    // A holder that is gone (killed before it could remove its lock): stale.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(&lock, pid.to_string()).unwrap();
    let again = run(&recipe, &out, &["--until", "distill"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!lock.exists());
}
