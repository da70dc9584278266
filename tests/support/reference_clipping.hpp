// Test support: brute-force clipping in long double, the reference the fast paths are checked against.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "dpsgd/clipping/clip_config.hpp"
#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd::test {

// sum_i c_i g_i for dense per-example gradients (rows), with c_i from the plain formula per group.
// Returns the sum; clipped examples and norms are written out for comparison.
inline std::vector<long double> reference_clipped_sum(const RowMajorMatrix<double>& rows,
                                                      const std::vector<std::uint8_t>& mask, const ClipConfig& config,
                                                      const std::vector<std::int64_t>& offsets,
                                                      std::vector<long double>* total_norms = nullptr) {
  std::vector<long double> sum(static_cast<std::size_t>(rows.cols()), 0.0L);
  if (total_norms) total_norms->assign(static_cast<std::size_t>(rows.rows()), 0.0L);
  for (Eigen::Index i = 0; i < rows.rows(); ++i) {
    std::vector<long double> factors;
    bool finite = true;
    long double total = 0.0L;
    for (std::size_t k = 0; k + 1 < offsets.size(); ++k) {
      long double sq = 0.0L;
      for (std::int64_t j = offsets[k]; j < offsets[k + 1]; ++j)
        sq += static_cast<long double>(rows(i, j)) * rows(i, j);
      finite = finite && std::isfinite(sq);
      total += sq;
      const long double norm = std::sqrt(sq);
      const long double c = config.group_clip_norms[k];
      factors.push_back(config.method == ClipMethod::kAutomatic ? c / (norm + config.automatic_stability)
                                                                : (norm > c ? c / norm : 1.0L));
    }
    if (total_norms) (*total_norms)[static_cast<std::size_t>(i)] = std::sqrt(total);
    if (!mask[static_cast<std::size_t>(i)] || !finite) continue;
    for (std::size_t k = 0; k + 1 < offsets.size(); ++k) {
      for (std::int64_t j = offsets[k]; j < offsets[k + 1]; ++j)
        sum[static_cast<std::size_t>(j)] += factors[k] * rows(i, j);
    }
  }
  return sum;
}

// A random matrix whose rows have norms spread over several orders of magnitude, so some rows are
// clipped and some are not.
inline RowMajorMatrix<double> random_rows(std::mt19937_64& rng, Eigen::Index rows, Eigen::Index cols) {
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> log_scale(-2.0, 1.5);
  RowMajorMatrix<double> m(rows, cols);
  for (Eigen::Index i = 0; i < rows; ++i) {
    const double scale = std::pow(10.0, log_scale(rng)) / std::sqrt(static_cast<double>(cols));
    for (Eigen::Index j = 0; j < cols; ++j) m(i, j) = scale * normal(rng);
  }
  return m;
}

}  // namespace dpsgd::test
