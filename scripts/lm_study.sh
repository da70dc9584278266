#!/usr/bin/env bash
# Runs the language-model table of docs/language_models.md: DP training from scratch, non-private
# pretraining on the public cookies, and DP fine-tuning (full, bias-only, last layer) at epsilon 1, 3
# and 8, each with its non-private baseline; one metrics JSON per run in OUT_DIR, then the table.
# Usage: scripts/lm_study.sh [BUILD_DIR] [OUT_DIR]     (about 25 minutes on the 2-core machine)
set -euo pipefail
build=${1:-build}
out=${2:-lm-study}
mkdir -p "$out"
lm() { "$build/bin/dp_lm" --context 64 --d-model 64 --layers 2 --heads 4 --run-dir "$out/run-$1" \
       --metrics-out "$out/$1.json" "${@:2}" > "$out/$1.log"; echo "$1: $(tail -n 3 "$out/$1.log" | head -n 1)"; }
scratch=(--batch-size 512 --epochs 10 --learning-rate 3e-3)
tune=(--mode finetune --pretrained "$out/pretrained.json" --batch-size 512 --epochs 5)
lm pretrain --mode pretrain --batch-size 64 --epochs 10 --learning-rate 3e-3 --save-model "$out/pretrained.json"
for eps in 1 3 8; do
  lm "scratch-eps$eps" "${scratch[@]}" --epsilon "$eps"
  lm "full-eps$eps" "${tune[@]}" --trainable all --learning-rate 1e-3 --epsilon "$eps"
  lm "bias-eps$eps" "${tune[@]}" --trainable bias --learning-rate 5e-3 --epsilon "$eps"
  lm "last-eps$eps" "${tune[@]}" --trainable last --learning-rate 3e-3 --epsilon "$eps"
done
lm scratch-nonprivate "${scratch[@]}" --no-privacy
lm full-nonprivate "${tune[@]}" --trainable all --learning-rate 1e-3 --no-privacy
lm bias-nonprivate "${tune[@]}" --trainable bias --learning-rate 5e-3 --no-privacy
lm last-nonprivate "${tune[@]}" --trainable last --learning-rate 3e-3 --no-privacy
python3 "$(dirname "$0")/../tools/lm_study_table.py" "$out"
