// Internal: the vector loops of dense clipping (sum of squares of a chunk, scaled add), compiled in
// src/row_kernels.cpp.
#pragma once

#include <cstdint>

namespace dpsgd::detail {

// sum_j values[j]^2 in the values' own precision, over 16 interleaved partial sums added in a
// fixed order: the same bits on every CPU and vector width. Overflows to inf for huge rows
// (callers rescue those); NaN in, NaN out.
double sum_of_squares(const float* values, std::int64_t count);
double sum_of_squares(const double* values, std::int64_t count);

// out[j] += factor * values[j] for j < count.
void scaled_add(float* out, const float* values, float factor, std::int64_t count);
void scaled_add(double* out, const double* values, double factor, std::int64_t count);

}  // namespace dpsgd::detail
