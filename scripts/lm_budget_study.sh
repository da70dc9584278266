#!/usr/bin/env bash
# The compute-budget study of docs/language_models.md (after VaultGemma's scaling study): at a fixed
# number of sequences processed (10 epochs of the private cookies), DP training from scratch at
# epsilon 3 with expected batch sizes 128 ... 2048, so steps and sigma (and the noise-batch ratio
# sigma / B that `dpsgd plan` prints) move together. One metrics JSON per run in OUT_DIR, then the
# table and an SVG plot. Usage: scripts/lm_budget_study.sh [BUILD_DIR] [OUT_DIR]   (about 20 minutes)
set -euo pipefail
build=${1:-build}
out=${2:-lm-budget}
mkdir -p "$out"
"$build/bin/dpsgd" plan --dataset-size 7253 --epsilon 3 --delta 1e-5 --epochs 10 \
  --batch-sizes 128,256,512,1024,2048 --json > "$out/plan.json"
for batch in 128 256 512 1024 2048; do
  "$build/bin/dp_lm" --context 64 --d-model 64 --layers 2 --heads 4 --epochs 10 --epsilon 3 \
    --batch-size "$batch" --learning-rate 3e-3 --run-dir "$out/run-b$batch" --metrics-out "$out/b$batch.json" \
    > "$out/b$batch.log"
  echo "batch $batch: $(tail -n 3 "$out/b$batch.log" | head -n 1)"
done
python3 "$(dirname "$0")/../tools/lm_budget_table.py" "$out"
