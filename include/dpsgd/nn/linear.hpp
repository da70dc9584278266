// nn::Linear: y = W a + b over (batch * positions) rows, keeping what ghost clipping needs.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>

#include "dpsgd/clipping/ghost_linear.hpp"
#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/layer.hpp"
#include "dpsgd/noise/gaussian_transform.hpp"

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

  // Uniform(-1/sqrt(in), 1/sqrt(in)) weights (the PyTorch default scale), zero bias; deterministic in seed.
  void initialize(std::uint64_t seed, std::uint32_t layer_index) override {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
    const PhiloxKey key = philox_key_from_seed(seed);
    for (std::int64_t j = 0; j < in_ * out_; ++j) {
      const PhiloxCounter bits = philox4x32_10(
          PhiloxCounter{{static_cast<std::uint32_t>(j), static_cast<std::uint32_t>(j >> 32), layer_index, 0x696e6974u}},
          key);
      params_[j] = static_cast<Scalar>(bound * (2.0 * uniform_open_from_bits(bits.v[0], bits.v[1]) - 1.0));
    }
    if (bias_) bias().setZero();
  }

  Eigen::Map<RowMajorMatrix<Scalar>> weight() { return {params_, out_, in_}; }
  Eigen::Map<const RowMajorMatrix<Scalar>> weight() const { return {params_, out_, in_}; }
  Eigen::Map<Eigen::Matrix<Scalar, 1, Eigen::Dynamic>> bias() { return {params_ + in_ * out_, out_}; }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) override {
    DPSGD_CHECK_ARG(input.cols() == in_, "input must have in_features = " << in_ << " columns, got " << input.cols());
    const Eigen::Index rows = input.rows();
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
    DPSGD_CHECK_ARG(output_grad.rows() == input_.rows() && output_grad.cols() == out_,
                    "output_grad must be " << input_.rows() << " x " << out_ << ", got " << output_grad.rows() << " x "
                                           << output_grad.cols());
    output_grad_ = output_grad;
    return output_grad * weight();
  }

  // Ghost norms of this layer's per-example gradients into column `group`.
  void accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms, int group) const override {
    accumulate_linear_squared_norms<Scalar>(input_, output_grad_, batch, bias_, squared_norms, group);
  }

  // grad_slice (this layer's slice of the model gradient) += sum_i c_i grad_i.
  void accumulate_clipped_gradient(std::int64_t batch, const Eigen::MatrixXd& factors, int group,
                                   std::span<Scalar> grad_slice) const override {
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(grad_slice.size()) == num_parameters(),
                    "grad_slice must have " << num_parameters() << " entries, got " << grad_slice.size());
    Eigen::Map<RowMajorMatrix<Scalar>> weight_grad(grad_slice.data(), out_, in_);
    accumulate_linear_clipped_gradient<Scalar>(input_, output_grad_, batch, factors, group, weight_grad,
                                               bias_ ? grad_slice.subspan(in_ * out_) : std::span<Scalar>{});
  }

 private:
  std::int64_t in_, out_;
  bool bias_;
  Scalar* params_ = nullptr;
  RowMajorMatrix<Scalar> input_;
  RowMajorMatrix<Scalar> output_grad_;
};

}  // namespace dpsgd::nn
