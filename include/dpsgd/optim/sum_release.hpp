// SumRelease: a statistic of the whole training set (a clipped sum plus Gaussian noise), released once
// and charged to the run's ledger together with the training steps.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "dpsgd/noise/noise_key.hpp"

namespace dpsgd {

// The Gaussian mechanism over all N examples at once (sampling rate 1): each example's row of
// `dimension` values is scaled to L2 norm <= clip_norm, the rows are summed, and every coordinate gets
// noise of stddev noise_multiplier * clip_norm. Under add/remove adjacency one example moves the sum
// by at most clip_norm, so the release is the mechanism the ledger charges (record_release). Dividing
// by the public data set size gives noisy means (of features, of their squares: a normaliser).
struct SumRelease {
  std::int64_t dimension = 0;
  double clip_norm = 0.0;
  double noise_multiplier = 0.0;

  // Throws InvalidArgument naming the field that is out of range.
  void validate() const;
  nlohmann::json to_json() const;
};

// Writes example `index`'s row (row.size() == dimension values). Called once per example, in index
// order, from the calling thread.
using RowSource = std::function<void(std::int64_t index, std::span<double> row)>;

// sum over index in [0, count) of clip(row(index)), not yet noised (never release it as it is). Each
// row's clip factor comes from an upper bound on its norm as summed here, rounding included (the dense
// clipping route), so no example adds more than clip_norm. A row with NaN or inf is refused
// (InvalidArgument naming the example), not dropped: a release is made once and must be right.
std::vector<double> clipped_sum(const SumRelease& release, std::int64_t count, const RowSource& row);

// clipped_sum plus noise from `key` (NoiseMode::kStandard): the release.
std::vector<double> noisy_clipped_sum(const SumRelease& release, std::int64_t count, const RowSource& row,
                                      const NoiseKey& key);

}  // namespace dpsgd
