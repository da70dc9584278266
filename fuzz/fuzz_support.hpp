// Fuzz-target support: a per-process scratch file for readers that take a path, and re-signing of
// JSON documents so that mutated content reaches the field checks behind the checksum.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "dpsgd/core/checksum.hpp"

namespace dpsgd::fuzz {

inline std::string write_scratch_file(const std::uint8_t* data, std::size_t size, const char* suffix) {
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("dpsgd-fuzz-" + std::to_string(::getpid()) + suffix)).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

// Replaces "checksum" with the one the content deserves, recursively for nested objects that carry
// one (a checkpoint's ledger), innermost first.
inline void resign(nlohmann::json& document) {
  if (!document.is_object()) return;
  for (auto& [key, value] : document.items()) {
    if (value.is_object()) resign(value);
  }
  if (!document.contains("checksum")) return;
  document.erase("checksum");
  document["checksum"] = fnv1a64_checksum(document.dump());
}

// A property the target checks beyond "no crash": abort() makes libFuzzer report the input.
inline void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace dpsgd::fuzz
