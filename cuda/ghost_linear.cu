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

// out[i] += plain_linear_norm_bound(a[i], g[i], ...): the T = 1 bound of rounding_bounds.hpp.
template <typename Scalar>
__global__ void combine_plain_kernel(const double* __restrict__ activation_sq, const double* __restrict__ grad_sq,
                                     std::int64_t batch, std::int64_t d_in, std::int64_t d_out, bool has_bias,
                                     double* __restrict__ out) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < batch;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    out[i] += dpsgd::detail::plain_linear_norm_bound(detail::row_bound<Scalar>(activation_sq[i], d_in),
                                                     detail::row_bound<Scalar>(grad_sq[i], d_out), has_bias,
                                                     detail::unit_of<Scalar>());
  }
}

// out[e] = <gram_a_e, gram_g_e> in double (signed: the bound below takes care of rounding), one block per
// example.
__global__ void __launch_bounds__(kRowThreads)
    gram_inner_product_kernel(const double* __restrict__ gram_a, const double* __restrict__ gram_g, std::int64_t count,
                              std::int64_t entries, double* __restrict__ out) {
  __shared__ double scratch[32];
  for (std::int64_t e = blockIdx.x; e < count; e += gridDim.x) {
    const double* a = gram_a + e * entries;
    const double* g = gram_g + e * entries;
    double part = 0.0;
    for (std::int64_t j = threadIdx.x; j < entries; j += kRowThreads) part += a[j] * g[j];
    const double total = detail::block_sum(part, scratch);
    if (threadIdx.x == 0) out[e] = total;
  }
}

// dst (rows x cols, contiguous, double) = src (strided Scalar rows): the Gram route works in double.
template <typename Scalar>
__global__ void widen_kernel(const Scalar* __restrict__ src, std::int64_t stride, std::int64_t rows, std::int64_t cols,
                             double* __restrict__ dst) {
  const std::int64_t total = rows * cols;
  for (std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = k / cols;
    dst[k] = static_cast<double>(src[r * stride + (k - r * cols)]);
  }
}

// The per-position row norms (plain squared sums, bounded here as the CPU bounds them) give
// w = sum_t ||a_t|| ||dy_t|| and w_b = sum_t ||dy_t||; with the route's weight norm and the bias rows'
// norm, out[e] += the sequence bound of rounding_bounds.hpp (the CPU's sequence_example_bound).
template <typename Scalar>
__global__ void sequence_bound_kernel(const double* __restrict__ row_a, const double* __restrict__ row_g,
                                      const double* __restrict__ weight_sq, const double* __restrict__ bias_sq,
                                      std::int64_t batch, std::int64_t positions, std::int64_t d_in, std::int64_t d_out,
                                      bool gram, bool has_bias, double* __restrict__ out) {
  using namespace dpsgd::detail;
  const double t = static_cast<double>(positions);
  const double in = static_cast<double>(d_in), outf = static_cast<double>(d_out);
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < batch;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    double w = 0.0, w_bias = 0.0;
    for (std::int64_t p = e * positions; p < (e + 1) * positions; ++p) {
      const double na = sqrt(detail::row_bound<Scalar>(row_a[p], d_in));
      const double ng = sqrt(detail::row_bound<Scalar>(row_g[p], d_out));
      w += na * ng;
      w_bias += ng;
    }
    w *= 1.0 + rounding_gamma(t + 2.0, kDoubleUnit);
    w_bias *= 1.0 + rounding_gamma(t + 2.0, kDoubleUnit);
    const double unit = detail::unit_of<Scalar>();
    const double weight_norm = gram ? gram_weight_norm_bound(weight_sq[e], w, in, outf, t)
                                    : materialised_weight_norm_bound(weight_sq[e], w, in * outf, t, unit);
    double bias_norm = 0.0;
    if (has_bias) {
      // The bias rows were summed over the positions in Scalar: within gamma_T of w_b.
      bias_norm = sqrt(bias_sq[e] * (1.0 + rounding_gamma(outf + 2.0, kDoubleUnit))) * (1.0 + 2.0 * kDoubleUnit) +
                  rounding_gamma(t + 2.0, unit) * w_bias;
    } else {
      w_bias = 0.0;
    }
    out[e] += sequence_linear_norm_bound(weight_norm, bias_norm, w, w_bias, t, unit);
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

// Scalar's smallest normal.
template <typename Scalar>
__host__ __device__ constexpr double numeric_min() {
  return sizeof(Scalar) == 4 ? 0x1p-126 : 0x1p-1022;
}

// For rows r of examples [0, count): clean_a = c == 0 ? 0 : A, scaled_g = c == 0 ? 0 : c * dY with
// c = factors[r / positions]. Writing 0 (not 0 * value) keeps NaN of dropped rows out of the GEMM. Where
// c dy falls below Scalar's smallest normal while dy does not vanish, the example is flagged: its
// scaled gradient has only an absolute precision left, which the GEMM could multiply by a large
// activation, so it is applied apart, in double (as the CPU does).
template <typename Scalar>
__global__ void prepare_operands_kernel(const Scalar* __restrict__ activations, std::int64_t activation_stride,
                                        const Scalar* __restrict__ grads, std::int64_t grad_stride, std::int64_t rows,
                                        std::int64_t positions, std::int64_t in_features, std::int64_t out_features,
                                        const double* __restrict__ factors, Scalar* __restrict__ clean_a,
                                        Scalar* __restrict__ scaled_g, int* __restrict__ flags) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const double factor = factors[r / positions];
    const bool wide = detail::needs_wide_factor<Scalar>(factor);
    for (std::int64_t j = threadIdx.x; j < in_features; j += blockDim.x)
      clean_a[r * in_features + j] = factor == 0.0 ? Scalar(0) : activations[r * activation_stride + j];
    bool underflow = false;
    for (std::int64_t j = threadIdx.x; j < out_features; j += blockDim.x) {
      const Scalar g = grads[r * grad_stride + j];
      const Scalar v = factor == 0.0 ? Scalar(0) : detail::scaled<Scalar>(factor, wide, g);
      scaled_g[r * out_features + j] = v;
      underflow = underflow || (factor != 0.0 && factor != 1.0 && g != Scalar(0) &&
                                fabs(static_cast<double>(v)) < numeric_min<Scalar>());
    }
    if (underflow) atomicOr(flags + r / positions, 1);
  }
}

// Zeroes the scaled rows of flagged examples (they are applied apart).
template <typename Scalar>
__global__ void zero_flagged_kernel(Scalar* __restrict__ scaled_g, std::int64_t rows, std::int64_t positions,
                                    std::int64_t out_features, const int* __restrict__ flags) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    if (flags[r / positions] == 0) continue;
    for (std::int64_t j = threadIdx.x; j < out_features; j += blockDim.x) scaled_g[r * out_features + j] = Scalar(0);
  }
}

// list[0 .. *count) = the flagged examples in increasing order (one block: each thread takes a
// contiguous range, the ranges' counts are scanned in shared memory): deterministic.
__global__ void __launch_bounds__(kRowThreads) compact_flags_kernel(const int* __restrict__ flags, std::int64_t n,
                                                                    int* __restrict__ list, int* __restrict__ count) {
  __shared__ int offsets[kRowThreads];
  const std::int64_t per = (n + kRowThreads - 1) / kRowThreads;
  const std::int64_t begin = threadIdx.x * per, end = begin + per < n ? begin + per : n;
  int mine = 0;
  for (std::int64_t e = begin; e < end; ++e) mine += flags[e] != 0;
  offsets[threadIdx.x] = mine;
  __syncthreads();
  if (threadIdx.x == 0) {
    int running = 0;
    for (int k = 0; k < kRowThreads; ++k) {
      const int c = offsets[k];
      offsets[k] = running;
      running += c;
    }
    *count = running;
  }
  __syncthreads();
  int position = offsets[threadIdx.x];
  for (std::int64_t e = begin; e < end; ++e) {
    if (flags[e] != 0) list[position++] = static_cast<int>(e);
  }
}

// weight_grad[j, k] += Scalar(sum over listed examples e of c_e sum_t dy_etj a_etk), formed in double:
// the flagged examples' weight gradients, rounded once per entry. Does nothing when none is flagged.
template <typename Scalar>
__global__ void apply_apart_kernel(const Scalar* __restrict__ activations, std::int64_t activation_stride,
                                   const Scalar* __restrict__ grads, std::int64_t grad_stride, std::int64_t positions,
                                   std::int64_t in_features, std::int64_t out_features,
                                   const double* __restrict__ factors, const int* __restrict__ list,
                                   const int* __restrict__ count, Scalar* __restrict__ weight_grad,
                                   std::int64_t weight_stride) {
  const int listed = *count;
  if (listed == 0) return;
  const std::int64_t entries = in_features * out_features;
  for (std::int64_t k = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; k < entries;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = k / in_features, i = k - j * in_features;
    double total = 0.0;
    for (int l = 0; l < listed; ++l) {
      const std::int64_t e = list[l];
      double sum = 0.0;
      for (std::int64_t t = e * positions; t < (e + 1) * positions; ++t)
        sum += static_cast<double>(grads[t * grad_stride + j]) *
               static_cast<double>(activations[t * activation_stride + i]);
      total += factors[e] * sum;
    }
    weight_grad[j * weight_stride + i] += static_cast<Scalar>(total);
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

template <RealScalar Scalar>
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
    combine_plain_kernel<Scalar><<<detail::grid_for((batch + kRowThreads - 1) / kRowThreads), kRowThreads, 0, stream>>>(
        norms, norms + batch, batch, activations.cols, output_grads.cols, has_bias, out);
    DPSGD_CUDA_CHECK(cudaGetLastError());
    return;
  }

  const std::int64_t d_in = activations.cols;
  const std::int64_t d_out = output_grads.cols;
  const std::int64_t lda = activations.row_stride();
  const std::int64_t ldg = output_grads.row_stride();
  const std::int64_t rows = batch * positions;
  const bool gram = method == GhostNormMethod::kGram;
  // One scratch allocation: the per-position row norms, the per-example weight and bias norms, the
  // bias rows, then the chunk buffers of the chosen route.
  const std::int64_t entries = gram ? positions * positions : d_in * d_out;
  const std::int64_t chunk_bytes =
      gram ? (positions * (d_in + d_out) + 2 * entries) * static_cast<std::int64_t>(sizeof(double))
           : entries * static_cast<std::int64_t>(sizeof(Scalar));
  const std::int64_t per_chunk = detail::examples_per_chunk(batch, chunk_bytes, kProductScratchBytes);
  const std::size_t norms_bytes = detail::align_up(static_cast<std::size_t>(2 * rows + 2 * batch) * sizeof(double));
  const std::size_t bias_bytes =
      detail::align_up(has_bias ? static_cast<std::size_t>(batch * d_out) * sizeof(Scalar) : 0);
  auto* base = static_cast<unsigned char*>(
      context.scratch(norms_bytes + bias_bytes + static_cast<std::size_t>(per_chunk * chunk_bytes)));
  auto* row_a = reinterpret_cast<double*>(base);
  double* row_g = row_a + rows;
  double* weight_sq = row_g + rows;
  double* bias_sq = weight_sq + batch;
  auto* bias_rows = reinterpret_cast<Scalar*>(base + norms_bytes);
  unsigned char* chunk = base + norms_bytes + bias_bytes;
  DPSGD_CUDA_CHECK(cudaMemsetAsync(row_a, 0, static_cast<std::size_t>(2 * rows + 2 * batch) * sizeof(double), stream));
  detail::launch_row_squared_norms(stream, activations, row_a, sms);
  detail::launch_row_squared_norms(stream, output_grads, row_g, sms);
  if (has_bias) {
    // ||sum_t dy_t||^2 per example, from the per-example bias gradients.
    launch_bias_per_example(stream, output_grads, batch, positions, bias_rows, d_out);
    detail::launch_row_squared_norms(stream, DeviceRows<const Scalar>{bias_rows, batch, d_out, 0}, bias_sq, sms);
  }
  const cublasHandle_t blas = context.blas();
  for (std::int64_t first = 0; first < batch; first += per_chunk) {
    const std::int64_t n = std::min(per_chunk, batch - first);
    if (gram) {
      // In double: a float Gram product loses a cancelling example's gradient entirely.
      auto* wide_a = reinterpret_cast<double*>(chunk);
      double* wide_g = wide_a + per_chunk * positions * d_in;
      double* gram_a = wide_g + per_chunk * positions * d_out;
      double* gram_g = gram_a + per_chunk * entries;
      const std::int64_t r = n * positions;
      widen_kernel<Scalar><<<detail::grid_for((r * d_in + kRowThreads - 1) / kRowThreads), kRowThreads, 0, stream>>>(
          activations.data + first * positions * lda, lda, r, d_in, wide_a);
      widen_kernel<Scalar><<<detail::grid_for((r * d_out + kRowThreads - 1) / kRowThreads), kRowThreads, 0, stream>>>(
          output_grads.data + first * positions * ldg, ldg, r, d_out, wide_g);
      DPSGD_CUDA_CHECK(cudaGetLastError());
      // Row-major A_e (T x d_in) is the column-major d_in x T matrix X_e; A_e A_e^T = X_e^T X_e.
      detail::gemm_strided_batched(blas, CUBLAS_OP_T, CUBLAS_OP_N, positions, positions, d_in, 1.0, wide_a, d_in,
                                   positions * d_in, wide_a, d_in, positions * d_in, 0.0, gram_a, positions, entries,
                                   n);
      detail::gemm_strided_batched(blas, CUBLAS_OP_T, CUBLAS_OP_N, positions, positions, d_out, 1.0, wide_g, d_out,
                                   positions * d_out, wide_g, d_out, positions * d_out, 0.0, gram_g, positions, entries,
                                   n);
      gram_inner_product_kernel<<<detail::grid_for(n, 32LL * sms), kRowThreads, 0, stream>>>(gram_a, gram_g, n, entries,
                                                                                             weight_sq + first);
      DPSGD_CUDA_CHECK(cudaGetLastError());
    } else {
      // Materialise: C_e = A_e^T dY_e (d_in x d_out, column-major) per example, then its squared norm.
      auto* products = reinterpret_cast<Scalar*>(chunk);
      detail::gemm_strided_batched(blas, CUBLAS_OP_N, CUBLAS_OP_T, d_in, d_out, positions, Scalar(1),
                                   activations.data + first * positions * lda, lda, positions * lda,
                                   output_grads.data + first * positions * ldg, ldg, positions * ldg, Scalar(0),
                                   products, d_in, entries, n);
      detail::launch_row_squared_norms(stream, DeviceRows<const Scalar>{products, n, entries, 0}, weight_sq + first,
                                       sms);
    }
  }
  sequence_bound_kernel<Scalar><<<detail::grid_for((batch + kRowThreads - 1) / kRowThreads), kRowThreads, 0, stream>>>(
      row_a, row_g, weight_sq, bias_sq, batch, positions, d_in, d_out, gram, has_bias, out);
  DPSGD_CUDA_CHECK(cudaGetLastError());
}

template <RealScalar Scalar>
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
  const std::int64_t per_chunk = detail::examples_per_chunk(
      batch, positions * row_bytes + 2 * static_cast<std::int64_t>(sizeof(int)), kProductScratchBytes);
  const std::size_t operand_bytes =
      detail::align_up(static_cast<std::size_t>(per_chunk * positions * (d_in + d_out)) * sizeof(Scalar));
  auto* base = static_cast<unsigned char*>(
      context.scratch(operand_bytes + static_cast<std::size_t>(2 * per_chunk + 1) * sizeof(int)));
  auto* clean_a = reinterpret_cast<Scalar*>(base);
  Scalar* scaled_g = clean_a + per_chunk * positions * d_in;
  auto* flags = reinterpret_cast<int*>(base + operand_bytes);
  int* list = flags + per_chunk;
  int* listed = list + per_chunk;
  const int sms = context.multiprocessor_count();
  for (std::int64_t first = 0; first < batch; first += per_chunk) {
    const std::int64_t n = std::min(per_chunk, batch - first);
    const std::int64_t rows = n * positions;
    const Scalar* a = activations.data + first * positions * activations.row_stride();
    const Scalar* g = output_grads.data + first * positions * output_grads.row_stride();
    DPSGD_CUDA_CHECK(cudaMemsetAsync(flags, 0, static_cast<std::size_t>(n) * sizeof(int), stream));
    prepare_operands_kernel<Scalar><<<detail::grid_for(rows, 32LL * sms), kRowThreads, 0, stream>>>(
        a, activations.row_stride(), g, output_grads.row_stride(), rows, positions, d_in, d_out, column + first,
        clean_a, scaled_g, flags);
    zero_flagged_kernel<Scalar>
        <<<detail::grid_for(rows, 32LL * sms), kRowThreads, 0, stream>>>(scaled_g, rows, positions, d_out, flags);
    compact_flags_kernel<<<1, kRowThreads, 0, stream>>>(flags, n, list, listed);
    DPSGD_CUDA_CHECK(cudaGetLastError());
    // Row-major W (d_out x d_in) is the column-major d_in x d_out matrix W^T = clean_A^T scaled_dY.
    detail::gemm(context.blas(), CUBLAS_OP_N, CUBLAS_OP_T, d_in, d_out, rows, Scalar(1), clean_a, d_in, scaled_g, d_out,
                 Scalar(1), weight_grad.data, weight_grad.row_stride());
    apply_apart_kernel<Scalar>
        <<<detail::grid_for((d_in * d_out + kRowThreads - 1) / kRowThreads), kRowThreads, 0, stream>>>(
            a, activations.row_stride(), g, output_grads.row_stride(), positions, d_in, d_out, column + first, list,
            listed, weight_grad.data, weight_grad.row_stride());
    DPSGD_CUDA_CHECK(cudaGetLastError());
  }
  if (bias_grad != nullptr) detail::launch_clipped_sum(context, output_grads, column, positions, bias_grad);
}

template <RealScalar Scalar>
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
