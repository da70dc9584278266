// Internal: shape checks and the per-example rounding bound of ghost_linear.hpp's routes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/clipping/detail/rounding_bounds.hpp"
#include "dpsgd/clipping/detail/row_norms.hpp"
#include "dpsgd/clipping/linear_layer_shape.hpp"
#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd::detail {

template <typename Scalar>
void check_linear_factors(const ConstRowsRef<Scalar>& activations, const ConstRowsRef<Scalar>& output_grads,
                          std::int64_t batch) {
  DPSGD_CHECK_ARG(batch >= 1, "batch must be >= 1, got " << batch);
  DPSGD_CHECK_ARG(activations.rows() == output_grads.rows(),
                  "activations and output_grads must have the same number of rows, got "
                      << activations.rows() << " and " << output_grads.rows());
  DPSGD_CHECK_ARG(activations.rows() % batch == 0 && activations.rows() > 0,
                  "activations.rows() = " << activations.rows() << " must be a positive multiple of batch = " << batch);
  DPSGD_CHECK_ARG(activations.cols() >= 1 && output_grads.cols() >= 1, "in_features and out_features must be >= 1, got "
                                                                           << activations.cols() << " and "
                                                                           << output_grads.cols());
}

template <typename Scalar>
LinearLayerShape linear_shape(const ConstRowsRef<Scalar>& activations, const ConstRowsRef<Scalar>& output_grads,
                              std::int64_t batch) {
  return LinearLayerShape{batch, activations.rows() / batch, activations.cols(), output_grads.cols()};
}

// Whether every entry of rows [first, first + count) is finite.
template <typename Scalar>
bool rows_finite(const ConstRowsRef<Scalar>& m, Eigen::Index first, Eigen::Index count) {
  return m.middleRows(first, count).allFinite();
}

// Unit roundoff of the layer's type.
template <typename Scalar>
constexpr double unit_of() {
  return std::is_same_v<Scalar, float> ? kFloatUnit : kDoubleUnit;
}

// The bound that sets example i's clip factor for a sequence layer (T > 1): its weight gradient's norm
// by the chosen route plus each route's rounding, its bias gradient's norm, and the rounding of the
// clipped GEMM and bias sum, all from rounding_bounds.hpp. a and g are the example's T rows.
template <typename Scalar, typename Rows>
double sequence_example_bound(const Rows& a, const Rows& g, bool has_bias, GhostNormMethod method) {
  using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;
  using ScalarMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  const Eigen::Index t = a.rows(), d_in = a.cols(), d_out = g.cols();
  // w = sum_t ||a_t|| ||dy_t|| and w_b = sum_t ||dy_t||, from row norms bounded from above: the
  // vectorised, overflow-safe row norms of the dense path with their bound (row_norms.hpp).
  double w = 0.0, w_bias = 0.0;
  for (Eigen::Index p = 0; p < t; ++p) {
    const double na =
        std::sqrt(row_squared_norm_bound<Scalar>(row_squared_norm(a.data() + p * a.outerStride(), d_in), d_in));
    const double ng =
        std::sqrt(row_squared_norm_bound<Scalar>(row_squared_norm(g.data() + p * g.outerStride(), d_out), d_out));
    w += na * ng;
    w_bias += ng;
  }
  w *= 1.0 + rounding_gamma(static_cast<double>(t) + 2.0, kDoubleUnit);
  w_bias *= 1.0 + rounding_gamma(static_cast<double>(t) + 2.0, kDoubleUnit);
  double weight_norm;
  if (method == GhostNormMethod::kGram) {
    // In double: a float Gram product loses everything to cancellation when an example's
    // per-position gradients cancel, and the bound below would then be useless.
    const Matrix ad = a.template cast<double>(), gd = g.template cast<double>();
    const Matrix gram_a = ad * ad.transpose();
    const Matrix gram_g = gd * gd.transpose();
    weight_norm = gram_weight_norm_bound(gram_a.cwiseProduct(gram_g).sum(), w, static_cast<double>(d_in),
                                         static_cast<double>(d_out), static_cast<double>(t));
  } else {
    const ScalarMatrix product = g.transpose() * a;  // the blocks in place: no copies
    weight_norm =
        materialised_weight_norm_bound(product.template cast<double>().squaredNorm(), w,
                                       static_cast<double>(d_in * d_out), static_cast<double>(t), unit_of<Scalar>());
  }
  double bias_norm = 0.0;
  if (has_bias) {
    bias_norm = g.template cast<double>().colwise().sum().norm() * (1.0 + 4.0 * kDoubleUnit) +
                rounding_gamma(static_cast<double>(t) + static_cast<double>(d_out) + 2.0, kDoubleUnit) * w_bias;
  } else {
    w_bias = 0.0;
  }
  return sequence_linear_norm_bound(weight_norm, bias_norm, w, w_bias, static_cast<double>(t), unit_of<Scalar>());
}

}  // namespace dpsgd::detail
