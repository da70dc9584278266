#!/usr/bin/env python3
"""Markdown table of bench_gemm_backends' JSON: GFLOP/s per shape, threads and library (the median of
the repetitions), the best of each row in bold. Tooling only.

    build/bin/bench_gemm_backends --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
        --benchmark_format=json --benchmark_out=gemm.json
    python3 benchmarks/gemm_table.py gemm.json
"""
import collections
import json
import sys


def main(path):
    rows = collections.OrderedDict()
    backends = []
    for b in json.load(open(path))["benchmarks"]:
        if b.get("aggregate_name", "median") != "median":
            continue
        parts = b["run_name"].split("/") if "run_name" in b else b["name"].split("/")
        backend, shape, threads = parts[0], "/".join(parts[1:4]), parts[4].split(":")[1]
        if backend not in backends:
            backends.append(backend)
        rows.setdefault((shape, threads), {})[backend] = b["GFLOPS"]
    print("| product | threads | " + " | ".join(backends) + " | best |")
    print("|---|---|" + "---|" * (len(backends) + 1))
    wins = collections.Counter()
    for (shape, threads), cells in rows.items():
        best = max(cells, key=cells.get)
        wins[(best, threads)] += 1
        text = [f"**{cells[k]:.0f}**" if k == best else f"{cells.get(k, 0):.0f}" for k in backends]
        print(f"| {shape} | {threads} | " + " | ".join(text) + f" | {best} |")
    print()
    for threads in ("1", "2"):
        print(f"fastest at {threads} thread(s): " + ", ".join(
            f"{k} {n}" for (k, t), n in sorted(wins.items(), key=lambda kv: -kv[1]) if t == threads))


if __name__ == "__main__":
    main(sys.argv[1])
