// micro_batches: a step's fixed-capacity batch cut into consecutive slot ranges, for gradient
// accumulation when the logical batch does not fit in memory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "dpsgd/core/error.hpp"
#include "dpsgd/sampling/batch.hpp"

namespace dpsgd {

// Slots [begin, begin + size) of a batch: their example indices and their mask.
struct MicroBatch {
  std::int64_t begin = 0;
  std::int64_t size = 0;
  std::span<const std::int64_t> indices;
  std::span<const std::uint8_t> mask;
};

// Consecutive ranges of at most max_size slots covering the whole capacity. Each micro-batch's clipped
// sum is added into one gradient buffer; the step (noise once, one ledger charge) comes after the
// last. Every range is processed, padding ones too: skipping them would make the step's time depend
// on the realised batch size, which is private. The spans point into `batch`.
inline std::vector<MicroBatch> micro_batches(const Batch& batch, std::int64_t max_size) {
  DPSGD_CHECK_ARG(max_size >= 1, "max_size must be >= 1, got " << max_size);
  DPSGD_CHECK_ARG(batch.mask.size() == batch.indices.size(),
                  "batch.mask has " << batch.mask.size() << " entries, batch.indices " << batch.indices.size());
  std::vector<MicroBatch> result;
  const std::int64_t capacity = batch.capacity();
  for (std::int64_t begin = 0; begin < capacity; begin += max_size) {
    const std::int64_t size = std::min(max_size, capacity - begin);
    const auto offset = static_cast<std::size_t>(begin), count = static_cast<std::size_t>(size);
    result.push_back({begin, size, std::span<const std::int64_t>(batch.indices).subspan(offset, count),
                      std::span<const std::uint8_t>(batch.mask).subspan(offset, count)});
  }
  return result;
}

}  // namespace dpsgd
