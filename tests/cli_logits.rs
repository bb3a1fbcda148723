//! `decant logits` end to end against llama.cpp's logits of the reference teacher
//! (golden from tools/goldens/logits_llamacpp.py, shared with train's tests).

mod common;

use std::path::Path;

use common::{decant, reference_model, stderr};
use serde_json::Value as Json;

/// Issue 4's bound, as in train/tests/reference_logits.rs.
const TOLERANCE: f32 = 2e-3;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/train/tests/goldens/smollm2_logits_llamacpp.safetensors"
);

/// A safetensors file read by hand: the CLI's tests do without the crate.
struct SafeTensors {
    header: Json,
    data: Vec<u8>,
}

impl SafeTensors {
    fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(len % 8, 0, "header padded to 8 bytes");
        let header = serde_json::from_slice(&bytes[8..8 + len]).expect("JSON header");
        Self {
            header,
            data: bytes[8 + len..].to_vec(),
        }
    }

    fn tensor(&self, name: &str, dtype: &str) -> (Vec<usize>, &[u8]) {
        let info = &self.header[name];
        assert_eq!(info["dtype"], dtype, "{name}");
        let shape = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let offsets = &info["data_offsets"];
        let (start, end) = (
            offsets[0].as_u64().unwrap() as usize,
            offsets[1].as_u64().unwrap() as usize,
        );
        (shape, &self.data[start..end])
    }

    fn i32s(&self, name: &str) -> Vec<i32> {
        let (_, bytes) = self.tensor(name, "I32");
        bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn f32s(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let (shape, bytes) = self.tensor(name, "F32");
        (
            shape,
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        )
    }
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}

#[test]
fn logits_match_llama_cpp_and_replace_the_output_atomically() {
    let model = reference_model();
    let model = model.to_str().expect("UTF-8 path");
    let golden = SafeTensors::read(Path::new(GOLDEN));
    let texts: Vec<String> =
        serde_json::from_str(golden.header["__metadata__"]["texts"].as_str().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = |k: usize| dir.path().join(format!("logits.{k}.safetensors"));
    std::fs::write(out(0), b"an older file").unwrap();
    let tokens: Vec<Vec<i32>> = (0..texts.len())
        .map(|k| golden.i32s(&format!("tokens.{k}")))
        .collect();

    // One process per sequence, side by side: each spends most of its time loading the model.
    let runs = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..texts.len())
            .map(|k| {
                let (out, text, tokens) = (out(k), &texts[k], &tokens[k]);
                scope.spawn(move || {
                    let list: Vec<String> = tokens.iter().map(i32::to_string).collect();
                    let list = list.join(",");
                    // The plain-prose text goes through the CLI's tokenizer; the others,
                    // with ChatML markers read as special tokens, as ids.
                    let input = if k == 0 {
                        ["--text", text.as_str()]
                    } else {
                        ["--tokens", list.as_str()]
                    };
                    let out = out.to_str().unwrap();
                    decant(&[&["logits", "--model", model, "--out", out], &input[..]].concat())
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("the run's thread"))
            .collect::<Vec<_>>()
    });

    let mut max_diff = 0f32;
    for (k, run) in runs.iter().enumerate() {
        assert!(run.status.success(), "sequence {k}: {}", stderr(run));
        let written = SafeTensors::read(&out(k));
        let tokens = &tokens[k];
        assert_eq!(&written.i32s("tokens"), tokens, "sequence {k}");
        let (shape, logits) = written.f32s("logits");
        let vocab = shape[1];
        assert_eq!(shape, [tokens.len(), 49152]);
        let row = |p: usize| &logits[p * vocab..(p + 1) * vocab];

        let top_ids = golden.i32s(&format!("top_ids.{k}"));
        let (_, top_logits) = golden.f32s(&format!("top_logits.{k}"));
        let top_k = top_ids.len() / tokens.len();
        for p in 0..tokens.len() {
            let ids = &top_ids[p * top_k..(p + 1) * top_k];
            assert_eq!(
                argmax(row(p)),
                ids[0] as usize,
                "argmax of sequence {k}, position {p}"
            );
            for (&id, &want) in ids.iter().zip(&top_logits[p * top_k..]) {
                max_diff = max_diff.max((row(p)[id as usize] - want).abs());
            }
        }
        let (_, rows) = golden.f32s(&format!("rows.{k}"));
        for (r, &p) in golden
            .i32s(&format!("row_positions.{k}"))
            .iter()
            .enumerate()
        {
            for (got, want) in row(p as usize)
                .iter()
                .zip(&rows[r * vocab..(r + 1) * vocab])
            {
                max_diff = max_diff.max((got - want).abs());
            }
        }
    }
    assert!(max_diff <= TOLERANCE, "max abs logit difference {max_diff}");
    let mut entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    let expected: Vec<_> = (0..texts.len())
        .map(|k| out(k).file_name().unwrap().to_owned())
        .collect();
    assert_eq!(
        entries, expected,
        "the older file is replaced and no temporary file is left behind"
    );
}

#[test]
fn tokens_outside_the_vocabulary_are_user_errors() {
    let model = reference_model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("logits.safetensors");
    let run = decant(&[
        "logits",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        "1,2,49152",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("token 2 is id 49152, outside the model's vocabulary of 49152"),
        "{}",
        stderr(&run)
    );
    assert!(!out.exists());
}

#[test]
fn exactly_one_input_is_required() {
    let model = reference_model();
    let model = model.to_str().unwrap();
    for input in [
        &["--text", "a", "--tokens", "1"][..],
        &[],
        &["--tokens", "1,x"],
    ] {
        let run = decant(
            &[
                &["logits", "--model", model, "--out", "x.safetensors"],
                input,
            ]
            .concat(),
        );
        assert_eq!(run.status.code(), Some(2), "{input:?}: {}", stderr(&run));
    }
}
