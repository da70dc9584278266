// Ghost clipping for embedding tables: exact per-example gradient norms and the clipped gradient
// from token ids and output gradients, without materialising a vocab x d gradient per example.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/clipping/detail/ghost_embedding_impl.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/core/real_scalar.hpp"

namespace dpsgd {

// An embedding lookup y_s = W[t_s] over `batch` examples of T = tokens.size() / batch positions each
// (example i owns positions i T .. i T + T - 1). Example i's gradient of the table W (vocab x d) has
// row v equal to sum over its positions s with t_s = v of dy_s: positions with equal tokens add up
// before the norm is taken, which is what makes the norm exact (a sum over positions of ||dy_s||^2
// would undercount an example that repeats a token).
//   tokens:        batch T token ids; each unmasked one in [0, vocab_size).
//   output_grads:  batch T rows of d entries, row s the gradient of the loss with respect to y_s.
//   position_mask: empty (every position counts) or batch T entries, 0 for padding positions, whose
//                  token and output gradient are ignored (padding may use any id, even -1).

// squared_norms(i, group) += an upper bound on the squared norm of what
// accumulate_embedding_clipped_gradient adds for example i, rounding included (the group sums are
// formed in double, and every rounding after them is covered: detail/ghost_embedding_impl.hpp).
// O(T log T + T d) per example. NaN or inf in an example's unmasked output gradients makes its
// squared norm non-finite, which compute_clip_factors turns into a dropped example.
template <RealScalar Scalar>
void accumulate_embedding_squared_norms(std::span<const std::int32_t> tokens, const ConstRowsRef<Scalar>& output_grads,
                                        std::int64_t batch, std::int64_t vocab_size, SquaredNorms& squared_norms,
                                        int group = 0, std::span<const std::uint8_t> position_mask = {}) {
  const detail::EmbeddingShape shape =
      detail::check_embedding_arguments(tokens, output_grads, batch, vocab_size, position_mask);
  DPSGD_CHECK_ARG(squared_norms.rows() == batch,
                  "squared_norms must have batch = " << batch << " rows, got " << squared_norms.rows());
  DPSGD_CHECK_ARG(group >= 0 && group < squared_norms.cols(),
                  "group must be in [0, " << squared_norms.cols() << "), got " << group);
  detail::EmbeddingGroups groups;
  std::vector<double> sum;  // one group's summed output gradient, reused across examples
  for (std::int64_t i = 0; i < batch; ++i) {
    groups.collect(tokens, position_mask, shape, i);
    squared_norms(i, group) += detail::embedding_norm_bound<Scalar>(groups, output_grads, shape, sum);
  }
}

// table_grad (vocab x d, the layout of W) += sum_i c_i (example i's table gradient), c_i =
// factors(i, group). Each example's row for token v is its group sum in double, scaled by c_i in
// double and rounded once to Scalar (toward zero where the result would be subnormal), then added.
// Examples with c_i = 0 (padding, dropped, non-finite) add nothing, NaN included. Deterministic.
template <RealScalar Scalar>
void accumulate_embedding_clipped_gradient(std::span<const std::int32_t> tokens,
                                           const ConstRowsRef<Scalar>& output_grads, std::int64_t batch,
                                           std::int64_t vocab_size, const Eigen::Ref<const Eigen::MatrixXd>& factors,
                                           int group, RowsRef<Scalar> table_grad,
                                           std::span<const std::uint8_t> position_mask = {}) {
  const detail::EmbeddingShape shape =
      detail::check_embedding_arguments(tokens, output_grads, batch, vocab_size, position_mask);
  DPSGD_CHECK_ARG(factors.rows() == batch, "factors must have batch = " << batch << " rows, got " << factors.rows());
  DPSGD_CHECK_ARG(group >= 0 && group < factors.cols(),
                  "group must be in [0, " << factors.cols() << "), got " << group);
  DPSGD_CHECK_ARG(table_grad.rows() == vocab_size && table_grad.cols() == shape.width,
                  "table_grad must be vocab_size x d = " << vocab_size << " x " << shape.width << ", got "
                                                         << table_grad.rows() << " x " << table_grad.cols());
  detail::EmbeddingGroups groups;
  std::vector<double> sum(static_cast<std::size_t>(shape.width));
  for (std::int64_t i = 0; i < batch; ++i) {
    const double c = factors(i, group);
    if (c == 0.0) continue;
    groups.collect(tokens, position_mask, shape, i);
    for (std::size_t k = 0; k < groups.size(); ++k) {
      groups.sum(k, output_grads, shape, sum);
      Scalar* row = table_grad.data() + static_cast<std::int64_t>(groups.token(k)) * table_grad.outerStride();
      for (std::int64_t j = 0; j < shape.width; ++j) row[j] += detail::scaled_toward_zero<Scalar>(c, sum[j]);
    }
  }
}

}  // namespace dpsgd
