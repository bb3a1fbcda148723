#!/usr/bin/env bash
# Training tokens/s of decant's training loop against PyTorch eager on the same
# ~50M-parameter Llama-style model, batch, sequence (256), f32 and threads
# (issue 7's benchmark): train/benches/train_step.rs and
# tools/bench/torch_train_step.py take turns ROUNDS times, so that both see the
# same machine load, and the best round of each counts. Prints both JSON lines
# of each round, then the ratio decant / PyTorch and both peak memories.
#
#   bash tools/bench/train_vs_torch.sh            # THREADS=2 BATCH=4 STEPS=5 ROUNDS=2
#
# PyTorch comes from the benchmark venv (tools/setup-python.sh --with-torch,
# several GB); the Rust side is built in the dev profile, whose dependencies
# and training crates are optimized (Cargo.toml), so it shares the test build.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${THREADS:-2}"
rounds="${ROUNDS:-2}"
export BATCH="${BATCH:-4}" STEPS="${STEPS:-5}"
python="$(bash tools/setup-python.sh --with-torch)/bin/python"
cargo build -q -p train --bench train_step --profile dev
bench=$(cargo bench -p train --bench train_step --profile dev --no-run --message-format json 2>/dev/null |
  "$python" -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "train_step" and m.get("executable"):
        print(m["executable"])')
results=$(mktemp)
for _ in $(seq "$rounds"); do
  RAYON_NUM_THREADS="$threads" "$bench" | tee -a "$results"
  THREADS="$threads" OMP_NUM_THREADS="$threads" "$python" tools/bench/torch_train_step.py | tee -a "$results"
done
"$python" - "$results" <<'EOF'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
best = {}
for r in runs:
    side = "decant" if r["impl"].startswith("decant") else "torch"
    if side not in best or r["tokens_per_s"] > best[side]["tokens_per_s"]:
        best[side] = r
d, t = best["decant"], best["torch"]
print(f"decant {d['tokens_per_s']:.1f} tok/s, PyTorch {t['tokens_per_s']:.1f} tok/s: "
      f"ratio {d['tokens_per_s'] / t['tokens_per_s']:.2f} "
      f"(peak RSS {d['peak_rss_mib']:.0f} MiB vs {t['peak_rss_mib']:.0f} MiB; "
      f"{d['parameters'] / 1e6:.1f}M parameters, batch {d['batch']} x {d['seq']}, {d['threads']} threads)")
EOF
rm -f "$results"
