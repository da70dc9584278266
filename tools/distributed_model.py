#!/usr/bin/env python3
"""The throughput model of docs/distributed.md: step time at W ranks = the slowest rank's share of the
batch's slots x the measured time per slot on one core + the per-step O(P) work every rank repeats
(noise at the measured 294 M normals/s per core, the optimiser) + the reduce and broadcast of P floats
(2 (ceil(log2 W) alpha + 4 P / beta)). Usage: tools/distributed_model.py [--alpha-us 5] [--beta-gbs 10]"""
import argparse
import math

# name, parameters P, batch slots (capacity), seconds per step on 1 core (scripts/distributed_step_time.sh)
MODELS = [("fashion_mnist CNN, batch 2048", 26010, 2339, 1 / 1.1),
          ("dp_lm small, batch 512", 116834, 660, 1 / 0.80)]


def step_seconds(p, slots, one_core, ranks, alpha, beta):
    per_slot = one_core / slots
    repeated = p / 294e6 + 3 * p * 4 / 5e9  # noise, and the optimiser's passes over P (about 5 GB/s)
    comm = 0.0 if ranks == 1 else 2 * (math.ceil(math.log2(ranks)) * alpha + 4 * p / beta)
    return math.ceil(slots / ranks) * per_slot + repeated + comm, comm


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alpha-us", type=float, default=5.0)
    parser.add_argument("--beta-gbs", type=float, default=10.0)
    a = parser.parse_args()
    alpha, beta = a.alpha_us * 1e-6, a.beta_gbs * 1e9
    print("| model | bytes per rank per step | ranks | step ms | of which communication ms | speed-up | efficiency |")
    print("|---|---|---|---|---|---|---|")
    for name, p, slots, one_core in MODELS:
        base, _ = step_seconds(p, slots, one_core, 1, alpha, beta)
        for w in [1, 8, 64, 512]:
            t, comm = step_seconds(p, slots, one_core, w, alpha, beta)
            print(f"| {name} | {2 * 4 * p / 1e3:.0f} KB | {w} | {t * 1e3:.1f} | {comm * 1e3:.3f} | "
                  f"{base / t:.0f}x | {base / t / w:.0%} |")


if __name__ == "__main__":
    main()
