// Philox4x32-10, the counter-based generator of Salmon et al. (SC'11), shared by the CPU and CUDA paths.
#pragma once

#include <cstdint>

#include "dpsgd/core/host_device.hpp"
#include "dpsgd/noise/detail/philox_round.hpp"
#include "dpsgd/noise/philox_block.hpp"

namespace dpsgd {

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
