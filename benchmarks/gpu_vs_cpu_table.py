#!/usr/bin/env python3
"""Runs build/bin/bench_gpu_vs_cpu and prints a Markdown table of CPU vs GPU on the same shapes.

Usage: python3 benchmarks/gpu_vs_cpu_table.py [--binary build/bin/bench_gpu_vs_cpu]
                                               [--peak-gbs 3350] [--min-time 0.5]
The GPU columns read "no device" where no CUDA device is present. --peak-gbs is the device's
memory bandwidth (H100 SXM: 3350 GB/s; H100 PCIe: 2000) used for the "% of peak" column.
Tooling only: the library itself never runs Python.
"""
import argparse
import json
import re
import subprocess
import sys


def run(binary, min_time):
    out = subprocess.run([binary, "--benchmark_format=json", f"--benchmark_min_time={min_time}"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["benchmarks"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="build/bin/bench_gpu_vs_cpu")
    parser.add_argument("--peak-gbs", type=float, default=3350.0)
    parser.add_argument("--min-time", type=float, default=0.5)
    args = parser.parse_args()

    cases = {}
    for b in run(args.binary, args.min_time):
        m = re.match(r"BM_(\w+)_(cpu|gpu)/(.*?)(/real_time)?$", b["name"])
        if not m:
            continue
        op, device, shape = m.group(1), m.group(2), m.group(3)
        entry = cases.setdefault((op, shape), {})
        if b.get("error_occurred"):
            entry[device] = None
        else:
            entry[device] = (b["real_time"], b["time_unit"], b.get("bytes_per_second", 0.0) / 1e9)

    print("| operation | shape | CPU time | CPU GB/s | GPU time | GPU GB/s | GPU % of peak | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for (op, shape), entry in cases.items():
        cpu, gpu = entry.get("cpu"), entry.get("gpu")
        cpu_cells = [f"{cpu[0]:.3f} {cpu[1]}", f"{cpu[2]:.1f}"] if cpu else ["error", ""]
        if gpu:
            gpu_cells = [f"{gpu[0]:.3f} {gpu[1]}", f"{gpu[2]:.1f}", f"{100 * gpu[2] / args.peak_gbs:.0f}%"]
            speedup = f"{cpu[0] / gpu[0]:.1f}x" if cpu and cpu[1] == gpu[1] else ""
        else:
            gpu_cells, speedup = ["no device", "", ""], ""
        print(f"| {op} | {shape.replace('/', ' x ')} | " + " | ".join(cpu_cells + gpu_cells + [speedup]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
