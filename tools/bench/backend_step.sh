#!/usr/bin/env bash
# Training-step speed of the four CPU backend candidates (benches/backend_step.rs):
# features unify, so one build has one flavour each of Flex and ndarray, and two
# builds cover them. Their figures meet in one results file, and the second run
# prints them all with the ratio to the default CpuBackend. ndarray + OpenBLAS
# links the system's library (Debian: libopenblas-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
results="${DECANT_BENCH_RESULTS:-${CARGO_TARGET_DIR:-target}/backend_step.json}"
mkdir -p "$(dirname "$results")"
rm -f "$results"
export DECANT_BENCH_RESULTS="$results"
cargo bench -p train --bench backend_step --no-default-features --features openblas
cargo bench -p train --bench backend_step --features ndarray
