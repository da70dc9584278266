// Philox4x32-10, the counter-based generator of Salmon et al. (SC'11), shared by the CPU and CUDA paths.
#pragma once

#include <cstdint>

#include "dpsgd/core/host_device.hpp"

namespace dpsgd {

struct PhiloxCounter {
  std::uint32_t v[4];
};
struct PhiloxKey {
  std::uint32_t v[2];
};

namespace detail {
// Round and key-schedule constants of Philox4x32 (Salmon, Moraes, Dror, Shaw 2011, table 2).
inline constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr std::uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u;
inline constexpr std::uint32_t kPhiloxW1 = 0xBB67AE85u;

DPSGD_HOST_DEVICE void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t product = static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b);
  hi = static_cast<std::uint32_t>(product >> 32);
  lo = static_cast<std::uint32_t>(product);
}

DPSGD_HOST_DEVICE PhiloxCounter philox_round(PhiloxCounter c, PhiloxKey k) {
  std::uint32_t hi0, lo0, hi1, lo1;
  philox_mulhilo(kPhiloxM0, c.v[0], hi0, lo0);
  philox_mulhilo(kPhiloxM1, c.v[2], hi1, lo1);
  return PhiloxCounter{{hi1 ^ c.v[1] ^ k.v[0], lo1, hi0 ^ c.v[3] ^ k.v[1], lo0}};
}
}  // namespace detail

// The 128 output bits for one counter under one key: a bijection of the counter for a fixed key,
// so distinct counters never repeat an output block.
DPSGD_HOST_DEVICE PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key.v[0] += detail::kPhiloxW0;
      key.v[1] += detail::kPhiloxW1;
    }
    counter = detail::philox_round(counter, key);
  }
  return counter;
}

DPSGD_HOST_DEVICE PhiloxKey philox_key_from_seed(std::uint64_t seed) {
  return PhiloxKey{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
}

// Domains keep the sampler's and the noise's random streams disjoint even when a user passes the
// same seed to both: each domain gets its own Philox key, itself a Philox output of the seed.
enum class RandomDomain : std::uint32_t {
  kGaussianNoise = 0x6e6f6973u,
  kPoissonSampler = 0x73616d70u,
  kPoissonTruncation = 0x7472756eu,
};

DPSGD_HOST_DEVICE PhiloxKey derive_philox_key(std::uint64_t seed, RandomDomain domain) {
  const PhiloxCounter out = philox4x32_10(PhiloxCounter{{static_cast<std::uint32_t>(domain), 0x64707367u, 0u, 0u}},
                                          philox_key_from_seed(seed));
  return PhiloxKey{{out.v[0], out.v[1]}};
}

}  // namespace dpsgd
