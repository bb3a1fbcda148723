//! Fuzzing of a Hugging Face directory's weights as `load_hf_dir` reads them:
//! `model.safetensors` as arbitrary bytes, as a valid file with bytes edited,
//! truncated or its header rewritten, and `model.safetensors.index.json` as
//! arbitrary or edited JSON. No case may panic or allocate more than a bound
//! derived from the input's size (the weights are memory-mapped, which the
//! meter does not count, so what it sees is the reader's own allocations).
//!
//! CI runs the default count below (seconds in a debug build); the longer run:
//! `PROPTEST_CASES=20000 cargo nextest run -p train --test fuzz_safetensors`

#[global_allocator]
static METER: testkit::PeakAlloc = testkit::PeakAlloc;

mod common;
mod mutate;

use std::path::Path;
use std::sync::OnceLock;

use mutate::header::{edit_file, header_edit};
use mutate::json::json_edit;
use mutate::{byte_edit, cases};
use proptest::prelude::*;
use safetensors::tensor::Dtype;
use serde_json::json;
use train::{CpuBackend, ImportError, Transformer, load_hf_dir};

struct Fixture {
    config: String,
    weights: Vec<u8>,
}

/// A tiny Llama in F16, the smallest stored type the reader converts (so the
/// most f32 bytes per file byte), loaded once so that Burn's one-time setup is
/// not counted against the first case.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let config = common::hf_config("llama");
        common::write_hf_dir(
            tmp.path(),
            &config,
            &common::random_weights(&config, 1),
            Dtype::F16,
        );
        load_hf_dir::<CpuBackend>(tmp.path(), &Default::default()).expect("the fixture loads");
        Fixture {
            config: config.to_string(),
            weights: std::fs::read(tmp.path().join("model.safetensors")).unwrap(),
        }
    })
}

/// The loaded model holds every weight as f32, twice the bytes of F16 data;
/// while one weight is converted its raw values, their transpose and Burn's
/// copy are live besides, up to three more times that. The header's JSON costs
/// a few times its length. 8 bytes per input byte covers both; the constant
/// covers Burn's per-tensor bookkeeping and the error's path.
fn bound(input_len: usize) -> usize {
    8 * input_len + (1 << 20)
}

fn load(dir: &Path, input_len: usize) -> Result<Transformer<CpuBackend>, ImportError> {
    let (result, peak) =
        testkit::peak_during(|| load_hf_dir::<CpuBackend>(dir, &Default::default()));
    assert!(
        peak <= bound(input_len),
        "{peak} bytes allocated for {input_len} input bytes"
    );
    result
}

fn load_weights(weights: &[u8]) -> Result<Transformer<CpuBackend>, ImportError> {
    let tmp = tempfile::tempdir().unwrap();
    let config = &fixture().config;
    std::fs::write(tmp.path().join("config.json"), config).unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), weights).unwrap();
    load(tmp.path(), config.len() + weights.len())
}

/// Files that start like safetensors: a length prefix that fits or nearly fits
/// the file, then arbitrary bytes; and files of arbitrary bytes throughout.
fn arbitrary_file() -> impl Strategy<Value = Vec<u8>> {
    let tail = proptest::collection::vec(any::<u8>(), 0..512);
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        tail.clone(),
        (tail, -2i64..=2).prop_map(|(tail, off)| {
            let n = (tail.len() as i64 + off).max(0) as u64;
            let mut file = n.to_le_bytes().to_vec();
            file.extend(tail);
            file
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases(1024))
    })]

    #[test]
    fn arbitrary_bytes_are_refused(file in arbitrary_file()) {
        prop_assert!(load_weights(&file).is_err());
    }

    #[test]
    fn edited_bytes_load_or_are_refused(edits in proptest::collection::vec(byte_edit(), 1..4)) {
        let _ = load_weights(&mutate::apply_all(fixture().weights.clone(), &edits));
    }

    #[test]
    fn edited_headers_load_or_are_refused(
        edits in proptest::collection::vec(header_edit(), 1..4),
    ) {
        let _ = load_weights(&edit_file(&fixture().weights, &edits));
    }

    #[test]
    fn edited_indexes_load_or_are_refused(
        edits in proptest::collection::vec(json_edit(), 0..3),
        bytes in proptest::collection::vec(byte_edit(), 0..2),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let fixture = fixture();
        let shard = "model-00001-of-00001.safetensors";
        std::fs::write(tmp.path().join("config.json"), &fixture.config).unwrap();
        std::fs::write(tmp.path().join(shard), &fixture.weights).unwrap();
        let index = json!({
            "metadata": {"total_size": fixture.weights.len()},
            "weight_map": {"model.embed_tokens.weight": shard, "model.norm.weight": shard},
        });
        let index = mutate::json::apply_all(index, &edits).to_string().into_bytes();
        let index = mutate::apply_all(index, &bytes);
        std::fs::write(tmp.path().join("model.safetensors.index.json"), &index).unwrap();
        let _ = load(tmp.path(), fixture.config.len() + fixture.weights.len() + index.len());
    }
}

#[test]
fn the_valid_file_loads_within_the_bound() {
    load_weights(&fixture().weights).expect("the fixture loads");
}

/// Found by reading the index's code for what the properties above cannot
/// see: a shard named by an absolute path or through `..` was mapped and read
/// wherever it was.
#[test]
fn an_index_naming_a_file_outside_the_directory_is_refused() {
    let fixture = fixture();
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(outer.path().join("elsewhere.safetensors"), &fixture.weights).unwrap();
    std::fs::write(dir.join("config.json"), &fixture.config).unwrap();
    let absolute = outer.path().join("elsewhere.safetensors");
    for shard in ["../elsewhere.safetensors", absolute.to_str().unwrap(), ""] {
        let index = json!({"weight_map": {"model.norm.weight": shard}});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        let err = load_hf_dir::<CpuBackend>(&dir, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.safetensors.index.json")
                && err.contains(&format!("shard '{shard}', which is not a file inside")),
            "{err}"
        );
    }
}
