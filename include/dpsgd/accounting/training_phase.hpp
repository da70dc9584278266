// TrainingPhase: a run of identical DP-SGD steps as the accountant sees it, truncation included.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "dpsgd/accounting/gaussian_phase.hpp"

namespace dpsgd {

// A GaussianPhase (sampling_rate, noise_multiplier, steps) and, optionally, the fixed capacity its
// Poisson batches were truncated to. An aggregate: TrainingPhase{q, sigma, steps} or
// TrainingPhase{q, sigma, steps, dataset_size, capacity}.
struct TrainingPhase : GaussianPhase {
  // Truncated Poisson sampling: dataset size N and capacity B (both 0 when batches are not truncated).
  std::int64_t dataset_size = 0;
  std::int64_t capacity = 0;

  bool truncated() const { return capacity > 0; }
  // The Gaussian mechanism alone, without the truncation the accountant charges separately.
  const GaussianPhase& mechanism() const { return *this; }
};

// Throws InvalidArgument naming the field of phases[index] that is out of range.
void validate_training_phase(const TrainingPhase& phase, std::size_t index = 0);

// eta = sum over truncated phases of T * Pr[Binomial(N + 1, q) > B]: the probability that any step of
// the run truncates, on the larger of two neighbouring datasets.
double truncation_probability(std::span<const TrainingPhase> phases);

}  // namespace dpsgd
