// dpsgd::torch::LayerNorm: torch::nn::LayerNorm over the last dimension, recording for clipping.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "dpsgd/torch/ghost_clippable.hpp"

namespace dpsgd::torch {

// y = (x - mean) / sqrt(var + eps) * gamma + beta over the last dimension of [B, ..., d] (options as
// torch::nn::LayerNormOptions with a one-element normalized_shape). Its per-example gradients are
// 2 d numbers (dpsgd::layer_norm_per_example_gradients), clipped as dense rows.
class LayerNormImpl : public ::torch::nn::Cloneable<LayerNormImpl>, public GhostClippable {
 public:
  explicit LayerNormImpl(std::int64_t features) : LayerNormImpl(::torch::nn::LayerNormOptions({features})) {}
  explicit LayerNormImpl(const ::torch::nn::LayerNormOptions& options_);

  void reset() override;
  void reset_parameters();
  ::torch::Tensor forward(const ::torch::Tensor& input);

  void accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const override;
  void write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) override;

  ::torch::nn::LayerNormOptions options;
  ::torch::Tensor weight;  // gamma (undefined without elementwise_affine)
  ::torch::Tensor bias;    // beta
};
// The module holder, as TORCH_MODULE(LayerNorm) would write it (the macro names torch:: unqualified, which
// inside dpsgd::torch means this namespace).
class LayerNorm : public ::torch::nn::ModuleHolder<LayerNormImpl> {
 public:
  using ::torch::nn::ModuleHolder<LayerNormImpl>::ModuleHolder;
  using Impl = LayerNormImpl;
};

}  // namespace dpsgd::torch
