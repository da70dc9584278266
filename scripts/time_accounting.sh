#!/usr/bin/env bash
# Times the accountant through the CLI on the extreme cases of issue 12 (one process per query,
# start-up included) and prints a Markdown table: case, answer, method, seconds.
# Usage: scripts/time_accounting.sh [path/to/dpsgd]   (run on a quiet machine)
set -euo pipefail
dpsgd=${1:-build/bin/dpsgd}
if [ ! -x "$dpsgd" ]; then
  echo "time_accounting: $dpsgd is not an executable; build first (cmake --build build)" >&2
  exit 1
fi

cases=(
  "epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 100000 --delta 1e-5"
  "epsilon --sampling-rate 0.5 --noise-multiplier 2 --steps 10000 --delta 1e-5"
  "epsilon --sampling-rate 0.01 --noise-multiplier 0.1 --steps 100 --delta 1e-5"
  "epsilon --sampling-rate 0.01 --noise-multiplier 0.1 --steps 1000 --delta 1e-5"
  "epsilon --sampling-rate 0.01 --noise-multiplier 1 --steps 1000 --delta 1e-30"
  "epsilon --sampling-rate 0.01 --noise-multiplier 1e-3 --steps 10 --delta 1e-5"
  "epsilon --sampling-rate 1e-9 --noise-multiplier 50 --steps 1e12 --delta 1e-5"
  "delta --sampling-rate 0.5 --noise-multiplier 0.01 --steps 1 --epsilon 1"
  "delta --sampling-rate 0.1 --noise-multiplier 1 --steps 100000 --epsilon 710"
  "calibrate --sampling-rate 0.01 --steps 1000 --delta 1e-5 --epsilon 500"
  "calibrate --sampling-rate 1e-4 --steps 100000 --delta 1e-6 --epsilon 1"
  "calibrate --sampling-rate 1e-5 --steps 1000000 --delta 1e-5 --epsilon 0.1"
  "calibrate --sampling-rate 5e-5 --steps 400000 --delta 1e-5 --epsilon 3"
  "plan --dataset-size 60000 --epsilon 3 --delta 1e-5 --epochs 30 --batch-sizes 3 60 600 6000 60000"
)

echo "| command | answer | seconds |"
echo "|---|---|---|"
for c in "${cases[@]}"; do
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  out=$("$dpsgd" $c 2>&1 | tr '\n' ' ' | sed 's/  */ /g; s/|/\\|/g') || out="error: $out"
  end=$(date +%s.%N)
  printf '| `dpsgd %s` | %s | %.2f |\n' "$c" "${out:0:160}" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')"
done
