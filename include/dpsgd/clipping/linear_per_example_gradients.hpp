// Per-example gradients of a linear layer formed as dense rows, for the routes where keeping them is
// cheaper than a ghost norm followed by a second, clipped GEMM.
#pragma once

#include <cstdint>

#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd {

// Row i = example i's gradient: vec(sum_t dy_it a_it^T) (out_features x in_features, row-major, the
// layout of W), followed by sum_t dy_it when with_bias. Activations and output gradients are
// (batch * T) rows, example i owning rows [i T, (i + 1) T). The rows are what the caller clips, so the
// dense path's guarantee (dense_clipping.hpp: each example adds at most C to the sum, rounding
// included) holds for them as computed; a row that overflows is non-finite and its example dropped.
// Examples are formed independently: the result does not depend on the thread count.
template <typename Scalar>
RowMajorMatrix<Scalar> linear_per_example_gradients(const ConstRowsRef<Scalar>& activations,
                                                    const ConstRowsRef<Scalar>& output_grads, std::int64_t batch,
                                                    bool with_bias) {
  DPSGD_CHECK_ARG(batch >= 1, "batch must be >= 1, got " << batch);
  DPSGD_CHECK_ARG(
      activations.rows() == output_grads.rows() && activations.rows() % batch == 0 && activations.rows() > 0,
      "activations and output_grads must have the same positive multiple of batch = "
          << batch << " rows, got " << activations.rows() << " and " << output_grads.rows());
  const Eigen::Index t = activations.rows() / batch;
  const Eigen::Index in = activations.cols(), out = output_grads.cols();
  const Eigen::Index width = out * in + (with_bias ? out : 0);
  RowMajorMatrix<Scalar> rows(batch, width);
  const auto example = [&](Eigen::Index i) {
    const auto a = activations.middleRows(i * t, t);
    const auto g = output_grads.middleRows(i * t, t);
    Eigen::Map<RowMajorMatrix<Scalar>>(rows.data() + i * width, out, in).noalias() = g.transpose() * a;
    if (with_bias) {
      Eigen::Map<Eigen::Matrix<Scalar, 1, Eigen::Dynamic>>(rows.data() + i * width + out * in, out) = g.colwise().sum();
    }
  };
  if (detail::worth_parallel(static_cast<long long>(batch) * width * t) && batch > 1) {
#pragma omp parallel for schedule(static)
    for (Eigen::Index i = 0; i < batch; ++i) example(i);
  } else {
    for (Eigen::Index i = 0; i < batch; ++i) example(i);
  }
  return rows;
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
