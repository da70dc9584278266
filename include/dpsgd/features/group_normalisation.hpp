// Parameter-free group normalisation of one example's features: data-independent, so it costs no privacy.
#pragma once

#include <cmath>
#include <cstdint>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd {

// Normalises each row (one example, NHWC with `channels` channels) within groups of channels: the
// values of channels [g C/G, (g+1) C/G) at every pixel get mean 0 and variance 1 (plus `eps` in the
// denominator, as in Wu & He 2018's GroupNorm without its affine parameters). Each row's result
// depends on that row only, so the statistics of the training set are never used: this is the
// data-independent normalisation Tramer & Boneh (ICLR 2021) put in front of ScatterNet features.
// Mean and variance are accumulated in double, two passes (no cancellation from a one-pass formula).
inline void group_normalise_rows(RowsRef<float> rows, std::int64_t channels, std::int64_t groups, double eps = 1e-5) {
  DPSGD_CHECK_ARG(channels >= 1 && groups >= 1 && channels % groups == 0,
                  "groups must divide channels, got " << groups << " groups of " << channels << " channels");
  DPSGD_CHECK_ARG(rows.cols() % channels == 0,
                  "rows must hold whole pixels of " << channels << " channels, got " << rows.cols() << " columns");
  DPSGD_CHECK_ARG(std::isfinite(eps) && eps > 0.0, "eps must be finite and > 0, got " << eps);
  const std::int64_t pixels = rows.cols() / channels, width = channels / groups;
  const double count = static_cast<double>(pixels * width);
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows.rows(); ++r) {
    float* row = rows.row(r).data();
    for (std::int64_t g = 0; g < groups; ++g) {
      double sum = 0.0, squares = 0.0;
      for (std::int64_t p = 0; p < pixels; ++p)
        for (std::int64_t c = g * width; c < (g + 1) * width; ++c) sum += row[p * channels + c];
      const double mean = sum / count;
      for (std::int64_t p = 0; p < pixels; ++p)
        for (std::int64_t c = g * width; c < (g + 1) * width; ++c) {
          const double d = row[p * channels + c] - mean;
          squares += d * d;
        }
      const double scale = 1.0 / std::sqrt(squares / count + eps);
      for (std::int64_t p = 0; p < pixels; ++p)
        for (std::int64_t c = g * width; c < (g + 1) * width; ++c)
          row[p * channels + c] = static_cast<float>((row[p * channels + c] - mean) * scale);
    }
  }
}

}  // namespace dpsgd
