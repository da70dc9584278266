#!/usr/bin/env bash
# Re-runs the scattering study of docs/fashion_mnist.md: the tuning runs on a validation split (the
# last 5,000 training examples; the test set is not read), then the chosen configuration at epsilon
# 1, 2 and 3 with three seeds each on all 60,000 training examples, the test set evaluated once at
# the end of each run. Prints one line per run and the median and spread per epsilon.
# Usage: fashion_mnist_scattering.sh BUILD_DIR OUT_DIR [tune|final|all]   (default all; about 55 min)
set -euo pipefail
build=${1:?usage: fashion_mnist_scattering.sh BUILD_DIR OUT_DIR [tune|final|all]}
out=${2:?usage: fashion_mnist_scattering.sh BUILD_DIR OUT_DIR [tune|final|all]}
what=${3:-all}
mkdir -p "$out"
bin="$build/bin/fashion_mnist"

# run NAME FLAGS...: one run with its own run directory and metrics; skipped when its metrics exist.
run() {
  local name=$1; shift
  [ -f "$out/$name.json" ] || "$bin" --run-dir "$out/run-$name" --metrics-out "$out/$name.json" "$@" > "$out/$name.log"
  python3 - "$out/$name.json" "$name" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
acc = m.get("validation_accuracy", m.get("test_accuracy"))
kind = "validation" if "validation_accuracy" in m else "test"
print(f"{sys.argv[2]:32s} {kind} {acc:.4f}  epsilon {m['epsilon']:.4f}  {m['seconds']:6.1f} s")
PY
}

if [ "$what" = tune ] || [ "$what" = all ]; then
  echo "== tuning on the validation split (epsilon 3, seed 1, 55,000 training examples)"
  tune=(--validation 5000 --seed 1 --model scatter-linear)
  run tune-b8192-e40-lr4 "${tune[@]}" --batch-size 8192 --epochs 40 --learning-rate 4
  run tune-b4096-e30-lr4 "${tune[@]}" --batch-size 4096 --epochs 30 --learning-rate 4
  run tune-b8192-e40-lr8 "${tune[@]}" --batch-size 8192 --epochs 40 --learning-rate 8
  run tune-b8192-e80-lr4 "${tune[@]}" --batch-size 8192 --epochs 80 --learning-rate 4
  run tune-b4096-e30-lr4-ema99 "${tune[@]}" --batch-size 4096 --epochs 30 --learning-rate 4 --ema 0.99
  run tune-b2048-e20-lr4 "${tune[@]}" --batch-size 2048 --epochs 20 --learning-rate 4
  run tune-b8192-e40-lr16 "${tune[@]}" --batch-size 8192 --epochs 40 --learning-rate 16
  run tune-b16384-e80-lr16 "${tune[@]}" --batch-size 16384 --epochs 80 --learning-rate 16
  run tune-b8192-e40-lr8-g81 "${tune[@]}" --batch-size 8192 --epochs 40 --learning-rate 8 --scatter-groups 81
  run tune-b8192-e40-lr32 "${tune[@]}" --batch-size 8192 --epochs 40 --learning-rate 32
  # The DP feature statistics (issue 18's second normaliser) against the default, over three seeds.
  for seed in 1 2 3; do
    [ "$seed" = 1 ] || run "tune-default-seed$seed" --validation 5000 --seed "$seed" --model scatter-linear \
      --batch-size 8192 --epochs 40 --learning-rate 16
    run "tune-stats10-seed$seed" --validation 5000 --seed "$seed" --model scatter-linear --batch-size 8192 --epochs 40 \
      --learning-rate 16 --feature-stats-noise 10
  done
fi

if [ "$what" = final ] || [ "$what" = all ]; then
  echo "== the chosen configuration (the default of --model scatter-linear), test set once per run"
  for eps in 1 2 3; do
    for seed in 1 2 3; do
      run "final-eps$eps-seed$seed" --model scatter-linear --epsilon "$eps" --seed "$seed" --test-once
    done
    python3 - "$out" "$eps" <<'PY'
import json, statistics, sys
accs = [json.load(open(f"{sys.argv[1]}/final-eps{sys.argv[2]}-seed{s}.json"))["test_accuracy"] for s in (1, 2, 3)]
print(f"epsilon {sys.argv[2]}: median {statistics.median(accs):.4f}, min {min(accs):.4f}, max {max(accs):.4f}")
PY
  done
fi
