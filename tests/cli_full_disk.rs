//! A disk that fills up while `decant run` writes the teacher cache, a
//! checkpoint or the export: the run stops with an error naming the file, what
//! it had finished stays as it was, and a rerun with room finishes with the
//! artifacts of a run that never ran out.
//!
//! The full disk is a file size limit (`ulimit -f`, with SIGXFSZ ignored so a
//! write past it fails with EFBIG as a write to a full disk fails with ENOSPC):
//! it needs no privileges, unlike a small mounted file system.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tiny_teacher::{manifest_artifacts, tiny_teacher, tiny_teacher_recipe};
use common::{decant, stderr};

fn recipe(root: &Path, teacher: &Path) -> PathBuf {
    let rest = r#"[train]
lr = 1e-3
steps = 4
batch_size = 1
checkpoint_every = 1
keep_checkpoints = 10
seed = 3

[qat]
type = "q4_0"
steps = 2

[export]
name = "tiny-student"
types = ["q8_0"]
"#;
    tiny_teacher_recipe(root, teacher, "recipe.toml", rest)
}

fn run(recipe: &Path, out: &Path, extra: &[&str]) -> Output {
    let args = [
        &[
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        extra,
    ]
    .concat();
    decant(&args)
}

/// `decant run` with no file allowed to grow past `kib` KiB.
fn run_limited(kib: u64, recipe: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_decant"))
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// The run failed on a full disk, saying which file it was writing.
fn assert_out_of_room(output: &Output, file_in: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let message = stderr(output);
    let line = message
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{message}"));
    assert!(
        line.contains("File too large") && line.contains(file_in),
        "{line}"
    );
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    recipe: PathBuf,
    whole: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let teacher = tiny_teacher(&root.join("teacher"));
    let recipe = recipe(&root, &teacher);
    let whole = root.join("whole");
    let output = run(&recipe, &whole, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    Setup {
        _dir: dir,
        root,
        recipe,
        whole,
    }
}

#[test]
fn a_full_disk_while_caching_the_teacher_leaves_no_cache_and_a_rerun_finishes() {
    let Setup {
        _dir,
        root,
        recipe,
        whole,
    } = setup();
    let out = root.join("run");
    let full = run_limited(16, &recipe, &out, &[]);
    assert_out_of_room(&full, "teacher-cache.partial/");
    assert!(!out.join("teacher-cache").exists());
    let rerun = run(&recipe, &out, &["--resume"]);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert_eq!(manifest_artifacts(&out), manifest_artifacts(&whole));
}

#[test]
fn a_full_disk_while_checkpointing_keeps_the_last_good_checkpoint() {
    let Setup {
        _dir,
        root,
        recipe,
        whole,
    } = setup();
    let out = root.join("run");
    let mut first = Command::new(env!("CARGO_BIN_EXE_decant"))
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let good = out.join("distill/checkpoints/step-00000001");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !good.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(good.exists(), "no checkpoint appeared");
    let newest = std::fs::read_dir(good.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with("step-"))
        .max()
        .unwrap();
    let kept = out.join("distill/checkpoints").join(&newest);

    // Room for the weights (~6 MB) but not for the optimizer state (~13 MB).
    let full = run_limited(8 * 1024, &recipe, &out, &["--resume"]);
    assert_out_of_room(&full, "optimizer.safetensors");
    for file in [
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert_eq!(
            sha256(&kept.join(file)),
            sha256(&whole.join("distill/checkpoints").join(&newest).join(file)),
            "{file}"
        );
    }
    assert!(!out.join("distill/student").exists());

    let rerun = run(&recipe, &out, &["--resume"]);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert_eq!(manifest_artifacts(&out), manifest_artifacts(&whole));
}

#[test]
fn a_full_disk_while_exporting_leaves_the_trained_student_and_no_export() {
    let Setup {
        _dir,
        root,
        recipe,
        whole,
    } = setup();
    let out = root.join("run");
    let trained = run(&recipe, &out, &["--until", "qat"]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    let student = out.join("qat/student/model.safetensors");
    let before = sha256(&student);

    let full = run_limited(512, &recipe, &out, &["--resume"]);
    assert_out_of_room(&full, "export.partial/tiny-student-q8_0.gguf");
    assert!(!out.join("export").exists());
    assert_eq!(sha256(&student), before);

    let rerun = run(&recipe, &out, &["--resume"]);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert_eq!(manifest_artifacts(&out), manifest_artifacts(&whole));
}
