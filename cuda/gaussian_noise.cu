// CUDA kernels adding Philox4x32-10 Gaussian noise, using the same transform as the CPU path.
#include <cmath>

#include "check.cuh"
#include "dpsgd/cuda/gaussian_noise.hpp"
#include "dpsgd/noise/detail/noise_arguments.hpp"
#include "dpsgd/noise/gaussian_transform.hpp"

namespace dpsgd::cuda {
namespace {

constexpr unsigned kBlock = 256;

// One thread per Philox block in standard mode (two coordinates), one per coordinate in secure mode.
// v <- (v + noise) * scale, as the CPU's add_noise_to_range (scale 1 leaves the sum's bits).
template <typename Scalar>
__global__ void gaussian_noise_kernel(Scalar* values, std::uint64_t size, double stddev, Scalar scale,
                                      PhiloxKey philox_key, NoiseKey key, NoiseMode mode,
                                      std::uint64_t first_coordinate) {
  const std::uint64_t thread = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (mode == NoiseMode::kSecure) {
    if (thread < size) {
      const double z = unit_noise_at(philox_key, key, mode, first_coordinate + thread);
      values[thread] = (values[thread] + static_cast<Scalar>(stddev * z)) * scale;
    }
    return;
  }
  // Blocks are aligned to even global coordinates; the first block may cover coordinate -1 locally.
  const std::uint64_t first_block = first_coordinate >> 1;
  const std::uint64_t block = first_block + thread;
  const std::int64_t local = static_cast<std::int64_t>(2 * block) - static_cast<std::int64_t>(first_coordinate);
  if (local >= static_cast<std::int64_t>(size)) return;
  double z0, z1;
  box_muller(philox4x32_10(noise_counter(key, static_cast<std::uint32_t>(block)), philox_key), z0, z1);
  if (local >= 0) values[local] = (values[local] + static_cast<Scalar>(stddev * z0)) * scale;
  if (local + 1 < static_cast<std::int64_t>(size)) {
    values[local + 1] = (values[local + 1] + static_cast<Scalar>(stddev * z1)) * scale;
  }
}

// stddev 0: the CPU path only multiplies (no "+ 0", which would turn -0 into +0).
template <typename Scalar>
__global__ void scale_kernel(Scalar* values, std::uint64_t size, Scalar scale) {
  const std::uint64_t thread = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (thread < size) values[thread] *= scale;
}

unsigned grid_for(std::uint64_t threads, std::uint64_t size) {
  const std::uint64_t grid = (threads + kBlock - 1) / kBlock;
  DPSGD_CHECK_ARG(grid <= 0x7fffffffULL, "size " << size << " needs more than 2^31 - 1 thread blocks");
  return static_cast<unsigned>(grid);
}

template <typename Scalar>
void launch(DeviceContext& context, Scalar* values, std::uint64_t size, double stddev, const NoiseKey& key,
            NoiseMode mode, std::uint64_t first_coordinate, Scalar scale) {
  DPSGD_CHECK_ARG(values != nullptr || size == 0, "values must be a device pointer, got nullptr with size " << size);
  dpsgd::detail::check_noise_arguments(size, stddev, mode, first_coordinate, static_cast<double>(scale));
  if (size == 0) return;
  context.activate();
  const cudaStream_t stream = context.stream();
  if (stddev == 0.0) {
    if (scale == Scalar{1}) return;
    scale_kernel<Scalar><<<grid_for(size, size), kBlock, 0, stream>>>(values, size, scale);
  } else {
    const PhiloxKey philox_key = derive_philox_key(key.seed, RandomDomain::kGaussianNoise);
    const std::uint64_t threads =
        mode == NoiseMode::kSecure ? size : ((first_coordinate + size + 1) >> 1) - (first_coordinate >> 1);
    gaussian_noise_kernel<Scalar><<<grid_for(threads, size), kBlock, 0, stream>>>(
        values, size, stddev, scale, philox_key, key, mode, first_coordinate);
  }
  DPSGD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void add_gaussian_noise(DeviceContext& context, float* values, std::uint64_t size, double stddev, const NoiseKey& key,
                        NoiseMode mode, std::uint64_t first_coordinate) {
  launch(context, values, size, stddev, key, mode, first_coordinate, 1.0f);
}

void add_gaussian_noise(DeviceContext& context, double* values, std::uint64_t size, double stddev, const NoiseKey& key,
                        NoiseMode mode, std::uint64_t first_coordinate) {
  launch(context, values, size, stddev, key, mode, first_coordinate, 1.0);
}

void add_scaled_gaussian_noise(DeviceContext& context, float* values, std::uint64_t size, double stddev,
                               const NoiseKey& key, NoiseMode mode, std::uint64_t first_coordinate, float scale) {
  launch(context, values, size, stddev, key, mode, first_coordinate, scale);
}

void add_scaled_gaussian_noise(DeviceContext& context, double* values, std::uint64_t size, double stddev,
                               const NoiseKey& key, NoiseMode mode, std::uint64_t first_coordinate, double scale) {
  launch(context, values, size, stddev, key, mode, first_coordinate, scale);
}

}  // namespace dpsgd::cuda
