//! Prompt-processing speed of the reference teacher in F32 on the CPU backend,
//! against llama.cpp on the same F32 file with the same thread count.
//!
//! llama.cpp runs in a child process, `tools/bench/prompt_processing_llamacpp.py`
//! under the venv's Python (`tools/setup-python.sh --with-llama`), on the same
//! token ids. Both sides process each prompt as one batch and compute logits for
//! its last position only, and report the best of a few runs; the machine is
//! shared, so the load average is printed with the figures. Also printed: one-token
//! generation steps, and the peak resident memory of decant's forward passes.
//!
//!     cargo bench -p train --bench prompt_processing
//!
//! `DECANT_REFERENCE_F32` names the F32 GGUF (default
//! `~/.cache/decant/models/SmolLM2-135M-Instruct.F32.gguf`, written from the Q4_1
//! reference model by the script when missing); `DECANT_PYTHON` the interpreter.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::tensor::{Int, Tensor, TensorData};
use serde_json::{Value as Json, json};
use train::model::LogitsFor;
use train::{CpuBackend, Transformer, load_gguf};

type B = CpuBackend;

const PROMPT_LENGTHS: [usize; 2] = [128, 512];
const GENERATE_STEPS: usize = 32;
const REPEATS: usize = 3;

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
}

fn env_path(name: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(name).map_or(default, PathBuf::from)
}

/// The threads Flex computes with: rayon's global pool, which honours
/// `RAYON_NUM_THREADS` and otherwise takes every core.
fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Token ids spread over the vocabulary (a fixed LCG): speed does not depend on
/// the text, and any id is as good as another for it.
fn prompt(len: usize, vocab: usize) -> Vec<u32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % vocab as u64) as u32
        })
        .collect()
}

fn input(ids: &[u32]) -> Tensor<B, 2, Int> {
    let data = TensorData::new(ids.iter().map(|&t| i64::from(t)).collect(), [1, ids.len()]);
    Tensor::from_data(data, &Default::default())
}

fn best_of(mut run: impl FnMut() -> Duration) -> Duration {
    (0..REPEATS).map(|_| run()).min().expect("REPEATS > 0")
}

/// The whole prompt in one forward pass, waiting for the logits to reach the host.
fn prompt_pass(model: &Transformer<B>, ids: &[u32]) -> Duration {
    let started = Instant::now();
    let mut cache = model.new_cache();
    let logits = model.forward_with_cache(input(ids), &mut cache, LogitsFor::Last);
    logits.into_data();
    started.elapsed()
}

/// `GENERATE_STEPS` one-token passes after the prompt; the prompt's own ids
/// stand in for generated ones, as on llama.cpp's side.
fn generate_steps(model: &Transformer<B>, ids: &[u32]) -> Duration {
    let mut cache = model.new_cache();
    model
        .forward_with_cache(input(ids), &mut cache, LogitsFor::Last)
        .into_data();
    let started = Instant::now();
    for &token in &ids[..GENERATE_STEPS] {
        model
            .forward_with_cache(input(&[token]), &mut cache, LogitsFor::Last)
            .into_data();
    }
    started.elapsed()
}

/// A `/proc/self/status` field in MiB, e.g. `VmHWM` (peak resident set).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    kib / 1024.0
}

/// Starts the peak-RSS count afresh (Linux `clear_refs` value 5), so that
/// `VmHWM` afterwards is the peak of what follows, not of loading the model.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("write /proc/self/clear_refs");
}

fn llama_cpp(model: &Path, threads: usize, prompts: &[Vec<u32>]) -> Json {
    let python = env_path(
        "DECANT_PYTHON",
        home().join(".cache/decant/venv/bin/python"),
    );
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/bench/prompt_processing_llamacpp.py");
    let request = json!({
        "model": model,
        "threads": threads,
        "repeats": REPEATS,
        "prompts": prompts,
        "generate": GENERATE_STEPS,
    });
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (run tools/setup-python.sh --with-llama, or set DECANT_PYTHON)",
                python.display()
            )
        });
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request");
    let output = child.wait_with_output().expect("the script runs");
    assert!(output.status.success(), "{} failed", script.display());
    serde_json::from_slice(&output.stdout).expect("one JSON object from the script")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|avg| avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    let model_path = env_path(
        "DECANT_REFERENCE_F32",
        home().join(".cache/decant/models/SmolLM2-135M-Instruct.F32.gguf"),
    );
    let threads = threads();
    let vocab = 49_152;
    let prompts: Vec<Vec<u32>> = PROMPT_LENGTHS.iter().map(|&n| prompt(n, vocab)).collect();
    eprintln!("llama.cpp: timing {} ...", model_path.display());
    let reference = llama_cpp(&model_path, threads, &prompts);
    let load_before = load_average();

    eprintln!("decant: loading {} ...", model_path.display());
    let model = load_gguf::<B>(&model_path, &Default::default()).expect("load the F32 model");
    assert_eq!(
        model.config.vocab_size, vocab,
        "the reference teacher's vocabulary"
    );
    let resident_loaded = status_mib("VmRSS");
    reset_peak_rss();
    prompt_pass(&model, &prompts[0]);
    let ours: Vec<Duration> = prompts
        .iter()
        .map(|ids| best_of(|| prompt_pass(&model, ids)))
        .collect();
    let ours_generate = best_of(|| generate_steps(&model, &prompts[0]));
    let peak = status_mib("VmHWM");

    println!(
        "SmolLM2-135M-Instruct F32, CPU, {threads} threads, best of {REPEATS}; \
         load average {load_before} (before decant's runs), {} (after)",
        load_average()
    );
    println!(
        "{:>22} {:>14} {:>16} {:>7}",
        "", "decant tok/s", "llama.cpp tok/s", "ratio"
    );
    for ((ids, ours), theirs) in prompts
        .iter()
        .zip(&ours)
        .zip(reference["prompts"].as_array().expect("prompts"))
    {
        let theirs = ids.len() as f64 / theirs["seconds"].as_f64().expect("seconds");
        let ours = ids.len() as f64 / ours.as_secs_f64();
        let label = format!("prompt {} tokens", ids.len());
        println!(
            "{label:>22} {ours:>14.1} {theirs:>16.1} {:>7.2}",
            ours / theirs
        );
    }
    let theirs =
        GENERATE_STEPS as f64 / reference["generate"]["seconds"].as_f64().expect("seconds");
    let ours = GENERATE_STEPS as f64 / ours_generate.as_secs_f64();
    let label = format!("generate {GENERATE_STEPS} tokens");
    println!(
        "{label:>22} {ours:>14.1} {theirs:>16.1} {:>7.2}",
        ours / theirs
    );
    println!(
        "resident memory: {resident_loaded:.0} MiB with the model loaded; \
         peak during the forward passes (VmHWM) {peak:.0} MiB"
    );
}
