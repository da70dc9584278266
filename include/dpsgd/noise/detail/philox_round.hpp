// Internal: one round of Philox4x32 and its constants (Salmon, Moraes, Dror, Shaw 2011).
#pragma once

#include <cstdint>

#include "dpsgd/core/host_device.hpp"
#include "dpsgd/noise/philox_block.hpp"

namespace dpsgd::detail {

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

}  // namespace dpsgd::detail
