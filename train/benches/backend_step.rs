//! Training-step speed of each CPU backend compiled in: forward, cross-entropy,
//! backward and an SGD update of a small Llama (4 layers, hidden 256, FFN 768,
//! 4 heads / 2 KV heads, vocabulary 4096, untied head: 5.2M parameters) on a batch
//! of 8 × 128 tokens, in f32 on 2 threads (`RAYON_NUM_THREADS` overrides).
//!
//! Cargo features unify, so one build holds only one flavour of Flex (with or
//! without gemm's AVX-512 kernels, feature `x86-v4`) and one of ndarray (with or
//! without OpenBLAS). `tools/bench/backend_step.sh` runs the two builds that
//! cover the four candidates, collecting their figures in one file
//! (`DECANT_BENCH_RESULTS`), and this binary prints everything collected so far
//! with the ratio to the default `CpuBackend` (Flex with `x86-v4`):
//!
//!     bash tools/bench/backend_step.sh
//!     cargo bench -p train --bench backend_step --features ndarray   # one build
//!
//! The machine is shared, so the candidates take turns, one step each per round,
//! and the best step of each counts; the load average is printed with them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use serde_json::{Value as Json, json};
use train::{Architecture, CpuBackend, ModelConfig, RopeConfig, RopeScaling, Transformer};

const BATCH: usize = 8;
const SEQ: usize = 128;
const WARMUP_STEPS: usize = 2;
const ROUNDS: usize = 6;
const LEARNING_RATE: f64 = 1e-3;

fn model_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 4096,
        hidden_size: 256,
        intermediate_size: 768,
        num_layers: 4,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 64,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: SEQ,
        tie_word_embeddings: false,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
}

/// Token ids spread over the vocabulary (a fixed LCG): speed does not depend on
/// the text.
fn token_ids(len: usize, vocab: usize) -> Vec<i64> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % vocab as u64) as i64
        })
        .collect()
}

trait Candidate {
    fn label(&self) -> &'static str;
    fn step(&mut self) -> Duration;
}

struct Training<B: AutodiffBackend> {
    label: &'static str,
    device: B::Device,
    model: Option<Transformer<B>>,
    optimizer: OptimizerAdaptor<Sgd<B::InnerBackend>, Transformer<B>, B>,
    loss: CrossEntropyLoss<B>,
    inputs: Tensor<B, 2, Int>,
    targets: Tensor<B, 1, Int>,
}

impl<B: AutodiffBackend> Training<B>
where
    Transformer<B>: AutodiffModule<B>,
{
    fn new(label: &'static str) -> Self {
        let device = B::Device::default();
        B::seed(&device, 7);
        let config = model_config();
        let ids = token_ids(BATCH * (SEQ + 1), config.vocab_size);
        let rows: Vec<&[i64]> = ids.chunks(SEQ + 1).collect();
        let inputs: Vec<i64> = rows.iter().flat_map(|r| &r[..SEQ]).copied().collect();
        let targets: Vec<i64> = rows.iter().flat_map(|r| &r[1..]).copied().collect();
        Self {
            label,
            model: Some(config.init(&device).expect("a valid configuration")),
            optimizer: SgdConfig::new().init(),
            loss: CrossEntropyLossConfig::new().init(&device),
            inputs: Tensor::from_data(TensorData::new(inputs, [BATCH, SEQ]), &device),
            targets: Tensor::from_data(TensorData::new(targets, [BATCH * SEQ]), &device),
            device,
        }
    }
}

impl<B: AutodiffBackend> Candidate for Training<B>
where
    Transformer<B>: AutodiffModule<B>,
{
    fn label(&self) -> &'static str {
        self.label
    }

    fn step(&mut self) -> Duration {
        let started = Instant::now();
        let model = self
            .model
            .take()
            .expect("the model is put back after each step");
        let vocab = model.config.vocab_size;
        let logits = model.forward(self.inputs.clone());
        let loss = self
            .loss
            .forward(logits.reshape([BATCH * SEQ, vocab]), self.targets.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = self.optimizer.step(LEARNING_RATE, model, grads);
        B::sync(&self.device).expect("the backend finishes the step");
        let elapsed = started.elapsed();
        self.model = Some(model);
        elapsed
    }
}

/// Flex's label in this build: the `x86-v4` feature is what tells its flavours
/// apart.
fn flex_label() -> &'static str {
    if cfg!(feature = "x86-v4") {
        "flex + x86-v4"
    } else {
        "flex"
    }
}

fn candidates() -> Vec<Box<dyn Candidate>> {
    let flex: Box<dyn Candidate> = Box::new(Training::<Autodiff<CpuBackend>>::new(flex_label()));
    std::iter::once(flex).chain(ndarray()).collect()
}

#[cfg(feature = "ndarray")]
fn ndarray() -> Option<Box<dyn Candidate>> {
    let label = if cfg!(feature = "openblas") {
        "ndarray + openblas"
    } else {
        "ndarray"
    };
    Some(Box::new(Training::<Autodiff<burn::backend::NdArray>>::new(
        label,
    )))
}

#[cfg(not(feature = "ndarray"))]
fn ndarray() -> Option<Box<dyn Candidate>> {
    None
}

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

#[cfg(feature = "openblas")]
fn set_openblas_threads(threads: usize) {
    unsafe extern "C" {
        fn openblas_set_num_threads(threads: std::ffi::c_int);
    }
    let threads = std::ffi::c_int::try_from(threads).expect("a thread count fits in a C int");
    // SAFETY: OpenBLAS's documented setter, called before any BLAS work starts.
    unsafe { openblas_set_num_threads(threads) };
}

#[cfg(not(feature = "openblas"))]
fn set_openblas_threads(_threads: usize) {}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|avg| avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Figures collected across builds: `{"default": LABEL, "tokens_per_s": {LABEL: x}}`.
struct Results {
    path: Option<PathBuf>,
    default: Option<String>,
    tokens_per_s: BTreeMap<String, f64>,
}

impl Results {
    fn load() -> Self {
        let path = std::env::var_os("DECANT_BENCH_RESULTS").map(PathBuf::from);
        let saved: Json = match &path {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{} is not a results file: {e}", p.display()))
            }
            _ => json!({}),
        };
        let tokens_per_s = saved["tokens_per_s"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            path,
            default: saved["default"].as_str().map(str::to_owned),
            tokens_per_s,
        }
    }

    /// Writes to a temporary name and renames, so an interrupted run keeps the
    /// figures of the builds before it.
    fn save(&self) {
        let Some(path) = &self.path else { return };
        let text = json!({"default": self.default, "tokens_per_s": self.tokens_per_s});
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text.to_string())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
        std::fs::rename(&tmp, path).unwrap_or_else(|e| {
            panic!("cannot rename {} to {}: {e}", tmp.display(), path.display())
        });
    }
}

fn main() {
    let threads = threads();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("the global thread pool is not built yet");
    set_openblas_threads(threads);

    let mut candidates = candidates();
    let params = model_config()
        .init::<CpuBackend>(&Default::default())
        .expect("a valid configuration")
        .num_params();
    eprintln!(
        "warming up {}",
        candidates
            .iter()
            .map(|c| c.label())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for candidate in &mut candidates {
        for _ in 0..WARMUP_STEPS {
            candidate.step();
        }
    }
    let load_before = load_average();
    let mut steps = vec![Vec::with_capacity(ROUNDS); candidates.len()];
    for round in 0..ROUNDS {
        eprintln!("round {}/{ROUNDS}", round + 1);
        for (candidate, times) in candidates.iter_mut().zip(&mut steps) {
            times.push(candidate.step());
        }
    }

    let mut results = Results::load();
    for (candidate, times) in candidates.iter().zip(&steps) {
        let best = times.iter().min().expect("ROUNDS > 0");
        let tokens = (BATCH * SEQ) as f64 / best.as_secs_f64();
        results
            .tokens_per_s
            .insert(candidate.label().into(), tokens);
    }
    // Only the default feature set builds the default backend.
    if cfg!(feature = "x86-v4") {
        results.default = Some(flex_label().into());
    }
    results.save();

    println!(
        "training step, Llama {:.1}M parameters, batch {BATCH} × {SEQ}, f32, {threads} threads, \
         best of {ROUNDS}; load average {load_before} (before), {} (after)",
        params as f64 / 1e6,
        load_average()
    );
    let baseline = results
        .default
        .as_deref()
        .and_then(|label| Some((label, *results.tokens_per_s.get(label)?)));
    println!("{:>20} {:>10} {:>9}", "backend", "tok/s", "ratio");
    for (label, tokens) in &results.tokens_per_s {
        let ratio = baseline.map_or("-".to_string(), |(_, base)| format!("{:.2}", tokens / base));
        let measured_now = candidates.iter().any(|c| c.label() == label);
        let note = if measured_now { "" } else { " (earlier build)" };
        println!("{label:>20} {tokens:>10.0} {ratio:>9}{note}");
    }
    match baseline {
        Some((label, _)) => println!("ratios are to the default CpuBackend, {label}"),
        None => println!("no figure for the default CpuBackend yet: run the default build"),
    }
}
