// PoissonSampler: Poisson subsampling padded or truncated to a fixed capacity, at O(expected batch) per step.
#pragma once

#include <cstdint>

#include "dpsgd/sampling/batch.hpp"

namespace dpsgd {

// Draws, for each step, a batch in which each of the N examples is present independently with
// probability q (the sampling the subsampled-Gaussian accountants analyse). The batch always has
// `capacity` slots: extra draws are dropped uniformly at random (Batch::truncated counts them);
// missing ones are padding with mask 0.
//
// The batch of a step depends only on (seed, step): steps can be drawn in any order, on any
// thread, and a resumed run redraws the same batches. Gaps between members are geometric, so a
// step costs O(N q) time and O(capacity) memory, which serves N = 10^9.
class PoissonSampler {
 public:
  // Seeded from the OS CSPRNG: the mode for any run whose model is released.
  PoissonSampler(std::int64_t dataset_size, double sampling_rate, std::int64_t capacity);
  // Explicit seed: reproducible, for tests and research only.
  PoissonSampler(std::int64_t dataset_size, double sampling_rate, std::int64_t capacity, std::uint64_t seed);

  Batch sample(std::uint64_t step) const;

  std::int64_t dataset_size() const { return dataset_size_; }
  double sampling_rate() const { return sampling_rate_; }
  std::int64_t capacity() const { return capacity_; }
  std::uint64_t seed() const { return seed_; }
  // N q: the public constant a DP step divides the noisy sum by (never the realised batch size).
  double expected_batch_size() const { return static_cast<double>(dataset_size_) * sampling_rate_; }
  // Pr[Binomial(N, q) > capacity]: the chance that one step truncates.
  double truncation_probability() const;

 private:
  std::int64_t dataset_size_;
  double sampling_rate_;
  std::int64_t capacity_;
  std::uint64_t seed_;
};

}  // namespace dpsgd
