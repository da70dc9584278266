// Internal: the loss and logit gradient of one row of softmax cross-entropy, shared by the losses.
#pragma once

#include <cmath>
#include <cstdint>

#include <Eigen/Core>

namespace dpsgd::detail {

// Returns -log softmax(logits)[target] and sets grad = softmax(logits) - e_target, both in double
// (the logits are shifted by their maximum first, so no exponential overflows).
template <typename Row>
double softmax_cross_entropy_row(const Row& logits, std::int32_t target, Eigen::RowVectorXd& grad) {
  const auto row = logits.template cast<double>();
  const double max_logit = row.maxCoeff();
  grad = (row.array() - max_logit).exp().matrix();
  const double normalizer = grad.sum();
  const double loss = std::log(normalizer) - (row(target) - max_logit);
  grad /= normalizer;
  grad(target) -= 1.0;
  return loss;
}

}  // namespace dpsgd::detail
