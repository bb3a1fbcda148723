//! `decant cache-teacher --rank R --world W` and `--merge`: ranks that share
//! the teacher's work, merged into the very cache one process writes, and the
//! shipped Kubernetes and Slurm templates run as written.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::tiny_teacher::tiny_teacher;
use common::{stderr, stdout};
use serde_json::Value;

/// 40 documents in shards of 8 (five shards: ranks of three get 1, 2 and 2),
/// the permutation ranked on the first 16: rank 1 takes some of its documents
/// from the ranking batches, rank 2 none.
const DOCUMENTS: usize = 40;
const SPLIT: [&str; 4] = ["--shard-documents", "8", "--ranking-documents", "16"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The tiny teacher and the first `documents` shipped extraction examples.
fn inputs(root: &Path, documents: usize) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(root.join("models")).unwrap();
    let teacher = tiny_teacher(&root.join("models/teacher"));
    let shipped = std::fs::read_to_string(repo().join("data/extract/train.jsonl")).unwrap();
    let data = root.join("data/train.jsonl");
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(
        &data,
        shipped
            .lines()
            .take(documents)
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .unwrap();
    (teacher, data)
}

fn cache_args(teacher: &Path, data: &Path, out: &Path, k: usize) -> Vec<String> {
    let mut args: Vec<String> = ["cache-teacher", "--teacher"].map(String::from).to_vec();
    args.push(teacher.display().to_string());
    args.extend([
        "--data".to_owned(),
        data.display().to_string(),
        "--top-k".to_owned(),
        k.to_string(),
    ]);
    args.extend([
        "--out".to_owned(),
        out.display().to_string(),
        "--max-length".to_owned(),
        "256".to_owned(),
    ]);
    args.extend(SPLIT.map(String::from));
    args
}

fn decant(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_decant"))
        .args(args)
        .output()
        .expect("decant runs")
}

fn succeeds(args: &[String]) -> Value {
    let mut args = args.to_vec();
    args.push("--json".to_owned());
    let output = decant(&args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

/// Runs every command line at once, as a scheduler would, and waits for all.
fn at_once(commands: impl Iterator<Item = Vec<String>>) -> Vec<Output> {
    let children: Vec<_> = commands
        .map(|args| {
            Command::new(env!("CARGO_BIN_EXE_decant"))
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("decant starts")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("decant runs"))
        .collect()
}

fn fails(args: &[String]) -> String {
    let output = decant(args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{args:?} should fail: {}",
        stdout(&output)
    );
    stderr(&output)
}

fn rank(args: &[String], rank: u32, world: u32) -> Vec<String> {
    let mut args = args.to_vec();
    args.extend([
        "--rank".to_owned(),
        rank.to_string(),
        "--world".to_owned(),
        world.to_string(),
    ]);
    args
}

fn merge_args(out: &Path) -> Vec<String> {
    ["cache-teacher", "--merge", "--out"]
        .map(String::from)
        .into_iter()
        .chain([out.display().to_string()])
        .collect()
}

/// Every file under `dir` by relative path, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            found.extend(
                files(&path)
                    .into_iter()
                    .map(|(n, b)| (format!("{name}/{n}"), b)),
            );
        } else {
            found.insert(name, std::fs::read(&path).unwrap());
        }
    }
    found
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn parts(out: &Path) -> PathBuf {
    out.with_file_name(format!(
        "{}.parts",
        out.file_name().unwrap().to_string_lossy()
    ))
}

#[test]
fn three_ranks_merge_into_the_cache_one_process_writes_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (teacher, data) = inputs(dir.path(), DOCUMENTS);
    let single = dir.path().join("single");
    succeeds(&cache_args(&teacher, &data, &single, 8));

    // The ranks run at once and never wait on one another.
    let sharded = dir.path().join("sharded");
    let args = cache_args(&teacher, &data, &sharded, 8);
    let children = at_once((0..3).map(|r| {
        let mut args = rank(&args, r, 3);
        args.push("--json".to_owned());
        args
    }));
    let mut ranges = Vec::new();
    for output in &children {
        assert!(output.status.success(), "{}", stderr(output));
        let report: Value = serde_json::from_str(&stdout(output)).unwrap();
        assert_eq!(report["state"], "written");
        ranges.push((
            report["part"]["first_document"].as_u64().unwrap(),
            report["part"]["end_document"].as_u64().unwrap(),
        ));
    }
    assert_eq!(ranges, [(0, 8), (8, 24), (24, 40)]);
    let part = parts(&sharded).join("rank-00001-of-00003");
    let written: Vec<String> = files(&part).into_keys().collect();
    assert_eq!(
        written,
        [
            "part.json",
            "permutation.bin",
            "shard-00001.dlc",
            "shard-00002.dlc"
        ]
    );

    // A finished rank is not run again.
    assert_eq!(succeeds(&rank(&args, 1, 3))["state"], "complete");

    let merged = succeeds(&merge_args(&sharded));
    assert_eq!(merged["merged_before"], false);
    assert_eq!(merged["manifest"]["documents"], DOCUMENTS);
    assert!(
        !parts(&sharded).exists(),
        "the parts are removed once merged"
    );
    assert!(!dir.path().join("sharded.partial").exists());
    let (one, many) = (files(&single), files(&sharded));
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        many.keys().collect::<Vec<_>>()
    );
    assert_eq!(many.keys().filter(|n| n.starts_with("shard-")).count(), 5);
    for (name, bytes) in &one {
        assert!(
            &many[name] == bytes,
            "{name} differs from the single process's"
        );
    }

    // After the merge, a merge or a rank again is a no-op.
    assert_eq!(succeeds(&merge_args(&sharded))["merged_before"], true);
    assert_eq!(succeeds(&rank(&args, 2, 3))["state"], "merged");
    assert_eq!(files(&sharded), many);
}

#[test]
fn the_merge_names_the_parts_that_do_not_make_one_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (teacher, data) = inputs(dir.path(), DOCUMENTS);
    let good = dir.path().join("good");
    let args = cache_args(&teacher, &data, &good, 8);
    for r in 0..3 {
        succeeds(&rank(&args, r, 3));
    }
    let top4 = dir.path().join("top4");
    succeeds(&rank(&cache_args(&teacher, &data, &top4, 4), 1, 3));
    let halves = dir.path().join("halves");
    succeeds(&rank(&cache_args(&teacher, &data, &halves, 8), 0, 2));

    // A rank given other inputs than its finished part's is refused.
    let message = fails(&rank(&cache_args(&teacher, &data, &good, 4), 1, 3));
    assert!(
        message.contains("rank-00001-of-00003/part.json: is a part of another cache (k is 8, these inputs give 4)"),
        "{message}"
    );

    // Each case: the good parts, less or plus some, merged into `case`.
    let case = |name: &str, leave_out: Option<&str>, add: Option<(&Path, &str)>| -> PathBuf {
        let out = dir.path().join(name);
        copy_dir(&parts(&good), &parts(&out));
        if let Some(part) = leave_out {
            std::fs::remove_dir_all(parts(&out).join(part)).unwrap();
        }
        if let Some((from, part)) = add {
            copy_dir(&parts(from).join(part), &parts(&out).join(part));
        }
        out
    };
    let missing = case("missing", Some("rank-00001-of-00003"), None);
    let message = fails(&merge_args(&missing));
    assert!(
        message.contains("documents 8..24 are in no part: missing")
            && message.contains("missing.parts/rank-00001-of-00003 (`--rank 1 --world 3`)"),
        "{message}"
    );

    let overlapping = case("overlapping", None, Some((&halves, "rank-00000-of-00002")));
    let message = fails(&merge_args(&overlapping));
    assert!(
        message.contains("overlapping.parts/rank-00000-of-00002: covers documents 0..16, and")
            && message.contains(
                "overlapping.parts/rank-00000-of-00003 covers 0..8: documents 0..8 are in both"
            ),
        "{message}"
    );

    let other_k = case(
        "other_k",
        Some("rank-00001-of-00003"),
        Some((&top4, "rank-00001-of-00003")),
    );
    let message = fails(&merge_args(&other_k));
    assert!(
        message.contains("other_k.parts/rank-00001-of-00003/part.json: k is 4, but")
            && message.contains("other_k.parts/rank-00000-of-00003/part.json has 8"),
        "{message}"
    );

    let corrupted = case("corrupted", None, None);
    let shard = parts(&corrupted).join("rank-00002-of-00003/shard-00004.dlc");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let message = fails(&merge_args(&corrupted));
    assert!(
        message.contains("corrupted.parts/rank-00002-of-00003/shard-00004.dlc: sha256 is")
            && message.contains("the file changed after its rank wrote it"),
        "{message}"
    );

    for out in [&missing, &overlapping, &other_k, &corrupted] {
        assert!(
            !out.exists(),
            "{} was written from bad parts",
            out.display()
        );
        assert!(parts(out).is_dir(), "a refused merge keeps the parts");
    }
    assert!(fails(&merge_args(&dir.path().join("none"))).contains("none.parts: does not exist"));
}

/// The argument list of the one `args: [...]` line of a shipped Job (a YAML
/// flow sequence of quoted strings, which is JSON).
fn job_args(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes").join(file)).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("args: "))
        .collect();
    assert_eq!(lines.len(), 1, "{file}: one args line");
    serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("{file}: args is not a list of strings: {e}"))
}

fn yaml_number(file: &str, key: &str) -> u32 {
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes").join(file)).unwrap();
    let value = text.lines().find_map(|l| {
        l.trim()
            .strip_prefix(&format!("{key}: "))
            .map(str::to_owned)
    });
    value
        .unwrap_or_else(|| panic!("{file}: no {key}"))
        .parse()
        .unwrap()
}

#[test]
fn the_kubernetes_jobs_cache_and_merge_as_written() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path(), 12);
    let ranks = job_args("cache-teacher.yaml");
    let world = yaml_number("cache-teacher.yaml", "completions");
    let at = |flag: &str| ranks[ranks.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(at("--world"), world.to_string(), "completions is --world");
    assert_eq!(at("--rank"), "$(JOB_COMPLETION_INDEX)");
    assert!(
        std::fs::read_to_string(repo().join("deploy/kubernetes/cache-teacher.yaml"))
            .unwrap()
            .contains("completionMode: Indexed")
    );
    // The volume is mounted at /cache; here it is the test's directory.
    let mounted = |args: Vec<String>, index: u32| -> Vec<String> {
        args.into_iter()
            .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", &index.to_string()))
            .map(|a| {
                a.strip_prefix("/cache/")
                    .map_or(a.clone(), |p| dir.path().join(p).display().to_string())
            })
            .collect()
    };
    let pods = at_once((0..world).map(|i| mounted(ranks.clone(), i)));
    for pod in &pods {
        assert!(pod.status.success(), "{}", stderr(pod));
    }
    let merge = job_args("cache-teacher-merge.yaml");
    assert_eq!(
        at("--out"),
        merge[merge.iter().position(|a| a == "--out").unwrap() + 1],
        "one cache directory"
    );
    let merged = decant(&mounted(merge, 0));
    assert!(merged.status.success(), "{}", stderr(&merged));
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("teacher-cache/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["documents"], 12);
    assert_eq!(manifest["k"], at("--top-k").parse::<u32>().unwrap());
}

fn slurm(file: &str) -> PathBuf {
    repo().join("deploy/slurm").join(file)
}

#[test]
fn the_slurm_array_caches_and_merges_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let (teacher, data) = inputs(dir.path(), 12);
    let script = std::fs::read_to_string(slurm("cache-teacher.sbatch")).unwrap();
    let last = script
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --array=0-"))
        .expect("an array 0-N");
    let world: u32 = last.trim().parse::<u32>().unwrap() + 1;
    assert!(
        script.contains(&format!("\nWORLD={world}\n")),
        "WORLD is the array's size"
    );
    let submit = std::fs::read_to_string(slurm("submit.sh")).unwrap();
    assert!(
        submit.contains("--dependency=afterok:"),
        "the merge waits for every rank"
    );
    for file in [
        "cache-teacher.sbatch",
        "cache-teacher-merge.sbatch",
        "submit.sh",
    ] {
        let syntax = Command::new("bash")
            .arg("-n")
            .arg(slurm(file))
            .output()
            .unwrap();
        assert!(syntax.status.success(), "{file}: {}", stderr(&syntax));
    }

    let out = dir.path().join("teacher-cache");
    let job = |file: &str, task: Option<u32>| -> Output {
        let mut command = Command::new("bash");
        command
            .arg(slurm(file))
            .env("DECANT", env!("CARGO_BIN_EXE_decant"))
            .env("TEACHER", &teacher)
            .env("DATA", &data)
            .env("OUT", &out)
            .env("TOP_K", "8");
        if let Some(task) = task {
            command.env("SLURM_ARRAY_TASK_ID", task.to_string());
        }
        command.output().unwrap()
    };
    for task in 0..world {
        let output = job("cache-teacher.sbatch", Some(task));
        assert!(output.status.success(), "task {task}: {}", stderr(&output));
    }
    let merged = job("cache-teacher-merge.sbatch", None);
    assert!(merged.status.success(), "{}", stderr(&merged));
    assert!(
        stdout(&merged).contains("merged top-8 over"),
        "{}",
        stdout(&merged)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["documents"], 12);
}
