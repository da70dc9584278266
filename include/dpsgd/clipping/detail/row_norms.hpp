// Internal: overflow-safe squared L2 norm of one contiguous row, on the vector kernels of row_kernels.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "dpsgd/clipping/detail/norm_math.hpp"
#include "dpsgd/clipping/detail/row_kernels.hpp"

namespace dpsgd::detail {

// Elements summed in the row's own precision before the partial sum moves to double: short enough
// that float rounding stays at ~1e-6 relative, long enough for full-width SIMD.
inline constexpr std::int64_t kNormChunk = 1024;

// Slow path for a row whose fast sum overflowed: exact up to rounding for any finite row, infinite
// or NaN only if an element is.
template <typename Scalar>
double rescaled_squared_norm(const Scalar* row, std::int64_t length) {
  double max_abs = 0.0;
  for (std::int64_t j = 0; j < length; ++j) {
    const double v = static_cast<double>(row[j]);
    if (!std::isfinite(v)) return v * v;  // inf or NaN: the row is non-finite
    max_abs = std::max(max_abs, std::abs(v));
  }
  double scaled = 0.0;
  if (max_abs > 0.0) {
    for (std::int64_t j = 0; j < length; ++j) {
      const double v = static_cast<double>(row[j]) / max_abs;
      scaled += v * v;
    }
  }
  // Still +inf only for a double row beyond sqrt(DBL_MAX): it then counts as non-finite, which
  // drops it, the only sound choice when its norm cannot be represented. The GPU kernels finish
  // with the same function.
  return rescaled_squared_norm_from(max_abs, scaled);
}

template <typename Scalar>
double row_squared_norm(const Scalar* row, std::int64_t length) {
  double total = 0.0;
  for (std::int64_t begin = 0; begin < length; begin += kNormChunk) {
    const std::int64_t size = std::min(kNormChunk, length - begin);
    total += sum_of_squares(row + begin, size);
  }
  if (std::isinf(total)) return rescaled_squared_norm(row, length);
  return total;
}

}  // namespace dpsgd::detail
