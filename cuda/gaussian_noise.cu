// CUDA kernel adding Philox4x32-10 Gaussian noise, using the same transform as the CPU path.
#include <cmath>

#include "check.cuh"
#include "dpsgd/cuda/gaussian_noise.hpp"
#include "dpsgd/noise/gaussian_transform.hpp"

namespace dpsgd::cuda {
namespace {

// One thread per Philox block in standard mode (two coordinates), one per coordinate in secure mode.
template <typename Scalar>
__global__ void gaussian_noise_kernel(Scalar* values, std::uint64_t size, double stddev, PhiloxKey philox_key,
                                      NoiseKey key, NoiseMode mode, std::uint64_t first_coordinate) {
  const std::uint64_t thread = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (mode == NoiseMode::kSecure) {
    if (thread < size)
      values[thread] += static_cast<Scalar>(stddev * unit_noise_at(philox_key, key, mode, first_coordinate + thread));
    return;
  }
  // Blocks are aligned to even global coordinates; the first block may cover coordinate -1 locally.
  const std::uint64_t first_block = first_coordinate >> 1;
  const std::uint64_t block = first_block + thread;
  const std::int64_t local = static_cast<std::int64_t>(2 * block) - static_cast<std::int64_t>(first_coordinate);
  if (local >= static_cast<std::int64_t>(size)) return;
  double z0, z1;
  box_muller(philox4x32_10(noise_counter(key, static_cast<std::uint32_t>(block)), philox_key), z0, z1);
  if (local >= 0) values[local] += static_cast<Scalar>(stddev * z0);
  if (local + 1 < static_cast<std::int64_t>(size)) values[local + 1] += static_cast<Scalar>(stddev * z1);
}

template <typename Scalar>
void launch(Scalar* values, std::uint64_t size, double stddev, const NoiseKey& key, NoiseMode mode,
            std::uint64_t first_coordinate, Stream stream) {
  DPSGD_CHECK_ARG(values != nullptr || size == 0, "values must be a device pointer, got nullptr with size " << size);
  DPSGD_CHECK_ARG(std::isfinite(stddev) && stddev >= 0.0, "stddev must be finite and >= 0, got " << stddev);
  DPSGD_CHECK_ARG(mode == NoiseMode::kStandard || mode == NoiseMode::kSecure,
                  "mode must be NoiseMode::kStandard or NoiseMode::kSecure, got " << static_cast<int>(mode));
  const std::uint64_t max_coordinates =
      kMaxPhiloxBlocksPerStream * kNormalsPerPhiloxBlock / static_cast<std::uint64_t>(normals_per_coordinate(mode));
  DPSGD_CHECK_ARG(first_coordinate <= max_coordinates && size <= max_coordinates - first_coordinate,
                  "coordinates [" << first_coordinate << ", " << first_coordinate + size << ") exceed the "
                                  << max_coordinates << " coordinates of one noise stream");
  if (size == 0 || stddev == 0.0) return;
  const PhiloxKey philox_key = derive_philox_key(key.seed, RandomDomain::kGaussianNoise);
  const std::uint64_t threads =
      mode == NoiseMode::kSecure ? size : ((first_coordinate + size + 1) >> 1) - (first_coordinate >> 1);
  constexpr unsigned kBlock = 256;
  const std::uint64_t grid = (threads + kBlock - 1) / kBlock;
  DPSGD_CHECK_ARG(grid <= 0x7fffffffULL, "size " << size << " needs more than 2^31 - 1 thread blocks");
  gaussian_noise_kernel<Scalar><<<static_cast<unsigned>(grid), kBlock, 0, stream>>>(values, size, stddev, philox_key,
                                                                                    key, mode, first_coordinate);
  DPSGD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void add_gaussian_noise(float* values, std::uint64_t size, double stddev, const NoiseKey& key, NoiseMode mode,
                        std::uint64_t first_coordinate, Stream stream) {
  launch(values, size, stddev, key, mode, first_coordinate, stream);
}

void add_gaussian_noise(double* values, std::uint64_t size, double stddev, const NoiseKey& key, NoiseMode mode,
                        std::uint64_t first_coordinate, Stream stream) {
  launch(values, size, stddev, key, mode, first_coordinate, stream);
}

}  // namespace dpsgd::cuda
