// add_gaussian_noise: adds N(0, stddev^2) to each coordinate from a counter-based stream keyed by NoiseKey.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>

#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/detail/vector_ops.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/real_scalar.hpp"
#include "dpsgd/noise/detail/noise_arguments.hpp"
#include "dpsgd/noise/detail/noise_kernels.hpp"
#include "dpsgd/noise/gaussian_transform.hpp"

namespace dpsgd {

// values <- (values + N(0, stddev^2) noise) * scale, in one pass: the DP step's noise and its
// division by the expected batch size without a second sweep over a model-sized vector. The
// result has the bits of add_gaussian_noise followed by a separate multiply. Throws as
// add_gaussian_noise does, and for a negative or non-finite scale.
template <RealScalar Scalar>
void add_scaled_gaussian_noise(std::span<Scalar> values, double stddev, const NoiseKey& key, NoiseMode mode,
                               std::uint64_t first_coordinate, Scalar scale) {
  const std::uint64_t size = values.size();
  detail::check_noise_arguments(size, stddev, mode, first_coordinate, static_cast<double>(scale));
  if (size == 0) return;
  Scalar* data = values.data();
  if (stddev == 0.0) {
    if (scale != Scalar{1}) {
      detail::for_each_chunk(size, [&](std::size_t begin, std::size_t end) {
        for (std::size_t j = begin; j < end; ++j) data[j] *= scale;
      });
    }
    return;
  }

  const PhiloxKey philox_key = derive_philox_key(key.seed, RandomDomain::kGaussianNoise);
  const std::uint64_t chunks = (size + detail::kNoiseChunk - 1) / detail::kNoiseChunk;
  const auto noise_chunk = [&](std::uint64_t chunk) {
    const std::uint64_t begin = chunk * detail::kNoiseChunk;
    const std::uint64_t end = begin + detail::kNoiseChunk < size ? begin + detail::kNoiseChunk : size;
    detail::add_noise_to_range(data, begin, end, first_coordinate, stddev, scale, philox_key, key, mode);
  };
  if (!detail::worth_parallel(static_cast<long long>(size) * 16)) {
    for (std::uint64_t chunk = 0; chunk < chunks; ++chunk) noise_chunk(chunk);
    return;
  }
#pragma omp parallel for schedule(static)
  for (std::uint64_t chunk = 0; chunk < chunks; ++chunk) noise_chunk(chunk);
}

// Adds N(0, stddev^2) noise to every element of `values`. Element j receives the noise of global
// coordinate first_coordinate + j of the stream `key`. Two calls with the same key and overlapping
// coordinates add the same noise: for several tensors use NoiseStreams (noise_streams.hpp), which
// gives each its own stream, or disjoint coordinate ranges of one stream (a model split over several
// buffers then gets the same noise as one contiguous buffer). The result is bit-identical for any
// thread count
// and on the GPU (dpsgd::cuda::add_gaussian_noise) up to the final rounding of the transcendental
// functions. stddev = 0 leaves `values` unchanged. Throws InvalidArgument for a negative or
// non-finite stddev, an unknown mode, or a coordinate range beyond the stream (2^32 Philox blocks).
template <typename Scalar>
void add_gaussian_noise(std::span<Scalar> values, double stddev, const NoiseKey& key,
                        NoiseMode mode = NoiseMode::kStandard, std::uint64_t first_coordinate = 0) {
  add_scaled_gaussian_noise<Scalar>(values, stddev, key, mode, first_coordinate, Scalar{1});
}

extern template void add_gaussian_noise<float>(std::span<float>, double, const NoiseKey&, NoiseMode, std::uint64_t);
extern template void add_gaussian_noise<double>(std::span<double>, double, const NoiseKey&, NoiseMode, std::uint64_t);
extern template void add_scaled_gaussian_noise<float>(std::span<float>, double, const NoiseKey&, NoiseMode,
                                                      std::uint64_t, float);
extern template void add_scaled_gaussian_noise<double>(std::span<double>, double, const NoiseKey&, NoiseMode,
                                                       std::uint64_t, double);

}  // namespace dpsgd
