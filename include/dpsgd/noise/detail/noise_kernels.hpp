// Internal: the batched standard-normal kernels (AVX-512 and portable) and the range helper that adds
// a stream's noise to a slice of a vector; add_gaussian_noise and NoiseStreams are built on them.
#pragma once

#include <cstdint>

#include "dpsgd/noise/gaussian_transform.hpp"

namespace dpsgd::detail {

// Coordinates per OpenMP work item: even, so every Philox block falls inside one item.
inline constexpr std::uint64_t kNoiseChunk = 8192;

// Writes the 2 * count standard normals of Philox blocks [first_block, first_block + count) of the
// stream `key` to out (z0, z1 of each block in turn): box_muller(philox4x32_10(...)) for many blocks
// at once. An AVX-512 kernel runs where the CPU has AVX-512F/DQ (checked once at run time), a
// portable one that compilers vectorise elsewhere; both are built without floating-point
// contraction, so they give the same bits (noise_test checks this).
void standard_normal_blocks(PhiloxKey philox_key, const NoiseKey& key, std::uint32_t first_block, std::uint32_t count,
                            double* out);
// The portable kernel alone, and whether standard_normal_blocks uses the AVX-512 one: for tests and
// benchmarks that compare the two.
void portable_standard_normal_blocks(PhiloxKey philox_key, const NoiseKey& key, std::uint32_t first_block,
                                     std::uint32_t count, double* out);
bool standard_normal_blocks_use_avx512();

template <typename Scalar>
void add_noise_to_range(Scalar* values, std::uint64_t begin, std::uint64_t end, std::uint64_t first_coordinate,
                        double stddev, Scalar scale, PhiloxKey philox_key, const NoiseKey& key, NoiseMode mode) {
  constexpr std::uint64_t kBlocks = 256;
  double normals[2 * kBlocks];
  // Coordinate c takes normal c of the stream (standard), or normals 4c .. 4c + 3 (secure); normal n
  // is half n & 1 of block n >> 1.
  const std::uint64_t per_coordinate = static_cast<std::uint64_t>(normals_per_coordinate(mode));
  std::uint64_t c = first_coordinate + begin;
  const std::uint64_t c_end = first_coordinate + end;
  while (c < c_end) {
    const std::uint64_t block = (c * per_coordinate) >> 1;
    const std::uint64_t last_block = ((c_end * per_coordinate) - 1) >> 1;
    const std::uint64_t count = last_block - block + 1 < kBlocks ? last_block - block + 1 : kBlocks;
    standard_normal_blocks(philox_key, key, static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(count),
                           normals);
    // Coordinates whose normals all lie in the blocks just computed.
    const std::uint64_t covered = (2 * (block + count)) / per_coordinate;
    const std::uint64_t to = covered < c_end ? covered : c_end;
    const std::uint64_t offset = 2 * block;
    if (mode == NoiseMode::kSecure) {
      for (; c < to; ++c) {
        const double* z = normals + (4 * c - offset);
        Scalar& v = values[c - first_coordinate];
        v = (v + static_cast<Scalar>(stddev * (0.5 * ((z[0] + z[1]) + (z[2] + z[3]))))) * scale;
      }
    } else {
      for (; c < to; ++c) {
        Scalar& v = values[c - first_coordinate];
        v = (v + static_cast<Scalar>(stddev * normals[c - offset])) * scale;
      }
    }
  }
}

}  // namespace dpsgd::detail
