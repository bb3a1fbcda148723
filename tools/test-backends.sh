#!/usr/bin/env bash
# A check that everything builds with the CUDA backend (CUDA kernels compile at
# run time through NVRTC, so no CUDA toolkit is needed here). About 10 minutes
# cold on 2 cores, so not part of tools/test.sh, which runs the WGPU backend's
# test on lavapipe. The wall time goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
cargo check --workspace --features cuda --tests
echo "test-backends: the cuda check took $((SECONDS - started)) s" >&2
