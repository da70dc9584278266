// Internal: small norm formulas shared by the CPU clipping code and the CUDA kernels.
#pragma once

#include <math.h>

#include "dpsgd/core/host_device.hpp"

namespace dpsgd::detail {

// max(0, s) that keeps NaN: std::max(0.0, NaN) is 0.0, which would turn a failed (overflowed)
// Gram product into a zero norm and let the example through unclipped.
DPSGD_HOST_DEVICE double clamp_nonnegative_keep_nan(double s) { return s < 0.0 ? 0.0 : s; }

// The per-example squared gradient norm of a linear layer with one position (T = 1): the weight
// gradient dy a^T has Frobenius norm ||a|| ||dy||, and the bias gradient is dy itself. Non-finite
// inputs give NaN (never a product like inf * 0 that could read as finite).
DPSGD_HOST_DEVICE double plain_linear_squared_norm(double activation_squared_norm, double output_grad_squared_norm,
                                                   bool has_bias) {
  if (!(activation_squared_norm < INFINITY && output_grad_squared_norm < INFINITY)) return NAN;
  return activation_squared_norm * output_grad_squared_norm + (has_bias ? output_grad_squared_norm : 0.0);
}

// Final step of the overflow-safe squared norm: given the largest magnitude m of a row and the sum
// of (v / m)^2, returns sum * m^2; a non-finite m means the row held inf or NaN.
DPSGD_HOST_DEVICE double rescaled_squared_norm_from(double max_abs, double scaled_sum_of_squares) {
  if (!(max_abs < INFINITY)) return max_abs * max_abs;  // inf or NaN
  if (max_abs == 0.0) return 0.0;
  return scaled_sum_of_squares * max_abs * max_abs;
}

}  // namespace dpsgd::detail
