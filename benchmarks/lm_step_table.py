#!/usr/bin/env python3
"""Runs bench_lm_step for each model size and mode (one process each) and prints the table of
docs/language_models.md: step time, tokens/s, peak memory, DP/non-private and full/BiTFiT ratios.
Usage: benchmarks/lm_step_table.py [BUILD_DIR] [--batch B] [--context T] [--threads N]"""
import argparse
import json
import subprocess

MODES = ["nonprivate", "dp", "dp-bitfit", "dp-last"]


def run(build, size, mode, args):
    command = [f"{build}/bin/bench_lm_step", "--size", size, "--mode", mode, "--batch", str(args.batch),
               "--context", str(args.context), "--steps", str(args.steps), "--threads", str(args.threads)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("build", nargs="?", default="build")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    print("| model | parameters | mode | trainable | step ms | tokens/s | peak MiB | / non-private | full DP / this |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in ["small", "medium"]:
        rows = {mode: run(args.build, size, mode, args) for mode in MODES}
        base, full = rows["nonprivate"]["step_ms"], rows["dp"]["step_ms"]
        for mode in MODES:
            r = rows[mode]
            print(f"| {r['model']} | {r['parameters']} | {mode} | {r['trainable']} | {r['step_ms']:.1f} | "
                  f"{r['tokens_per_s']:.0f} | {r['peak_rss_mib']:.0f} | {r['step_ms'] / base:.2f}x | "
                  f"{full / r['step_ms']:.2f}x |")


if __name__ == "__main__":
    main()
