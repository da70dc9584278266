// The argument checks of every noise entry point, CPU and GPU: one rule, one message.
#pragma once

#include <cmath>
#include <cstdint>

#include "dpsgd/core/error.hpp"
#include "dpsgd/noise/gaussian_transform.hpp"

namespace dpsgd::detail {

// Throws InvalidArgument for a negative or non-finite stddev or scale, an unknown mode, or coordinates
// [first_coordinate, first_coordinate + size) past the stream's 2^32 Philox blocks.
inline void check_noise_arguments(std::uint64_t size, double stddev, NoiseMode mode, std::uint64_t first_coordinate,
                                  double scale) {
  DPSGD_CHECK_ARG(std::isfinite(stddev) && stddev >= 0.0, "stddev must be finite and >= 0, got " << stddev);
  DPSGD_CHECK_ARG(std::isfinite(scale) && scale >= 0.0, "scale must be finite and >= 0, got " << scale);
  DPSGD_CHECK_ARG(mode == NoiseMode::kStandard || mode == NoiseMode::kSecure,
                  "mode must be NoiseMode::kStandard or NoiseMode::kSecure, got " << static_cast<int>(mode));
  const std::uint64_t max_coordinates =
      kMaxPhiloxBlocksPerStream * kNormalsPerPhiloxBlock / static_cast<std::uint64_t>(normals_per_coordinate(mode));
  DPSGD_CHECK_ARG(first_coordinate <= max_coordinates && size <= max_coordinates - first_coordinate,
                  "coordinates [first_coordinate, first_coordinate + size) = ["
                      << first_coordinate << ", " << first_coordinate + size << ") exceed the " << max_coordinates
                      << " coordinates of one noise stream; split the model over several NoiseKey::stream values");
}

}  // namespace dpsgd::detail
