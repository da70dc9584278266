// The GPU twins of dpsgd's ghost clipping for linear layers, with cuBLAS for the products.
// Plain C++: includes no CUDA header.
#pragma once

#include <cstdint>

#include "dpsgd/clipping/ghost_linear.hpp"
#include "dpsgd/cuda/dense_clipping.hpp"

namespace dpsgd::cuda {

// squared_norms(i, group) += ||per-example gradient of W (and b if has_bias)||^2 from the layer's
// activations A ((batch * T) x d_in) and output gradients dY ((batch * T) x d_out) in device memory.
// T = 1: ||a_i||^2 ||dy_i||^2 from two row-norm kernels. T > 1: batched Gram products in double
// (A_i A_i^T, dY_i dY_i^T, cuBLAS strided-batched DGEMM) and their inner product, or the
// materialised G_i^T A_i, whichever costs fewer flops (the CPU's choose_ghost_norm_method). As on
// the CPU, what is added is an upper bound on the squared norm of what
// accumulate_linear_clipped_gradient adds for the example, rounding included
// (clipping/detail/rounding_bounds.hpp, the same functions). Examples are processed in chunks so
// that scratch stays under 256 MiB. NaN or inf in an example's A or dY makes its norm non-finite
// (dropped by compute_clip_factors). Asynchronous.
template <RealScalar Scalar>
void accumulate_linear_squared_norms(DeviceContext& context, DeviceRows<const Scalar> activations,
                                     DeviceRows<const Scalar> output_grads, std::int64_t batch, bool has_bias,
                                     DeviceSquaredNorms& squared_norms, int group = 0,
                                     GhostNormMethod method = GhostNormMethod::kAuto);

// weight_grad += dY^T diag(c) A as one cuBLAS GEMM (weight_grad is d_out x d_in, row-major, the
// layout of W), and bias_grad[0 .. d_out) += sum_i c_i sum_t dy_it when bias_grad is not null.
// Rows of examples with c_i = 0 are zeroed in scratch copies before the GEMM, so NaN in padding or
// dropped examples never reaches the result. An example whose scaled output gradient c dy would
// underflow is applied apart, in double. The context's cuBLAS handle computes in IEEE precision
// (no TF32). Asynchronous.
template <RealScalar Scalar>
void accumulate_linear_clipped_gradient(DeviceContext& context, DeviceRows<const Scalar> activations,
                                        DeviceRows<const Scalar> output_grads, std::int64_t batch,
                                        const DeviceClipFactors& factors, int group, DeviceRows<Scalar> weight_grad,
                                        Scalar* bias_grad);

// Per-example bias gradients sum_t dy_it into `out` (batch x d_out): DP-BiTFiT's whole per-example
// gradient, to be clipped as dense rows. Asynchronous.
template <RealScalar Scalar>
void linear_bias_per_example_gradients(DeviceContext& context, DeviceRows<const Scalar> output_grads,
                                       std::int64_t batch, DeviceRows<Scalar> out);

// The calls above also take mutable views of the layer's tensors.
template <RealScalar Scalar>
void accumulate_linear_squared_norms(DeviceContext& context, DeviceRows<Scalar> activations,
                                     DeviceRows<Scalar> output_grads, std::int64_t batch, bool has_bias,
                                     DeviceSquaredNorms& squared_norms, int group = 0,
                                     GhostNormMethod method = GhostNormMethod::kAuto) {
  accumulate_linear_squared_norms<Scalar>(context, DeviceRows<const Scalar>(activations),
                                          DeviceRows<const Scalar>(output_grads), batch, has_bias, squared_norms, group,
                                          method);
}
template <RealScalar Scalar>
void accumulate_linear_clipped_gradient(DeviceContext& context, DeviceRows<Scalar> activations,
                                        DeviceRows<Scalar> output_grads, std::int64_t batch,
                                        const DeviceClipFactors& factors, int group, DeviceRows<Scalar> weight_grad,
                                        Scalar* bias_grad) {
  accumulate_linear_clipped_gradient<Scalar>(context, DeviceRows<const Scalar>(activations),
                                             DeviceRows<const Scalar>(output_grads), batch, factors, group, weight_grad,
                                             bias_grad);
}
template <RealScalar Scalar>
void linear_bias_per_example_gradients(DeviceContext& context, DeviceRows<Scalar> output_grads, std::int64_t batch,
                                       DeviceRows<Scalar> out) {
  linear_bias_per_example_gradients<Scalar>(context, DeviceRows<const Scalar>(output_grads), batch, out);
}

}  // namespace dpsgd::cuda
