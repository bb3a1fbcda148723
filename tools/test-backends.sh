#!/usr/bin/env bash
# The tests of the non-default backends: the WGPU path on Mesa's software Vulkan
# (lavapipe), and a check that everything builds with the CUDA backend (CUDA
# kernels compile at run time through NVRTC, so no CUDA toolkit is needed here).
# Each part's wall time goes to stderr. Extra arguments go to nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

timed() {
    local label="$1" started=$SECONDS
    shift
    "$@"
    echo "test-backends: $label took $((SECONDS - started)) s" >&2
}

timed "setup-vulkan" bash tools/setup-vulkan.sh >/dev/null
timed "wgpu test" cargo nextest run -p train --features wgpu --test wgpu_backend "$@"
timed "cuda check" cargo check --workspace --features cuda --tests
