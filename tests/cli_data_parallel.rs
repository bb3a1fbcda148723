//! Data-parallel distillation from the command line, on a tiny teacher with
//! the real tokenizer: replicas on one machine (`decant distill --devices`)
//! and two `decant run` processes meeting through the collective on 127.0.0.1
//! (`--rank/--world`) train the student one process on one device trains,
//! checkpoints are written once, and the nodes' teacher-cache parts merge into
//! the cache one process writes.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::tiny_teacher::{tiny_teacher, tiny_teacher_recipe};
use common::{decant, stderr, stdout};
use serde_json::Value;
use train::optim::named_tensors;
use train::trainer::read_metrics;

fn recipe(root: &Path, teacher: &Path) -> PathBuf {
    let rest = r#"[train]
lr = 1e-3
warmup_steps = 1
steps = 4
batch_size = 4
checkpoint_every = 2
seed = 3

[export]
name = "tiny-student"
types = ["q8_0"]
"#;
    tiny_teacher_recipe(root, teacher, "parallel.toml", rest)
}

fn distill(recipe: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "distill",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let output = decant(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

fn losses(out: &Path) -> Vec<f64> {
    read_metrics(&out.join("distill/metrics.jsonl"))
        .unwrap()
        .into_iter()
        .map(|m| m.loss)
        .collect()
}

fn assert_same_training(actual: &Path, expected: &Path) {
    let (a, e) = (losses(actual), losses(expected));
    assert_eq!(a.len(), e.len(), "{a:?} vs {e:?}");
    for (step, (a, e)) in a.iter().zip(&e).enumerate() {
        assert!(
            (a - e).abs() <= 1e-4 * e.abs().max(1.0),
            "step {}: {a} vs {e}",
            step + 1
        );
    }
    let student = |out: &Path| {
        let model = train::load_hf_dir::<train::CpuBackend>(
            &out.join("distill/student"),
            &Default::default(),
        )
        .unwrap();
        named_tensors(&model)
    };
    let (a, e) = (student(actual), student(expected));
    for (name, tensor) in &a {
        let worst = tensor
            .values
            .iter()
            .zip(&e[name].values)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-4, "{name} differs by {worst}");
    }
}

fn checkpoint_steps(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out.join("distill/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rank(
    recipe: &Path,
    out: &Path,
    rank: u32,
    coordinator: &str,
    address: &str,
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_decant"))
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--until",
            "distill",
            "--json",
        ])
        .args([
            "--rank",
            &rank.to_string(),
            "--world",
            "2",
            "--coordinator",
            coordinator,
            "--node-address",
            address,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn report(output: Output) -> Value {
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn replicas_and_nodes_train_the_student_one_device_trains() {
    let root = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(&root.path().join("teacher"));
    let recipe = recipe(root.path(), &teacher);

    let single = root.path().join("single");
    let one = distill(&recipe, &single, &[]);
    assert_eq!(one["replicas"], 1);

    let local = root.path().join("local");
    let two = distill(&recipe, &local, &["--devices", "2"]);
    assert_eq!(two["replicas"], 2);
    assert_same_training(&local, &single);
    // Once each, by the leader: the start the replicas loaded, and the schedule's.
    assert_eq!(
        checkpoint_steps(&local),
        ["step-00000000", "step-00000002", "step-00000004"]
    );

    // Two processes in one run directory, as nodes sharing storage would be.
    let nodes = root.path().join("nodes");
    let coordinator = format!("127.0.0.1:{}", free_port());
    let first = rank(
        &recipe,
        &nodes,
        0,
        &coordinator,
        &format!("127.0.0.1:{}", free_port()),
    );
    let second = rank(
        &recipe,
        &nodes,
        1,
        &coordinator,
        &format!("127.0.0.1:{}", free_port()),
    );
    let (first, second) = (
        report(first.wait_with_output().unwrap()),
        report(second.wait_with_output().unwrap()),
    );
    // Rank 0 ran the pipeline and wrote the stage; rank 1 reports its replica.
    assert_eq!(first["manifest"]["stages"][0]["stage"], "distill");
    let stage: Value =
        serde_json::from_str(&std::fs::read_to_string(nodes.join("distill/stage.json")).unwrap())
            .unwrap();
    assert_eq!(stage["replicas"], 2);
    assert_eq!(second["replicas"], 2);
    assert_eq!(
        stage["weights_sha256"], second["weights_sha256"],
        "the nodes end with the same weights"
    );
    assert_same_training(&nodes, &single);
    // The nodes cached their parts of the teacher cache and rank 0 merged them.
    assert!(!nodes.join("teacher-cache.parts").exists());
    for file in ["manifest.json", "permutation.bin"] {
        let read = |out: &Path| std::fs::read(out.join("teacher-cache").join(file)).unwrap();
        assert!(
            read(&nodes) == read(&single),
            "{file} differs from the one-process cache"
        );
    }
    assert_eq!(
        checkpoint_steps(&nodes),
        ["step-00000000", "step-00000002", "step-00000004"]
    );
}

#[test]
fn a_batch_that_does_not_split_over_the_devices_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(&root.path().join("teacher"));
    let recipe = recipe(root.path(), &teacher);
    let out = root.path().join("out");
    let output = decant(&[
        "distill",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--devices",
        "3",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output)
            .contains("--devices 3: `train.batch_size` = 4 must split evenly over the devices"),
        "{}",
        stderr(&output)
    );
    let output = decant(&[
        "distill",
        recipe.to_str().unwrap(),
        "--rank",
        "2",
        "--world",
        "2",
        "--coordinator",
        "127.0.0.1:1",
    ]);
    assert!(
        stderr(&output).contains("--rank 2: expected a rank below --world 2"),
        "{}",
        stderr(&output)
    );
    let output = decant(&[
        "distill",
        recipe.to_str().unwrap(),
        "--rank",
        "0",
        "--world",
        "2",
        "--coordinator",
        "10.0.0.1:7000",
    ]);
    assert!(
        stderr(&output).contains("--node-address: required when the coordinator"),
        "{}",
        stderr(&output)
    );
}
