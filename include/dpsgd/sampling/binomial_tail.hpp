// Exact binomial probabilities (Loader's saddle-point method) and the capacity for a truncation target.
#pragma once

#include <cstdint>

namespace dpsgd {

// log Pr[X = k] for X ~ Binomial(n, p), accurate to a few ulps of the probability even for
// n = 10^9 (Loader 2000, "Fast and accurate computation of binomial probabilities").
// Throws InvalidArgument unless n >= 0, 0 <= k <= n and p in [0, 1].
double binomial_log_pmf(std::int64_t n, double p, std::int64_t k);

// Pr[X > k] for X ~ Binomial(n, p): the probability that a Poisson batch of expected size n p
// overflows a capacity of k. Relative accuracy ~1e-10 in the tail, absolute ~1e-15 near 1.
// k < 0 gives 1 and k >= n gives 0.
double binomial_upper_tail(std::int64_t n, double p, std::int64_t k);

// The smallest capacity B with Pr[Binomial(n, q) > B] <= target_probability, and where it sits.
struct TruncationCapacity {
  std::int64_t capacity = 0;
  double truncation_probability = 0.0;  // Pr[Binomial(n, q) > capacity], exact
  double standard_deviations = 0.0;     // (capacity - n q) / sqrt(n q (1 - q)): the z it amounts to
};

// Capacity for a target per-step truncation probability, from the exact binomial tail (not a
// normal approximation, which underestimates the tail for small n q). Throws InvalidArgument
// unless dataset_size >= 1, sampling_rate in (0, 1] and target_probability in (0, 1).
TruncationCapacity capacity_for_truncation_probability(std::int64_t dataset_size, double sampling_rate,
                                                       double target_probability);

// The default capacity of a run of `steps` steps aiming at (epsilon, delta): truncation charges
// (1 + e^epsilon) * steps * Pr[overflow] to delta (see truncation.hpp), and this keeps that charge at
// `delta_share` of delta (1% by default), with at most 1e-3 overflow probability per step. The
// capacity never exceeds dataset_size; where the share cannot be represented (e^epsilon overflows),
// the batch is not truncated (capacity = dataset_size). Throws InvalidArgument on bad arguments.
TruncationCapacity capacity_for_delta_share(std::int64_t dataset_size, double sampling_rate, std::int64_t steps,
                                            double epsilon, double delta, double delta_share = 0.01);

}  // namespace dpsgd
