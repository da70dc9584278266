// libFuzzer target: the IDX reader (plain and gzip) on arbitrary bytes. Only dpsgd errors may escape.
#include <cstdint>

#include "dpsgd/core/error.hpp"
#include "dpsgd/data/idx.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = dpsgd::fuzz::write_scratch_file(data, size, ".idx");
  try {
    const dpsgd::IdxArray array = dpsgd::read_idx(path);
    std::uint64_t total = 1;
    for (const auto d : array.dims) total *= static_cast<std::uint64_t>(d);
    dpsgd::fuzz::require(!array.dims.empty() && total == array.values.size(), "dims match the values read");
  } catch (const dpsgd::FormatError&) {
  } catch (const dpsgd::IoError&) {
  }
  return 0;
}
