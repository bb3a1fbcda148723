#!/usr/bin/env bash
# Creates the Python venv used by the golden scripts in tools/goldens/ and the
# benchmarks that call llama.cpp, at ~/.cache/decant/venv. Idempotent.
# The Rust test suite never needs it: goldens are committed.
#   --with-llama   also build llama-cpp-python from source (4-6 min, wheel cached)
#   --with-torch   also install torch (several GB; only tools/goldens/hf_transformers.py needs it)
#   --with-bench   also install Hugging Face datasets (tools/bench/datasets_throughput.py)
set -euo pipefail
cache="${DECANT_CACHE:-$HOME/.cache/decant}"
venv="$cache/venv"
llama_version=0.3.36
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
# transformers without torch: chat-template and tokenizer goldens need only its Python side.
"$venv/bin/python" -m pip install --quiet "gguf==0.19.0" "numpy>=1.26,<3" "transformers==5.24.0" "tokenizers==0.23.3" "jinja2>=3.1" >&2
if [[ " $* " == *" --with-torch "* ]]; then
  "$venv/bin/python" -m pip install --quiet torch >&2
fi
if [[ " $* " == *" --with-bench "* ]]; then
  "$venv/bin/python" -m pip install --quiet "datasets==5.2.0" >&2
fi
if [[ " $* " == *" --with-llama "* ]]; then
  wheels="$cache/wheels"
  mkdir -p "$wheels"
  if ! ls "$wheels"/llama_cpp_python-"$llama_version"-*.whl >/dev/null 2>&1; then
    # Native build: the libggml we compare against uses this CPU's SIMD, as a user's would.
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/python" -m pip wheel --quiet --no-deps \
      --wheel-dir "$wheels" "llama-cpp-python==$llama_version" >&2
  fi
  "$venv/bin/python" -m pip install --quiet --no-deps "$wheels"/llama_cpp_python-"$llama_version"-*.whl >&2
  "$venv/bin/python" -m pip install --quiet "typing-extensions>=4.5" "diskcache>=5.6.1" "jinja2>=2.11.3" >&2
fi
echo "$venv"
