#!/usr/bin/env bash
# Crash test of fashion_mnist: SIGKILL a checkpointing run at random moments several times, resume
# after each kill, and check that the run completes, the epsilon it reports covers every step it
# planned (the ledger is written before each update, so a crash can only over-count), every
# checkpoint left behind loads, a truncated or edited checkpoint is refused with exit status 2, and a
# second run on the same files without --resume is refused and changes nothing.
# Usage: kill_resume_test.sh FASHION_MNIST_BINARY DPSGD_CLI WORK_DIR
set -euo pipefail
binary=$1 cli=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
RANDOM=20261122  # fixed seed for the kill times: the test is reproducible
common=(--model cnn --train-subset 3000 --test-subset 300 --epochs 3 --batch-size 100 --seed 5 --epsilon 2
        --run-dir "$work/run" --checkpoint-every 1 --metrics-out "$work/metrics.json")
fail() { echo "kill_resume_test: FAILED: $*" >&2; exit 1; }

kills=0
for round in 1 2 3 4 5 6; do
  "$binary" "${common[@]}" --resume >"$work/run$round.log" 2>&1 &
  pid=$!
  # Kill between 0.5 and 3.5 s in: during calibration, training steps and checkpoint writes.
  sleep "$(( RANDOM % 3 )).$(( RANDOM % 10 ))" && sleep 0.5
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null && status=0 || status=$?
  # Killed (137) or already finished (0); anything else (2: a refused checkpoint) is a failure.
  if [ "$status" -ne 137 ] && [ "$status" -ne 0 ]; then
    cat "$work/run$round.log" >&2
    fail "round $round exited with status $status"
  fi
  grep -h "run directory\|^note" "$work/run$round.log" || true
done
echo "kill_resume_test: $kills runs killed with SIGKILL"
[ "$kills" -ge 3 ] || fail "only $kills kills landed; the run is too fast for this test"

"$binary" "${common[@]}" --resume >"$work/final.log" 2>&1 || { cat "$work/final.log" >&2; fail "the final resume failed"; }
grep -q "test accuracy:" "$work/final.log" || fail "the final run did not finish"

# The reported epsilon covers every planned step: recompute it for exactly those steps.
json_value() { sed -n "s/^ *\"$1\": *\([^,]*\),\{0,1\}$/\1/p" "$2" | head -1; }
steps=$(json_value steps "$work/metrics.json")
sigma=$(json_value noise_multiplier "$work/metrics.json")
epsilon=$(json_value epsilon "$work/metrics.json")
capacity=$(sed -n 's/.*capacity \([0-9]*\),.*/\1/p' "$work/final.log" | head -1)
[ -n "$steps" ] && [ -n "$sigma" ] && [ -n "$epsilon" ] && [ -n "$capacity" ] || fail "could not read the run's metrics"
q=$(awk 'BEGIN { printf "%.17g", 100 / 3000 }')
expected=$("$cli" epsilon --sampling-rate "$q" --noise-multiplier "$sigma" --steps "$steps" --delta 1e-5 \
  --dataset-size 3000 --batch-size "$capacity" --json | sed 's/.*"epsilon":\([^,}]*\).*/\1/')
awk -v r="$epsilon" -v p="$expected" 'BEGIN { exit !(r + 0 >= p - 1e-9) }' ||
  fail "reported epsilon $epsilon is below the epsilon of the $steps planned steps ($expected)"
echo "kill_resume_test: reported epsilon $epsilon >= $expected, the epsilon of all $steps planned steps"
charged=$(grep '"steps":' "$work/run/ledger.json" | sed 's/[^0-9]//g' | awk '{ s += $1 } END { print s + 0 }')
[ "$charged" -ge "$steps" ] || fail "the ledger charged $charged steps, fewer than the $steps planned"
echo "kill_resume_test: the ledger charged $charged steps for $steps planned"

# The seed is a secret: in its own owner-only file, not in the checkpoint that holds the parameters.
[ "$(stat -c %a "$work/run/seed")" = 600 ] || fail "the seed file is not owner-only"
[ "$(tr -d '[:space:]' <"$work/run/seed")" = 5 ] || fail "the seed file does not hold the run's seed"
grep -q '"seed":5' "$work/run/checkpoint.json" && fail "the checkpoint holds the run's seed"
echo "kill_resume_test: the seed is only in the owner-only run/seed"

# A truncated or edited checkpoint is refused with a clear error and exit status 2.
cp "$work/run/checkpoint.json" "$work/good.json"
head -c "$(( $(wc -c <"$work/good.json") / 2 ))" "$work/good.json" >"$work/run/checkpoint.json"
set +e
"$binary" "${common[@]}" --resume >"$work/truncated.log" 2>&1; status=$?
set -e
[ "$status" -eq 2 ] && grep -q "refused" "$work/truncated.log" || { cat "$work/truncated.log" >&2; fail "a truncated checkpoint was not refused (status $status)"; }
sed 's/"seed":0/"seed":6/' "$work/good.json" >"$work/run/checkpoint.json"
cmp -s "$work/good.json" "$work/run/checkpoint.json" && fail "the edit did not change the checkpoint"
set +e
"$binary" "${common[@]}" --resume >"$work/edited.log" 2>&1; status=$?
set -e
[ "$status" -eq 2 ] && grep -q "checksum" "$work/edited.log" || { cat "$work/edited.log" >&2; fail "an edited checkpoint was not refused (status $status)"; }
echo "kill_resume_test: truncated and edited checkpoints refused: $(grep -h refused "$work/edited.log")"
# A second run on the same checkpoint without --resume refuses before any work and changes no file.
cp "$work/good.json" "$work/run/checkpoint.json"
cp "$work/run/ledger.json" "$work/ledger-before.json"
set +e
"$binary" "${common[@]}" >"$work/second.log" 2>&1; status=$?
set -e
[ "$status" -ne 0 ] && grep -q "exists" "$work/second.log" || { cat "$work/second.log" >&2; fail "a second run without --resume was not refused (status $status)"; }
cmp -s "$work/good.json" "$work/run/checkpoint.json" && cmp -s "$work/ledger-before.json" "$work/run/ledger.json" ||
  fail "a refused second run changed the checkpoint or the ledger"
echo "kill_resume_test: a second run without --resume refused, files unchanged"
# Fail before the work: an output that cannot be written is refused at once.
set +e
"$binary" --train-subset 300 --metrics-out "$work/no_such_dir/m.json" >"$work/unwritable.log" 2>&1; status=$?
set -e
[ "$status" -eq 2 ] && grep -q "does not exist" "$work/unwritable.log" || fail "an unwritable --metrics-out was not refused up front"
# A run whose parameters become non-finite stops and leaves no checkpoint of them.
set +e
"$binary" --model mlp --train-subset 3000 --test-subset 100 --epochs 1 --clip-norm 1e39 --seed 1 \
  --run-dir "$work/nan" >"$work/nan.log" 2>&1; status=$?
set -e
[ "$status" -ne 0 ] && grep -q "non-finite" "$work/nan.log" && [ ! -e "$work/nan/checkpoint.json" ] ||
  { cat "$work/nan.log" >&2; fail "a non-finite run was not stopped before checkpointing (status $status)"; }
echo "kill_resume_test: unwritable output refused up front; non-finite parameters stop the run, no checkpoint"
# SIGTERM ends a run after its current step, with a checkpoint and no temporary file left behind.
"$binary" --model mlp --train-subset 3000 --test-subset 100 --epochs 20 --batch-size 100 --seed 2 \
  --run-dir "$work/term" >"$work/term.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -e "$work/term/ledger.json" ] && grep -q "steps\":" "$work/term/ledger.json" && break; sleep 0.1; done
sleep 0.5
kill -TERM "$pid"
wait "$pid" && status=0 || status=$?
[ "$status" -eq 143 ] && grep -q "stopped by SIGTERM" "$work/term.log" || { cat "$work/term.log" >&2; fail "SIGTERM did not stop the run cleanly (status $status)"; }
[ -e "$work/term/checkpoint.json" ] || fail "SIGTERM left no checkpoint"
ls "$work/term" | grep -q "tmp" && fail "SIGTERM left temporary files: $(ls "$work/term")"
"$binary" --model mlp --train-subset 3000 --test-subset 100 --epochs 20 --batch-size 100 --seed 2 \
  --run-dir "$work/term" --resume --checkpoint-every 1000 >"$work/term2.log" 2>&1 & pid=$!
for _ in $(seq 100); do grep -q "run directory" "$work/term2.log" && break; sleep 0.1; done
kill -TERM "$pid"; wait "$pid" || true
grep -q "resumed at step" "$work/term2.log" || { cat "$work/term2.log" >&2; fail "the run stopped by SIGTERM did not resume"; }
echo "kill_resume_test: SIGTERM stops after the current step with a checkpoint, nothing temporary left; the run resumes"
echo "kill_resume_test: passed"
