// Ghost clipping for linear layers on the GPU: per-example norms from activations and output
// gradients (row norms, or cuBLAS batched Gram / per-example products), and the clipped gradient as
// one cuBLAS GEMM.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "blas.cuh"
#include "check.cuh"
#include "dense_kernels.cuh"
#include "device_math.cuh"
#include "dpsgd/clipping/detail/norm_math.hpp"
#include "dpsgd/cuda/ghost_linear.hpp"

namespace dpsgd::cuda {

using detail::kRowThreads;

namespace {

// Scratch for the per-example products is bounded by this many bytes; examples go in chunks.
constexpr std::int64_t kProductScratchBytes = std::int64_t{256} << 20;

// out[i] += plain_linear_squared_norm(a[i], g[i], has_bias).
__global__ void combine_plain_kernel(const double* __restrict__ activation_sq, const double* __restrict__ grad_sq,
                                     std::int64_t batch, bool has_bias, double* __restrict__ out) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < batch;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    out[i] += dpsgd::detail::plain_linear_squared_norm(activation_sq[i], grad_sq[i], has_bias);
  }
}

// out[e] += max(0, <gram_a_e, gram_g_e>) (NaN kept), one block per example.
template <typename Scalar>
__global__ void __launch_bounds__(kRowThreads)
    gram_inner_product_kernel(const Scalar* __restrict__ gram_a, const Scalar* __restrict__ gram_g, std::int64_t count,
                              std::int64_t entries, double* __restrict__ out) {
  __shared__ double scratch[32];
  for (std::int64_t e = blockIdx.x; e < count; e += gridDim.x) {
    const Scalar* a = gram_a + e * entries;
    const Scalar* g = gram_g + e * entries;
    double part = 0.0;
    for (std::int64_t j = threadIdx.x; j < entries; j += kRowThreads)
      part += static_cast<double>(a[j]) * static_cast<double>(g[j]);
    const double total = detail::block_sum(part, scratch);
    if (threadIdx.x == 0) out[e] += dpsgd::detail::clamp_nonnegative_keep_nan(total);
  }
}

// out[i, :] = sum_t dy[i * positions + t, :], one thread per (example, column).
template <typename Scalar>
__global__ void bias_per_example_kernel(const Scalar* __restrict__ grads, std::int64_t batch, std::int64_t positions,
                                        std::int64_t width, std::int64_t stride, Scalar* __restrict__ out,
                                        std::int64_t out_stride) {
  const std::int64_t total = batch * width;
  for (std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t i = k / width;
    const std::int64_t j = k - i * width;
    Scalar sum = Scalar(0);
    for (std::int64_t t = 0; t < positions; ++t) sum += grads[(i * positions + t) * stride + j];
    out[i * out_stride + j] = sum;
  }
}

// For rows r of examples [0, count): clean_a = c == 0 ? 0 : A, scaled_g = c == 0 ? 0 : c * dY with
// c = factors[r / positions]. Writing 0 (not 0 * value) keeps NaN of dropped rows out of the GEMM.
template <typename Scalar>
__global__ void prepare_operands_kernel(const Scalar* __restrict__ activations, std::int64_t activation_stride,
                                        const Scalar* __restrict__ grads, std::int64_t grad_stride, std::int64_t rows,
                                        std::int64_t positions, std::int64_t in_features, std::int64_t out_features,
                                        const double* __restrict__ factors, Scalar* __restrict__ clean_a,
                                        Scalar* __restrict__ scaled_g) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const double factor = factors[r / positions];
    const Scalar c = static_cast<Scalar>(factor);
    for (std::int64_t j = threadIdx.x; j < in_features; j += blockDim.x)
      clean_a[r * in_features + j] = factor == 0.0 ? Scalar(0) : activations[r * activation_stride + j];
    for (std::int64_t j = threadIdx.x; j < out_features; j += blockDim.x)
      scaled_g[r * out_features + j] = factor == 0.0 ? Scalar(0) : c * grads[r * grad_stride + j];
  }
}

template <typename Scalar>
std::int64_t check_linear_factors(const DeviceRows<const Scalar>& activations, const DeviceRows<const Scalar>& grads,
                                  std::int64_t batch) {
  detail::check_rows(activations, "activations");
  detail::check_rows(grads, "output_grads");
  DPSGD_CHECK_ARG(batch >= 1, "batch must be >= 1, got " << batch);
  DPSGD_CHECK_ARG(activations.rows == grads.rows, "activations and output_grads must have the same number of rows, got "
                                                      << activations.rows << " and " << grads.rows);
  DPSGD_CHECK_ARG(activations.rows % batch == 0 && activations.rows > 0,
                  "activations.rows = " << activations.rows << " must be a positive multiple of batch = " << batch);
  DPSGD_CHECK_ARG(activations.cols >= 1 && grads.cols >= 1,
                  "in_features and out_features must be >= 1, got " << activations.cols << " and " << grads.cols);
  return activations.rows / batch;
}

template <typename Scalar>
void launch_bias_per_example(cudaStream_t stream, const DeviceRows<const Scalar>& grads, std::int64_t batch,
                             std::int64_t positions, Scalar* out, std::int64_t out_stride) {
  const std::int64_t total = batch * grads.cols;
  bias_per_example_kernel<Scalar>
      <<<detail::grid_for((total + kRowThreads - 1) / kRowThreads), kRowThreads, 0, stream>>>(
          grads.data, batch, positions, grads.cols, grads.row_stride(), out, out_stride);
  DPSGD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

template <KernelScalar Scalar>
void accumulate_linear_squared_norms(DeviceContext& context, DeviceRows<const Scalar> activations,
                                     DeviceRows<const Scalar> output_grads, std::int64_t batch, bool has_bias,
                                     DeviceSquaredNorms& squared_norms, int group, GhostNormMethod method) {
  const std::int64_t positions = check_linear_factors(activations, output_grads, batch);
  DPSGD_CHECK_ARG(squared_norms.batch == batch,
                  "squared_norms must have batch = " << batch << " rows, got " << squared_norms.batch);
  DPSGD_CHECK_ARG(group >= 0 && group < squared_norms.groups,
                  "group must be in [0, " << squared_norms.groups << "), got " << group);
  DPSGD_CHECK_ARG(
      method == GhostNormMethod::kAuto || method == GhostNormMethod::kGram || method == GhostNormMethod::kMaterialize,
      "method must be a GhostNormMethod, got " << static_cast<int>(method));
  context.activate();
  const LinearLayerShape shape{batch, positions, activations.cols, output_grads.cols};
  if (method == GhostNormMethod::kAuto) method = choose_ghost_norm_method(shape);
  double* out = squared_norms.group_column(group);
  const cudaStream_t stream = context.stream();
  const int sms = context.multiprocessor_count();

  if (positions == 1) {
    auto* norms = static_cast<double*>(context.scratch(2 * static_cast<std::size_t>(batch) * sizeof(double)));
    DPSGD_CUDA_CHECK(cudaMemsetAsync(norms, 0, 2 * static_cast<std::size_t>(batch) * sizeof(double), stream));
    detail::launch_row_squared_norms(stream, activations, norms, sms);
    detail::launch_row_squared_norms(stream, output_grads, norms + batch, sms);
    combine_plain_kernel<<<detail::grid_for((batch + kRowThreads - 1) / kRowThreads), kRowThreads, 0, stream>>>(
        norms, norms + batch, batch, has_bias, out);
    DPSGD_CUDA_CHECK(cudaGetLastError());
    return;
  }

  if (has_bias) {
    // ||sum_t dy_t||^2 per example, from the per-example bias gradients.
    auto* bias =
        static_cast<Scalar*>(context.scratch(static_cast<std::size_t>(batch * output_grads.cols) * sizeof(Scalar)));
    launch_bias_per_example(stream, output_grads, batch, positions, bias, output_grads.cols);
    detail::launch_row_squared_norms(stream, DeviceRows<const Scalar>{bias, batch, output_grads.cols, 0}, out, sms);
  }

  const std::int64_t d_in = activations.cols;
  const std::int64_t d_out = output_grads.cols;
  const std::int64_t lda = activations.row_stride();
  const std::int64_t ldg = output_grads.row_stride();
  const cublasHandle_t blas = context.blas();
  if (method == GhostNormMethod::kGram) {
    const std::int64_t entries = positions * positions;
    const std::int64_t per_chunk = detail::examples_per_chunk(
        batch, 2 * entries * static_cast<std::int64_t>(sizeof(Scalar)), kProductScratchBytes);
    auto* gram_a =
        static_cast<Scalar*>(context.scratch(2 * static_cast<std::size_t>(per_chunk * entries) * sizeof(Scalar)));
    Scalar* gram_g = gram_a + per_chunk * entries;
    for (std::int64_t first = 0; first < batch; first += per_chunk) {
      const std::int64_t n = std::min(per_chunk, batch - first);
      // Row-major A_e (T x d_in) is the column-major d_in x T matrix X_e; A_e A_e^T = X_e^T X_e.
      detail::gemm_strided_batched(blas, CUBLAS_OP_T, CUBLAS_OP_N, positions, positions, d_in, Scalar(1),
                                   activations.data + first * positions * lda, lda, positions * lda,
                                   activations.data + first * positions * lda, lda, positions * lda, Scalar(0), gram_a,
                                   positions, entries, n);
      detail::gemm_strided_batched(blas, CUBLAS_OP_T, CUBLAS_OP_N, positions, positions, d_out, Scalar(1),
                                   output_grads.data + first * positions * ldg, ldg, positions * ldg,
                                   output_grads.data + first * positions * ldg, ldg, positions * ldg, Scalar(0), gram_g,
                                   positions, entries, n);
      gram_inner_product_kernel<Scalar>
          <<<detail::grid_for(n, 32LL * sms), kRowThreads, 0, stream>>>(gram_a, gram_g, n, entries, out + first);
      DPSGD_CUDA_CHECK(cudaGetLastError());
    }
    return;
  }
  // Materialise: C_e = A_e^T dY_e (d_in x d_out, column-major) per example, then its squared norm.
  const std::int64_t entries = d_in * d_out;
  const std::int64_t per_chunk =
      detail::examples_per_chunk(batch, entries * static_cast<std::int64_t>(sizeof(Scalar)), kProductScratchBytes);
  auto* products =
      static_cast<Scalar*>(context.scratch(static_cast<std::size_t>(per_chunk * entries) * sizeof(Scalar)));
  for (std::int64_t first = 0; first < batch; first += per_chunk) {
    const std::int64_t n = std::min(per_chunk, batch - first);
    detail::gemm_strided_batched(blas, CUBLAS_OP_N, CUBLAS_OP_T, d_in, d_out, positions, Scalar(1),
                                 activations.data + first * positions * lda, lda, positions * lda,
                                 output_grads.data + first * positions * ldg, ldg, positions * ldg, Scalar(0), products,
                                 d_in, entries, n);
    detail::launch_row_squared_norms(stream, DeviceRows<const Scalar>{products, n, entries, 0}, out + first, sms);
  }
}

template <KernelScalar Scalar>
void accumulate_linear_clipped_gradient(DeviceContext& context, DeviceRows<const Scalar> activations,
                                        DeviceRows<const Scalar> output_grads, std::int64_t batch,
                                        const DeviceClipFactors& factors, int group, DeviceRows<Scalar> weight_grad,
                                        Scalar* bias_grad) {
  const std::int64_t positions = check_linear_factors(activations, output_grads, batch);
  DPSGD_CHECK_ARG(factors.batch == batch, "factors must have batch = " << batch << " rows, got " << factors.batch);
  DPSGD_CHECK_ARG(group >= 0 && group < factors.groups,
                  "group must be in [0, " << factors.groups << "), got " << group);
  detail::check_rows(weight_grad, "weight_grad");
  const std::int64_t d_in = activations.cols;
  const std::int64_t d_out = output_grads.cols;
  DPSGD_CHECK_ARG(weight_grad.rows == d_out && weight_grad.cols == d_in,
                  "weight_grad must be out_features x in_features = " << d_out << " x " << d_in << ", got "
                                                                      << weight_grad.rows << " x " << weight_grad.cols);
  detail::check_device_pointer(bias_grad, "bias_grad");
  context.activate();
  const cudaStream_t stream = context.stream();
  const double* column = factors.group_column(group);

  const std::int64_t row_bytes = (d_in + d_out) * static_cast<std::int64_t>(sizeof(Scalar));
  const std::int64_t per_chunk = detail::examples_per_chunk(batch, positions * row_bytes, kProductScratchBytes);
  auto* clean_a = static_cast<Scalar*>(
      context.scratch(static_cast<std::size_t>(per_chunk * positions * (d_in + d_out)) * sizeof(Scalar)));
  Scalar* scaled_g = clean_a + per_chunk * positions * d_in;
  for (std::int64_t first = 0; first < batch; first += per_chunk) {
    const std::int64_t n = std::min(per_chunk, batch - first);
    const std::int64_t rows = n * positions;
    prepare_operands_kernel<Scalar>
        <<<detail::grid_for(rows, 32LL * context.multiprocessor_count()), kRowThreads, 0, stream>>>(
            activations.data + first * positions * activations.row_stride(), activations.row_stride(),
            output_grads.data + first * positions * output_grads.row_stride(), output_grads.row_stride(), rows,
            positions, d_in, d_out, column + first, clean_a, scaled_g);
    DPSGD_CUDA_CHECK(cudaGetLastError());
    // Row-major W (d_out x d_in) is the column-major d_in x d_out matrix W^T = clean_A^T scaled_dY.
    detail::gemm(context.blas(), CUBLAS_OP_N, CUBLAS_OP_T, d_in, d_out, rows, Scalar(1), clean_a, d_in, scaled_g, d_out,
                 Scalar(1), weight_grad.data, weight_grad.row_stride());
  }
  if (bias_grad != nullptr) detail::launch_clipped_sum(context, output_grads, column, positions, bias_grad);
}

template <KernelScalar Scalar>
void linear_bias_per_example_gradients(DeviceContext& context, DeviceRows<const Scalar> output_grads,
                                       std::int64_t batch, DeviceRows<Scalar> out) {
  detail::check_rows(output_grads, "output_grads");
  detail::check_rows(out, "out");
  DPSGD_CHECK_ARG(batch >= 1, "batch must be >= 1, got " << batch);
  DPSGD_CHECK_ARG(output_grads.rows % batch == 0 && output_grads.rows > 0,
                  "output_grads.rows = " << output_grads.rows << " must be a positive multiple of batch = " << batch);
  DPSGD_CHECK_ARG(out.rows == batch && out.cols == output_grads.cols,
                  "out must be batch x out_features = " << batch << " x " << output_grads.cols << ", got " << out.rows
                                                        << " x " << out.cols);
  context.activate();
  launch_bias_per_example(context.stream(), output_grads, batch, output_grads.rows / batch, out.data, out.row_stride());
}

#define DPSGD_INSTANTIATE(Scalar)                                                                                      \
  template void accumulate_linear_squared_norms<Scalar>(DeviceContext&, DeviceRows<const Scalar>,                      \
                                                        DeviceRows<const Scalar>, std::int64_t, bool,                  \
                                                        DeviceSquaredNorms&, int, GhostNormMethod);                    \
  template void accumulate_linear_clipped_gradient<Scalar>(                                                            \
      DeviceContext&, DeviceRows<const Scalar>, DeviceRows<const Scalar>, std::int64_t, const DeviceClipFactors&, int, \
      DeviceRows<Scalar>, Scalar*);                                                                                    \
  template void linear_bias_per_example_gradients<Scalar>(DeviceContext&, DeviceRows<const Scalar>, std::int64_t,      \
                                                          DeviceRows<Scalar>);
DPSGD_INSTANTIATE(float)
DPSGD_INSTANTIATE(double)
#undef DPSGD_INSTANTIATE

}  // namespace dpsgd::cuda
