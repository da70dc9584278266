#!/usr/bin/env python3
"""Prints the markdown table of docs/accounting.md: dpsgd's CLI against the dp_accounting golden values.

Run after building:  python3 tools/accounting_table.py [build/bin/dpsgd] [tests/data/accounting_golden.json]
dpsgd's time is the wall time of one CLI call (process start included); dp_accounting's is the time
recorded by tools/generate_accounting_golden.py on the same machine.
"""
import json
import subprocess
import sys
import time

cli = sys.argv[1] if len(sys.argv) > 1 else "build/bin/dpsgd"
golden = json.load(open(sys.argv[2] if len(sys.argv) > 2 else "tests/data/accounting_golden.json"))


def run(args):
    start = time.time()
    out = subprocess.run([cli] + args + ["--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out), time.time() - start


print("| q | sigma | T | delta | dp_accounting PLD (1e-5) | finer grid | dpsgd PLD | difference | dp_accounting time | dpsgd time |")
print("|---|---|---|---|---|---|---|---|---|---|")
for c in golden["epsilon"]:
    out, seconds = run(["epsilon", "--sampling-rate", str(c["sampling_rate"]), "--noise-multiplier", str(c["noise_multiplier"]),
                        "--steps", str(c["steps"]), "--delta", str(c["delta"])])
    ref = c["pld_epsilon"]
    fine = f'{c["pld_epsilon_fine"]:.6f}' if "pld_epsilon_fine" in c else ""
    print(f'| {c["sampling_rate"]:g} | {c["noise_multiplier"]:g} | {c["steps"]} | {c["delta"]:g} | {ref:.6f} | {fine} | '
          f'{out["epsilon"]:.6f} | {100 * (out["epsilon"] - ref) / ref:+.4f}% | {c["pld_seconds"]:.2f} s | {seconds:.3f} s |')
print()
print("| q | T | target (epsilon, delta) | dp_accounting sigma | dpsgd sigma | difference | dp_accounting time | dpsgd time |")
print("|---|---|---|---|---|---|---|---|")
for c in golden["calibration"]:
    out, seconds = run(["calibrate", "--sampling-rate", str(c["sampling_rate"]), "--steps", str(c["steps"]),
                        "--epsilon", str(c["epsilon"]), "--delta", str(c["delta"])])
    ref = c["pld_noise_multiplier"]
    print(f'| {c["sampling_rate"]:g} | {c["steps"]} | ({c["epsilon"]:g}, {c["delta"]:g}) | {ref:.6f} | {out["noise_multiplier"]:.6f} | '
          f'{100 * (out["noise_multiplier"] - ref) / ref:+.3f}% | {c["pld_seconds"]:.1f} s | {seconds:.2f} s |')
