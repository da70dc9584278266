// Internal: block-wide reductions in double, 16-byte vector loads, and argument checks shared by the kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "check.cuh"
#include "dpsgd/core/error.hpp"
#include "dpsgd/cuda/device_context.hpp"

namespace dpsgd::cuda::detail {

// The warp shuffles below assume a block of whole warps (at most 32 of them).
__device__ __forceinline__ double warp_sum(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// max that sticks to NaN once it has seen one, so a NaN element can never be hidden by fmax.
__device__ __forceinline__ double nan_sticky_max(double a, double b) { return (b > a || b != b) ? b : a; }

__device__ __forceinline__ double warp_max(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = nan_sticky_max(v, __shfl_down_sync(0xffffffffu, v, offset));
  return v;
}

// Reduces `v` over the block with `warp_reduce` and returns the result to every thread. Fixed
// reduction order: deterministic. Every thread of the block must call it (it synchronises);
// `scratch` holds 32 doubles of shared memory; `identity` fills the lanes of absent warps.
template <typename WarpReduce>
__device__ __forceinline__ double block_reduce(double v, double* scratch, double identity, WarpReduce warp_reduce) {
  const unsigned lane = threadIdx.x & 31u;
  const unsigned warp = threadIdx.x >> 5;
  v = warp_reduce(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = warp_reduce(lane < (blockDim.x >> 5) ? scratch[lane] : identity);
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  const double total = scratch[0];
  __syncthreads();  // scratch may be reused by the next reduction
  return total;
}

__device__ __forceinline__ double block_sum(double v, double* scratch) {
  return block_reduce(v, scratch, 0.0, [](double x) { return warp_sum(x); });
}

// Block maximum of non-negative values (the identity 0 suits magnitudes), NaN-sticky.
__device__ __forceinline__ double block_max(double v, double* scratch) {
  return block_reduce(v, scratch, 0.0, [](double x) { return warp_max(x); });
}

template <typename Scalar, int kVec>
struct alignas(sizeof(Scalar) * kVec) Vector {
  Scalar v[kVec];
};

// One 16-byte (or scalar, for kVec = 1) load; `p` must be aligned to the vector size.
template <typename Scalar, int kVec>
__device__ __forceinline__ void load_vector(const Scalar* p, Scalar (&out)[kVec]) {
  const Vector<Scalar, kVec> x = *reinterpret_cast<const Vector<Scalar, kVec>*>(p);
#pragma unroll
  for (int e = 0; e < kVec; ++e) out[e] = x.v[e];
}

template <typename Scalar, int kVec>
__device__ __forceinline__ void store_vector(Scalar* p, const Scalar (&in)[kVec]) {
  Vector<Scalar, kVec> x;
#pragma unroll
  for (int e = 0; e < kVec; ++e) x.v[e] = in[e];
  *reinterpret_cast<Vector<Scalar, kVec>*>(p) = x;
}

// Throws InvalidArgument when `pointer` is plain host memory (a common mistake that would
// otherwise surface as an illegal-address error long after the call).
inline void check_device_pointer(const void* pointer, const char* name) {
  if (pointer == nullptr) return;
  cudaPointerAttributes attributes{};
  DPSGD_CUDA_CHECK(cudaPointerGetAttributes(&attributes, pointer));
  DPSGD_CHECK_ARG(attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged,
                  name << " must point to device (or managed) memory, got a host pointer");
}

template <typename T>
void check_rows(const DeviceRows<T>& rows, const char* name) {
  DPSGD_CHECK_ARG(rows.rows >= 0 && rows.cols >= 0,
                  name << " must have rows >= 0 and cols >= 0, got " << rows.rows << " x " << rows.cols);
  DPSGD_CHECK_ARG(rows.stride == 0 || rows.stride >= rows.cols,
                  name << ".stride must be 0 or >= cols = " << rows.cols << ", got " << rows.stride);
  DPSGD_CHECK_ARG(
      rows.data != nullptr || rows.rows == 0 || rows.cols == 0,
      name << ".data must be a device pointer, got nullptr for a " << rows.rows << " x " << rows.cols << " matrix");
  check_device_pointer(rows.data, name);
}

// Grid size for a grid-stride loop over `items` blocks of work.
inline unsigned grid_for(std::int64_t items, std::int64_t most = 65535) {
  return static_cast<unsigned>(items < 1 ? 1 : (items < most ? items : most));
}

// Offset of the next 256-byte boundary at or after `bytes`, for carving one scratch buffer.
inline std::size_t align_up(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace dpsgd::cuda::detail
