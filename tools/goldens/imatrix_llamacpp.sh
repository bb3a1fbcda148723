#!/usr/bin/env bash
# Golden importance matrix of the reference teacher from llama.cpp's own
# llama-imatrix, for tests/cli_imatrix.rs.
#
# llama-cpp-python's wheel ships no llama-imatrix, so this builds it (and
# llama-perplexity, for tools/goldens/kld_llamacpp.py) from the vendored
# llama.cpp in the llama-cpp-python 0.3.36 source distribution, fetched with
#   pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36
# into $BUILD/sdist (BUILD defaults to ~/.cache/decant/llama.cpp-build). cmake
# and ninja come from the pip packages of the same names if not installed.
#
# As in the other llama.cpp goldens the model is the Q4_1 reference teacher
# dequantized to F32 (tests rebuild the same file byte for byte), so that
# llama.cpp multiplies F32 activations by the weights decant dequantizes
# instead of quantizing activations to 8 bits; F32 KV cache, no flash
# attention. Text: train/tests/goldens/ppl/prose.txt, named by that relative
# path (llama-imatrix records it in imatrix.datasets); context 128, all chunks.
#
# Output: tests/goldens/imatrix/smollm2_ctx128_llamacpp.gguf (the whole file, ~0.6 MB),
# the file tools/goldens/imatrix_llamacpp_callback.py writes without building
# anything (same hook, same sums, same layout; the build takes about an hour on
# two busy cores).
#
#   bash tools/goldens/imatrix_llamacpp.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${BUILD:-$HOME/.cache/decant/llama.cpp-build}"
THREADS="${THREADS:-2}"
MODEL_F32="${MODEL_F32:-$HOME/.cache/decant/models/SmolLM2-135M-Instruct.F32.gguf}"

build_llamacpp() {
  local src="$BUILD/llama_cpp_python-0.3.36/vendor/llama.cpp"
  if [[ ! -d "$src" ]]; then
    mkdir -p "$BUILD/sdist"
    local tarball="$BUILD/sdist/llama_cpp_python-0.3.36.tar.gz"
    [[ -f "$tarball" ]] || python3 -m pip download --no-deps --no-binary :all: \
      --dest "$BUILD/sdist" llama-cpp-python==0.3.36 >&2
    tar -xzf "$tarball" -C "$BUILD"
  fi
  if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
    [[ -x "$BUILD/tools-venv/bin/cmake" ]] || {
      python3 -m venv "$BUILD/tools-venv"
      "$BUILD/tools-venv/bin/pip" install --quiet cmake ninja
    }
    export PATH="$BUILD/tools-venv/bin:$PATH"
  fi
  if [[ ! -x "$BUILD/build/bin/llama-imatrix" || ! -x "$BUILD/build/bin/llama-perplexity" ]]; then
    cmake -S "$src" -B "$BUILD/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
      -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
      -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
    cmake --build "$BUILD/build" --target llama-imatrix llama-perplexity -j "$THREADS" >&2
  fi
}

# --build-only: just the tools (tools/goldens/kld_llamacpp.py calls that).
build_llamacpp
[[ "${1:-}" == "--build-only" ]] && exit 0

if [[ ! -s "$MODEL_F32" ]]; then
  echo "missing $MODEL_F32: run the decant tests once (tests/cli_quantize.rs writes it) or" \
    "tools/goldens/quantize_llamacpp.py" >&2
  exit 1
fi
out=tests/goldens/imatrix/smollm2_ctx128_llamacpp.gguf
mkdir -p "$(dirname "$out")"
"$BUILD/build/bin/llama-imatrix" -m "$MODEL_F32" -f train/tests/goldens/ppl/prose.txt \
  -c 128 -t "$THREADS" -ctk f32 -ctv f32 -fa off -o "$out" >&2
echo "wrote $out" >&2
