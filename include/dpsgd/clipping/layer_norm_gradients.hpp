// layer_norm_per_example_gradients: the per-example gradients of a LayerNorm's scale and shift, as dense rows.
#pragma once

#include <cstdint>
#include <span>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/core/real_scalar.hpp"

namespace dpsgd {

// y_t = gamma * xhat_t + beta over d features (xhat_t the normalised input of position t). Example
// i's gradients are sum_t dy_t * xhat_t (for gamma) and sum_t dy_t (for beta): 2 d numbers, small
// enough to materialise, so they are clipped as dense rows (dense_clipping.hpp), whose bound covers
// the rows exactly as computed here. Row i of the result is [gamma part | beta part]; with
// has_shift false (no beta) it holds the gamma part only.
//   normalized:    batch T rows of d entries, xhat (T positions per example, contiguous).
//   output_grads:  batch T rows of d entries, dL/dy.
//   position_mask: empty, or batch T entries; positions with 0 (padding) add nothing, NaN included.
template <RealScalar Scalar>
RowMajorMatrix<Scalar> layer_norm_per_example_gradients(const ConstRowsRef<Scalar>& normalized,
                                                        const ConstRowsRef<Scalar>& output_grads, std::int64_t batch,
                                                        bool has_shift = true,
                                                        std::span<const std::uint8_t> position_mask = {}) {
  DPSGD_CHECK_ARG(batch >= 1, "batch must be >= 1, got " << batch);
  DPSGD_CHECK_ARG(normalized.rows() > 0 && normalized.rows() % batch == 0,
                  "normalized.rows() = " << normalized.rows() << " must be a positive multiple of batch = " << batch);
  DPSGD_CHECK_ARG(output_grads.rows() == normalized.rows() && output_grads.cols() == normalized.cols(),
                  "output_grads must be " << normalized.rows() << " x " << normalized.cols() << " like normalized, got "
                                          << output_grads.rows() << " x " << output_grads.cols());
  DPSGD_CHECK_ARG(
      position_mask.empty() || static_cast<Eigen::Index>(position_mask.size()) == normalized.rows(),
      "position_mask must be empty or have " << normalized.rows() << " entries, got " << position_mask.size());
  const Eigen::Index t = normalized.rows() / batch;
  const Eigen::Index d = normalized.cols();
  RowMajorMatrix<Scalar> result = RowMajorMatrix<Scalar>::Zero(batch, has_shift ? 2 * d : d);
  for (Eigen::Index i = 0; i < batch; ++i) {
    for (Eigen::Index s = i * t; s < (i + 1) * t; ++s) {
      if (!position_mask.empty() && position_mask[static_cast<std::size_t>(s)] == 0) continue;
      result.row(i).head(d) += output_grads.row(s).cwiseProduct(normalized.row(s));
      if (has_shift) result.row(i).tail(d) += output_grads.row(s);
    }
  }
  return result;
}

}  // namespace dpsgd
