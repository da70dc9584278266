#!/usr/bin/env bash
# The mpi tests: 2 and 3 ranks (uneven slices) train to the parameters of 1 rank (1e-5 relative) with
# identical ledgers; ranks that disagree stop at the next checkpoint; a rank that throws ends the job
# with a message naming it; a rank killed mid-run ends the whole job within seconds, and the run resumed with another world size completes with the epsilon of
# the uninterrupted run. Usage: mpi_test.sh MPIEXEC CHECK_BINARY WORK_DIR
set -euo pipefail
mpiexec=$1 check=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
fail() { echo "mpi_test: FAILED: $*" >&2; exit 1; }
# --oversubscribe: 3 ranks on this 2-core machine; root is allowed so that the test runs in CI's container.
ranks() { local n=$1; shift; timeout 120 "$mpiexec" --oversubscribe --allow-run-as-root -np "$n" "$check" "$@"; }

ranks 1 --run-dir "$work/one" --out "$work/one.json" || fail "1 rank"
for n in 2 3; do
  ranks "$n" --run-dir "$work/ranks$n" --out "$work/ranks$n.json" --reference "$work/one.json" \
    || fail "$n ranks do not match 1 rank"
done

# Negative control of the agreement check: one rank's parameters nudged at step 5 must stop the run.
status=0
ranks 2 --run-dir "$work/diverge" --diverge-at 5 >"$work/diverge.log" 2>&1 || status=$?
[ "$status" -eq 3 ] || { cat "$work/diverge.log" >&2; fail "diverging ranks exited with $status, not 3"; }
grep -q "parameters differ at step 6" "$work/diverge.log" || fail "no divergence message"
echo "diverging replicas stopped: $(head -n 1 "$work/diverge.log")"

# A rank that throws at step 7 while the others wait in the step's sum: the job ends, naming the rank.
status=0
ranks 3 --run-dir "$work/throws" --throw-at 7 >"$work/throws.log" 2>&1 || status=$?
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { cat "$work/throws.log" >&2; fail "a throwing rank: status $status"; }
grep -q "dpsgd::mpi: rank 2 of 3: a planted error at step 7" "$work/throws.log" || fail "the error does not name rank 2"
echo "throwing rank: $(grep -m 1 "dpsgd::mpi: rank 2" "$work/throws.log")"

# A rank killed at step 10: the job must end (not hang) within seconds.
start=$(date +%s)
status=0
ranks 2 --run-dir "$work/killed" --die-at 10 >"$work/killed.log" 2>&1 || status=$?
elapsed=$(( $(date +%s) - start ))
[ "$status" -ne 0 ] || fail "the job with a killed rank exited 0"
[ "$status" -ne 124 ] || fail "the job with a killed rank hung until the timeout"
[ "$elapsed" -le 60 ] || fail "the job with a killed rank took ${elapsed}s to end"
echo "killed rank: job ended in ${elapsed}s with status $status"
# Resumed on 1 rank (another world size): the same parameters, ledger and epsilon as the reference.
ranks 1 --run-dir "$work/killed" --resume --out "$work/resumed.json" --reference "$work/one.json" \
  || fail "the resumed run does not match the uninterrupted one"
echo "mpi_test: passed"
