//! Shared helpers for the end-to-end tests of the `decant` binary.
// Each test binary compiles this module and uses only some of the helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The reference teacher, fetched by `tools/fetch-reference-model.sh`. Missing is a
/// failure, not a skip: CI fetches it first, and a silent skip would hide that.
pub fn reference_model() -> PathBuf {
    let path = match std::env::var_os("DECANT_REFERENCE_MODEL") {
        Some(path) => PathBuf::from(path),
        None => {
            let cache = std::env::var_os("DECANT_CACHE").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/decant")
            });
            cache.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        }
    };
    assert!(
        path.is_file(),
        "reference model {} is missing: run `bash tools/fetch-reference-model.sh`",
        path.display()
    );
    path
}

pub fn decant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_decant")).args(args).output().expect("decant runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}
