#!/usr/bin/env bash
# How much of the post-training quantization loss QAT wins back (issue 9's table).
#
# The quickstart student (10 layers depth-pruned from the reference teacher,
# distilled on the first TRAIN_EXAMPLES conversations of the synthetic
# extraction task, tools/bench/extract_recipe.sh) is distilled for DISTILL_STEPS,
# then QAT-trained for a tenth of that at Q4_0 and at Q4_K_M. Each of F32,
# post-training Q4_0 / Q4_K_M (the distilled student exported as is) and QAT
# Q4_0 / Q4_K_M (the QAT student exported at its type) is evaluated on the
# first EXAMPLES held-out conversations, each rendered as training renders it
# and scored on the tokens training trains on (the answers): perplexity and KL
# divergence from the teacher; with
# EXACT=N also task exact-match on N examples (slow on CPU). The last lines give,
# per type, the share of the perplexity degradation QAT recovers,
# (ppl_ptq - ppl_qat) / (ppl_ptq - ppl_f32), and the same against a control:
# the student trained for the same QAT steps and loss with Q8_0 fake-quant
# (nearly lossless), exported at F32 (ctl-f32) and post-training quantized
# (ctl-q4_0, ctl-q4_k_m). An under-trained student gains from the extra steps
# alone; the control separates that from what the rounding-aware training wins.
#
#   bash tools/bench/qat_recovery.sh     # DISTILL_STEPS=100 BATCH=4 EXAMPLES=60 EXACT=0 by default
#   REFERENCE=student QAT_LR=3e-5 bash tools/bench/qat_recovery.sh   # QAT's [qat] reference and lr
#   DISTILLED=/tmp/x/run-kd-online DISTILL_STEPS=160 bash tools/bench/qat_recovery.sh
#       # start from distill_compare.sh's kd-online student (its STEPS and
#       # TRAIN_EXAMPLES) instead of distilling again
#
# Needs a built decant (cargo build --release, or DECANT=path) and the reference
# teacher (tools/fetch-reference-model.sh). Work files go to WORK (a temporary
# directory by default).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
decant="${DECANT:-$root/target/release/decant}"
teacher="${DECANT_REFERENCE_MODEL:-$(bash tools/fetch-reference-model.sh)}"
steps="${DISTILL_STEPS:-100}"
batch="${BATCH:-4}"
qat_steps=$(( steps / 10 > 0 ? steps / 10 : 1 ))
examples="${EXAMPLES:-60}"
train_examples="${TRAIN_EXAMPLES:-1500}"
exact="${EXACT:-0}"
reference="${REFERENCE:-teacher}"
qat_lr="${QAT_LR:-3e-5}"
source tools/bench/extract_recipe.sh
extract_work "$examples" "$train_examples"
recipe() {
  extract_recipe "$teacher" "$work/train.jsonl" "$steps" "$batch" "[distill]
loss = { kind = \"forward_kl\" }
alpha = 0.5

[qat]
type = \"$1\"
steps = $qat_steps
lr = $qat_lr
reference = \"$reference\"

[export]
types = [\"$1\"]
name = \"qat-recovery\""
}

run="$work/run-q4_0"
recipe q4_0 > "$work/q4_0.toml"
recipe q4_k_m > "$work/q4_k_m.toml"
recipe q8_0 > "$work/q8_0.toml"
if [ -n "${DISTILLED:-}" ]; then
  mkdir -p "$run"
  cp -r "$DISTILLED/distill" "$run/"
else
  "$decant" distill "$work/q4_0.toml" --out "$run" --json > "$work/distill.json"
fi
mkdir -p "$work/run-q4_k_m"
cp -r "$run/distill" "$work/run-q4_k_m/"
student="$run/distill/student"

"$decant" export --model "$student" --format gguf --type f32 --out "$work/f32.gguf" --json > /dev/null
mkdir -p "$work/run-q8_0"
cp -r "$run/distill" "$work/run-q8_0/"
for mix in q4_0 q4_k_m q8_0; do
  "$decant" qat "$work/$mix.toml" --out "$work/run-$mix" --json > "$work/qat-$mix.json"
done
control="$work/run-q8_0/qat/student"
"$decant" export --model "$control" --format gguf --type f32 --out "$work/ctl-f32.gguf" --json > /dev/null
for mix in q4_0 q4_k_m; do
  "$decant" export --model "$student" --format gguf --type "$mix" --out "$work/ptq-$mix.gguf" --json > /dev/null
  "$decant" export --model "$work/run-$mix/qat/student" --format gguf --type "$mix" \
    --out "$work/qat-$mix.gguf" --json > /dev/null
  "$decant" export --model "$control" --format gguf --type "$mix" --out "$work/ctl-$mix.gguf" --json > /dev/null
done

printf '%-12s %10s %10s %8s\n' model ppl kld exact
for name in f32 ptq-q4_0 qat-q4_0 ptq-q4_k_m qat-q4_k_m ctl-f32 ctl-q4_0 ctl-q4_k_m; do
  model="$work/$name.gguf"
  "$decant" eval --model "$model" --teacher "$teacher" --data "$work/eval.jsonl" \
    --metrics ppl,kld --json > "$work/eval-$name.json"
  if [ "$exact" -gt 0 ]; then
    "$decant" eval --model "$model" --data "$root/data/extract/eval.jsonl" --metrics exact \
      --max-examples "$exact" --max-new-tokens 96 --json > "$work/exact-$name.json"
  else
    echo '{}' > "$work/exact-$name.json"
  fi
  python3 - "$name" "$work/eval-$name.json" "$work/exact-$name.json" <<'EOF'
import json, sys
name, scores, exact = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
ppl, kld = scores["ppl"]["value"], scores["kld"]["mean"]
exact_match = exact.get("exact", {}).get("exact_match", float("nan"))
print(f"{name:<12} {ppl:>10.4f} {kld:>10.5f} {exact_match:>8.3f}")
EOF
done | tee "$work/table.txt"

python3 - "$work/table.txt" <<'EOF'
import sys
rows = {l.split()[0]: float(l.split()[1]) for l in open(sys.argv[1])}
for mix in ("q4_0", "q4_k_m"):
    lost = rows[f"ptq-{mix}"] - rows["f32"]
    won = rows[f"ptq-{mix}"] - rows[f"qat-{mix}"]
    share = won / lost if lost > 0 else float("nan")
    print(f"{mix}: PTQ adds {lost:+.4f} ppl, QAT wins back {won:+.4f} ({share:.0%})")
    lost = rows[f"ctl-{mix}"] - rows["ctl-f32"]
    won = rows[f"ctl-{mix}"] - rows[f"qat-{mix}"]
    share = won / lost if lost > 0 else float("nan")
    print(f"{mix} against the control: PTQ adds {lost:+.4f} ppl, QAT wins back {won:+.4f} ({share:.0%})")
EOF
