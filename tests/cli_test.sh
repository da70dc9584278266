#!/bin/sh
# CLI checks for build/bin/dpsgd: each subcommand answers with the documented JSON keys, and each
# class of bad argument exits with status 2 and one line on stderr naming the flag.
set -u
cli="$1"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

expect_json() {  # expect_json "<keys>" args...
  keys="$1"; shift
  out=$("$cli" "$@" --json) || { fail "$* exited $?"; return; }
  for key in $keys; do
    echo "$out" | grep -q "\"$key\"" || fail "$*: no key $key in $out"
  done
}

expect_usage_error() {  # expect_usage_error <flag named in the message> args...
  flag="$1"; shift
  err=$("$cli" "$@" 2>&1 >/dev/null); status=$?
  [ "$status" -eq 2 ] || fail "$* exited $status, expected 2"
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "$*: stderr is not one line: $err"
  echo "$err" | grep -q -- "$flag" || fail "$*: message does not name $flag: $err"
}

common="--sampling-rate 0.01 --noise-multiplier 1.0 --steps 1000"
expect_json "epsilon delta noise_multiplier sampling_rate steps accountant" epsilon $common --delta 1e-5
expect_json "epsilon delta noise_multiplier sampling_rate steps accountant" epsilon $common --delta 1e-5 --accountant rdp
expect_json "epsilon delta truncation_probability dataset_size batch_size" epsilon $common --delta 1e-5 --dataset-size 60000 --batch-size 700
expect_json "epsilon delta noise_multiplier sampling_rate steps accountant" delta $common --epsilon 1.0
expect_json "epsilon delta noise_multiplier sampling_rate steps accountant" calibrate --sampling-rate 0.01 --steps 1000 --delta 1e-5 --epsilon 2
expect_json "plans noise_batch_ratio capacity noise_multiplier steps" plan --dataset-size 60000 --epsilon 3 --delta 1e-5 --epochs 10 --batch-sizes 256,1024

expect_usage_error --sampling-rate epsilon --sampling-rate 1.5 --noise-multiplier 1 --steps 10 --delta 1e-5
expect_usage_error --sampling-rate epsilon --sampling-rate 0 --noise-multiplier 1 --steps 10 --delta 1e-5
expect_usage_error --sampling-rate epsilon --sampling-rate nan --noise-multiplier 1 --steps 10 --delta 1e-5
expect_usage_error --noise-multiplier epsilon --sampling-rate 0.1 --noise-multiplier 0 --steps 10 --delta 1e-5
expect_usage_error --noise-multiplier epsilon --sampling-rate 0.1 --noise-multiplier inf --steps 10 --delta 1e-5
expect_usage_error --noise-multiplier epsilon --sampling-rate 0.1 --noise-multiplier -2 --steps 10 --delta 1e-5
expect_usage_error --steps epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 0 --delta 1e-5
expect_usage_error --steps epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 2.5 --delta 1e-5
expect_usage_error --delta epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 10 --delta 1
expect_usage_error --delta epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 10 --delta 0
expect_usage_error --epsilon delta --sampling-rate 0.1 --noise-multiplier 1 --steps 10 --epsilon 0
expect_usage_error --epsilon calibrate --sampling-rate 0.1 --steps 10 --delta 1e-5 --epsilon -1
expect_usage_error --epsilon calibrate --sampling-rate 0.1 --steps 10 --delta 1e-5 --epsilon nan
expect_usage_error --accountant epsilon $common --delta 1e-5 --accountant moments
expect_usage_error --batch-size epsilon $common --delta 1e-5 --dataset-size 100
expect_usage_error --batch-size epsilon $common --delta 1e-5 --dataset-size 100 --batch-size 200
expect_usage_error --batch-sizes plan --dataset-size 100 --epsilon 3 --delta 1e-5 --epochs 1 --batch-sizes 0
expect_usage_error --epochs plan --dataset-size 100 --epsilon 3 --delta 1e-5 --epochs -1 --batch-sizes 10
expect_usage_error --delta epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 10
expect_usage_error --sampling-rate epsilon --sampling-rate abc --noise-multiplier 1 --steps 10 --delta 1e-5

if [ "$failures" -eq 0 ]; then echo "cli_test: all checks passed"; else echo "cli_test: $failures failed"; exit 1; fi
