// Seeds from the operating system's CSPRNG, the default for any run whose output is released.
#pragma once

#include <cstdint>

namespace dpsgd {

// 64 bits from getrandom(2) (falling back to /dev/urandom); throws dpsgd::IoError if neither works,
// never a weaker source.
std::uint64_t secure_random_seed();

}  // namespace dpsgd
