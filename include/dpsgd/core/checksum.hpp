// FNV-1a 64-bit checksum of a string, as the tagged hex text stored in dpsgd's JSON files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace dpsgd {

// Detects truncation and careless edits of saved files; it is not a signature (see docs/accounting.md).
inline std::string fnv1a64_checksum(const std::string& text) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "fnv1a64:%016llx", static_cast<unsigned long long>(hash));
  return buffer;
}

}  // namespace dpsgd
