#!/usr/bin/env python3
"""Prints the reference values of tests/audit_test.cpp: Clopper-Pearson intervals from SciPy's beta
quantiles, and one-run epsilon lower bounds from the p-value of Steinke, Nasr & Jagielski (2023),
evaluated with SciPy's binomial distribution. Tooling only (pip install scipy)."""
import math

import scipy.stats as st


def one_run_p_value(m, r, v, eps, delta):
    p = 1 / (1 + math.exp(-eps))
    tail = st.binom.sf(v - 1, r, p)
    window, worst = 0.0, 0.0
    for i in range(1, v + 1):
        window += st.binom.pmf(v - i, r, p)
        worst = max(worst, window / i)
    return min(tail + worst * delta * 2 * m, 1.0)


def one_run_epsilon(m, r, v, delta, alpha):
    lo, hi = 0.0, 1.0
    while one_run_p_value(m, r, v, hi, delta) < alpha:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if one_run_p_value(m, r, v, mid, delta) < alpha else (lo, mid)
    return lo


for args in [(1000, 600, 600, 1e-5, 0.05), (1000, 100, 90, 1e-5, 0.05), (100, 100, 100, 1e-5, 0.05),
             (1000, 200, 150, 0.0, 0.05), (10000, 1000, 700, 1e-6, 0.01)]:
    print("one_run", args, repr(one_run_epsilon(*args)))
for k, n, a in [(5, 10, 0.05), (0, 10, 0.05), (10, 10, 0.05), (37, 500, 0.01), (999, 1000, 0.001)]:
    lo = st.beta.ppf(a / 2, k, n - k + 1) if k > 0 else 0.0
    hi = st.beta.ppf(1 - a / 2, k + 1, n - k) if k < n else 1.0
    print("clopper_pearson", (k, n, a), repr(float(lo)), repr(float(hi)))
