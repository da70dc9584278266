// ParameterAverage: an exponential moving average of a private run's iterates, kept in its checkpoints.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dpsgd/core/error.hpp"

namespace dpsgd_example {

// avg <- d avg + (1 - d) params after each step, with the warm-up d_t = min(decay, (1 + t) / (10 + t))
// so that early iterates do not dominate. Every iterate of a DP-SGD run is covered by the run's
// epsilon (the ledger charges each step before its update is released), so the average is
// post-processing: it costs no privacy. It damps the noise the last steps left in the parameters,
// which matters most for models whose noise is not averaged away by later steps (a linear head).
class ParameterAverage {
 public:
  explicit ParameterAverage(double decay) : decay_(decay) {
    if (!(decay >= 0.0 && decay < 1.0))
      throw dpsgd::InvalidArgument("--ema must be in [0, 1), got " + std::to_string(decay));
  }

  bool enabled() const { return decay_ > 0.0; }

  // After step `step` (0-based) produced `params`.
  void update(std::span<const float> params, std::int64_t step) {
    if (!enabled()) return;
    if (average_.empty()) average_.assign(params.begin(), params.end());
    const double t = static_cast<double>(step);
    const double d = std::min(decay_, (1.0 + t) / (10.0 + t));
    for (std::size_t i = 0; i < average_.size(); ++i)
      average_[i] = static_cast<float>(d * average_[i] + (1.0 - d) * params[i]);
  }

  // Swaps the average into `params` (and the iterate out): call twice to swap back. A no-op before the
  // first update or when disabled.
  void swap_into(std::span<float> params) {
    if (average_.empty()) return;
    std::swap_ranges(average_.begin(), average_.end(), params.begin());
  }

  nlohmann::json to_json() const { return average_; }

  // From a checkpoint's "average" (absent for a run without one, or stopped before its first step).
  void restore(const nlohmann::json& extra, std::size_t count) {
    const auto found = extra.find("average");
    if (found == extra.end() || !enabled()) return;
    if (!found->is_array() || found->size() != count)
      throw dpsgd::FormatError("checkpoint refused: its parameter average does not match the model");
    average_ = found->get<std::vector<float>>();
  }

 private:
  double decay_;
  std::vector<float> average_;
};

}  // namespace dpsgd_example
