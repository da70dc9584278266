// dpsgd::torch::Linear: torch::nn::Linear that records what ghost clipping needs in private mode.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "dpsgd/torch/ghost_clippable.hpp"

namespace dpsgd::torch {

// y = x W^T + b over inputs [B, d_in] or [B, ..., d_in] (sequences: every position of example i is
// part of example i). Same options, parameters and initialisation as torch::nn::Linear, so switching
// a model is a change of type. In private mode (set by PrivateOptimizer) a training forward pass
// keeps its input and a hook keeps the output's gradient; the norms then come from
// dpsgd::accumulate_linear_squared_norms (weight and bias), or from the per-example bias gradients
// alone when only the bias is trainable (DP-BiTFiT).
class LinearImpl : public ::torch::nn::Cloneable<LinearImpl>, public GhostClippable {
 public:
  LinearImpl(std::int64_t in_features, std::int64_t out_features)
      : LinearImpl(::torch::nn::LinearOptions(in_features, out_features)) {}
  explicit LinearImpl(const ::torch::nn::LinearOptions& options_);

  void reset() override;
  void reset_parameters();
  ::torch::Tensor forward(const ::torch::Tensor& input);

  void accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const override;
  void write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) override;

  ::torch::nn::LinearOptions options;
  ::torch::Tensor weight;
  ::torch::Tensor bias;
};
// The module holder, as TORCH_MODULE(Linear) would write it (the macro names torch:: unqualified, which
// inside dpsgd::torch means this namespace).
class Linear : public ::torch::nn::ModuleHolder<LinearImpl> {
 public:
  using ::torch::nn::ModuleHolder<LinearImpl>::ModuleHolder;
  using Impl = LinearImpl;
};

}  // namespace dpsgd::torch
