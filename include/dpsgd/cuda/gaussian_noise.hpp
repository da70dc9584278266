// dpsgd::cuda::add_gaussian_noise and add_scaled_gaussian_noise: the GPU twins of the CPU noise calls.
// Plain C++: includes no CUDA header, so host code builds without nvcc.
#pragma once

#include <cstdint>

#include "dpsgd/cuda/device_context.hpp"
#include "dpsgd/noise/noise_key.hpp"

namespace dpsgd::cuda {

// Adds N(0, stddev^2) to values[0 .. size) on the device, element j receiving the noise of
// coordinate first_coordinate + j of the stream `key`: the same uniform bits as the CPU path, so
// results agree with dpsgd::add_gaussian_noise to the rounding of log/sin/cos (a few ulp of double
// before the final rounding to the output type).
//   values: device pointer to `size` elements; no other buffer, so no aliasing rules.
//   Deterministic: yes (each element is computed by one thread from (key, index) alone).
//   Asynchronous on the context's stream, like every dpsgd::cuda call; launch errors are checked and
//   thrown as dpsgd::CudaError.
// Throws InvalidArgument for a null pointer with size > 0, and as dpsgd::add_gaussian_noise does
// (bad stddev or mode, a range past the stream's 2^32 Philox blocks).
void add_gaussian_noise(DeviceContext& context, float* values, std::uint64_t size, double stddev, const NoiseKey& key,
                        NoiseMode mode = NoiseMode::kStandard, std::uint64_t first_coordinate = 0);
void add_gaussian_noise(DeviceContext& context, double* values, std::uint64_t size, double stddev, const NoiseKey& key,
                        NoiseMode mode = NoiseMode::kStandard, std::uint64_t first_coordinate = 0);

// values <- (values + N(0, stddev^2) noise) * scale in one pass, as dpsgd::add_scaled_gaussian_noise:
// the step's noise and its division by the expected batch size. Same bits as add_gaussian_noise
// followed by a separate multiply; throws as add_gaussian_noise does, and for a negative or
// non-finite scale.
void add_scaled_gaussian_noise(DeviceContext& context, float* values, std::uint64_t size, double stddev,
                               const NoiseKey& key, NoiseMode mode, std::uint64_t first_coordinate, float scale);
void add_scaled_gaussian_noise(DeviceContext& context, double* values, std::uint64_t size, double stddev,
                               const NoiseKey& key, NoiseMode mode, std::uint64_t first_coordinate, double scale);

}  // namespace dpsgd::cuda
