// Internal: the vector loops of dense clipping (sum of squares of a chunk, scaled add), compiled in
// src/row_kernels.cpp.
#pragma once

#include <cstdint>

namespace dpsgd::detail {

// sum_j values[j]^2 in the values' own precision, over 16 interleaved partial sums added in a
// fixed order: the same bits on every CPU and vector width. Each element passes through at most
// count / 16 + 5 roundings (its square, its lane's additions, the 4-level tree). Overflows to inf for
// huge rows (callers rescue those); squares below the smallest normal lose up to 2^-150 (float) or
// 2^-1075 (double) each; NaN in, NaN out.
double sum_of_squares(const float* values, std::int64_t count);
double sum_of_squares(const double* values, std::int64_t count);

// out[j] += factor * values[j] for j < count.
void scaled_add(float* out, const float* values, float factor, std::int64_t count);
void scaled_add(double* out, const double* values, double factor, std::int64_t count);
// out[j] += float(factor * double(values[j])): for a factor below float's smallest normal.
void scaled_add_wide(float* out, const float* values, double factor, std::int64_t count);

// Adds factor * values to out in Scalar with a relative error of at most two roundings per element:
// a factor that would be subnormal in Scalar is applied in double instead (subnormals keep an
// absolute, not relative, precision).
inline void scaled_add_factor(float* out, const float* values, double factor, std::int64_t count) {
  if (factor < 0x1p-125) {
    scaled_add_wide(out, values, factor, count);
  } else {
    scaled_add(out, values, static_cast<float>(factor), count);
  }
}
inline void scaled_add_factor(double* out, const double* values, double factor, std::int64_t count) {
  scaled_add(out, values, factor, count);
}

}  // namespace dpsgd::detail
