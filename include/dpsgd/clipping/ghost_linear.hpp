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
#include "dpsgd/clipping/detail/norm_math.hpp"
#include "dpsgd/clipping/detail/row_norms.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/core/parallel.hpp"

namespace dpsgd {

// How the per-example weight-gradient norm of a layer with sequence inputs (T > 1) is computed.
enum class GhostNormMethod : int {
  kAuto = 0,         // whichever of the two below costs fewer flops for this layer's shape
  kGram = 1,         // ||G_i^T A_i||_F^2 = <A_i A_i^T, G_i G_i^T>: O(T^2 (d_in + d_out)) per example
  kMaterialize = 2,  // form G_i^T A_i (d_out x d_in) per example: O(T d_in d_out)
};

// The layout of one linear layer's saved tensors: activations A are (batch * positions) x in_features,
// output gradients dY are (batch * positions) x out_features, both row-major, example i owning rows
// [i * positions, (i + 1) * positions). positions = 1 for plain (non-sequence) inputs.
struct LinearLayerShape {
  std::int64_t batch = 0;
  std::int64_t positions = 1;
  std::int64_t in_features = 0;
  std::int64_t out_features = 0;
};

// Chooses the cheaper method for sequence inputs. Flop counts per example: the Gram route
// forms two T x T Gram matrices, T^2 (d_in + d_out) multiply-adds, plus T^2 for their inner
// product; materialising costs T d_in d_out. For T = 1 the norm factorises, so both collapse
// to ||a||^2 ||dy||^2 and kGram is returned.
inline GhostNormMethod choose_ghost_norm_method(const LinearLayerShape& shape) {
  const double t = static_cast<double>(shape.positions);
  const double gram = t * t * static_cast<double>(shape.in_features + shape.out_features + 1);
  const double materialize = t * static_cast<double>(shape.in_features) * static_cast<double>(shape.out_features);
  return (shape.positions == 1 || gram <= materialize) ? GhostNormMethod::kGram : GhostNormMethod::kMaterialize;
}

namespace detail {
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
}  // namespace detail

// squared_norms(i, group) += ||per-example gradient of W (and of b if has_bias) for example i||^2,
// computed from A and dY only. Examples are independent, so the result does not depend on the
// thread count. NaN or inf in an example's A or dY makes its squared norm non-finite, which
// compute_clip_factors turns into a dropped example.
template <typename Scalar>
void accumulate_linear_squared_norms(const ConstRowsRef<Scalar>& activations, const ConstRowsRef<Scalar>& output_grads,
                                     std::int64_t batch, bool has_bias, SquaredNorms& squared_norms, int group = 0,
                                     GhostNormMethod method = GhostNormMethod::kAuto) {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>);
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

  using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;
  using ScalarMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  // The products run in the input precision (float GEMMs are twice as fast) and the squared norms
  // are summed in double; if that overflows for finite inputs, the example is redone in double.
  const auto weight_squared_norm = [&](const auto& a, const auto& g) -> double {
    if (method == GhostNormMethod::kGram) {
      using M = Eigen::Matrix<typename std::decay_t<decltype(a)>::Scalar, Eigen::Dynamic, Eigen::Dynamic>;
      const M gram_a = a * a.transpose();
      const M gram_g = g * g.transpose();
      return detail::clamp_nonnegative_keep_nan(
          gram_a.template cast<double>().cwiseProduct(gram_g.template cast<double>()).sum());
    }
    return (g.transpose() * a).template cast<double>().squaredNorm();
  };
  const auto example_norm = [&](Eigen::Index i) {
    const auto a = activations.middleRows(i * t, t);
    const auto g = output_grads.middleRows(i * t, t);
    if (t == 1) {
      // The formula the GPU kernels use too; the row norms are the dense path's vectorised,
      // overflow-safe ones (a cast-to-double Eigen reduction does not vectorise and cost a third
      // of a logistic-regression step).
      squared_norms(i, group) += detail::plain_linear_squared_norm(
          detail::row_squared_norm(activations.data() + i * activations.outerStride(), shape.in_features),
          detail::row_squared_norm(output_grads.data() + i * output_grads.outerStride(), shape.out_features), has_bias);
      return;
    }
    double weight_sq;
    if (!a.allFinite() || !g.allFinite()) {
      // A non-finite input must surface as a non-finite norm even where 0 * inf would hide it.
      weight_sq = std::numeric_limits<double>::quiet_NaN();
    } else {
      weight_sq = weight_squared_norm(ScalarMatrix(a), ScalarMatrix(g));
      if (!std::isfinite(weight_sq))
        weight_sq = weight_squared_norm(Matrix(a.template cast<double>()), Matrix(g.template cast<double>()));
    }
    double bias_sq = 0.0;
    if (has_bias) bias_sq = g.template cast<double>().colwise().sum().squaredNorm();
    squared_norms(i, group) += weight_sq + bias_sq;
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
// padding or dropped examples never reaches the result. Deterministic for a fixed thread count
// (Eigen's GEMM partitions the output, not the reduction).
template <typename Scalar>
void accumulate_linear_clipped_gradient(const ConstRowsRef<Scalar>& activations,
                                        const ConstRowsRef<Scalar>& output_grads, std::int64_t batch,
                                        const Eigen::Ref<const Eigen::MatrixXd>& factors, int group,
                                        RowsRef<Scalar> weight_grad, std::span<Scalar> bias_grad) {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>);
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
  bool dirty_activations = false;
  const auto scale_example = [&](Eigen::Index i) {
    const double c = factors(i, group);
    if (c == 0.0) {
      scaled_grads.middleRows(i * t, t).setZero();
      return !detail::rows_finite(activations, i * t, t);
    }
    scaled_grads.middleRows(i * t, t) = static_cast<Scalar>(c) * output_grads.middleRows(i * t, t);
    return false;
  };
  // Examples are independent; a serial loop here left the second core idle between the GEMMs.
  if (detail::worth_parallel(static_cast<long long>(output_grads.size())) && batch > 1) {
#pragma omp parallel for schedule(static) reduction(|| : dirty_activations)
    for (Eigen::Index i = 0; i < batch; ++i) dirty_activations = scale_example(i) || dirty_activations;
  } else {
    for (Eigen::Index i = 0; i < batch; ++i) dirty_activations = scale_example(i) || dirty_activations;
  }
  if (dirty_activations) {
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
}

// Per-example bias gradients sum_t dy_it (batch x out_features): the whole per-example gradient of
// bias-only fine-tuning (DP-BiTFiT, Bu et al. 2022), small enough to clip as dense rows.
template <typename Scalar>
RowMajorMatrix<Scalar> linear_bias_per_example_gradients(const ConstRowsRef<Scalar>& output_grads, std::int64_t batch) {
  DPSGD_CHECK_ARG(batch >= 1, "batch must be >= 1, got " << batch);
  DPSGD_CHECK_ARG(
      output_grads.rows() % batch == 0 && output_grads.rows() > 0,
      "output_grads.rows() = " << output_grads.rows() << " must be a positive multiple of batch = " << batch);
  const Eigen::Index t = output_grads.rows() / batch;
  RowMajorMatrix<Scalar> result(batch, output_grads.cols());
  for (Eigen::Index i = 0; i < batch; ++i) result.row(i) = output_grads.middleRows(i * t, t).colwise().sum();
  return result;
}

}  // namespace dpsgd
