//! `decant publish` to a `file://` registry: a version holds exactly the run's
//! exported files, the same release is found again, a publish killed half-way
//! leaves nothing registered, and two publishes do not interleave.

mod common;

use std::path::{Path, PathBuf};

use common::{decant, stderr, stdout, tiny_recipe};
use serde_json::Value;

/// A run directory with a manifest: two distill steps, one Q8_0 GGUF; with
/// `registry`, the recipe's `[publish]` sends it there. Also what the run printed.
fn run_dir(root: &Path, seed: u64, registry: Option<&Path>) -> (PathBuf, Value) {
    let recipe = tiny_recipe(root, "kind = \"layers\"\nlayers = [0]", 2, &format!("seed = {seed}\n"), "");
    let mut text = std::fs::read_to_string(&recipe).unwrap().replace("seed = 3\n", "");
    if let Some(registry) = registry {
        text += &format!("\n[publish]\nregistry = \"file://{}\"\n", registry.display());
    }
    std::fs::write(&recipe, text).unwrap();
    let out = root.join(format!("run-{seed}"));
    let run = decant(&["run", recipe.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"]);
    assert!(run.status.success(), "{}", stderr(&run));
    (out, serde_json::from_str(&stdout(&run)).unwrap())
}

fn publish(run: &Path, registry: &Path) -> std::process::Output {
    let uri = format!("file://{}", registry.display());
    decant(&["publish", run.to_str().unwrap(), "--registry", &uri, "--json"])
}

fn published(run: &Path, registry: &Path) -> Value {
    let output = publish(run, registry);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

fn index(registry: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(registry.join("index.json")).unwrap()).unwrap()
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn versions_hold_the_run_s_files_and_a_killed_publish_registers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    let (first, _) = run_dir(dir.path(), 1, None);

    let v1 = published(&first, &registry);
    assert_eq!((v1["name"].as_str(), v1["version"].as_u64(), v1["reused"].as_bool()), (Some("tiny-student"), Some(1), Some(false)));
    let gguf = registry.join("tiny-student/v1/tiny-student-q8_0.gguf");
    assert_eq!(sha256(&gguf), sha256(&first.join("export/tiny-student-q8_0.gguf")));
    assert!(registry.join("tiny-student/v1/manifest.json").is_file());
    let versions = &index(&registry)["models"]["tiny-student"]["versions"];
    assert_eq!(versions.as_array().unwrap().len(), 1);
    assert_eq!(versions[0]["files"][0]["sha256"].as_str().unwrap(), sha256(&gguf));

    let again = published(&first, &registry);
    assert_eq!((again["version"].as_u64(), again["reused"].as_bool()), (Some(1), Some(true)));

    // A publish killed after copying (or after renaming) never reached the index:
    // its leftovers are not a version, and the next publish replaces them.
    std::fs::create_dir_all(registry.join("tiny-student/.v2.partial")).unwrap();
    std::fs::create_dir_all(registry.join("tiny-student/v2")).unwrap();
    std::fs::write(registry.join("tiny-student/v2/half.gguf"), b"GGUF").unwrap();
    assert_eq!(index(&registry)["models"]["tiny-student"]["versions"].as_array().unwrap().len(), 1);

    // This time the recipe's [publish] section publishes at the end of the run.
    let (second, report) = run_dir(dir.path(), 2, Some(&registry));
    let v2 = &report["published"];
    assert_eq!((v2["version"].as_u64(), v2["reused"].as_bool()), (Some(2), Some(false)), "{report}");
    assert!(!registry.join("tiny-student/v2/half.gguf").exists());
    assert!(!registry.join("tiny-student/.v2.partial").exists());
    assert_eq!(
        sha256(&registry.join("tiny-student/v2/tiny-student-q8_0.gguf")),
        sha256(&second.join("export/tiny-student-q8_0.gguf"))
    );
    assert_eq!(index(&registry)["models"]["tiny-student"]["versions"].as_array().unwrap().len(), 2);

    // A file changed after the run is refused, and registers nothing.
    std::fs::write(second.join("export/tiny-student-q8_0.gguf"), b"GGUF tampered").unwrap();
    let other = dir.path().join("other-registry");
    let refused = publish(&second, &other);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("it changed after the run"), "{}", stderr(&refused));
    assert!(!other.join("index.json").exists());

    // A lock held by a live process (this test) names its holder; a dead
    // holder's lock is stale and taken over.
    std::fs::write(registry.join(".lock"), std::process::id().to_string()).unwrap();
    let locked = publish(&first, &registry);
    assert_eq!(locked.status.code(), Some(1));
    let expected = format!("the registry is in use by decant pid {}", std::process::id());
    assert!(stderr(&locked).contains(&expected), "{}", stderr(&locked));
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(registry.join(".lock"), dead.to_string()).unwrap();
    assert_eq!(published(&first, &registry)["reused"], true);
    assert!(!registry.join(".lock").exists());
}

#[test]
fn registries_and_runs_publish_cannot_use_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("not-a-run");
    std::fs::create_dir_all(&empty).unwrap();
    let out = publish(&empty, &dir.path().join("registry"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has no manifest.json"), "{}", stderr(&out));

    let out = decant(&["publish", empty.to_str().unwrap(), "--registry", "ftp://host/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--registry 'ftp://host/x': "), "{}", stderr(&out));
}
