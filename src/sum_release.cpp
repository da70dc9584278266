// noisy_clipped_sum: rows clipped in chunks with the dense route's rounding bound, summed, noised.
#include "dpsgd/optim/sum_release.hpp"

#include <cmath>

#include "dpsgd/clipping/clip_method.hpp"
#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/noise/gaussian_noise.hpp"

namespace dpsgd {
namespace {

// Rows clipped per pass: bounds the buffer (chunk x dimension doubles) whatever the data set size.
constexpr std::int64_t kChunkRows = 256;

}  // namespace

void SumRelease::validate() const {
  DPSGD_CHECK_ARG(dimension >= 1, "release.dimension must be >= 1, got " << dimension);
  DPSGD_CHECK_ARG(std::isfinite(clip_norm) && clip_norm > 0.0,
                  "release.clip_norm must be finite and > 0, got " << clip_norm);
  DPSGD_CHECK_ARG(std::isfinite(noise_multiplier) && noise_multiplier > 0.0,
                  "release.noise_multiplier must be finite and > 0, got " << noise_multiplier);
}

nlohmann::json SumRelease::to_json() const {
  return {{"dimension", dimension}, {"clip_norm", clip_norm}, {"noise_multiplier", noise_multiplier}};
}

std::vector<double> clipped_sum(const SumRelease& release, std::int64_t count, const RowSource& row) {
  release.validate();
  DPSGD_CHECK_ARG(count >= 1, "count must be >= 1, got " << count);
  DPSGD_CHECK_ARG(static_cast<bool>(row), "row must be a function");
  const std::int64_t width = release.dimension;
  std::vector<double> sum(static_cast<std::size_t>(width), 0.0);
  RowMajorMatrix<double> chunk(std::min(kChunkRows, count), width);
  for (std::int64_t first = 0; first < count; first += chunk.rows()) {
    const std::int64_t rows = std::min<std::int64_t>(chunk.rows(), count - first);
    for (std::int64_t i = 0; i < rows; ++i) {
      const std::span<double> values(chunk.row(i).data(), static_cast<std::size_t>(width));
      row(first + i, values);
      for (std::int64_t j = 0; j < width; ++j)
        DPSGD_CHECK_ARG(std::isfinite(values[j]), "row(" << first + i << ")[" << j << "] is " << values[j]
                                                         << ": a released statistic needs finite rows");
    }
    const ConstRowsRef<double> block = chunk.topRows(rows);
    SquaredNorms squared = SquaredNorms::Zero(rows, 1);
    accumulate_squared_norms<double>(block, squared, 0);
    Eigen::MatrixXd factors(rows, 1);
    for (std::int64_t i = 0; i < rows; ++i)
      factors(i, 0) = clip_factor(squared(i, 0), release.clip_norm, ClipMethod::kHard, 0.0, 1);
    accumulate_clipped_sum<double>(block, factors, 0, sum);
  }
  return sum;
}

std::vector<double> noisy_clipped_sum(const SumRelease& release, std::int64_t count, const RowSource& row,
                                      const NoiseKey& key) {
  std::vector<double> sum = clipped_sum(release, count, row);
  add_gaussian_noise<double>(sum, release.noise_multiplier * release.clip_norm, key);
  return sum;
}

}  // namespace dpsgd
