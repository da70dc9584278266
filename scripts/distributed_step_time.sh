#!/usr/bin/env bash
# Step rates of the two examples on this machine: one process with 1 and with 2 OpenMP threads, and
# 2 MPI ranks of 1 thread each (--distributed), same seed; prints a markdown table for
# docs/distributed.md. Usage: scripts/distributed_step_time.sh [BUILD_DIR] [WORK_DIR]  (about 4 minutes)
set -euo pipefail
build=${1:-build}
work=${2:-distributed-step-time}
rm -rf "$work" && mkdir -p "$work"
mpi=(mpirun --oversubscribe -np 2)
[ "$(id -u)" -eq 0 ] && mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)
fm=(--model cnn --epochs 2 --seed 1 --test-subset 1000)
lm=(--epochs 2 --seed 1 --context 64 --batch-size 512 --learning-rate 3e-3 --test-subset 200)
# The steps/s of the last progress line, and the last evaluation figure.
rate() { grep "steps/s" "$1" | tail -n 1 | sed 's/.* \([0-9.]*\) steps\/s.*/\1/'; }
score() { grep -E "^test (accuracy|bits per character):" "$1" | sed 's/.*: \([0-9.]*\).*/\1/'; }
run() {  # name label command...
  local name=$1 label=$2; shift 2
  "$@" --run-dir "$work/run-$name" > "$work/$name.log" 2>&1
  echo "| $label | $(rate "$work/$name.log") | $(score "$work/$name.log") |"
}
echo "| program and layout | steps/s | final test figure |"
echo "|---|---|---|"
OMP_NUM_THREADS=1 run fm-1 "fashion_mnist, 1 process x 1 thread" "$build/bin/fashion_mnist" "${fm[@]}"
OMP_NUM_THREADS=2 run fm-2 "fashion_mnist, 1 process x 2 threads" "$build/bin/fashion_mnist" "${fm[@]}"
OMP_NUM_THREADS=1 run fm-mpi "fashion_mnist, 2 ranks x 1 thread" "${mpi[@]}" "$build/bin/fashion_mnist" --distributed "${fm[@]}"
OMP_NUM_THREADS=1 run lm-1 "dp_lm, 1 process x 1 thread" "$build/bin/dp_lm" "${lm[@]}"
OMP_NUM_THREADS=2 run lm-2 "dp_lm, 1 process x 2 threads" "$build/bin/dp_lm" "${lm[@]}"
OMP_NUM_THREADS=1 run lm-mpi "dp_lm, 2 ranks x 1 thread" "${mpi[@]}" "$build/bin/dp_lm" --distributed "${lm[@]}"
