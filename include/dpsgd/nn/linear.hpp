// nn::Linear: y = W a + b over (batch * positions) rows, keeping what ghost clipping needs.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/clipping/ghost_linear.hpp"
#include "dpsgd/clipping/linear_layer_shape.hpp"
#include "dpsgd/clipping/linear_per_example_gradients.hpp"
#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/detail/initialization.hpp"
#include "dpsgd/nn/layer.hpp"

namespace dpsgd::nn {

// Parameters live in a flat buffer owned by the model (W row-major out x in, then b), so one noise
// stream and one optimiser cover the whole model. forward() keeps the input activations and
// backward() the output gradients: the two factors of ghost clipping.
template <typename Scalar>
class Linear : public Layer<Scalar> {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true)
      : in_(in_features), out_(out_features), bias_(bias) {
    DPSGD_CHECK_ARG(in_features >= 1, "in_features must be >= 1, got " << in_features);
    DPSGD_CHECK_ARG(out_features >= 1, "out_features must be >= 1, got " << out_features);
  }

  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  bool has_bias() const { return bias_; }
  std::int64_t num_parameters() const override { return in_ * out_ + (bias_ ? out_ : 0); }

  // Points the layer at its slice of the model's parameter buffer.
  void bind(Scalar* parameters) override { params_ = parameters; }

  // Freezes the weight or the bias (fine-tuning): a frozen part gets no gradient and no noise, and a
  // frozen weight spares the copy of the input kept for its ghost norm. Both trainable by default.
  void set_trainable(bool weight, bool bias) {
    DPSGD_CHECK_ARG(!bias || bias_, "set_trainable: the layer has no bias to train");
    weight_trainable_ = weight;
    bias_trainable_ = bias && bias_;
  }
  bool weight_trainable() const { return weight_trainable_; }
  bool bias_trainable() const { return bias_trainable_; }
  std::vector<ParameterRange> trainable_ranges() const override {
    std::vector<ParameterRange> ranges;
    if (weight_trainable_) ranges.push_back({0, in_ * out_});
    if (bias_trainable_) ranges.push_back({in_ * out_, out_});
    return ranges;
  }

  // Uniform(-1/sqrt(in), 1/sqrt(in)) weights (the PyTorch default scale), zero bias; deterministic in seed.
  void initialize(std::uint64_t seed, std::uint32_t layer_index) override {
    detail::uniform_initialize(std::span<Scalar>(params_, static_cast<std::size_t>(in_ * out_)),
                               1.0 / std::sqrt(static_cast<double>(in_)), seed, layer_index);
    if (bias_) bias().setZero();
  }

  Eigen::Map<RowMajorMatrix<Scalar>> weight() { return {params_, out_, in_}; }
  Eigen::Map<const RowMajorMatrix<Scalar>> weight() const { return {params_, out_, in_}; }
  Eigen::Map<Eigen::Matrix<Scalar, 1, Eigen::Dynamic>> bias() { return {params_ + in_ * out_, out_}; }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) override {
    DPSGD_CHECK_ARG(input.cols() == in_, "input must have in_features = " << in_ << " columns, got " << input.cols());
    const Eigen::Index rows = input.rows();
    rows_ = rows;
    rows_batch_ = 0;
    if (!weight_trainable_) return frozen_forward(input);
    input_.resize(rows, in_);
    RowMajorMatrix<Scalar> output(rows, out_);
    const Eigen::Map<const Eigen::Matrix<Scalar, 1, Eigen::Dynamic>> bias_row(params_ + in_ * out_, out_);
    // The copy of the input (kept for ghost clipping) and the bias rows, split over the threads;
    // then one GEMM adds W a on top of the bias (beta = 1 in BLAS terms).
    const auto prepare = [&](Eigen::Index i) {
      input_.row(i) = input.row(i);
      if (bias_) {
        output.row(i) = bias_row;
      } else {
        output.row(i).setZero();
      }
    };
    if (detail::worth_parallel(static_cast<long long>(rows) * (in_ + out_)) && rows > 1) {
#pragma omp parallel for schedule(static)
      for (Eigen::Index i = 0; i < rows; ++i) prepare(i);
    } else {
      for (Eigen::Index i = 0; i < rows; ++i) prepare(i);
    }
    output.noalias() += input_ * weight().transpose();
    return output;
  }

  // Returns dL/d input; keeps dL/d output for the gradient functions below.
  RowMajorMatrix<Scalar> backward(const ConstRowsRef<Scalar>& output_grad) override {
    backward_parameters_only(output_grad);
    return output_grad * weight();
  }
  void backward_parameters_only(const ConstRowsRef<Scalar>& output_grad) override {
    DPSGD_CHECK_ARG(output_grad.rows() == rows_ && output_grad.cols() == out_,
                    "output_grad must be " << rows_ << " x " << out_ << ", got " << output_grad.rows() << " x "
                                           << output_grad.cols());
    if (weight_trainable_ || bias_trainable_) output_grad_ = output_grad;
    rows_batch_ = 0;
  }

  // Squared norms of this layer's per-example gradients (of its trainable parts) into column `group`:
  // ghost norms, or the norms of dense per-example rows where those are kept (see uses_rows).
  void accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms, int group) const override {
    if (uses_rows(batch)) {
      dpsgd::accumulate_squared_norms<Scalar>(per_example_rows(batch), squared_norms, group);
    } else if (weight_trainable_) {
      accumulate_linear_squared_norms<Scalar>(input_, output_grad_, batch, bias_trainable_, squared_norms, group);
    }
  }

  // grad_slice (this layer's slice of the model gradient) += sum_i c_i grad_i.
  void accumulate_clipped_gradient(std::int64_t batch, const Eigen::MatrixXd& factors, int group,
                                   std::span<Scalar> grad_slice) const override {
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(grad_slice.size()) == num_parameters(),
                    "grad_slice must have " << num_parameters() << " entries, got " << grad_slice.size());
    const std::span<Scalar> bias_grad = bias_trainable_ ? grad_slice.subspan(in_ * out_) : std::span<Scalar>{};
    if (rows_batch_ == batch) {
      // The norms were taken from kept rows: the sum must add those same rows.
      accumulate_clipped_sum<Scalar>(
          rows_cache_, factors, group,
          weight_trainable_ ? grad_slice.first(static_cast<std::size_t>(rows_cache_.cols())) : bias_grad);
      rows_batch_ = 0;  // formed again after the next backward pass
    } else if (weight_trainable_) {
      Eigen::Map<RowMajorMatrix<Scalar>> weight_grad(grad_slice.data(), out_, in_);
      accumulate_linear_clipped_gradient<Scalar>(input_, output_grad_, batch, factors, group, weight_grad, bias_grad);
    } else if (bias_trainable_) {
      accumulate_clipped_sum<Scalar>(linear_bias_per_example_gradients<Scalar>(output_grad_, batch), factors, group,
                                     bias_grad);
    }
  }

  // Most bytes of per-example gradient rows the layer may keep between the norms and the clipped sum
  // (default 64 MiB); 0 always takes the ghost route. See uses_rows.
  void set_per_example_rows_limit(std::int64_t bytes) {
    DPSGD_CHECK_ARG(bytes >= 0, "per-example rows limit must be >= 0 bytes, got " << bytes);
    rows_limit_bytes_ = bytes;
  }

 private:
  // Dense per-example rows instead of ghost norms: always for bias-only training (out_features numbers
  // per example); for sequences where per_example_rows_cheaper says so (linear_layer_shape.hpp) and
  // batch x (d_out d_in + d_out) fits the limit: each example's d_out x d_in product is formed once,
  // its norm taken, and the clipped sum is a scaled addition of the kept rows, not a second GEMM.
  bool uses_rows(std::int64_t batch) const {
    if (!weight_trainable_) return bias_trainable_;
    const std::int64_t width = in_ * out_ + (bias_trainable_ ? out_ : 0);
    return rows_ > batch && per_example_rows_cheaper({batch, rows_ / batch, in_, out_}) &&
           batch * width * static_cast<std::int64_t>(sizeof(Scalar)) <= rows_limit_bytes_;
  }

  // The rows of the last backward pass, formed once for the norms and reused for the clipped sum.
  const RowMajorMatrix<Scalar>& per_example_rows(std::int64_t batch) const {
    if (rows_batch_ != batch) {
      rows_cache_ = weight_trainable_
                        ? linear_per_example_gradients<Scalar>(input_, output_grad_, batch, bias_trainable_)
                        : linear_bias_per_example_gradients<Scalar>(output_grad_, batch);
      rows_batch_ = batch;
    }
    return rows_cache_;
  }

  RowMajorMatrix<Scalar> frozen_forward(const ConstRowsRef<Scalar>& input) const {
    RowMajorMatrix<Scalar> output = input * weight().transpose();
    if (bias_)
      output.rowwise() += Eigen::Map<const Eigen::Matrix<Scalar, 1, Eigen::Dynamic>>(params_ + in_ * out_, out_);
    return output;
  }

  std::int64_t in_, out_;
  bool bias_;
  bool weight_trainable_ = true, bias_trainable_ = bias_;
  Scalar* params_ = nullptr;
  Eigen::Index rows_ = 0;
  RowMajorMatrix<Scalar> input_;
  RowMajorMatrix<Scalar> output_grad_;
  std::int64_t rows_limit_bytes_ = std::int64_t{64} << 20;
  // A cache filled by the const clipping calls: 0 = empty, else the batch it was formed for.
  mutable std::int64_t rows_batch_ = 0;
  mutable RowMajorMatrix<Scalar> rows_cache_;
};

}  // namespace dpsgd::nn
