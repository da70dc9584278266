// Bits-to-Gaussian transform (Box-Muller on 52-bit uniforms), shared by the CPU and CUDA noise paths.
#pragma once

#include <math.h>

#include <cstdint>

#include "dpsgd/core/host_device.hpp"
#include "dpsgd/noise/detail/box_muller_math.hpp"
#include "dpsgd/noise/noise_key.hpp"
#include "dpsgd/noise/philox.hpp"

namespace dpsgd {

// Standard normals produced by one Philox block.
inline constexpr int kNormalsPerPhiloxBlock = 2;

// Number of Philox blocks a stream may use: the block index fills one 32-bit counter word.
inline constexpr std::uint64_t kMaxPhiloxBlocksPerStream = std::uint64_t{1} << 32;

// A uniform in (0, 1) from 52 random bits: (k + 1/2) 2^-52, never 0 or 1 (with 53 bits the top
// value 1 - 2^-54 would round to 1), so log() below is finite and the Gaussian tail reaches
// sqrt(2 ln 2^53) = 8.57 standard deviations (probability beyond it: 1e-17).
DPSGD_HOST_DEVICE double uniform_open_from_bits(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = ((static_cast<std::uint64_t>(hi) << 32) | lo) >> 12;
  return (detail::small_uint_to_double(bits) + 0.5) * 0x1.0p-52;
}

// The counter of block `block` in the stream of `key`: word 0 is the block index, word 1 the
// stream, words 2-3 the step, so (step, stream, block) never collide.
DPSGD_HOST_DEVICE PhiloxCounter noise_counter(const NoiseKey& key, std::uint32_t block) {
  return PhiloxCounter{
      {block, key.stream, static_cast<std::uint32_t>(key.step), static_cast<std::uint32_t>(key.step >> 32)}};
}

// Box-Muller: two independent standard normals from one Philox block. log and sin/cos are the
// library's own (box_muller_math.hpp), so the vectorised CPU path, the scalar path and the GPU
// evaluate the same formulas.
DPSGD_HOST_DEVICE void box_muller(PhiloxCounter bits, double& z0, double& z1) {
  const double u1 = uniform_open_from_bits(bits.v[0], bits.v[1]);
  const double u2 = uniform_open_from_bits(bits.v[2], bits.v[3]);
  const double radius = sqrt(-2.0 * detail::log_positive(u1));
  double sine, cosine;
  detail::sincos_two_pi(u2, sine, cosine);
  z0 = radius * cosine;
  z1 = radius * sine;
}

// The `index`-th standard normal of the stream (seed derived key, step, stream).
DPSGD_HOST_DEVICE double standard_normal_at(PhiloxKey philox_key, const NoiseKey& key, std::uint64_t index) {
  double z0, z1;
  box_muller(philox4x32_10(noise_counter(key, static_cast<std::uint32_t>(index >> 1)), philox_key), z0, z1);
  return (index & 1) ? z1 : z0;
}

// The unit-variance noise for coordinate `coordinate` under `mode`, before scaling by stddev.
DPSGD_HOST_DEVICE double unit_noise_at(PhiloxKey philox_key, const NoiseKey& key, NoiseMode mode,
                                       std::uint64_t coordinate) {
  if (mode == NoiseMode::kSecure) {
    double a, b, c, d;
    const std::uint32_t block = static_cast<std::uint32_t>(coordinate * 2);
    box_muller(philox4x32_10(noise_counter(key, block), philox_key), a, b);
    box_muller(philox4x32_10(noise_counter(key, block + 1), philox_key), c, d);
    return 0.5 * ((a + b) + (c + d));
  }
  return standard_normal_at(philox_key, key, coordinate);
}

}  // namespace dpsgd
