#!/usr/bin/env python3
"""An independent reference for the epsilon of T Poisson-subsampled Gaussian steps (add/remove).

Used by tools/generate_accounting_extreme.py where dp_accounting cannot be trusted: its FFT round-off
(about 1e-16 of the largest mass, unbounded and of either sign) swamps deltas below about 1e-12, and
shifts epsilon by a few 1e-4 already at delta ~ 1e-11 (its "pessimistic" answer then lies below this
reference, whose own error is about 1e-5).

Method (no code shared with dpsgd): the privacy loss L(x) of one step is tabulated on a fine grid of
the noise value x (cell probabilities from the Gaussian densities), exponentially tilted by the
saddlepoint lambda of the target epsilon (so the region that decides delta carries most of the tilted
mass and the FFT's round-off is negligible there), placed on a loss grid of spacing h by splitting each
mass between its two neighbouring points in proportion (which keeps the mean: the error is second order
in h and does not drift with T), composed T times by FFT and untilted:
    delta(eps) = M(lambda)^T E_tilted[e^(-lambda S) (1 - e^(eps - S))_+].
The answer is the larger over the two directions. Not a bound: an estimate whose error is checked by
halving h (the generator stores the answers at h and h/2).

    python3 tools/tilted_reference.py Q SIGMA T DELTA [H]   prints epsilon
"""
import math
import sys

import numpy as np

MAX_POINTS = 1 << 24


def loss_table(q, sigma, remove, points=2_000_001):
    x = np.linspace(-14.0 * sigma - 1.0, 14.0 * sigma + 2.0, points)
    dx = x[1] - x[0]
    s2 = sigma * sigma
    gaussian = (2.0 * x - 1.0) / (2.0 * s2)
    mixture = np.logaddexp(np.log1p(-q), np.log(q) + gaussian) if q < 1.0 else gaussian
    base = -0.5 * np.log(2.0 * np.pi * s2) + np.log(dx)
    if remove:  # x ~ (1 - q) N(0, s^2) + q N(1, s^2), loss log(mixture / N(0, s^2))
        logp = base + (np.logaddexp(np.log1p(-q) - x * x / (2 * s2), np.log(q) - (x - 1) ** 2 / (2 * s2))
                       if q < 1.0 else -(x - 1) ** 2 / (2 * s2))
        return mixture, logp
    return -mixture, base - x * x / (2 * s2)  # x ~ N(0, s^2), loss log(N(0, s^2) / mixture)


def log_mgf(loss, logp, lam):
    a = logp + lam * loss
    top = a.max()
    w = np.exp(a - top)
    return top + math.log(w.sum()), float((w * loss).sum() / w.sum())


class TiltedComposition:
    def __init__(self, q, sigma, steps, remove, target_eps, h):
        self.loss, self.logp = loss_table(q, sigma, remove)
        self.steps = steps
        lo, hi = 1e-6, 1e5
        for _ in range(50):  # saddlepoint: T K'(lambda) = target_eps, bisected on log lambda
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if steps * log_mgf(self.loss, self.logp, mid)[1] < target_eps else (lo, mid)
        self.lam = math.sqrt(lo * hi)
        self.k = log_mgf(self.loss, self.logp, self.lam)[0]
        weights = np.exp(self.logp + self.lam * self.loss - self.k)
        keep = weights > 1e-40 * weights.max()  # the rest cannot move a tilted composition's answer
        self.loss, weights = self.loss[keep], weights[keep]
        span = (self.loss.max() - self.loss.min()) * steps
        self.h = max(h, span / MAX_POINTS)
        pos = self.loss / self.h
        floor = np.floor(pos).astype(np.int64)
        frac = pos - floor
        self.first = int(floor.min())
        size = int(floor.max()) - self.first + 2
        pmf = (np.bincount(floor - self.first, weights=weights * (1 - frac), minlength=size) +
               np.bincount(floor - self.first + 1, weights=weights * frac, minlength=size))
        n = 1
        while n < steps * (size - 1) + 1:
            n *= 2
        composed = np.fft.irfft(np.fft.rfft(pmf, n) ** steps, n)
        sums = (np.arange(n) + steps * self.first) * self.h
        keep = composed > 0.0
        self.sums = sums[keep]
        logc = np.log(composed[keep])
        # Suffix log-sums of c e^(-lambda s) and c e^(-(lambda + 1) s): each delta(eps) is then O(log n).
        self.log_a = np.logaddexp.accumulate((logc - self.lam * self.sums)[::-1])[::-1]
        self.log_b = np.logaddexp.accumulate((logc - (self.lam + 1.0) * self.sums)[::-1])[::-1]

    def delta(self, eps):
        i = int(np.searchsorted(self.sums, eps, side="right"))
        if i >= self.sums.size:
            return 0.0
        a = self.steps * self.k + self.log_a[i]
        b = self.steps * self.k + eps + self.log_b[i]
        log_delta = a + math.log(-math.expm1(b - a)) if b < a else -math.inf
        return math.exp(min(log_delta, 700.0))


def reference_epsilon(q, sigma, steps, delta, guess, h=1e-4):
    """epsilon with max over directions of delta(epsilon) = delta, tilted at the guess."""
    directions = [TiltedComposition(q, sigma, steps, remove, guess, h) for remove in (True, False)]
    d = lambda eps: max(c.delta(eps) for c in directions)
    lo, hi = 0.0, max(guess, 1e-6)
    while d(hi) > delta:
        hi *= 2.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if d(mid) > delta else (lo, mid)
    return hi, max(c.h for c in directions)


if __name__ == "__main__":
    q, sigma, steps, delta = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    h = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-4
    eps, _ = reference_epsilon(q, sigma, steps, delta, 1.0, h)
    eps, used = reference_epsilon(q, sigma, steps, delta, eps, h)  # re-tilted at the answer
    print(eps, used)
