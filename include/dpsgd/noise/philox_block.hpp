// PhiloxCounter and PhiloxKey: the 128-bit counter block and 64-bit key of Philox4x32.
#pragma once

#include <cstdint>

namespace dpsgd {

struct PhiloxCounter {
  std::uint32_t v[4];
};
struct PhiloxKey {
  std::uint32_t v[2];
};

}  // namespace dpsgd
