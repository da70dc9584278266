#!/usr/bin/env bash
# The main job beside a busy neighbour: runs a fixed piece of the Fashion-MNIST job (by default the
# tanh CNN, 1 epoch on 20,000 examples, which is all training steps) on a quiet machine, then beside
# one busy process at nice 0 and at nice 19, for each thread policy given, and prints the wall time
# and the slowdown against the quiet run. The neighbour is a shell busy loop (one core's worth).
# Usage: load_test.sh BUILD_DIR [POLICY...]   POLICY: default | active | threads1   (default: all three)
#   default: the program's own (it restarts itself with OMP_WAIT_POLICY=passive); active: OMP_WAIT_POLICY=
#   active (threads spin at barriers); threads1: OMP_NUM_THREADS=1.
# Extra flags for fashion_mnist come from $LOAD_TEST_FLAGS; each figure is the median of $REPEATS runs
# (default 3), the conditions interleaved so that a drift of the machine's speed hits them alike.
set -euo pipefail
build=${1:?usage: load_test.sh BUILD_DIR [default|active|threads1 ...]}
shift
policies=("$@")
[ ${#policies[@]} -gt 0 ] || policies=(default active threads1)
flags=${LOAD_TEST_FLAGS:---model cnn --train-subset 40000 --epochs 1 --test-subset 1000}
repeats=${REPEATS:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# job POLICY: seconds of one run of the job under that thread policy.
job() {
  local envs=()
  case $1 in
    default) ;;
    threads1) envs=(OMP_NUM_THREADS=1) ;;
    active) envs=(OMP_WAIT_POLICY=active) ;;
    *) echo "unknown policy $1" >&2; exit 2 ;;
  esac
  rm -rf "$work/run"
  local start end
  start=$(date +%s.%N)
  env "${envs[@]}" "$build/bin/fashion_mnist" $flags --seed 1 --run-dir "$work/run" > "$work/log" 2>&1 \
    || { cat "$work/log" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.1f}')"
}

# beside NICE POLICY: seconds of the job with one busy loop at that niceness running beside it.
beside() {
  nice -n "$1" bash -c 'while :; do :; done' &
  local busy=$!
  sleep 1
  local seconds
  seconds=$(job "$2")
  kill "$busy"
  wait "$busy" 2>/dev/null || true
  echo "$seconds"
}

echo "cores: $(nproc); job: fashion_mnist $flags; median of $repeats"
printf '%-9s %9s %17s %18s\n' policy "quiet s" "nice 0 s (x)" "nice 19 s (x)"
for policy in "${policies[@]}"; do
  quiet=() n0=() n19=()
  for _ in $(seq "$repeats"); do
    quiet+=("$(job "$policy")")
    n0+=("$(beside 0 "$policy")")
    n19+=("$(beside 19 "$policy")")
  done
  python3 - "$policy" "${quiet[*]}" "${n0[*]}" "${n19[*]}" <<'PY'
import statistics, sys
p = sys.argv[1]
q, a, b = (statistics.median(map(float, x.split())) for x in sys.argv[2:])
print(f"{p:9s} {q:9.1f} {a:9.1f} ({a / q:4.2f}x) {b:9.1f} ({b / q:4.2f}x)")
PY
done
