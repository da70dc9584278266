// nn::LayerNorm: y = gamma * (x - mean) / sqrt(var + eps) + beta per row, with per-example gradients of
// gamma and beta as dense rows.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "dpsgd/clipping/dense_clipping.hpp"
#include "dpsgd/clipping/layer_norm_gradients.hpp"
#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/nn/layer.hpp"

namespace dpsgd::nn {

// Normalises each row (one position of one example) over its `dim` features. Parameters: gamma
// (dim, starts at 1), then beta (dim, starts at 0). An example's gradient of them is 2 dim numbers,
// so it is formed (clipping/layer_norm_gradients.hpp) and clipped as a dense row; rows of padding
// positions (set_position_mask) add nothing.
template <typename Scalar>
class LayerNorm final : public Layer<Scalar> {
 public:
  explicit LayerNorm(std::int64_t dim, double eps = 1e-5) : dim_(dim), eps_(eps) {
    DPSGD_CHECK_ARG(dim >= 1, "dim must be >= 1, got " << dim);
    DPSGD_CHECK_ARG(std::isfinite(eps) && eps > 0.0, "eps must be finite and > 0, got " << eps);
  }

  std::int64_t num_parameters() const override { return 2 * dim_; }
  void bind(Scalar* parameters) override { params_ = parameters; }
  void initialize(std::uint64_t /*seed*/, std::uint32_t /*layer_index*/) override {
    std::fill(params_, params_ + dim_, Scalar{1});
    std::fill(params_ + dim_, params_ + 2 * dim_, Scalar{0});
  }
  // Freezes gamma or beta (DP-BiTFiT trains beta only).
  void set_trainable(bool scale, bool shift) {
    scale_trainable_ = scale;
    shift_trainable_ = shift;
  }
  std::vector<ParameterRange> trainable_ranges() const override {
    std::vector<ParameterRange> ranges;
    if (scale_trainable_) ranges.push_back({0, dim_});
    if (shift_trainable_) ranges.push_back({dim_, dim_});
    return ranges;
  }
  // The positions that are padding (0) in the next backward pass; empty: none. The span must outlive it.
  void set_position_mask(std::span<const std::uint8_t> mask) { position_mask_ = mask; }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) override {
    DPSGD_CHECK_ARG(input.cols() == dim_, "input must have dim = " << dim_ << " columns, got " << input.cols());
    const Eigen::Index rows = input.rows();
    normalized_.resize(rows, dim_);
    inverse_std_.resize(rows);
    RowMajorMatrix<Scalar> output(rows, dim_);
    const Eigen::Map<const Eigen::Array<Scalar, 1, Eigen::Dynamic>> gamma(params_, dim_), beta(params_ + dim_, dim_);
    // Mean and variance in double: a row with a large common offset must not lose its variance.
    const auto normalize = [&](Eigen::Index i) {
      const Eigen::ArrayXd x = input.row(i).template cast<double>().transpose().array();
      const double mean = x.mean();
      const double variance = (x - mean).square().mean();
      const double inverse_std = 1.0 / std::sqrt(variance + eps_);
      inverse_std_(i) = inverse_std;
      normalized_.row(i) = ((x - mean) * inverse_std).template cast<Scalar>().transpose().matrix();
      output.row(i) = (normalized_.row(i).array() * gamma + beta).matrix();
    };
    run_rows(rows, normalize);
    return output;
  }

  RowMajorMatrix<Scalar> backward(const ConstRowsRef<Scalar>& output_grad) override {
    DPSGD_CHECK_ARG(output_grad.rows() == normalized_.rows() && output_grad.cols() == dim_,
                    "output_grad must be " << normalized_.rows() << " x " << dim_ << ", got " << output_grad.rows()
                                           << " x " << output_grad.cols());
    if (scale_trainable_ || shift_trainable_) output_grad_ = output_grad;
    RowMajorMatrix<Scalar> input_grad(output_grad.rows(), dim_);
    const Eigen::Map<const Eigen::Array<Scalar, 1, Eigen::Dynamic>> gamma(params_, dim_);
    // dx = (1/std) (g - mean(g) - xhat mean(g xhat)) with g = dy * gamma.
    const auto row_grad = [&](Eigen::Index i) {
      const Eigen::Array<Scalar, 1, Eigen::Dynamic> g = output_grad.row(i).array() * gamma;
      const auto xhat = normalized_.row(i).array();
      const Scalar mean_g = g.mean();
      const Scalar mean_gx = (g * xhat).mean();
      input_grad.row(i) = (static_cast<Scalar>(inverse_std_(i)) * (g - mean_g - xhat * mean_gx)).matrix();
    };
    run_rows(output_grad.rows(), row_grad);
    return input_grad;
  }

  void accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms, int group) const override {
    if (!scale_trainable_ && !shift_trainable_) return;
    dpsgd::accumulate_squared_norms<Scalar>(trainable_rows(batch), squared_norms, group);
  }

  void accumulate_clipped_gradient(std::int64_t batch, const Eigen::MatrixXd& factors, int group,
                                   std::span<Scalar> grad_slice) const override {
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(grad_slice.size()) == num_parameters(),
                    "grad_slice must have " << num_parameters() << " entries, got " << grad_slice.size());
    if (!scale_trainable_ && !shift_trainable_) return;
    const std::int64_t begin = scale_trainable_ ? 0 : dim_;
    const std::int64_t size = (scale_trainable_ ? dim_ : 0) + (shift_trainable_ ? dim_ : 0);
    accumulate_clipped_sum<Scalar>(trainable_rows(batch), factors, group,
                                   grad_slice.subspan(static_cast<std::size_t>(begin), static_cast<std::size_t>(size)));
  }

 private:
  // Example i's gradient of the trainable parameters, in the layout of the parameter slice.
  RowMajorMatrix<Scalar> trainable_rows(std::int64_t batch) const {
    RowMajorMatrix<Scalar> rows =
        layer_norm_per_example_gradients<Scalar>(normalized_, output_grad_, batch, shift_trainable_, position_mask_);
    if (scale_trainable_) return rows;
    return rows.rightCols(dim_);  // beta only
  }

  template <typename RowFunction>
  static void run_rows(Eigen::Index rows, const RowFunction& function) {
    if (detail::worth_parallel(static_cast<long long>(rows) * 64) && rows > 1) {
#pragma omp parallel for schedule(static)
      for (Eigen::Index i = 0; i < rows; ++i) function(i);
    } else {
      for (Eigen::Index i = 0; i < rows; ++i) function(i);
    }
  }

  std::int64_t dim_;
  double eps_;
  bool scale_trainable_ = true, shift_trainable_ = true;
  Scalar* params_ = nullptr;
  std::span<const std::uint8_t> position_mask_;
  RowMajorMatrix<Scalar> normalized_;
  Eigen::VectorXd inverse_std_;
  RowMajorMatrix<Scalar> output_grad_;
};

}  // namespace dpsgd::nn
