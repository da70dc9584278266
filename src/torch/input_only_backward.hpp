// Linear and convolution whose backward pass gives only the input's gradient: private training passes.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace dpsgd::torch::detail {

// In a private training pass the parameters' gradients are the clipped sums the optimiser writes, so
// the weight gradient autograd would form (one GEMM per layer, as costly as the forward product) is
// wasted work. These functions take the parameters as inputs, so their output requires grad and the
// layer's output-gradient hook fires, but their backward computes the input's gradient alone and
// leaves the parameters' grad() untouched. The bias is added by the caller, outside (an undefined
// tensor cannot be a custom function's input, and the bias gradient autograd forms there is a cheap sum).
struct LinearInputOnlyBackward : ::torch::autograd::Function<LinearInputOnlyBackward> {
  static ::torch::Tensor forward(::torch::autograd::AutogradContext* ctx, const ::torch::Tensor& input,
                                 const ::torch::Tensor& weight) {
    ctx->save_for_backward({weight});
    return ::torch::nn::functional::linear(input, weight);
  }
  static ::torch::autograd::variable_list backward(::torch::autograd::AutogradContext* ctx,
                                                   ::torch::autograd::variable_list grads) {
    ::torch::Tensor grad_input;
    if (ctx->needs_input_grad(0)) grad_input = grads[0].matmul(ctx->get_saved_variables()[0]);
    return {grad_input, ::torch::Tensor()};
  }
};

struct Conv2dInputOnlyBackward : ::torch::autograd::Function<Conv2dInputOnlyBackward> {
  static ::torch::Tensor forward(::torch::autograd::AutogradContext* ctx, const ::torch::Tensor& input,
                                 const ::torch::Tensor& weight, const std::vector<std::int64_t>& stride,
                                 const std::vector<std::int64_t>& padding, const std::vector<std::int64_t>& dilation) {
    ctx->save_for_backward({input, weight});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    return ::torch::conv2d(input, weight, {}, stride, padding, dilation, /*groups=*/1);
  }
  static ::torch::autograd::variable_list backward(::torch::autograd::AutogradContext* ctx,
                                                   ::torch::autograd::variable_list grads) {
    ::torch::Tensor grad_input;
    if (ctx->needs_input_grad(0)) {
      const auto saved = ctx->get_saved_variables();
      grad_input = std::get<0>(at::convolution_backward(
          grads[0], saved[0], saved[1], c10::nullopt, ctx->saved_data["stride"].toIntVector(),
          ctx->saved_data["padding"].toIntVector(), ctx->saved_data["dilation"].toIntVector(),
          /*transposed=*/false, /*output_padding=*/{0, 0}, /*groups=*/1, {true, false, false}));
    }
    return {grad_input, ::torch::Tensor(), ::torch::Tensor(), ::torch::Tensor(), ::torch::Tensor(), ::torch::Tensor()};
  }
};

}  // namespace dpsgd::torch::detail
