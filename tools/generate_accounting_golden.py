#!/usr/bin/env python3
"""Generates tests/data/accounting_golden.json: reference values from Google's dp_accounting.

Run:  python3 -m venv .venv && .venv/bin/pip install dp-accounting mpmath
      .venv/bin/python tools/generate_accounting_golden.py > tests/data/accounting_golden.json

Reference values (facts produced by another library) for dpsgd's accounting tests: RDP per order,
PLD epsilon and delta at value discretisation 1e-5 (add/remove adjacency, connect-the-dots,
pessimistic), RDP epsilon, noise calibration, and the exact analytic Gaussian (q = 1) from mpmath.

Exact RDP (mpmath, 30 digits) beside dp_accounting's: dp_accounting evaluates fractional orders with
absolute binomial coefficients, an upper bound that can be 2x loose below order 2, and excludes orders
whose series does not settle; dpsgd's RDP must lie between the exact value and dp_accounting's.
`--augment FILE` adds the exact values to an existing file without recomputing the rest (minutes
instead of the 10 minutes of dp_accounting's PLD runs).
"""
import json
import math
import sys
import time

import dp_accounting
import mpmath
from dp_accounting import mechanism_calibration
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

DISCRETISATION = 1e-5


def event(q, sigma, steps):
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)


def pld(q, sigma, steps):
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=DISCRETISATION)
    accountant.compose(event(q, sigma, steps))
    return accountant


def rdp(q, sigma, steps):
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(event(q, sigma, steps))
    return accountant


def analytic_gaussian_epsilon(sigma, steps, delta):
    """Exact epsilon of `steps` compositions of the Gaussian mechanism (Balle & Wang 2018)."""
    mpmath.mp.dps = 50
    mu = mpmath.sqrt(steps) / sigma
    def curve(e):
        return mpmath.ncdf(-e / mu + mu / 2) - mpmath.exp(e) * mpmath.ncdf(-e / mu - mu / 2)
    lo, hi = mpmath.mpf(0), mpmath.mpf(1)
    while curve(hi) > delta:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if curve(mid) > delta else (lo, mid)
    return float(hi)


def exact_rdp(q, sigma, order):
    """Exact RDP of the Poisson-subsampled Gaussian: log(A) / (order - 1), with
    A - 1 = E[g^a - 1 - a (g - 1)], g = 1 - q + q exp(u / sigma - 1 / (2 sigma^2)), u ~ N(0, 1)
    (E[g] = 1, so the subtracted term is 0 and the integrand is non-negative and smooth)."""
    mpmath.mp.dps = 30
    q, s, a = mpmath.mpf(q), mpmath.mpf(sigma), mpmath.mpf(order)
    if q == 1:
        return float(a / (2 * s * s))
    if a == int(a):
        n = int(a)
        excess = mpmath.fsum(mpmath.binomial(n, i) * q**i * (1 - q)**(n - i) * mpmath.expm1((i * i - i) / (2 * s * s))
                             for i in range(2, n + 1))
    else:
        def integrand(u):
            g = 1 - q + q * mpmath.exp(u / s - 1 / (2 * s * s))
            return mpmath.npdf(u) * (g**a - 1 - a * (g - 1))
        excess = mpmath.quad(integrand, [-mpmath.inf, -20, -10, -5, 0, 5, 10, 20, 40, 80, mpmath.inf])
    return float(mpmath.log1p(excess) / (a - 1))


def exact_rdp_curve(q, sigma, steps):
    return [steps * exact_rdp(q, sigma, a) for a in rdp_privacy_accountant.DEFAULT_RDP_ORDERS]


def rdp_curve_epsilon(curve, delta):
    """The conversion dpsgd and dp_accounting use, on a given curve (Canonne, Kamath & Steinke 2020)."""
    best = float("inf")
    for a, r in zip(rdp_privacy_accountant.DEFAULT_RDP_ORDERS, curve):
        if delta * delta > -math.expm1(-r):
            return 0.0
        if a > 1.01:
            best = min(best, r + math.log1p(-1 / a) - (math.log(delta) + math.log(a)) / (a - 1))
    return max(best, 0.0)


def rdp_curve_delta(curve, epsilon):
    best = float("inf")
    for a, r in zip(rdp_privacy_accountant.DEFAULT_RDP_ORDERS, curve):
        best = min(best, 0.5 * math.log(-math.expm1(-r)) if r > 0 else -float("inf"))
        if a > 1.01:
            best = min(best, (a - 1) * (r - epsilon + math.log1p(-1 / a)) - math.log(a))
    return min(math.exp(best), 1.0)


def augment(out):
    """Adds the exact RDP values (per order, and the epsilon / delta of the exact curves)."""
    for c in out["rdp"]:
        c["exact_rdp"] = [exact_rdp(c["sampling_rate"], c["noise_multiplier"], a) for a in c["orders"]]
        print(f"exact rdp {c['sampling_rate']} {c['noise_multiplier']}", file=sys.stderr)
    for c in out["epsilon"]:
        curve = exact_rdp_curve(c["sampling_rate"], c["noise_multiplier"], c["steps"])
        c["exact_rdp_epsilon"] = rdp_curve_epsilon(curve, c["delta"])
        print(f"exact rdp epsilon {c['sampling_rate']} {c['noise_multiplier']} {c['steps']}", file=sys.stderr)
    for c in out["delta"]:
        curve = exact_rdp_curve(c["sampling_rate"], c["noise_multiplier"], c["steps"])
        c["exact_rdp_delta"] = rdp_curve_delta(curve, c["epsilon"])


def finite_or_none(value):
    """JSON has no infinity: an order whose RDP dp_accounting cannot bound is written as null."""
    return value if value == value and abs(value) != float("inf") else None


def main():
    out = {"source": f"dp_accounting {getattr(dp_accounting, '__version__', 'unknown')}",
           "pld_discretisation": DISCRETISATION, "rdp": [], "epsilon": [], "delta": [], "calibration": [],
           "analytic_gaussian": []}
    orders = rdp_privacy_accountant.DEFAULT_RDP_ORDERS
    for q, sigma in [(1e-4, 0.8), (1e-3, 1.0), (0.01, 0.5), (0.01, 1.1), (0.1, 2.0), (0.5, 3.0), (1.0, 1.5), (0.02, 10.0)]:
        values = rdp(q, sigma, 1)._rdp
        out["rdp"].append({"sampling_rate": q, "noise_multiplier": sigma, "orders": list(orders),
                           "rdp": [finite_or_none(float(v)) for v in values]})
    cases = [
        (1e-4, 1.0, 100000, 1e-5), (1e-4, 0.6, 100000, 1e-5), (1e-3, 0.8, 10000, 1e-6), (1e-3, 1.2, 1000, 1e-5),
        (0.01, 1.0, 1000, 1e-5), (0.01, 0.7, 3000, 1e-6), (0.01, 2.0, 10000, 1e-10), (0.02, 0.5, 100, 1e-5),
        (0.05, 1.5, 2000, 1e-5), (0.1, 3.0, 5000, 1e-10), (0.25, 5.0, 400, 1e-6), (0.5, 10.0, 1000, 1e-5),
        (1.0, 2.0, 10, 1e-10), (1.0, 1.0, 1, 1e-5), (1.0, 5.0, 100, 1e-6), (0.004, 1.1, 15000, 1e-5),
    ]
    for q, sigma, steps, delta in cases:
        start = time.time()
        eps = pld(q, sigma, steps).get_epsilon(delta)
        seconds = time.time() - start
        entry = {"sampling_rate": q, "noise_multiplier": sigma, "steps": steps, "delta": delta,
                 "pld_epsilon": eps, "pld_seconds": seconds, "rdp_epsilon": rdp(q, sigma, steps).get_epsilon(delta)}
        if steps >= 10000 and q <= 0.01:
            # Long compositions: dp_accounting at 1e-5 is not converged yet; a 5x finer grid shows
            # where the truth lies, so an answer between the two is not mistaken for an underestimate.
            accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=DISCRETISATION / 5)
            accountant.compose(event(q, sigma, steps))
            entry["pld_epsilon_fine"] = accountant.get_epsilon(delta)
        out["epsilon"].append(entry)
        print(f"epsilon {q} {sigma} {steps} {delta}: {eps} in {seconds:.2f}s", file=sys.stderr)
    for q, sigma, steps, epsilon in [(0.01, 1.0, 1000, 1.0), (1e-3, 0.8, 10000, 0.5), (0.1, 3.0, 5000, 4.0),
                                     (1.0, 2.0, 10, 3.0)]:
        start = time.time()
        delta = pld(q, sigma, steps).get_delta(epsilon)
        out["delta"].append({"sampling_rate": q, "noise_multiplier": sigma, "steps": steps, "epsilon": epsilon,
                             "pld_delta": delta, "pld_seconds": time.time() - start,
                             "rdp_delta": rdp(q, sigma, steps).get_delta(epsilon)})
    for q, steps, epsilon, delta in [(0.01, 1000, 2.0, 1e-5), (1e-3, 10000, 1.0, 1e-6), (0.1, 500, 8.0, 1e-5)]:
        start = time.time()
        sigma = mechanism_calibration.calibrate_dp_mechanism(
            lambda: pld_privacy_accountant.PLDAccountant(value_discretization_interval=DISCRETISATION),
            lambda s: event(q, s, steps), epsilon, delta,
            bracket_interval=mechanism_calibration.ExplicitBracketInterval(0.3, 20.0), tol=1e-4)
        out["calibration"].append({"sampling_rate": q, "steps": steps, "epsilon": epsilon, "delta": delta,
                                   "pld_noise_multiplier": sigma, "pld_seconds": time.time() - start})
        print(f"calibration {q} {steps}: {sigma}", file=sys.stderr)
    for sigma, steps, delta in [(1.0, 1, 1e-5), (2.0, 10, 1e-10), (5.0, 100, 1e-6), (0.5, 1, 1e-6), (10.0, 1000, 1e-5)]:
        out["analytic_gaussian"].append({"noise_multiplier": sigma, "steps": steps, "delta": delta,
                                         "epsilon": analytic_gaussian_epsilon(sigma, steps, delta)})
    augment(out)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--augment":
        with open(sys.argv[2]) as f:
            data = json.load(f)
        augment(data)
        json.dump(data, sys.stdout, indent=1)
        print()
    else:
        main()
