// nn::token_cross_entropy: next-token losses of a batch of sequences, and their per-example gradients.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/detail/softmax_row.hpp"

namespace dpsgd::nn {

template <typename Scalar>
struct TokenLoss {
  double total_loss = 0.0;             // sum over real positions of -log p(target), in nats
  std::int64_t num_tokens = 0;         // real (unmasked) positions
  RowMajorMatrix<Scalar> logit_grads;  // per position; 0 at padding
};

// One example is one sequence (one record): its loss is the MEAN over its real positions of
// -log softmax(logits_s)[target_s], so that a long record weighs no more than a short one before
// clipping. logit_grads hold each example's own gradient (not divided by the batch size), as
// per-example clipping needs. Positions with mask 0 get zero loss and gradient; their targets are
// not read. `batch` sequences of T = logits.rows() / batch positions each.
template <typename Scalar>
TokenLoss<Scalar> token_cross_entropy(const ConstRowsRef<Scalar>& logits, std::span<const std::int32_t> targets,
                                      std::span<const std::uint8_t> position_mask, std::int64_t batch) {
  const Eigen::Index rows = logits.rows(), vocab = logits.cols();
  DPSGD_CHECK_ARG(batch >= 1 && rows > 0 && rows % batch == 0,
                  "logits.rows() = " << rows << " must be a positive multiple of batch = " << batch);
  DPSGD_CHECK_ARG(vocab >= 2, "logits must have at least 2 columns, got " << vocab);
  DPSGD_CHECK_ARG(static_cast<Eigen::Index>(targets.size()) == rows,
                  "targets.size() must equal logits.rows() = " << rows << ", got " << targets.size());
  DPSGD_CHECK_ARG(static_cast<Eigen::Index>(position_mask.size()) == rows,
                  "position_mask.size() must equal logits.rows() = " << rows << ", got " << position_mask.size());
  const Eigen::Index t = rows / batch;
  TokenLoss<Scalar> result;
  result.logit_grads.setZero(rows, vocab);
  Eigen::RowVectorXd grad;
  for (Eigen::Index i = 0; i < batch; ++i) {
    std::int64_t length = 0;
    for (Eigen::Index s = i * t; s < (i + 1) * t; ++s) length += position_mask[static_cast<std::size_t>(s)] != 0;
    if (length == 0) continue;
    const double weight = 1.0 / static_cast<double>(length);
    for (Eigen::Index s = i * t; s < (i + 1) * t; ++s) {
      if (position_mask[static_cast<std::size_t>(s)] == 0) continue;
      const std::int32_t target = targets[static_cast<std::size_t>(s)];
      DPSGD_CHECK_ARG(target >= 0 && target < vocab,
                      "targets[" << s << "] must be in [0, " << vocab << "), got " << target);
      result.total_loss += detail::softmax_cross_entropy_row(logits.row(s), target, grad);
      result.logit_grads.row(s) = (weight * grad).template cast<Scalar>();
    }
    result.num_tokens += length;
  }
  return result;
}

}  // namespace dpsgd::nn
