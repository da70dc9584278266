// StepDriver: what an example's training loop asks of its run, whether one process takes the steps
// (dpsgd::TrainingRun) or several (dpsgd::mpi::DistributedRun, in distributed_driver.hpp).
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "dpsgd/optim/training_run.hpp"
#include "dpsgd/sampling/batch.hpp"

namespace dpsgd_example {

class StepDriver {
 public:
  virtual ~StepDriver() = default;
  // The run's state (the same on every process).
  virtual const dpsgd::TrainingRun& run() const = 0;
  // Slots [begin, end) of the batch this process clips: all of them for one process.
  virtual std::pair<std::int64_t, std::int64_t> slots(const dpsgd::Batch& batch) const = 0;
  // `gradient` holds this process's clipped sum over its slots.
  virtual void step(std::span<float> params, std::span<float> gradient, const dpsgd::Batch& batch) = 0;
  virtual void step(std::span<const std::span<float>> params, std::span<const std::span<float>> gradients,
                    const dpsgd::Batch& batch) = 0;
  virtual void checkpoint(std::span<const float> params, const nlohmann::json& extra) = 0;
  // Whether to stop now: every process must answer alike, so a stop asked of one stops all together.
  virtual bool stop_now(bool requested_here) const = 0;
  // Whether this process prints and writes the outputs (the one process, or rank 0).
  virtual bool reports() const = 0;
  // The run's statistic release (dpsgd::TrainingRun::release_sum).
  virtual std::vector<double> release_sum(const dpsgd::RowSource& row) = 0;
};

class LocalDriver : public StepDriver {
 public:
  explicit LocalDriver(dpsgd::TrainingRun& run) : run_(run) {}
  const dpsgd::TrainingRun& run() const override { return run_; }
  std::pair<std::int64_t, std::int64_t> slots(const dpsgd::Batch& batch) const override {
    return {0, static_cast<std::int64_t>(batch.indices.size())};
  }
  void step(std::span<float> params, std::span<float> gradient, const dpsgd::Batch& batch) override {
    run_.step(params, gradient, batch);
  }
  void step(std::span<const std::span<float>> params, std::span<const std::span<float>> gradients,
            const dpsgd::Batch& batch) override {
    run_.step(params, gradients, batch);
  }
  void checkpoint(std::span<const float> params, const nlohmann::json& extra) override {
    run_.checkpoint(params, extra);
  }
  bool stop_now(bool requested_here) const override { return requested_here; }
  bool reports() const override { return true; }
  std::vector<double> release_sum(const dpsgd::RowSource& row) override { return run_.release_sum(row); }

 private:
  dpsgd::TrainingRun& run_;
};

// The slots [begin, end) of a batch as a batch of their own (the mask and indices of those slots).
inline dpsgd::Batch slice_of(const dpsgd::Batch& batch, std::pair<std::int64_t, std::int64_t> slots) {
  dpsgd::Batch part = batch;
  part.indices.assign(batch.indices.begin() + slots.first, batch.indices.begin() + slots.second);
  part.mask.assign(batch.mask.begin() + slots.first, batch.mask.begin() + slots.second);
  part.real_size = std::count(part.mask.begin(), part.mask.end(), std::uint8_t{1});
  part.truncated = 0;
  return part;
}

}  // namespace dpsgd_example
