#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what the tests need first
# (idempotent, cached under ~/.cache/decant/), then runs every Rust test.
# Tests that compare with llama.cpp live (exported files loading in it) run it
# through the venv's llama-cpp-python; the rest read committed goldens.
set -euo pipefail
cd "$(dirname "$0")/.."
DECANT_REFERENCE_MODEL="$(bash tools/fetch-reference-model.sh)"
export DECANT_REFERENCE_MODEL
DECANT_LLAMACPP_VOCABS="$(bash tools/fetch-llamacpp-vocabs.sh)"
export DECANT_LLAMACPP_VOCABS
DECANT_PYTHON="$(bash tools/setup-python.sh --with-llama)/bin/python"
export DECANT_PYTHON
DECANT_MLFLOW="$(bash tools/setup-mlflow.sh)"
export DECANT_MLFLOW
DECANT_OCI_REGISTRY="$(bash tools/setup-oci-registry.sh)"
export DECANT_OCI_REGISTRY
# The benches are not test targets; building them keeps the figures in the
# notes reproducible. Doc tests next: nextest's summary is then the run's
# closing line.
cargo build --workspace --benches
# The CUDA backend builds (its kernels compile at run time through NVRTC, so no
# toolkit is needed): after the build above it shares the build scripts and
# proc-macros, about 1.5 min.
cargo check --workspace --features cuda --tests
cargo test --workspace --doc
# The WGPU backend, on Mesa's software Vulkan (lavapipe), against the CPU
# backend: its own build of train with the feature (about 6 min cold, 1 warm).
bash tools/setup-vulkan.sh >/dev/null
cargo nextest run -p train --features wgpu --test wgpu_backend
cargo nextest run --workspace --no-fail-fast "$@"
