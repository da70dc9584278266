// Internal: bounds on the floating-point rounding of each clipping route, shared by the CPU code and
// the CUDA kernels. The squared norm a clip factor is computed from is an upper bound on the squared
// norm of what the example adds to the clipped sum as the code computes it, not as exact arithmetic
// would: every product, sum and conversion on the way is accounted for here.
#pragma once

#include <math.h>

#include "dpsgd/core/host_device.hpp"

namespace dpsgd::detail {

// Unit roundoff (half an ulp of 1) of float and double.
inline constexpr double kFloatUnit = 0x1p-24;
inline constexpr double kDoubleUnit = 0x1p-53;

// gamma_n = n u / (1 - n u) (Higham, "Accuracy and Stability of Numerical Algorithms", 2002, ch. 3):
// a sum or dot product of n terms, in any order and with or without fused multiply-adds, is within
// gamma_n of the exact value relative to the sum of the terms' magnitudes. +inf once n u >= 1/2.
DPSGD_HOST_DEVICE double rounding_gamma(double n, double unit) {
  const double nu = n * unit;
  return nu < 0.5 ? nu / (1.0 - nu) : INFINITY;
}

// The clip factor is C / sqrt(s) (or C / (sqrt(s) + gamma)) in double: the square root and the
// division round once each. Every bound below carries this factor to cover them.
inline constexpr double kFactorMargin = 1.0 + 8.0 * kDoubleUnit;

// (1 + u)^k for small k: a value rounded k times in a type of unit roundoff u.
DPSGD_HOST_DEVICE double rounding_growth(double unit, int times) {
  double g = 1.0;
  for (int k = 0; k < times; ++k) g *= 1.0 + unit;
  return g;
}

// An upper bound on a row's true squared norm from its computed sum of squares: `computed` is within a
// relative `sum_error` of the exact sum once `underflow` (an absolute bound on what squares below the
// smallest normal lost) is added back.
DPSGD_HOST_DEVICE double squared_sum_bound(double computed, double sum_error, double underflow) {
  return (computed + underflow) * (1.0 + sum_error);
}

// Dense rows: with `squared` an upper bound on the row's true squared norm (squared_sum_bound), its
// clipped copy fl(fl(c) v_j) in the row's type (unit roundoff `unit`; a factor below the type's
// smallest normal is applied in double instead) is at most (1 + u)^2 c |v_j| per element.
DPSGD_HOST_DEVICE double dense_norm_bound(double squared, double unit) {
  return squared * rounding_growth(unit, 4) * kFactorMargin;
}

// A linear layer with one position per example (T = 1): the weight gradient dy a^T has norm
// ||a|| ||dy||, the bias gradient is dy. With `activation` and `grad` upper bounds on ||a||^2 and
// ||dy||^2 (squared_sum_bound), the clipped GEMM forms fl(fl(fl(c) dy_j) a_k) once per entry (the other
// examples' rows add exact zeros when absent), the bias sum fl(fl(c) dy_j): at most (1 + u)^3 and
// (1 + u)^2 times c times the exact entries. Non-finite inputs give NaN.
DPSGD_HOST_DEVICE double plain_linear_norm_bound(double activation, double grad, bool has_bias, double unit) {
  if (!(activation < INFINITY && grad < INFINITY)) return NAN;
  const double weight = activation * grad * (1.0 + 2.0 * kDoubleUnit) * rounding_growth(unit, 6);
  const double bias = has_bias ? grad * rounding_growth(unit, 4) : 0.0;
  return (weight + bias) * kFactorMargin;
}

// A linear layer with T positions per example (sequence inputs, convolutions). With w = sum_t ||a_t||
// ||dy_t|| and w_b = sum_t ||dy_t||, the clipped GEMM sum_t fl(c dy_t) a_t^T over the example's
// contiguous rows errs by at most (gamma_(2T + 8) + 3u) c w (its T terms per entry, possibly split
// across the GEMM's blocks, plus the rounding of c dy), the bias sum by the same times w_b. So if
// weight_norm and bias_norm bound ||G^T A|| and ||sum_t dy_t||, what the example adds is at most c
// times sqrt(W^2 + B^2) with W = weight_norm (1 + u)^2 + (gamma + 3u) w and B likewise.
DPSGD_HOST_DEVICE double sequence_linear_norm_bound(double weight_norm, double bias_norm, double w, double w_bias,
                                                    double positions, double unit) {
  const double gemm = rounding_gamma(2.0 * positions + 8.0, unit) + 3.0 * unit;
  const double weight = weight_norm * rounding_growth(unit, 2) + gemm * w;
  const double bias = bias_norm * rounding_growth(unit, 2) + gemm * w_bias;
  return (weight * weight + bias * bias) * (1.0 + 4.0 * kDoubleUnit) * kFactorMargin;
}

// Bound on ||G^T A||_F from the Gram route computed in double: with P = A A^T and Q = G G^T formed by
// double GEMMs (each entry within gamma_(d) of the sum of the magnitudes, d = d_in or d_out) and their
// inner product summed in double over T^2 terms, |computed - exact| <= (gamma_(d_in) + gamma_(d_out) +
// gamma_(T^2)) w^2 (1 + small), because sum_(s,t) (|A||A|^T)_st (|G||G|^T)_st <= w^2. The cancellation
// that makes the Gram route's answer small is exactly what this term covers.
DPSGD_HOST_DEVICE double gram_weight_norm_bound(double computed_squared, double w, double in_features,
                                                double out_features, double positions) {
  const double error =
      (rounding_gamma(in_features + 2.0, kDoubleUnit) + rounding_gamma(out_features + 2.0, kDoubleUnit) +
       rounding_gamma(positions * positions + 2.0, kDoubleUnit)) *
      (1.0 + 1e-6);
  const double s = computed_squared > 0.0 ? computed_squared : 0.0;
  return sqrt((s + error * w * w) * (1.0 + 4.0 * kDoubleUnit)) * (1.0 + 2.0 * kDoubleUnit);
}

// Bound on ||G^T A||_F from the materialised route: M = fl(G^T A) in the layer's type (each entry within
// gamma_T of the sum of the magnitudes, which sum to at most w over the matrix in norm), its squared
// norm summed in double over `entries` terms.
DPSGD_HOST_DEVICE double materialised_weight_norm_bound(double computed_squared, double w, double entries,
                                                        double positions, double unit) {
  const double norm =
      sqrt(computed_squared * (1.0 + rounding_gamma(entries + 2.0, kDoubleUnit))) * (1.0 + 2.0 * kDoubleUnit);
  return norm + rounding_gamma(positions + 2.0, unit) * w;
}

}  // namespace dpsgd::detail
