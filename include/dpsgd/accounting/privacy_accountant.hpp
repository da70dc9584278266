// PrivacyAccountant: the interface through which the step driver records each released step (it lives
// with the accountants, below the step driver, so that no folder includes one above it).
#pragma once

#include <cstdint>

#include "dpsgd/accounting/training_phase.hpp"

namespace dpsgd {

// What one DP-SGD step released, as an accountant needs it.
struct DpStepRecord {
  std::uint64_t step = 0;
  double sampling_rate = 0.0;     // q of Poisson sampling
  double noise_multiplier = 0.0;  // sigma: noise stddev / sensitivity
  // For truncated Poisson sampling (fixed capacity); 0 when the batch is not truncated.
  std::int64_t dataset_size = 0;
  std::int64_t capacity = 0;

  // The step as a one-step TrainingPhase: what the ledger appends to its run.
  TrainingPhase as_phase() const { return TrainingPhase{{sampling_rate, noise_multiplier, 1}, dataset_size, capacity}; }
};

// Implemented by the accountant (and its persistent ledger). record() is called before the noisy
// update is released: if it throws, the step is not taken, so a failure can only over-count.
class PrivacyAccountant {
 public:
  virtual ~PrivacyAccountant() = default;
  virtual void record(const DpStepRecord& step) = 0;
};

}  // namespace dpsgd
