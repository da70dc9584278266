// Internal: small norm formulas shared by the CPU clipping code and the CUDA kernels.
#pragma once

#include <math.h>

#include "dpsgd/core/host_device.hpp"

namespace dpsgd::detail {

// Final step of the overflow-safe squared norm: given the largest magnitude m of a row and the sum
// of (v / m)^2, returns sum * m^2; a non-finite m means the row held inf or NaN.
DPSGD_HOST_DEVICE double rescaled_squared_norm_from(double max_abs, double scaled_sum_of_squares) {
  if (!(max_abs < INFINITY)) return max_abs * max_abs;  // inf or NaN
  if (max_abs == 0.0) return 0.0;
  return scaled_sum_of_squares * max_abs * max_abs;
}

}  // namespace dpsgd::detail
