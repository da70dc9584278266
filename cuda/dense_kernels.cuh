// Internal: the row-norm, clipped-sum and partial-sum kernels that dense clipping and the linear
// layers share, with their launchers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "check.cuh"
#include "device_math.cuh"
#include "dpsgd/clipping/detail/norm_math.hpp"
#include "dpsgd/clipping/detail/rounding_bounds.hpp"
#include "dpsgd/cuda/detail/kernel_plan.hpp"
#include "dpsgd/cuda/device_context.hpp"

namespace dpsgd::cuda::detail {

// Element type's unit roundoff and the dense clip bound of the CPU (row_norms.hpp: squared_norm_bound).
template <typename Scalar>
__host__ __device__ constexpr double unit_of() {
  return sizeof(Scalar) == 4 ? dpsgd::detail::kFloatUnit : dpsgd::detail::kDoubleUnit;
}

// An upper bound on the true squared norm of a row whose squares were summed in double here: float
// squares are exact in double, double squares below the smallest normal lose up to 2^-1074 each, and
// the sum (block reductions, in any order) is within gamma_(n + 8).
template <typename Scalar>
__device__ __forceinline__ double row_bound(double computed_squared, std::int64_t length) {
  const double n = static_cast<double>(length);
  return dpsgd::detail::squared_sum_bound(computed_squared,
                                          dpsgd::detail::rounding_gamma(n + 8.0, dpsgd::detail::kDoubleUnit),
                                          sizeof(Scalar) == 8 ? n * 0x1p-1073 : 0.0);
}

template <typename Scalar>
__device__ __forceinline__ double dense_bound(double computed_squared, std::int64_t length) {
  return dpsgd::detail::dense_norm_bound(row_bound<Scalar>(computed_squared, length), unit_of<Scalar>());
}

// out[r] += ||row r||^2, one block per row (grid-stride over rows). A sum that overflows is redone
// rescaled by the row's largest magnitude, as the CPU's row_squared_norm does. With `bound`, what is
// added is the dense clip bound (as the CPU's accumulate_squared_norms adds), else the plain sum.
template <typename Scalar, int kVec>
__global__ void __launch_bounds__(kRowThreads)
    row_squared_norms_kernel(const Scalar* __restrict__ rows, std::int64_t count, std::int64_t width,
                             std::int64_t stride, bool bound, double* __restrict__ out) {
  __shared__ double scratch[32];
  for (std::int64_t r = blockIdx.x; r < count; r += gridDim.x) {
    const Scalar* row = rows + r * stride;
    double part = 0.0;
#pragma unroll 4
    for (std::int64_t column = static_cast<std::int64_t>(threadIdx.x) * kVec; column < width;
         column += static_cast<std::int64_t>(kRowThreads) * kVec) {
      Scalar v[kVec];
      load_vector<Scalar, kVec>(row + column, v);
#pragma unroll
      for (int e = 0; e < kVec; ++e) part += static_cast<double>(v[e]) * static_cast<double>(v[e]);
    }
    double squared = block_sum(part, scratch);
    if (isinf(squared)) {  // block-uniform
      double max_abs = 0.0;
      for (std::int64_t column = threadIdx.x; column < width; column += kRowThreads)
        max_abs = nan_sticky_max(max_abs, fabs(static_cast<double>(row[column])));
      max_abs = block_max(max_abs, scratch);
      double scaled = 0.0;
      if (max_abs < INFINITY && max_abs > 0.0) {
        for (std::int64_t column = threadIdx.x; column < width; column += kRowThreads) {
          const double t = static_cast<double>(row[column]) / max_abs;
          scaled += t * t;
        }
      }
      squared = dpsgd::detail::rescaled_squared_norm_from(max_abs, block_sum(scaled, scratch));
    }
    if (threadIdx.x == 0) out[r] += bound ? dense_bound<Scalar>(squared, width) : squared;
  }
}

template <typename Scalar>
void launch_row_squared_norms(cudaStream_t stream, const DeviceRows<const Scalar>& rows, double* out,
                              int multiprocessors, bool bound = false) {
  if (rows.rows == 0) return;
  const std::int64_t stride = rows.row_stride();
  const unsigned grid = grid_for(rows.rows, 32LL * multiprocessors);
  if (vector_width(reinterpret_cast<std::uint64_t>(rows.data), stride, rows.cols, sizeof(Scalar)) > 1) {
    row_squared_norms_kernel<Scalar, 16 / sizeof(Scalar)>
        <<<grid, kRowThreads, 0, stream>>>(rows.data, rows.rows, rows.cols, stride, bound, out);
  } else {
    row_squared_norms_kernel<Scalar, 1>
        <<<grid, kRowThreads, 0, stream>>>(rows.data, rows.rows, rows.cols, stride, bound, out);
  }
  DPSGD_CUDA_CHECK(cudaGetLastError());
}

// acc += factor * v with a relative error of two roundings: a factor below float's smallest normal
// would be subnormal as a float, so the product is formed in double and rounded once (as the CPU's
// scaled_add_factor does). `wide` is block-uniform (one factor per row).
template <typename Scalar>
__device__ __forceinline__ Scalar scaled(double factor, bool wide, Scalar v) {
  return wide ? static_cast<Scalar>(factor * static_cast<double>(v)) : static_cast<Scalar>(factor) * v;
}

template <typename Scalar>
__device__ __forceinline__ bool needs_wide_factor(double factor) {
  return sizeof(Scalar) == 4 && factor < 0x1p-125;
}

// Column block blockIdx.x, row chunk blockIdx.y: acc = sum over the chunk's rows r, in order, of
// factors[r / rows_per_factor] * row r, skipping (never reading) rows whose factor is 0. With one
// chunk the result is added to `sum`; otherwise it is stored to partials[chunk].
template <typename Scalar, int kVec>
__global__ void __launch_bounds__(kRowThreads)
    clipped_sum_kernel(const Scalar* __restrict__ rows, std::int64_t count, std::int64_t width, std::int64_t stride,
                       const double* __restrict__ factors, std::int64_t rows_per_factor, Scalar* __restrict__ out) {
  const std::int64_t column = (static_cast<std::int64_t>(blockIdx.x) * kRowThreads + threadIdx.x) * kVec;
  if (column >= width) return;
  const std::int64_t chunks = gridDim.y;
  const std::int64_t first = chunk_first_row(count, chunks, blockIdx.y);
  const std::int64_t end = chunk_first_row(count, chunks, blockIdx.y + 1);
  Scalar acc[kVec];
#pragma unroll
  for (int e = 0; e < kVec; ++e) acc[e] = Scalar(0);
#pragma unroll 4
  for (std::int64_t r = first; r < end; ++r) {
    const double factor = factors[r / rows_per_factor];
    if (factor == 0.0) continue;
    Scalar v[kVec];
    load_vector<Scalar, kVec>(rows + r * stride + column, v);
    const bool wide = needs_wide_factor<Scalar>(factor);
#pragma unroll
    for (int e = 0; e < kVec; ++e) acc[e] += scaled<Scalar>(factor, wide, v[e]);
  }
  if (chunks == 1) {
    Scalar current[kVec];
    load_vector<Scalar, kVec>(out + column, current);
#pragma unroll
    for (int e = 0; e < kVec; ++e) current[e] += acc[e];
    store_vector<Scalar, kVec>(out + column, current);
  } else {
    store_vector<Scalar, kVec>(out + static_cast<std::int64_t>(blockIdx.y) * width + column, acc);
  }
}

// sum[j] += sum over p (in order) of partials[p * width + j].
template <typename Scalar>
__global__ void reduce_partials_kernel(const Scalar* __restrict__ partials, std::int64_t parts, std::int64_t width,
                                       Scalar* __restrict__ sum) {
  for (std::int64_t j = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; j < width;
       j += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    Scalar total = Scalar(0);
    for (std::int64_t p = 0; p < parts; ++p) total += partials[p * width + j];
    sum[j] += total;
  }
}

template <typename Scalar>
void launch_reduce_partials(cudaStream_t stream, const Scalar* partials, std::int64_t parts, std::int64_t width,
                            Scalar* sum) {
  if (width == 0) return;
  reduce_partials_kernel<Scalar>
      <<<grid_for((width + kRowThreads - 1) / kRowThreads), kRowThreads, 0, stream>>>(partials, parts, width, sum);
  DPSGD_CUDA_CHECK(cudaGetLastError());
}

// sum += sum_r factors[r / rows_per_factor] * row r; partial sums of row chunks go to context scratch.
template <typename Scalar>
void launch_clipped_sum(DeviceContext& context, const DeviceRows<const Scalar>& rows, const double* factors,
                        std::int64_t rows_per_factor, Scalar* sum) {
  if (rows.rows == 0 || rows.cols == 0) return;
  const std::int64_t stride = rows.row_stride();
  // The output pointer must allow the same vector width as the rows.
  int vector = vector_width(reinterpret_cast<std::uint64_t>(rows.data), stride, rows.cols, sizeof(Scalar));
  if (reinterpret_cast<std::uint64_t>(sum) % 16 != 0) vector = 1;
  const std::int64_t column_blocks = (rows.cols / vector + kRowThreads - 1) / kRowThreads;
  DPSGD_CHECK_ARG(column_blocks <= 0x7fffffffLL, "rows.cols = " << rows.cols << " needs too many thread blocks");
  const std::int64_t chunks =
      std::min<std::int64_t>(65535, clipped_sum_row_chunks(rows.rows, column_blocks, context.multiprocessor_count()));
  Scalar* out = sum;
  if (chunks > 1)
    out = static_cast<Scalar*>(context.scratch(static_cast<std::size_t>(chunks * rows.cols) * sizeof(Scalar)));
  const dim3 grid(static_cast<unsigned>(column_blocks), static_cast<unsigned>(chunks));
  if (vector > 1) {
    clipped_sum_kernel<Scalar, 16 / sizeof(Scalar)><<<grid, kRowThreads, 0, context.stream()>>>(
        rows.data, rows.rows, rows.cols, stride, factors, rows_per_factor, out);
  } else {
    clipped_sum_kernel<Scalar, 1><<<grid, kRowThreads, 0, context.stream()>>>(rows.data, rows.rows, rows.cols, stride,
                                                                              factors, rows_per_factor, out);
  }
  DPSGD_CUDA_CHECK(cudaGetLastError());
  if (chunks > 1) launch_reduce_partials(context.stream(), out, chunks, rows.cols, sum);
}

}  // namespace dpsgd::cuda::detail
