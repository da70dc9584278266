// nn::softmax_cross_entropy: per-example losses and their gradients with respect to the logits.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/detail/softmax_row.hpp"

namespace dpsgd::nn {

template <typename Scalar>
struct LossAndGradient {
  double total_loss = 0.0;             // sum of the losses of real (mask 1) examples
  std::int64_t num_examples = 0;       // real examples
  RowMajorMatrix<Scalar> logit_grads;  // row i: d loss_i / d logits_i (NOT divided by the batch size); 0 for padding
};

// Loss of example i is -log softmax(logits_i)[label_i]. Each row's gradient is that example's own
// gradient, which is what per-example clipping needs. Padding rows (mask 0) get loss and gradient 0
// and their labels are not read.
template <typename Scalar>
LossAndGradient<Scalar> softmax_cross_entropy(const ConstRowsRef<Scalar>& logits, std::span<const std::int32_t> labels,
                                              std::span<const std::uint8_t> mask) {
  const Eigen::Index batch = logits.rows();
  const Eigen::Index classes = logits.cols();
  DPSGD_CHECK_ARG(batch >= 1 && classes >= 2,
                  "logits must be batch x classes with batch >= 1 and classes >= 2, got " << batch << " x " << classes);
  DPSGD_CHECK_ARG(static_cast<Eigen::Index>(labels.size()) == batch,
                  "labels.size() must equal the batch size " << batch << ", got " << labels.size());
  DPSGD_CHECK_ARG(static_cast<Eigen::Index>(mask.size()) == batch,
                  "mask.size() must equal the batch size " << batch << ", got " << mask.size());
  LossAndGradient<Scalar> result;
  result.logit_grads.setZero(batch, classes);
  Eigen::RowVectorXd grad;
  for (Eigen::Index i = 0; i < batch; ++i) {
    if (mask[static_cast<std::size_t>(i)] == 0) continue;
    const std::int32_t label = labels[static_cast<std::size_t>(i)];
    DPSGD_CHECK_ARG(label >= 0 && label < classes,
                    "labels[" << i << "] must be in [0, " << classes << "), got " << label);
    result.total_loss += detail::softmax_cross_entropy_row(logits.row(i), label, grad);
    result.logit_grads.row(i) = grad.template cast<Scalar>();
    ++result.num_examples;
  }
  return result;
}

}  // namespace dpsgd::nn
