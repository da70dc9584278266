// nn::CausalSelfAttention: multi-head causal self-attention made of two sequence Linear layers (their
// ghost norms exist) around a parameter-free softmax(Q K^T / sqrt(d_head)) V.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/composite_block.hpp"
#include "dpsgd/nn/linear.hpp"

namespace dpsgd::nn {

// Inputs are `batch` sequences of T positions, rows (example, position) in that order, d_model
// columns. qkv = x Wqkv^T + b (d_model -> 3 d_model: queries, keys, values, head h in columns
// [h d_head, (h + 1) d_head) of each third), position t attends to positions s <= t of its own
// sequence only, and the heads' outputs go through proj (d_model -> d_model). Because attention is
// causal and confined to one example, padding placed at the end of a sequence never reaches a real
// position, and each example's gradient depends on its own rows only: per-example clipping holds.
template <typename Scalar>
class CausalSelfAttention final : public CompositeBlock<Scalar> {
 public:
  CausalSelfAttention(std::int64_t d_model, std::int64_t heads)
      : d_model_(d_model), heads_(heads), qkv_(d_model, 3 * d_model, true), proj_(d_model, d_model, true) {
    DPSGD_CHECK_ARG(heads >= 1 && d_model % heads == 0,
                    "heads must be >= 1 and divide d_model = " << d_model << ", got " << heads);
    this->register_part(qkv_);
    this->register_part(proj_);
  }

  Linear<Scalar>& qkv() { return qkv_; }
  Linear<Scalar>& proj() { return proj_; }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input, std::int64_t batch) {
    DPSGD_CHECK_ARG(batch >= 1 && input.rows() % batch == 0 && input.rows() > 0,
                    "input.rows() = " << input.rows() << " must be a positive multiple of batch = " << batch);
    batch_ = batch;
    positions_ = input.rows() / batch;
    qkv_out_ = qkv_.forward(input);
    probabilities_.resize(static_cast<std::size_t>(batch_ * heads_ * positions_ * positions_));
    RowMajorMatrix<Scalar> context(input.rows(), d_model_);
    for_each_head([&](std::int64_t b, std::int64_t h) { attend(b, h, context); });
    return proj_.forward(context);
  }

  RowMajorMatrix<Scalar> backward(const ConstRowsRef<Scalar>& output_grad) {
    DPSGD_CHECK_ARG(batch_ > 0, "call forward() before backward()");
    const RowMajorMatrix<Scalar> context_grad = proj_.backward(output_grad);
    RowMajorMatrix<Scalar> qkv_grad(qkv_out_.rows(), 3 * d_model_);
    for_each_head([&](std::int64_t b, std::int64_t h) { attend_backward(b, h, context_grad, qkv_grad); });
    return qkv_.backward(qkv_grad);
  }

 private:
  using Square = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  std::int64_t head_dim() const { return d_model_ / heads_; }
  Scalar scale() const { return static_cast<Scalar>(1.0 / std::sqrt(static_cast<double>(head_dim()))); }
  Eigen::Map<Square> probabilities(std::int64_t b, std::int64_t h) {
    return {probabilities_.data() + (b * heads_ + h) * positions_ * positions_, positions_, positions_};
  }

  // (example, head) pairs are independent: each writes its own blocks.
  template <typename Function>
  void for_each_head(const Function& function) {
    const std::int64_t pairs = batch_ * heads_;
    const bool parallel = detail::worth_parallel(static_cast<long long>(pairs) * positions_ * positions_ * head_dim());
#pragma omp parallel for schedule(static) if (parallel && pairs > 1)
    for (std::int64_t p = 0; p < pairs; ++p) function(p / heads_, p % heads_);
  }

  // P = causal softmax(Q K^T / sqrt(d_head)); context = P V.
  void attend(std::int64_t b, std::int64_t h, RowMajorMatrix<Scalar>& context) {
    const std::int64_t t = positions_, dh = head_dim();
    const auto q = qkv_out_.block(b * t, h * dh, t, dh);
    const auto k = qkv_out_.block(b * t, d_model_ + h * dh, t, dh);
    const auto v = qkv_out_.block(b * t, 2 * d_model_ + h * dh, t, dh);
    auto p = probabilities(b, h);
    p.noalias() = scale() * (q * k.transpose());
    for (std::int64_t row = 0; row < t; ++row) {
      const Scalar max_score = p.row(row).head(row + 1).maxCoeff();
      p.row(row).head(row + 1) = (p.row(row).head(row + 1).array() - max_score).exp().matrix();
      p.row(row).head(row + 1) /= p.row(row).head(row + 1).sum();
      p.row(row).tail(t - row - 1).setZero();
    }
    context.block(b * t, h * dh, t, dh).noalias() = p * v;
  }

  // With dO the context gradient: dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(P * dP)),
  // dQ = dS K / sqrt(d_head), dK = dS^T Q / sqrt(d_head).
  void attend_backward(std::int64_t b, std::int64_t h, const RowMajorMatrix<Scalar>& context_grad,
                       RowMajorMatrix<Scalar>& qkv_grad) {
    const std::int64_t t = positions_, dh = head_dim();
    const auto q = qkv_out_.block(b * t, h * dh, t, dh);
    const auto k = qkv_out_.block(b * t, d_model_ + h * dh, t, dh);
    const auto v = qkv_out_.block(b * t, 2 * d_model_ + h * dh, t, dh);
    const auto d_out = context_grad.block(b * t, h * dh, t, dh);
    const auto p = probabilities(b, h);
    qkv_grad.block(b * t, 2 * d_model_ + h * dh, t, dh).noalias() = p.transpose() * d_out;
    Square ds = d_out * v.transpose();
    for (std::int64_t row = 0; row < t; ++row) {
      const Scalar weighted = p.row(row).head(row + 1).dot(ds.row(row).head(row + 1));
      ds.row(row).head(row + 1) =
          (p.row(row).head(row + 1).array() * (ds.row(row).head(row + 1).array() - weighted)).matrix();
      ds.row(row).tail(t - row - 1).setZero();
    }
    qkv_grad.block(b * t, h * dh, t, dh).noalias() = scale() * (ds * k);
    qkv_grad.block(b * t, d_model_ + h * dh, t, dh).noalias() = scale() * (ds.transpose() * q);
  }

  std::int64_t d_model_, heads_;
  Linear<Scalar> qkv_, proj_;
  std::int64_t batch_ = 0, positions_ = 0;
  RowMajorMatrix<Scalar> qkv_out_;
  std::vector<Scalar> probabilities_;  // batch x heads x T x T
};

}  // namespace dpsgd::nn
