//! `decant run` killed with SIGKILL at random moments — while the teacher cache,
//! a checkpoint, the export or the publish is being written, or at a random
//! time — and resumed each time, ends with the uninterrupted run's artifacts,
//! byte for byte; and after every kill, each file at a final path is one the
//! uninterrupted run also wrote, with the same bytes, or a complete checkpoint.
//!
//! `DECANT_KILL_SEED=N` replays another sequence of kill moments.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tiny_teacher::{manifest_artifacts, tiny_teacher, tiny_teacher_recipe};
use serde_json::Value;

const KILLS: usize = 20;

/// Files whose content carries timings (tokens/s, seconds): they must parse,
/// not match. Everything else a run writes is a function of its inputs.
const TIMED: [&str; 5] = [
    "metrics.jsonl",
    "stage.json",
    "manifest.json",
    "report.md",
    "index.json",
];

fn recipe(root: &Path, teacher: &Path, registry: &Path) -> PathBuf {
    let rest = format!(
        r#"[train]
lr = 1e-3
warmup_steps = 1
steps = 6
batch_size = 1
checkpoint_every = 1
keep_checkpoints = 2
seed = 3

[qat]
type = "q4_0"
steps = 2

[export]
name = "tiny-student"
types = ["q4_0", "q8_0"]

[publish]
registry = "file://{}"
"#,
        registry.display()
    );
    let file = format!(
        "recipe-{}.toml",
        registry.file_name().unwrap().to_str().unwrap()
    );
    tiny_teacher_recipe(root, teacher, &file, &rest)
}

fn start(recipe: &Path, out: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_decant"))
        .args([
            "run",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--resume",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Where a kill can land: what the process was writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Moment {
    TeacherCache,
    Checkpoint,
    Export,
    Publish,
    /// A random time, whatever it was doing.
    Anytime,
}

const TARGETS: [Moment; 5] = [
    Moment::TeacherCache,
    Moment::Checkpoint,
    Moment::Export,
    Moment::Publish,
    Moment::Anytime,
];

/// Whether `out` and `registry` show `moment`'s temporary files right now.
fn writing(moment: Moment, out: &Path, registry: &Path) -> bool {
    let has_temporary = |dir: &Path, prefix: &str, suffix: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(prefix) && name.ends_with(suffix)
            })
        })
    };
    match moment {
        Moment::TeacherCache => out.join("teacher-cache.partial").exists(),
        Moment::Checkpoint => ["distill", "qat"]
            .iter()
            .any(|s| has_temporary(&out.join(s).join("checkpoints"), ".tmp-", "")),
        Moment::Export => out.join("export.partial").exists(),
        Moment::Publish => has_temporary(&registry.join("tiny-student"), ".v", ".partial"),
        Moment::Anytime => false,
    }
}

/// A small deterministic generator: the kill moments repeat for a seed.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A path component a writer uses while a file or directory is incomplete.
fn is_temporary(component: &str) -> bool {
    component.ends_with(".partial") || component.ends_with(".tmp") || component.starts_with(".tmp-")
}

/// Every file under `root` by relative path, temporaries and the lock left out.
fn final_files(root: &Path) -> BTreeMap<PathBuf, PathBuf> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_temporary(&name) || name == ".lock" {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                files.insert(path.strip_prefix(root).unwrap().to_owned(), path);
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

/// Every final file under `killed` has the bytes of the same file under
/// `whole` (of `recipe`, for the run's copy of it), parses (timed files; a torn
/// last line of an append-only log is allowed: a resume drops it), or belongs
/// to a checkpoint that loads.
fn check_final_paths(killed: &Path, whole: &Path, recipe: &Path, context: &str) {
    for (relative, path) in final_files(killed) {
        let name = relative.file_name().unwrap().to_str().unwrap();
        let reference = if relative == Path::new("recipe.toml") {
            recipe.to_owned()
        } else {
            whole.join(&relative)
        };
        if TIMED.contains(&name) {
            let text = std::fs::read_to_string(&path).unwrap();
            if name.ends_with(".jsonl") {
                let lines: Vec<&str> = text.lines().collect();
                for line in &lines[..lines.len().saturating_sub(1)] {
                    assert!(
                        serde_json::from_str::<Value>(line).is_ok(),
                        "{context}: {} has a torn line {line:?}",
                        path.display()
                    );
                }
            } else if name.ends_with(".json") {
                assert!(
                    serde_json::from_str::<Value>(&text).is_ok(),
                    "{context}: {} is not JSON",
                    path.display()
                );
            }
        } else if reference.exists() {
            assert_eq!(
                sha256(&path),
                sha256(&reference),
                "{context}: {} differs from the uninterrupted run's",
                path.display()
            );
        } else {
            let checkpoint = path.parent().unwrap();
            assert!(
                checkpoint
                    .parent()
                    .is_some_and(|p| p.ends_with("checkpoints")),
                "{context}: {} is a file the uninterrupted run never wrote",
                path.display()
            );
            train::checkpoint::load(checkpoint).unwrap_or_else(|e| {
                panic!(
                    "{context}: checkpoint {} does not load: {e}",
                    checkpoint.display()
                )
            });
        }
    }
}

#[test]
fn a_run_killed_at_random_moments_always_resumes_to_the_uninterrupted_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(&dir.path().join("teacher"));
    let whole_registry = dir.path().join("registry-whole");
    let whole = dir.path().join("whole");
    let started = Instant::now();
    let mut child = start(
        &recipe(dir.path(), &teacher, &whole_registry),
        &whole,
        &dir.path().join("whole.log"),
    );
    assert!(
        child.wait().unwrap().success(),
        "{}",
        std::fs::read_to_string(dir.path().join("whole.log")).unwrap()
    );
    let duration = started.elapsed();
    let expected = manifest_artifacts(&whole);

    let seed = std::env::var("DECANT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = Rng(seed | 1);
    let mut landed: BTreeMap<Moment, usize> = BTreeMap::new();
    let (mut kills, mut attempts) = (0, 0);
    for round in 0.. {
        if kills >= KILLS {
            break;
        }
        let registry = dir.path().join(format!("registry-{round}"));
        let out = dir.path().join(format!("killed-{round}"));
        let recipe = recipe(dir.path(), &teacher, &registry);
        let log = dir.path().join(format!("killed-{round}.log"));
        for attempt in 0.. {
            assert!(attempt < 50, "round {round} never finished");
            // Moving on after each attempt: a moment a round has passed (or one too
            // short to catch) does not stall the test.
            let target = TARGETS[attempts % TARGETS.len()];
            attempts += 1;
            let deadline = duration.mul_f64(rng.unit());
            let mut child = start(&recipe, &out, &log);
            let began = Instant::now();
            let finished = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "round {round}: {}",
                        std::fs::read_to_string(&log).unwrap()
                    );
                    break true;
                }
                let due = match target {
                    Moment::Anytime => began.elapsed() >= deadline,
                    moment => writing(moment, &out, &registry),
                };
                if due {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    break false;
                }
                std::thread::sleep(Duration::from_millis(2));
            };
            if finished {
                break;
            }
            kills += 1;
            let moment = TARGETS
                .into_iter()
                .find(|&m| m != Moment::Anytime && writing(m, &out, &registry));
            *landed.entry(moment.unwrap_or(Moment::Anytime)).or_default() += 1;
            let context = format!("seed {seed}, round {round}, kill {kills} ({target:?})");
            check_final_paths(&out, &whole, &recipe, &context);
            check_final_paths(&registry, &whole_registry, &recipe, &context);
        }
        assert_eq!(manifest_artifacts(&out), expected, "round {round}");
        let whole_files: Vec<PathBuf> = final_files(&whole).into_keys().collect();
        assert_eq!(
            final_files(&out).into_keys().collect::<Vec<_>>(),
            whole_files,
            "round {round}"
        );
        check_final_paths(&out, &whole, &recipe, &format!("round {round}, finished"));
        check_final_paths(
            &registry,
            &whole_registry,
            &recipe,
            &format!("round {round}, finished"),
        );
    }
    eprintln!(
        "seed {seed}: {kills} kills landed while writing {landed:?}; an uninterrupted run takes {duration:?}"
    );
    for moment in [Moment::TeacherCache, Moment::Checkpoint, Moment::Export] {
        assert!(
            landed.contains_key(&moment),
            "no kill landed in {moment:?}: {landed:?}"
        );
    }
}
