// Ghost clipping for linear layers y = W a + b: per-example gradient norms and the clipped gradient
// from activations and output gradients, without materialising per-example gradients.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/clipping/detail/ghost_linear_impl.hpp"
#include "dpsgd/clipping/detail/rounding_bounds.hpp"
#include "dpsgd/clipping/detail/row_norms.hpp"
#include "dpsgd/clipping/linear_layer_shape.hpp"
#include "dpsgd/clipping/linear_per_example_gradients.hpp"
#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/core/real_scalar.hpp"

namespace dpsgd {

// squared_norms(i, group) += ||per-example gradient of W (and of b if has_bias) for example i||^2,
// computed from A and dY only. What is added is an upper bound on the squared norm of what
// accumulate_linear_clipped_gradient will add for the example, rounding included
// (detail/rounding_bounds.hpp): exact up to ~1e-15 for T = 1; for sequences, the Gram route is formed
// in double and its cancellation error, the materialised route's and the clipped GEMM's rounding are
// bounded through w = sum_t ||a_t|| ||dy_t||, so an example whose per-position gradients cancel can
// never be released above its clip norm. Examples are independent, so the result does not depend on
// the thread count. NaN or inf in an example's A or dY makes its squared norm non-finite, which
// compute_clip_factors turns into a dropped example.
template <RealScalar Scalar>
void accumulate_linear_squared_norms(const ConstRowsRef<Scalar>& activations, const ConstRowsRef<Scalar>& output_grads,
                                     std::int64_t batch, bool has_bias, SquaredNorms& squared_norms, int group = 0,
                                     GhostNormMethod method = GhostNormMethod::kAuto) {
  detail::check_linear_factors(activations, output_grads, batch);
  DPSGD_CHECK_ARG(squared_norms.rows() == batch,
                  "squared_norms must have batch = " << batch << " rows, got " << squared_norms.rows());
  DPSGD_CHECK_ARG(group >= 0 && group < squared_norms.cols(),
                  "group must be in [0, " << squared_norms.cols() << "), got " << group);
  DPSGD_CHECK_ARG(
      method == GhostNormMethod::kAuto || method == GhostNormMethod::kGram || method == GhostNormMethod::kMaterialize,
      "method must be a GhostNormMethod, got " << static_cast<int>(method));
  const LinearLayerShape shape = detail::linear_shape(activations, output_grads, batch);
  if (method == GhostNormMethod::kAuto) method = choose_ghost_norm_method(shape);
  const Eigen::Index t = shape.positions;
  const auto example_norm = [&](Eigen::Index i) {
    if (t == 1) {
      // The formula the GPU kernels use too; the row norms are the dense path's vectorised,
      // overflow-safe ones (a cast-to-double Eigen reduction does not vectorise and cost a third
      // of a logistic-regression step).
      squared_norms(i, group) += detail::plain_linear_norm_bound(
          detail::row_squared_norm_bound<Scalar>(
              detail::row_squared_norm(activations.data() + i * activations.outerStride(), shape.in_features),
              shape.in_features),
          detail::row_squared_norm_bound<Scalar>(
              detail::row_squared_norm(output_grads.data() + i * output_grads.outerStride(), shape.out_features),
              shape.out_features),
          has_bias, detail::unit_of<Scalar>());
      return;
    }
    const auto a = activations.middleRows(i * t, t);
    const auto g = output_grads.middleRows(i * t, t);
    // A non-finite input must surface as a non-finite norm even where 0 * inf would hide it; a finite
    // one whose bound overflows double is dropped the same way (the only sound choice).
    squared_norms(i, group) += a.allFinite() && g.allFinite()
                                   ? detail::sequence_example_bound<Scalar>(a, g, has_bias, method)
                                   : std::numeric_limits<double>::quiet_NaN();
  };
  const long long work = static_cast<long long>(activations.rows()) * (shape.in_features + shape.out_features) * t;
  if (detail::worth_parallel(work) && batch > 1) {
#pragma omp parallel for schedule(static)
    for (Eigen::Index i = 0; i < batch; ++i) example_norm(i);
  } else {
    for (Eigen::Index i = 0; i < batch; ++i) example_norm(i);
  }
}

// weight_grad += sum_i c_i (sum_t dy_it a_it^T) = dY^T diag(c) A as one GEMM (d_out x d_in,
// row-major, the layout of W), and bias_grad += sum_i c_i sum_t dy_it when bias_grad is non-empty.
// c_i = factors(i, group). Rows of examples with c_i = 0 are zeroed before the GEMM, so NaN in
// padding or dropped examples never reaches the result. An example whose scaled output gradient
// would underflow (c dy below the smallest normal) is added apart, in double. Deterministic for a
// fixed thread count (Eigen's GEMM partitions the output, not the reduction).
template <RealScalar Scalar>
void accumulate_linear_clipped_gradient(const ConstRowsRef<Scalar>& activations,
                                        const ConstRowsRef<Scalar>& output_grads, std::int64_t batch,
                                        const Eigen::Ref<const Eigen::MatrixXd>& factors, int group,
                                        RowsRef<Scalar> weight_grad, std::span<Scalar> bias_grad) {
  detail::check_linear_factors(activations, output_grads, batch);
  DPSGD_CHECK_ARG(factors.rows() == batch, "factors must have batch = " << batch << " rows, got " << factors.rows());
  DPSGD_CHECK_ARG(group >= 0 && group < factors.cols(),
                  "group must be in [0, " << factors.cols() << "), got " << group);
  DPSGD_CHECK_ARG(weight_grad.rows() == output_grads.cols() && weight_grad.cols() == activations.cols(),
                  "weight_grad must be out_features x in_features = "
                      << output_grads.cols() << " x " << activations.cols() << ", got " << weight_grad.rows() << " x "
                      << weight_grad.cols());
  DPSGD_CHECK_ARG(
      bias_grad.empty() || static_cast<Eigen::Index>(bias_grad.size()) == output_grads.cols(),
      "bias_grad must be empty or have out_features = " << output_grads.cols() << " entries, got " << bias_grad.size());
  const Eigen::Index t = activations.rows() / batch;
  RowMajorMatrix<Scalar> scaled_grads(output_grads.rows(), output_grads.cols());
  // Per example: 0 = in the GEMM, 1 = dropped (factor 0) with non-finite activations, 2 = applied
  // apart (below).
  std::vector<std::uint8_t> kind(static_cast<std::size_t>(batch), 0);
  const auto scale_example = [&](Eigen::Index i) {
    const double c = factors(i, group);
    auto scaled = scaled_grads.middleRows(i * t, t);
    const auto g = output_grads.middleRows(i * t, t);
    if (c == 0.0) {
      scaled.setZero();
      kind[static_cast<std::size_t>(i)] = detail::rows_finite(activations, i * t, t) ? 0 : 1;
      return;
    }
    scaled = (static_cast<double>(static_cast<Scalar>(c)) == c || c >= 1.0)
                 ? (static_cast<Scalar>(c) * g).eval()
                 : (c * g.template cast<double>()).template cast<Scalar>().eval();
    // The bounds assume fl(c dy) is within a rounding of c dy relative to it. Where c dy falls below
    // the type's smallest normal (subnormal or 0 while dy is not), only an absolute precision is
    // left, which the GEMM could multiply by a large activation: such an example is applied apart,
    // in double.
    if (c != 1.0 && ((scaled.array().abs() < std::numeric_limits<Scalar>::min()) && (g.array() != Scalar(0))).any()) {
      scaled.setZero();
      kind[static_cast<std::size_t>(i)] = 2;
    }
  };
  // Examples are independent; a serial loop here left the second core idle between the GEMMs.
  if (detail::worth_parallel(static_cast<long long>(output_grads.size())) && batch > 1) {
#pragma omp parallel for schedule(static)
    for (Eigen::Index i = 0; i < batch; ++i) scale_example(i);
  } else {
    for (Eigen::Index i = 0; i < batch; ++i) scale_example(i);
  }
  if (std::find(kind.begin(), kind.end(), std::uint8_t{1}) != kind.end()) {
    // 0 * NaN is NaN: rows of dropped examples must be zero in A too, so copy A once and clean it.
    RowMajorMatrix<Scalar> clean = activations;
    for (Eigen::Index i = 0; i < batch; ++i) {
      if (factors(i, group) == 0.0) clean.middleRows(i * t, t).setZero();
    }
    weight_grad.noalias() += scaled_grads.transpose() * clean;
  } else {
    weight_grad.noalias() += scaled_grads.transpose() * activations;
  }
  if (!bias_grad.empty()) {
    Eigen::Map<Eigen::Matrix<Scalar, 1, Eigen::Dynamic>>(bias_grad.data(), output_grads.cols()) +=
        scaled_grads.colwise().sum();
  }
  // Examples applied apart: c (G^T A) formed in double and rounded once to Scalar per entry, within
  // the bounds the clip factor was computed from.
  for (Eigen::Index i = 0; i < batch; ++i) {
    if (kind[static_cast<std::size_t>(i)] != 2) continue;
    const double c = factors(i, group);
    const Eigen::MatrixXd g = output_grads.middleRows(i * t, t).template cast<double>();
    const Eigen::MatrixXd a = activations.middleRows(i * t, t).template cast<double>();
    weight_grad += (c * (g.transpose() * a)).template cast<Scalar>();
    if (!bias_grad.empty()) {
      Eigen::Map<Eigen::Matrix<Scalar, 1, Eigen::Dynamic>>(bias_grad.data(), output_grads.cols()) +=
          (c * g.colwise().sum()).template cast<Scalar>();
    }
  }
}

}  // namespace dpsgd
