// Internal: deterministic parameter initialisation of the reference layers from a seed.
#pragma once

#include <cstdint>
#include <span>

#include "dpsgd/noise/gaussian_transform.hpp"
#include "dpsgd/noise/philox.hpp"

namespace dpsgd::detail {

// values[j] ~ Uniform(-bound, bound), a function of (seed, layer_index, j) only: the same model on
// every machine and thread count. The tag keeps initialisation apart from every noise stream.
template <typename Scalar>
void uniform_initialize(std::span<Scalar> values, double bound, std::uint64_t seed, std::uint32_t layer_index) {
  const PhiloxKey key = philox_key_from_seed(seed);
  for (std::size_t j = 0; j < values.size(); ++j) {
    const auto index = static_cast<std::uint64_t>(j);
    const PhiloxCounter bits =
        philox4x32_10(PhiloxCounter{{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32),
                                     layer_index, 0x696e6974u}},
                      key);
    values[j] = static_cast<Scalar>(bound * (2.0 * uniform_open_from_bits(bits.v[0], bits.v[1]) - 1.0));
  }
}

}  // namespace dpsgd::detail
