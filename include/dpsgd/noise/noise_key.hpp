// NoiseKey and NoiseMode: which stream of standard normals a noise value comes from, and how the
// normals become one value. Shared by the CPU and CUDA paths.
#pragma once

#include <cstdint>

#include "dpsgd/core/host_device.hpp"

namespace dpsgd {

// Where a noise value comes from: (seed, step, stream) fixes a stream of standard normals, and
// coordinate i of a buffer takes the i-th value of that stream (two per Philox block), so the
// value depends only on (key, i): not on thread count, chunking or device.
// The three parts are required: a key with a defaulted stream would let two tensors of a step share
// one stream, and so one noise vector. NoiseStreams hands every tensor a stream of its own.
struct NoiseKey {
  DPSGD_HOST_DEVICE constexpr NoiseKey(std::uint64_t seed_, std::uint64_t step_, std::uint32_t stream_)
      : seed(seed_), step(step_), stream(stream_) {}

  std::uint64_t seed;
  std::uint64_t step;
  std::uint32_t stream;
};

// How a noise value is formed from standard normals.
enum class NoiseMode : int {
  // One Box-Muller normal per coordinate, computed in double and rounded once to the output type.
  kStandard = 0,
  // The sum of four independent normals divided by two (Holohan & Braghin 2021, the mitigation
  // Opacus calls secure_mode): the output's low-order bits no longer follow one transform's
  // floating-point grid, which defeats the reconstruction attacks on naive samplers.
  kSecure = 1,
};

DPSGD_HOST_DEVICE int normals_per_coordinate(NoiseMode mode) { return mode == NoiseMode::kSecure ? 4 : 1; }

}  // namespace dpsgd
