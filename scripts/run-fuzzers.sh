#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, coverage) and runs each for SECONDS (default 60)
# from its committed seed corpus. Fails on any crash, hang (10 s per input), leak, sanitizer report,
# or violated property. Usage: bash scripts/run-fuzzers.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_idx fuzz_ledger fuzz_checkpoint fuzz_cli)

# clang, its fuzzer/sanitizer runtimes and OpenMP for clang (Debian 12 packages), only if missing.
missing=()
for pkg in clang libclang-rt-14-dev libomp-14-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"
fi

CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDPSGD_BUILD_FUZZERS=ON \
  -DDPSGD_SANITIZE=ON -DDPSGD_WITH_CUDA=OFF -DDPSGD_BUILD_TESTS=OFF -DDPSGD_BUILD_BENCHMARKS=OFF \
  -DDPSGD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz -j2 --target "${targets[@]}"

status=0
for target in "${targets[@]}"; do
  # Work on a copy: new inputs libFuzzer finds stay out of the committed corpus.
  work=build-fuzz/corpus/$target
  rm -rf "$work" && mkdir -p "$work" && cp fuzz/corpus/"$target"/* "$work"/
  echo "== $target: ${seconds}s from $(ls fuzz/corpus/"$target" | wc -l) seeds"
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build-fuzz/bin/"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix=build-fuzz/"$target"- "$work" >build-fuzz/"$target".log 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|cov:" build-fuzz/"$target".log | tail -3
  else
    echo "!! $target failed; the input is saved as build-fuzz/$target-*; last lines:"
    tail -40 build-fuzz/"$target".log
    status=1
  fi
done
exit $status
