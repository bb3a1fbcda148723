#!/usr/bin/env bash
# Fetches llama.cpp's vocabulary-only GGUF files (the ones its own tokenizer tests
# use) from the llama-cpp-python sdist into ~/.cache/decant/vocabs and prints that
# directory. The datasets crate's tokenizer tests read them next to the reference
# teacher. Idempotent: a second call only prints the directory.
set -euo pipefail
cache="${DECANT_CACHE:-$HOME/.cache/decant}"
dest="$cache/vocabs"
llama_version=0.3.36
vocabs=(llama-bpe qwen2 gpt-2 llama-spm)
missing=()
for name in "${vocabs[@]}"; do
  [[ -s "$dest/ggml-vocab-$name.gguf" ]] || missing+=("$name")
done
if (( ${#missing[@]} > 0 )); then
  mkdir -p "$dest" "$cache/downloads"
  tmp="$(mktemp -d "$cache/downloads/llama-cpp-vocabs.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
    --dest "$tmp" "llama-cpp-python==$llama_version" >&2
  for name in "${missing[@]}"; do
    member="llama_cpp_python-$llama_version/vendor/llama.cpp/models/ggml-vocab-$name.gguf"
    tar -xzf "$tmp/llama_cpp_python-$llama_version.tar.gz" -C "$tmp" "$member"
    mv "$tmp/$member" "$dest/ggml-vocab-$name.gguf.part"
    mv "$dest/ggml-vocab-$name.gguf.part" "$dest/ggml-vocab-$name.gguf"
  done
fi
echo "$dest"
