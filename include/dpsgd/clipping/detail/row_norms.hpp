// Internal: overflow-safe squared L2 norm of one contiguous row, on the vector kernels of row_kernels.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include <Eigen/Core>

#include "dpsgd/clipping/detail/norm_math.hpp"
#include "dpsgd/clipping/detail/rounding_bounds.hpp"
#include "dpsgd/clipping/detail/row_kernels.hpp"

namespace dpsgd::detail {

// Elements per call of the vector kernel (fixed, so the result does not depend on the caller).
inline constexpr std::int64_t kNormChunk = 1024;

// Slow path for a row whose fast sum overflowed or nearly underflowed: exact up to rounding for any
// finite row, infinite or NaN only if an element is.
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

// Below this, a fast-path sum may have lost a noticeable share to squares that underflowed (each
// loses at most 2^-149 for float, 2^-1074 for double): the row is redone rescaled.
template <typename Scalar>
inline constexpr double kRescueBelow = std::is_same_v<Scalar, float> ? 0x1p-60 : 0x1p-900;

// The squared norm, summed in the row's precision in chunks whose partial sums are added in double.
// A sum that overflows, or is small enough that underflowed squares could matter, is redone rescaled
// by the row's largest magnitude (accurate for any finite row; a zero row comes back as 0).
template <typename Scalar>
double row_squared_norm(const Scalar* row, std::int64_t length) {
  double total = 0.0;
  for (std::int64_t begin = 0; begin < length; begin += kNormChunk) {
    const std::int64_t size = std::min(kNormChunk, length - begin);
    total += sum_of_squares(row + begin, size);
  }
  if (std::isinf(total) || total < kRescueBelow<Scalar>) return rescaled_squared_norm(row, length);
  return total;
}

// An upper bound on the true squared norm of a row of `length` elements from row_squared_norm's
// result, whichever path produced it: the fast path (at most 69 roundings in the row's precision per
// 1024-element chunk, the chunks then summed in double; underflowed squares, at most 2^-149 each
// against a total of at least 2^-60, are below n 2^-86 relative) or the rescaled one (n + 5 double
// roundings; squares underflowing there lose at most 2^-1074 relative to the largest, below n 2^-1070).
template <typename Scalar>
double row_squared_norm_bound(double computed, std::int64_t length) {
  const double n = static_cast<double>(length);
  const double unit = std::is_same_v<Scalar, float> ? kFloatUnit : kDoubleUnit;
  return squared_sum_bound(computed,
                           rounding_gamma(69.0, unit) + rounding_gamma(n / 1024.0 + 8.0, kDoubleUnit) +
                               rounding_gamma(n + 8.0, kDoubleUnit) + n * 0x1p-86,
                           0.0);
}

// What a clip factor for a dense row is computed from: an upper bound on the squared norm of the
// row's clipped copy as the code forms it (rounding_bounds.hpp).
template <typename Scalar>
double squared_norm_bound(double computed, std::int64_t length) {
  return dense_norm_bound(row_squared_norm_bound<Scalar>(computed, length),
                          std::is_same_v<Scalar, float> ? kFloatUnit : kDoubleUnit);
}

}  // namespace dpsgd::detail
