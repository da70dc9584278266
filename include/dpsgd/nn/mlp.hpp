// nn::Mlp: a multi-layer perceptron of Linear layers with ghost-clipped private gradients.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/nn/activation.hpp"
#include "dpsgd/nn/linear.hpp"

namespace dpsgd::nn {

// Linear -> activation -> ... -> Linear (logits). All parameters sit in one flat buffer in layer
// order (each layer: W row-major, then b). Ghost clipping: per-example gradient norms come from
// each layer's activations and output gradients, and the clipped sum is one GEMM per layer, so no
// per-example gradient is ever stored.
template <typename Scalar>
class Mlp {
 public:
  // layer_sizes = {inputs, hidden..., outputs}, at least two entries, each >= 1.
  Mlp(const std::vector<std::int64_t>& layer_sizes, ActivationKind activation, std::uint64_t init_seed) {
    DPSGD_CHECK_ARG(layer_sizes.size() >= 2, "layer_sizes must have at least 2 entries, got " << layer_sizes.size());
    std::int64_t total = 0;
    for (std::size_t k = 0; k + 1 < layer_sizes.size(); ++k) {
      layers_.emplace_back(layer_sizes[k], layer_sizes[k + 1], true);
      offsets_.push_back(total);
      total += layers_.back().num_parameters();
      if (k + 2 < layer_sizes.size()) activations_.emplace_back(activation);
    }
    offsets_.push_back(total);
    params_.assign(static_cast<std::size_t>(total), Scalar{0});
    for (std::size_t k = 0; k < layers_.size(); ++k) {
      layers_[k].bind(params_.data() + offsets_[k]);
      layers_[k].initialize(init_seed, static_cast<std::uint32_t>(k));
    }
  }
  Mlp(const Mlp&) = delete;  // layers point into params_
  Mlp& operator=(const Mlp&) = delete;
  Mlp(Mlp&&) noexcept = default;  // a moved vector keeps its buffer, so the pointers stay valid
  Mlp& operator=(Mlp&&) noexcept = default;

  std::int64_t num_parameters() const { return static_cast<std::int64_t>(params_.size()); }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  std::span<Scalar> parameters() { return params_; }
  std::span<const Scalar> parameters() const { return params_; }
  // Where each layer's parameters start in the flat buffer, plus the total: the group_offsets of
  // per-layer clipping.
  const std::vector<std::int64_t>& layer_offsets() const { return offsets_; }
  std::int64_t input_size() const { return layers_.front().in_features(); }
  std::int64_t output_size() const { return layers_.back().out_features(); }

  RowMajorMatrix<Scalar> forward(const ConstRowsRef<Scalar>& input) {
    RowMajorMatrix<Scalar> h = layers_[0].forward(input);
    for (std::size_t k = 1; k < layers_.size(); ++k) {
      h = activations_[k - 1].forward(h);
      h = layers_[k].forward(h);
    }
    batch_ = input.rows();
    return h;
  }

  // Back-propagates per-example logit gradients (one row per example, not averaged).
  void backward(const ConstRowsRef<Scalar>& logit_grads) {
    DPSGD_CHECK_ARG(logit_grads.rows() == batch_,
                    "logit_grads must have " << batch_ << " rows, got " << logit_grads.rows());
    RowMajorMatrix<Scalar> g = layers_.back().backward(logit_grads);
    for (std::size_t k = layers_.size() - 1; k-- > 0;) {
      g = activations_[k].backward(g);
      g = layers_[k].backward(g);
    }
  }

  // gradient += sum_i c_i grad_i after forward() and backward(). config has one group (flat
  // clipping) or num_layers() groups (per-layer clipping).
  ClipFactors clipped_gradient_sum(std::span<const std::uint8_t> mask, const ClipConfig& config,
                                   std::span<Scalar> gradient) const {
    config.validate();
    DPSGD_CHECK_ARG(
        config.num_groups() == 1 || config.num_groups() == num_layers(),
        "config must have 1 group (flat) or num_layers = " << num_layers() << " groups, got " << config.num_groups());
    check_gradient(gradient);
    const bool per_layer = config.num_groups() > 1;
    SquaredNorms squared_norms = SquaredNorms::Zero(batch_, config.num_groups());
    for (int k = 0; k < num_layers(); ++k)
      layers_[k].accumulate_squared_norms(batch_, squared_norms, per_layer ? k : 0);
    ClipFactors factors = compute_clip_factors(squared_norms, mask, config);
    for (int k = 0; k < num_layers(); ++k) {
      layers_[k].accumulate_clipped_gradient(batch_, factors.factors, per_layer ? k : 0, layer_slice(gradient, k));
    }
    return factors;
  }

  // gradient += sum over real examples of grad_i: the non-private baseline, same code path.
  void gradient_sum(std::span<const std::uint8_t> mask, std::span<Scalar> gradient) const {
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(mask.size()) == batch_,
                    "mask.size() must equal the batch size " << batch_ << ", got " << mask.size());
    check_gradient(gradient);
    Eigen::MatrixXd ones(batch_, 1);
    for (std::int64_t i = 0; i < batch_; ++i) ones(i, 0) = mask[static_cast<std::size_t>(i)] != 0 ? 1.0 : 0.0;
    for (int k = 0; k < num_layers(); ++k)
      layers_[k].accumulate_clipped_gradient(batch_, ones, 0, layer_slice(gradient, k));
  }

  std::vector<std::int32_t> predict(const ConstRowsRef<Scalar>& input) {
    const RowMajorMatrix<Scalar> logits = forward(input);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(logits.rows()));
    for (Eigen::Index i = 0; i < logits.rows(); ++i) {
      Eigen::Index best;
      logits.row(i).maxCoeff(&best);
      labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(best);
    }
    return labels;
  }

 private:
  void check_gradient(std::span<Scalar> gradient) const {
    DPSGD_CHECK_ARG(static_cast<std::int64_t>(gradient.size()) == num_parameters(),
                    "gradient must have num_parameters = " << num_parameters() << " entries, got " << gradient.size());
    DPSGD_CHECK_ARG(batch_ > 0, "call forward() and backward() before asking for gradients");
  }
  std::span<Scalar> layer_slice(std::span<Scalar> gradient, int k) const {
    return gradient.subspan(static_cast<std::size_t>(offsets_[k]),
                            static_cast<std::size_t>(offsets_[k + 1] - offsets_[k]));
  }

  std::vector<Linear<Scalar>> layers_;
  std::vector<Activation<Scalar>> activations_;
  std::vector<std::int64_t> offsets_;
  std::vector<Scalar> params_;
  std::int64_t batch_ = 0;
};

}  // namespace dpsgd::nn
