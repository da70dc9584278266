// Batch: the fixed-capacity slots one Poisson-sampled step trains on, with its padding mask.
#pragma once

#include <cstdint>
#include <vector>

namespace dpsgd {

struct Batch {
  // Index that marks a padding slot: it names no example, so code that forgets the mask fails
  // loudly instead of silently training on example 0.
  static constexpr std::int64_t kPaddingIndex = -1;

  std::uint64_t step = 0;
  // Exactly `capacity` slots. The first real_size hold sampled example indices in ascending order;
  // the rest hold kPaddingIndex.
  std::vector<std::int64_t> indices;
  // 1 for a sampled example, 0 for padding; same length as indices. Multiply per-example
  // gradients by it (the clipping functions take it directly).
  std::vector<std::uint8_t> mask;
  // Examples in the batch after truncation (<= capacity).
  std::int64_t real_size = 0;
  // Examples Poisson sampling drew that did not fit the capacity and were dropped uniformly at
  // random. Non-zero is a rare event whose probability the accountant charges for.
  std::int64_t truncated = 0;
  // The sampler that drew it (N and q): DpSgd::step(params, gradient, batch) checks them against its
  // configuration, so a batch cannot be accounted as if it came from another sampler.
  std::int64_t dataset_size = 0;
  double sampling_rate = 0.0;

  std::int64_t capacity() const { return static_cast<std::int64_t>(indices.size()); }
};

}  // namespace dpsgd
