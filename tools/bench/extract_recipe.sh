# The benchmarks' recipe for a student distilled on the synthetic extraction
# task: the reference teacher depth-pruned to 10 of its 30 layers, cosine
# schedule with a tenth of the steps as warmup. Sourced by distill_compare.sh
# and qat_recovery.sh, so that qat_recovery.sh can start from a student
# distill_compare.sh trained.
#
#   extract_recipe TEACHER TRAIN_JSONL STEPS BATCH [SECTIONS] [INIT]
#
# SECTIONS ([distill], [qat], [export], …) go between [data] and [train];
# without a [distill] section the stage trains on cross-entropy alone. INIT is
# the [student.init] table's body, the depth pruning above by default.
#
#   extract_work EXAMPLES TRAIN_EXAMPLES
#
# sets `work` to WORK (a temporary directory when unset) and writes there the
# first EXAMPLES held-out conversations (eval.jsonl) and the first
# TRAIN_EXAMPLES training ones (train.jsonl). Both run from the repository root.

extract_work() {
  work="${WORK:-$(mktemp -d)}"
  mkdir -p "$work"
  echo "work directory: $work" >&2
  head -n "$1" data/extract/eval.jsonl > "$work/eval.jsonl"
  head -n "$2" data/extract/train.jsonl > "$work/train.jsonl"
}

extract_recipe() {
  local teacher="$1" train="$2" steps="$3" batch="$4" sections="${5:-}"
  local depth=$'kind = "depth"\nkeep = 10\ncalibration_samples = 64'
  local init="${6:-$depth}"
  cat <<EOF
[teacher]
model = "$teacher"

[student.init]
$init

[data]
train = "$train"
max_length = 256
packing = true

$sections

[train]
lr = 3e-4
schedule = "cosine"
min_lr = 3e-5
warmup_steps = $(( steps / 10 ))
steps = $steps
batch_size = $batch
clip_norm = 1.0
seed = 0
checkpoint_every = $(( steps / 4 > 0 ? steps / 4 : 1 ))
EOF
}
