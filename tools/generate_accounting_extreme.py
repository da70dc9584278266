#!/usr/bin/env python3
"""Generates tests/data/accounting_extreme.json: dp_accounting's PLD outside the usual regime.

Run:  python3 -m venv .venv && .venv/bin/pip install dp-accounting
      .venv/bin/python tools/generate_accounting_extreme.py > tests/data/accounting_extreme.json
      (--refresh-references FILE recomputes only the tilted references of FILE; about 30 minutes)

For every case (small sigma, long runs, large epsilon, tiny delta, and a seeded random sweep over
q, sigma, T and delta) it stores dp_accounting's pessimistic and optimistic PLD answers (connect-the-
dots, add/remove adjacency) at a stated discretisation. The true epsilon lies between them (up to
dp_accounting's own FFT round-off, which it does not bound), so dpsgd's epsilon must not fall below
the optimistic one and should not exceed the pessimistic one by much.

Where epsilon exceeds about 709, dp_accounting's get_epsilon_for_delta returns a grid quantile
(exp(-loss) underflows inside it) and overstates epsilon by up to 0.1%; its delta at fixed epsilons
is still right. Every case therefore also stores dp_accounting's delta at three epsilons around its
answer: those are what the tests compare at large epsilon.

dp_accounting's FFT round-off is not bounded: below delta ~ 1e-12 its answers are noise (at q = 0.01,
sigma = 1, T = 1000, delta = 1e-30 it says 60.8 where RDP proves 9.82), and near 1e-11 they can fall
a few 1e-4 below the truth. Each case therefore also carries tools/tilted_reference.py's estimate of
the true epsilon at its finest grid h and at 2h: its mass-spreading discretisation biases it upwards by
about a third of their difference, so the tests allow the whole difference below it.
"""
import json
import math
import random
import sys
import time

from dp_accounting.pld import privacy_loss_distribution as pldlib

import tilted_reference

# (q, sigma, steps, delta, discretisation): the regimes the issue that added this file lists.
FIXED = [
    (0.1, 1.0, 100000, 1e-5, 1e-3),      # epsilon ~ 900: beyond exp's range
    (0.5, 2.0, 10000, 1e-5, 1e-3),       # ~ 433
    (0.01, 0.1, 100, 1e-5, 1e-3),        # small sigma: ~ 354
    (0.01, 0.1, 1000, 1e-5, 1e-3),       # ~ 1196
    (0.01, 0.05, 100, 1e-5, 1e-3),       # smaller still
    (0.5, 0.01, 1, 1e-5, 1e-2),          # one step at sigma 0.01
    (1.0, 1.0, 1, 1e-30, 1e-4),          # tiny delta, the Gaussian mechanism
    (0.01, 1.0, 1000, 1e-30, 1e-4),      # tiny delta, subsampled
    (0.001, 0.3, 100000, 1e-5, 1e-3),    # small sigma, long run
    (0.001, 1.0, 1000000, 1e-5, 1e-4),   # a million steps
    (1e-4, 0.6, 100000, 1e-6, 1e-4),     # small q, long run
    (5e-5, 0.456, 400000, 1e-5, 1e-4),   # batch 3 of 60000 for 20 epochs
    (0.02, 0.8, 5000, 1e-10, 1e-4),      # small delta
]


def pld(q, sigma, steps, h, pessimistic, tiny):
    single = pldlib.from_gaussian_mechanism(
        standard_deviation=sigma, sampling_prob=q, value_discretization_interval=h,
        pessimistic_estimate=pessimistic, log_mass_truncation_bound=-150 if tiny else -50)
    return single.self_compose(steps, tail_mass_truncation=1e-40 if tiny else 1e-15) if steps > 1 else single


def reference(q, sigma, steps, delta, guess):
    """tilted_reference's epsilon, re-tilted until the tilt sits at the answer, at its finest grid h and
    at 2h. Its discretisation spreads mass (mean-preserving), which biases delta and epsilon upwards
    by about a third of the difference between the two (second order in h)."""
    eps_ref, h_ref = tilted_reference.reference_epsilon(q, sigma, steps, delta, guess, 1e-4)
    for _ in range(4):  # tilted far from the answer: tilt again at it
        if abs(eps_ref - guess) <= 0.01 * guess:
            break
        guess = eps_ref
        eps_ref, h_ref = tilted_reference.reference_epsilon(q, sigma, steps, delta, guess, 1e-4)
    finest = tilted_reference.MAX_POINTS
    tilted_reference.MAX_POINTS = finest // 2
    try:
        eps_coarse, _ = tilted_reference.reference_epsilon(q, sigma, steps, delta, eps_ref, 2.0 * h_ref)
    finally:
        tilted_reference.MAX_POINTS = finest
    return eps_ref, h_ref, eps_coarse


def refresh_references(path):
    """Recomputes only the reference fields of an existing file (dp_accounting's values are kept)."""
    with open(path) as f:
        results = json.load(f)
    for group in ("fixed", "random"):
        for c in results[group]:
            guess = c["epsilon_reference"]
            c["epsilon_reference"], c["reference_discretisation"], c["epsilon_reference_coarse"] = reference(
                c["sampling_rate"], c["noise_multiplier"], c["steps"], c["delta"], guess)
            print(json.dumps(c), file=sys.stderr, flush=True)
    json.dump(results, sys.stdout, indent=1)
    print()


def case(q, sigma, steps, delta, h):
    start = time.time()
    tiny = delta < 1e-15
    upper = pld(q, sigma, steps, h, True, tiny)
    lower = pld(q, sigma, steps, h, False, tiny)
    eps_upper = upper.get_epsilon_for_delta(delta)
    eps_lower = lower.get_epsilon_for_delta(delta)
    points = [eps_upper * f for f in (0.98, 1.0, 1.02)] if math.isfinite(eps_upper) else []
    guess = eps_upper if math.isfinite(eps_upper) and eps_upper < 1e4 else 1.0
    eps_ref, h_ref, eps_coarse = reference(q, sigma, steps, delta, guess)
    return {
        "sampling_rate": q, "noise_multiplier": sigma, "steps": steps, "delta": delta,
        "discretisation": h,
        "epsilon_pessimistic": eps_upper, "epsilon_optimistic": eps_lower,
        "epsilon_reference": eps_ref, "reference_discretisation": h_ref,
        "epsilon_reference_coarse": eps_coarse,
        "delta_at": [{"epsilon": e, "pessimistic": upper.get_delta_for_epsilon(e),
                      "optimistic": lower.get_delta_for_epsilon(e)} for e in points],
        "seconds": round(time.time() - start, 2),
    }


def random_cases(count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        q = 10 ** rng.uniform(-4, 0)
        sigma = 10 ** rng.uniform(-0.7, 1)
        steps = int(10 ** rng.uniform(0, 5))
        delta = 10 ** rng.uniform(-12, -3)
        yield q, sigma, steps, delta, 1e-3 if sigma < 0.5 else 1e-4


def main():
    results = {"fixed": [], "random": []}
    for args in FIXED:
        results["fixed"].append(case(*args))
        print(json.dumps(results["fixed"][-1]), file=sys.stderr, flush=True)
    for args in random_cases(40, seed=12):
        results["random"].append(case(*args))
        print(json.dumps(results["random"][-1]), file=sys.stderr, flush=True)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--refresh-references":
        refresh_references(sys.argv[2])
    else:
        main()
