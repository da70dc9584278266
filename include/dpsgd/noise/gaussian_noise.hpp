// add_gaussian_noise: adds N(0, stddev^2) to each coordinate from a counter-based stream keyed by NoiseKey.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/parallel.hpp"
#include "dpsgd/noise/gaussian_transform.hpp"

namespace dpsgd {

namespace detail {
// Coordinates per OpenMP work item: even, so every Philox block falls inside one item.
inline constexpr std::uint64_t kNoiseChunk = 8192;

template <typename Scalar>
void add_noise_to_range(Scalar* values, std::uint64_t begin, std::uint64_t end, std::uint64_t first_coordinate,
                        double stddev, PhiloxKey philox_key, const NoiseKey& key, NoiseMode mode) {
  if (mode == NoiseMode::kStandard) {
    std::uint64_t i = begin;
    // Box-Muller yields values in pairs; a range that starts or ends on an odd coordinate uses one.
    if (i < end && ((first_coordinate + i) & 1)) {
      values[i] += static_cast<Scalar>(stddev * standard_normal_at(philox_key, key, first_coordinate + i));
      ++i;
    }
    for (; i + 1 < end; i += 2) {
      double z0, z1;
      const auto block = static_cast<std::uint32_t>((first_coordinate + i) >> 1);
      box_muller(philox4x32_10(noise_counter(key, block), philox_key), z0, z1);
      values[i] += static_cast<Scalar>(stddev * z0);
      values[i + 1] += static_cast<Scalar>(stddev * z1);
    }
    if (i < end) values[i] += static_cast<Scalar>(stddev * standard_normal_at(philox_key, key, first_coordinate + i));
    return;
  }
  for (std::uint64_t i = begin; i < end; ++i) {
    values[i] += static_cast<Scalar>(stddev * unit_noise_at(philox_key, key, mode, first_coordinate + i));
  }
}
}  // namespace detail

// Adds N(0, stddev^2) noise to every element of `values`. Element j receives the noise of global
// coordinate first_coordinate + j of the stream `key`, so a model split over several buffers gets
// the same noise as one contiguous buffer, and the result is bit-identical for any thread count
// and on the GPU (dpsgd::cuda::add_gaussian_noise) up to the final rounding of the transcendental
// functions. stddev = 0 leaves `values` unchanged. Throws InvalidArgument for a negative or
// non-finite stddev, an unknown mode, or a coordinate range beyond the stream (2^32 Philox blocks).
template <typename Scalar>
void add_gaussian_noise(std::span<Scalar> values, double stddev, const NoiseKey& key,
                        NoiseMode mode = NoiseMode::kStandard, std::uint64_t first_coordinate = 0) {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "add_gaussian_noise supports float and double");
  DPSGD_CHECK_ARG(std::isfinite(stddev) && stddev >= 0.0, "stddev must be finite and >= 0, got " << stddev);
  DPSGD_CHECK_ARG(mode == NoiseMode::kStandard || mode == NoiseMode::kSecure,
                  "mode must be NoiseMode::kStandard or NoiseMode::kSecure, got " << static_cast<int>(mode));
  const std::uint64_t size = values.size();
  const std::uint64_t max_coordinates =
      kMaxPhiloxBlocksPerStream * kNormalsPerPhiloxBlock / static_cast<std::uint64_t>(normals_per_coordinate(mode));
  DPSGD_CHECK_ARG(first_coordinate <= max_coordinates && size <= max_coordinates - first_coordinate,
                  "coordinates [first_coordinate, first_coordinate + size) = ["
                      << first_coordinate << ", " << first_coordinate + size << ") exceed the " << max_coordinates
                      << " coordinates of one noise stream; split the model over several NoiseKey::stream values");
  if (stddev == 0.0 || size == 0) return;

  const PhiloxKey philox_key = derive_philox_key(key.seed, RandomDomain::kGaussianNoise);
  const std::uint64_t chunks = (size + detail::kNoiseChunk - 1) / detail::kNoiseChunk;
  Scalar* data = values.data();
  const auto noise_chunk = [&](std::uint64_t chunk) {
    const std::uint64_t begin = chunk * detail::kNoiseChunk;
    const std::uint64_t end = begin + detail::kNoiseChunk < size ? begin + detail::kNoiseChunk : size;
    detail::add_noise_to_range(data, begin, end, first_coordinate, stddev, philox_key, key, mode);
  };
  if (!detail::worth_parallel(static_cast<long long>(size) * 16)) {
    for (std::uint64_t chunk = 0; chunk < chunks; ++chunk) noise_chunk(chunk);
    return;
  }
#pragma omp parallel for schedule(static)
  for (std::uint64_t chunk = 0; chunk < chunks; ++chunk) noise_chunk(chunk);
}

extern template void add_gaussian_noise<float>(std::span<float>, double, const NoiseKey&, NoiseMode, std::uint64_t);
extern template void add_gaussian_noise<double>(std::span<double>, double, const NoiseKey&, NoiseMode, std::uint64_t);

}  // namespace dpsgd
