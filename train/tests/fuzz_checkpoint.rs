//! Fuzzing of a checkpoint directory as `train::checkpoint::load` (what a
//! resumed run reads) and `checkpoint::load_model` (what commands given a
//! checkpoint read) read it: a real checkpoint saved by `CheckpointDir::save`,
//! then one of its four files edited: bytes changed, truncated, the
//! safetensors header rewritten, or the JSON given hostile values. No case may
//! panic or allocate more than a bound derived from the files' size; a
//! `model_config.json` whose sizes the weights do not hold must be refused
//! before a model of that size is allocated.
//!
//! CI runs the default count below (seconds in a debug build); the longer run:
//! `PROPTEST_CASES=20000 cargo nextest run -p train --test fuzz_checkpoint`

#[global_allocator]
static METER: testkit::PeakAlloc = testkit::PeakAlloc;

mod mutate;

use std::path::Path;
use std::sync::OnceLock;

use datasets::LoaderState;
use mutate::header::{edit_file, header_edit};
use mutate::json::json_edit;
use mutate::{byte_edit, cases};
use proptest::prelude::*;
use train::checkpoint::{self, CheckpointDir, TrainerState};
use train::optim::{AdamWState, named_tensors};
use train::trainer::Precision;
use train::{Architecture, CpuBackend, ModelConfig, RopeConfig, RopeScaling};

const FILES: [&str; 4] = [
    "model.safetensors",
    "optimizer.safetensors",
    "model_config.json",
    "trainer_state.json",
];

fn tiny_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 64,
        hidden_size: 16,
        intermediate_size: 32,
        num_layers: 2,
        num_heads: 2,
        num_kv_heads: 1,
        head_dim: 8,
        rms_norm_eps: 1e-6,
        rope: RopeConfig {
            theta: 10_000.0,
            scaling: RopeScaling::None,
        },
        max_position_embeddings: 64,
        tie_word_embeddings: false,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
    }
}

/// The four files of a checkpoint at step 3, in the order of `FILES`; read
/// back once so that Burn's one-time setup is not counted against a case.
fn saved() -> &'static [Vec<u8>; 4] {
    static SAVED: OnceLock<[Vec<u8>; 4]> = OnceLock::new();
    SAVED.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let model = tiny_config()
            .init::<CpuBackend>(&Default::default())
            .unwrap();
        let optimizer = AdamWState {
            steps: 3,
            moments: named_tensors(&model)
                .into_iter()
                .map(|(name, t)| (name, (t.clone(), t)))
                .collect(),
        };
        let state = TrainerState {
            step: 3,
            loader: LoaderState {
                epoch: 0,
                position: 12,
                fingerprint: 7,
            },
            seed: 5,
            config_fingerprint: 11,
            precision: Precision::F32,
            loss: 2.5,
        };
        let dir = CheckpointDir::new(tmp.path(), 1)
            .save(&model, &optimizer, &state)
            .unwrap();
        checkpoint::load(&dir).expect("the fixture loads");
        checkpoint::load_model::<CpuBackend>(&dir, &Default::default()).expect("its model loads");
        FILES.map(|f| std::fs::read(dir.join(f)).unwrap())
    })
}

/// Both safetensors files hold f32, so their values on the heap are their data
/// once; `load_model` also has the model Burn initializes and the one the
/// weights replace it with, and a weight is copied once more on the way in.
/// 8 bytes per input byte covers that and the JSON; the constant covers Burn's
/// per-tensor bookkeeping and the error's path.
fn bound(input_len: usize) -> usize {
    8 * input_len + (1 << 20)
}

/// Writes the checkpoint with file `which` replaced, then reads it both ways.
fn read_with(which: usize, replacement: Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = saved().clone();
    files[which] = replacement;
    for (name, bytes) in FILES.iter().zip(&files) {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
    }
    let input_len = files.iter().map(Vec::len).sum();
    check(tmp.path(), input_len);
}

fn check(dir: &Path, input_len: usize) {
    let (_, peak) = testkit::peak_during(|| checkpoint::load(dir).map(drop));
    assert!(
        peak <= bound(input_len),
        "load: {peak} bytes for {input_len} input bytes"
    );
    let (_, peak) = testkit::peak_during(|| {
        checkpoint::load_model::<CpuBackend>(dir, &Default::default()).map(drop)
    });
    assert!(
        peak <= bound(input_len),
        "load_model: {peak} bytes for {input_len} input bytes"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases(1024))
    })]

    #[test]
    fn arbitrary_bytes_are_refused(
        which in 0..4usize,
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        read_with(which, bytes);
    }

    #[test]
    fn edited_bytes_load_or_are_refused(
        which in 0..4usize,
        edits in proptest::collection::vec(byte_edit(), 1..4),
    ) {
        read_with(which, mutate::apply_all(saved()[which].clone(), &edits));
    }

    #[test]
    fn edited_headers_load_or_are_refused(
        which in 0..2usize,
        edits in proptest::collection::vec(header_edit(), 1..4),
    ) {
        read_with(which, edit_file(&saved()[which], &edits));
    }

    #[test]
    fn edited_json_loads_or_is_refused(
        which in 2..4usize,
        edits in proptest::collection::vec(json_edit(), 1..4),
    ) {
        let doc: serde_json::Value = serde_json::from_slice(&saved()[which]).unwrap();
        read_with(which, mutate::json::apply_all(doc, &edits).to_string().into_bytes());
    }
}

/// Found by `edited_json_loads_or_is_refused`: `load_model` initialized a model
/// of the configuration's size before reading the weights, so an edited size
/// allocated 16 MB for an 88 kB checkpoint, and one of 2^40 aborted the process.
#[test]
fn a_config_larger_than_its_weights_is_refused_before_allocating() {
    let mut config: serde_json::Value = serde_json::from_slice(&saved()[2]).unwrap();
    config["vocab_size"] = serde_json::json!(1u64 << 40);
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in FILES.iter().zip(saved()) {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
    }
    std::fs::write(tmp.path().join(FILES[2]), config.to_string()).unwrap();
    let input_len = saved().iter().map(Vec::len).sum();
    check(tmp.path(), input_len);
    for err in [
        checkpoint::load(tmp.path()).err().unwrap().to_string(),
        checkpoint::load_model::<CpuBackend>(tmp.path(), &Default::default())
            .err()
            .unwrap()
            .to_string(),
    ] {
        assert!(
            err.contains("model_config.json") && err.contains("holds 6736"),
            "{err}"
        );
    }
}
