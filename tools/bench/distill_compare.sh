#!/usr/bin/env bash
# Distillation against label training on the synthetic field-extraction task
# (issue 8's benchmark): the reference teacher pruned by depth to 10 of its 30
# layers (tools/bench/extract_recipe.sh), then trained for the same STEPS three
# ways:
#   kd-online   forward KL to the online teacher + cross-entropy (alpha 0.5)
#   ce          cross-entropy on the gold answers alone
#   kd-cached   as kd-online, from a cached top-64 teacher
#   kd-tailN    as kd-cached, the cache also holding ids drawn from the
#               teacher's distribution outside the top-64, N = TAIL per unit of
#               rest mass (not run with TAIL=0)
# Each student is scored on the first EXAMPLES held-out conversations:
# perplexity and KL divergence from the teacher on the answer tokens (as
# training renders them), same-top-token rate, and exact match / JSON-field
# match of greedy answers. The last lines compare kd-online with ce, and the
# cached teachers' KL with the online one's (relative).
#
#   bash tools/bench/distill_compare.sh   # STEPS=160 BATCH=4 EXAMPLES=100 TRAIN_EXAMPLES=1500 TAIL=512 TEACHER_STEPS=0
#
# All variants train on the first TRAIN_EXAMPLES conversations, so the cached
# teacher covers only what the budget reads.
#
# The reference teacher does not do the task. With TEACHER_STEPS > 0 the
# teacher is first fine-tuned, all 30 layers, on cross-entropy for that many
# steps on the same conversations (run-teacher-sft), and every variant prunes
# its student from that teacher and distills from it.
#
# Needs a built decant (DECANT, default target/release/decant) and the reference
# teacher (tools/fetch-reference-model.sh). Work files go to WORK (a temporary
# directory by default); a variant whose student exists there is not retrained,
# nor is a model whose scores are there scored again.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
decant="${DECANT:-$root/target/release/decant}"
teacher="${DECANT_REFERENCE_MODEL:-$(bash tools/fetch-reference-model.sh)}"
steps="${STEPS:-160}"
batch="${BATCH:-4}"
examples="${EXAMPLES:-100}"
train_examples="${TRAIN_EXAMPLES:-1500}"
tail_samples="${TAIL:-512}"
teacher_steps="${TEACHER_STEPS:-0}"
source tools/bench/extract_recipe.sh
extract_work "$examples" "$train_examples"

train() {
  if [ ! -f "$work/run-$1/distill/stage.json" ]; then
    started=$SECONDS
    "$decant" distill "$work/$1.toml" --out "$work/run-$1" --resume --json > "$work/distill-$1.json"
    echo "$1: trained in $((SECONDS - started)) s" >&2
  fi
}

if [ "$teacher_steps" -gt 0 ]; then
  extract_recipe "$teacher" "$work/train.jsonl" "$teacher_steps" "$batch" "" \
    "kind = \"model\""$'\n'"model = \"$teacher\"" > "$work/teacher-sft.toml"
  train teacher-sft
  teacher="$work/run-teacher-sft/distill/student"
fi
recipe() {
  extract_recipe "$teacher" "$work/train.jsonl" "$steps" "$batch" "$1"
}

recipe $'[distill]\nloss = { kind = "forward_kl" }\nalpha = 0.5\nteacher = "online"' > "$work/kd-online.toml"
recipe "" > "$work/ce.toml"
recipe $'[distill]\nloss = { kind = "forward_kl" }\nalpha = 0.5\nteacher = "cached"\ntop_k = 64' > "$work/kd-cached.toml"
variants=(kd-online ce kd-cached)
if [ "$tail_samples" -gt 0 ]; then
  recipe $'[distill]\nloss = { kind = "forward_kl" }\nalpha = 0.5\nteacher = "cached"\ntop_k = 64\ntail_samples = '"$tail_samples" > "$work/kd-tail$tail_samples.toml"
  variants+=("kd-tail$tail_samples")
fi
for variant in "${variants[@]}"; do
  train "$variant"
done

printf '%-10s %8s %9s %7s %7s %7s %7s %9s\n' model ppl kld top1 exact json fields train_s
for variant in teacher "${variants[@]}"; do
  if [ "$variant" = teacher ]; then
    model="$teacher"; trained=0
  else
    model="$work/run-$variant/distill/student"
    trained=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["elapsed_s"]))' \
      "$work/run-$variant/distill/stage.json")
  fi
  [ -s "$work/eval-$variant.json" ] || "$decant" eval --model "$model" --teacher "$teacher" \
    --data "$work/eval.jsonl" --metrics ppl,kld,top1 --json > "$work/eval-$variant.json"
  [ -s "$work/exact-$variant.json" ] || "$decant" eval --model "$model" --data "$work/eval.jsonl" \
    --metrics exact --max-new-tokens 96 --json > "$work/exact-$variant.json"
  python3 - "$variant" "$work/eval-$variant.json" "$work/exact-$variant.json" "$trained" <<'EOF'
import json, sys
name, scores, exact, trained = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), sys.argv[4]
e = exact["exact"]
print(f"{name:<10} {scores['ppl']['value']:>8.4f} {scores['kld']['mean']:>9.5f} {scores['top1']['value']:>7.3f} "
      f"{e['exact_match']:>7.3f} {e['json_valid']:>7.3f} {e['field_accuracy']:>7.3f} {trained:>9}")
EOF
done | tee "$work/table.txt"

python3 - "$work/table.txt" "$tail_samples" "$work" <<'EOF'
import json, sys
rows = {l.split()[0]: [float(v) for v in l.split()[1:]] for l in open(sys.argv[1])}
ppl, kld, exact = 0, 1, 3
a, b = rows["kd-online"], rows["ce"]
print(f"kd-online vs ce at equal steps: exact {a[exact]:.3f} vs {b[exact]:.3f}, "
      f"KL {a[kld]:.4f} vs {b[kld]:.4f}, ppl {a[ppl]:.4f} vs {b[ppl]:.4f}")
for name, label in [("kd-cached", "cached top-64"), (f"kd-tail{sys.argv[2]}", f"cached top-64 + {sys.argv[2]} tail samples per unit of rest")]:
    if name not in rows:
        continue
    c = rows[name]
    cache = json.load(open(f"{sys.argv[3]}/run-{name}/teacher-cache/manifest.json"))
    print(f"{label} ({cache['bytes_per_position']:.2f} bytes per position) vs online: "
          f"KL {c[kld]:.5f} vs {a[kld]:.5f} ({(c[kld] - a[kld]) / a[kld]:+.2%} relative)")
EOF
