// dpsgd::torch::Conv2d: torch::nn::Conv2d that records what ghost clipping needs in private mode.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "dpsgd/torch/ghost_clippable.hpp"

namespace dpsgd::torch {

// A 2-D convolution over [B, C, H, W] with torch::nn::Conv2dOptions (kernel, stride, padding as numbers,
// "valid" or an odd-kernel "same", dilation, bias), the same parameters and initialisation as
// torch::nn::Conv2d. Seen through im2col a convolution is a Linear layer over the output positions:
// example i's weight gradient is sum_p dy_ip u_ip^T with u_ip its unfolded input patch at position p,
// so its norms and clipped sums come from dpsgd's sequence Linear rule (Gram or materialised,
// whichever is cheaper for the shape) on the unfolded input. The forward pass is LibTorch's own
// convolution; the unfolding happens once per step, in the optimiser's norm pass. Groups other than 1
// and padding modes other than zeros are refused.
class Conv2dImpl : public ::torch::nn::Cloneable<Conv2dImpl>, public GhostClippable {
 public:
  Conv2dImpl(std::int64_t in_channels, std::int64_t out_channels, ::torch::ExpandingArray<2> kernel_size)
      : Conv2dImpl(::torch::nn::Conv2dOptions(in_channels, out_channels, kernel_size)) {}
  explicit Conv2dImpl(const ::torch::nn::Conv2dOptions& options_);

  void reset() override;
  void reset_parameters();
  ::torch::Tensor forward(const ::torch::Tensor& input);

  void accumulate_squared_norms(std::int64_t batch, SquaredNorms& squared_norms) const override;
  void write_clipped_gradients(std::int64_t batch, const Eigen::MatrixXd& factors) override;

  ::torch::nn::Conv2dOptions options;
  ::torch::Tensor weight;  // [out_channels, in_channels, kh, kw]
  ::torch::Tensor bias;    // [out_channels], undefined without bias

 private:
  // The unfolded input [B * positions, C kh kw] (cached for the step) and the output gradient as rows.
  const ::torch::Tensor& patches(std::int64_t batch) const;
  ::torch::Tensor output_gradient_rows(std::int64_t batch) const;

  ::torch::ExpandingArray<2> padding_ =
      ::torch::ExpandingArray<2>(std::int64_t{0});  // options.padding resolved to numbers
};
// The module holder, as TORCH_MODULE(Conv2d) would write it (the macro names torch:: unqualified, which
// inside dpsgd::torch means this namespace).
class Conv2d : public ::torch::nn::ModuleHolder<Conv2dImpl> {
 public:
  using ::torch::nn::ModuleHolder<Conv2dImpl>::ModuleHolder;
  using Impl = Conv2dImpl;
};

}  // namespace dpsgd::torch
