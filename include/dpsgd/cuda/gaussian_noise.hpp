// dpsgd::cuda::add_gaussian_noise: the GPU twin of dpsgd::add_gaussian_noise, over device memory.
// Plain C++: includes no CUDA header, so host code builds without nvcc.
#pragma once

#include <cstdint>

#include "dpsgd/cuda/device_context.hpp"
#include "dpsgd/noise/gaussian_transform.hpp"

namespace dpsgd::cuda {

// Adds N(0, stddev^2) to values[0 .. size) on the device, element j receiving the noise of
// coordinate first_coordinate + j of the stream `key`: the same uniform bits as the CPU path, so
// results agree with dpsgd::add_gaussian_noise to the rounding of log/sin/cos (a few ulp of double
// before the final rounding to the output type).
//   values: device pointer to `size` elements; no other buffer, so no aliasing rules.
//   Deterministic: yes (each element is computed by one thread from (key, index) alone).
//   Asynchronous on `stream`; launch errors are checked and thrown as dpsgd::CudaError.
// Throws InvalidArgument for a null pointer with size > 0, bad stddev or mode, or a range past the
// stream's 2^32 Philox blocks.
void add_gaussian_noise(float* values, std::uint64_t size, double stddev, const NoiseKey& key,
                        NoiseMode mode = NoiseMode::kStandard, std::uint64_t first_coordinate = 0,
                        Stream stream = nullptr);
void add_gaussian_noise(double* values, std::uint64_t size, double stddev, const NoiseKey& key,
                        NoiseMode mode = NoiseMode::kStandard, std::uint64_t first_coordinate = 0,
                        Stream stream = nullptr);

// The same on a context's stream.
inline void add_gaussian_noise(DeviceContext& context, float* values, std::uint64_t size, double stddev,
                               const NoiseKey& key, NoiseMode mode = NoiseMode::kStandard,
                               std::uint64_t first_coordinate = 0) {
  context.activate();
  add_gaussian_noise(values, size, stddev, key, mode, first_coordinate, context.stream());
}
inline void add_gaussian_noise(DeviceContext& context, double* values, std::uint64_t size, double stddev,
                               const NoiseKey& key, NoiseMode mode = NoiseMode::kStandard,
                               std::uint64_t first_coordinate = 0) {
  context.activate();
  add_gaussian_noise(values, size, stddev, key, mode, first_coordinate, context.stream());
}

}  // namespace dpsgd::cuda
