#!/usr/bin/env bash
# The full `labcore experiment` on all 750 bundled test images (README "Results"), in the background.
#
#   scripts/run-experiment.sh            # starts it; prints the pid and where the log is
#   scripts/run-experiment.sh            # again after a kill or a reboot: it resumes (rows already in
#                                        # results/experiment750/experiments.csv are skipped)
#
# Rows: 2 baselines + per token rule (argmax, sampled) one-shot, 3 schedules x T in {2, 4, 8, 12}, a
# sweet-spot sweep at T = 12, 2 more seeds for one-shot and the best iterative setting, paste known:
# 54 rows; each decodes the 750 images and runs Inception on them (measured on the idle 2-core CPU:
# one-shot rows ~73 s, T = 12 rows ~185 s; the 60 rows of docs/results (with the tau sweep) sum to ~234 min of row time).
# Extra arguments go to `labcore experiment` (e.g. --device cuda). OUT=... picks another folder.
# When it has finished, ship the results:  cp results/experiment750/experiments.{csv,md,png} docs/results/
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/experiment750}
mkdir -p "$OUT"
PYTHONUNBUFFERED=1 nohup .venv/bin/labcore experiment -o "$OUT" --no-progress "$@" >> "$OUT/run.log" 2>&1 &
echo "labcore experiment: pid $!, log $OUT/run.log (tail -f it); rerun this script to resume after a kill"
