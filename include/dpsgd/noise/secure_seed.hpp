// Seeds from the operating system's CSPRNG, the default for any run whose output is released.
#pragma once

#include <cstdint>
#include <string>

namespace dpsgd {

// 64 bits from getrandom(2) (falling back to /dev/urandom); throws dpsgd::IoError if neither works,
// never a weaker source.
std::uint64_t secure_random_seed();

// A run's secret seed in a file of its own: created whole, owner-only (mode 0600), never replacing an
// existing file (dpsgd::FileExists); read back with dpsgd::FormatError for anything but one unsigned
// integer.
void create_seed_file(const std::string& path, std::uint64_t seed);
std::uint64_t read_seed_file(const std::string& path);

}  // namespace dpsgd
