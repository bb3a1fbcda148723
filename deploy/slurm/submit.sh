#!/bin/bash
# Queues the ranks as one array job and the merge after it: `afterok` on an
# array job waits for every task to succeed, so a failed rank holds the merge
# back (rerun that rank; the merge then starts). Variables such as OUT are
# passed on to both jobs (sbatch exports the environment).
set -euo pipefail
cd "$(dirname "$0")"
ranks=$(sbatch --parsable cache-teacher.sbatch)
sbatch --dependency=afterok:"${ranks%%;*}" cache-teacher-merge.sbatch
