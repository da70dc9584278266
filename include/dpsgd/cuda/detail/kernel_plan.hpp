// Internal: launch geometry of the dpsgd::cuda clipping kernels, as plain functions that the kernels
// and the CPU tests share (the tests replay a launch thread by thread to check that every element is
// visited exactly once).
#pragma once

#include <cstdint>

#include "dpsgd/core/host_device.hpp"

namespace dpsgd::cuda::detail {

// Threads per block of the fused clip kernel, and the most 16-byte vectors each thread holds.
inline constexpr int kFusedThreads = 512;
inline constexpr int kFusedMaxChunks = 8;
// Threads per block of the row-norm and clipped-sum kernels.
inline constexpr int kRowThreads = 256;
// The fused kernel gives each block at least this many rows, so the per-block partial sums it
// writes (and the reduction reads back) stay small next to the rows themselves.
inline constexpr std::int64_t kFusedMinRowsPerBlock = 4;

// Elements per vector load: 16 bytes when the base address, the row stride and the width allow it.
DPSGD_HOST_DEVICE int vector_width(std::uint64_t address, std::int64_t stride, std::int64_t width, int element_bytes) {
  const int elements = 16 / element_bytes;
  return (address % 16 == 0 && stride % elements == 0 && width % elements == 0) ? elements : 1;
}

// Smallest power-of-two number of vectors per thread that covers `width`, or 0 when even
// kFusedMaxChunks do not (the row does not fit on chip).
DPSGD_HOST_DEVICE int fused_chunks(std::int64_t width, int vector, int threads) {
  for (int chunks = 1; chunks <= kFusedMaxChunks; chunks *= 2) {
    if (width <= static_cast<std::int64_t>(chunks) * threads * vector) return chunks;
  }
  return 0;
}

// First column of vector `chunk` of thread `thread` in the fused kernel: consecutive threads read
// consecutive vectors (coalesced), and a thread's chunks are a block-width apart.
DPSGD_HOST_DEVICE std::int64_t fused_column(int chunk, int thread, int threads, int vector) {
  return (static_cast<std::int64_t>(chunk) * threads + thread) * vector;
}

// Blocks of the fused kernel: one per multiprocessor at most (each block holds up to 16 KiB of row
// in registers per 512 threads), and at least kFusedMinRowsPerBlock rows per block.
DPSGD_HOST_DEVICE std::int64_t fused_blocks(std::int64_t batch, int multiprocessors) {
  std::int64_t blocks = (batch + kFusedMinRowsPerBlock - 1) / kFusedMinRowsPerBlock;
  if (blocks > multiprocessors) blocks = multiprocessors;
  return blocks < 1 ? 1 : blocks;
}

// Row chunks of the clipped-sum kernel: enough blocks to fill the device (about 4 blocks of
// kRowThreads per multiprocessor) but never fewer than 16 rows per chunk.
DPSGD_HOST_DEVICE std::int64_t clipped_sum_row_chunks(std::int64_t rows, std::int64_t column_blocks,
                                                      int multiprocessors) {
  const std::int64_t wanted = 4 * static_cast<std::int64_t>(multiprocessors);
  std::int64_t chunks = column_blocks >= wanted ? 1 : (wanted + column_blocks - 1) / column_blocks;
  const std::int64_t most = (rows + 15) / 16;
  if (chunks > most) chunks = most;
  return chunks < 1 ? 1 : chunks;
}

// Rows [first, end) of row chunk `chunk` when `rows` rows are split into `chunks` near-equal chunks.
DPSGD_HOST_DEVICE std::int64_t chunk_first_row(std::int64_t rows, std::int64_t chunks, std::int64_t chunk) {
  return (rows / chunks) * chunk + (chunk < rows % chunks ? chunk : rows % chunks);
}

// Examples per chunk of the ghost-norm products, so that their scratch stays within `budget` bytes.
DPSGD_HOST_DEVICE std::int64_t examples_per_chunk(std::int64_t batch, std::int64_t bytes_per_example,
                                                  std::int64_t budget) {
  std::int64_t n = bytes_per_example > 0 ? budget / bytes_per_example : batch;
  if (n > batch) n = batch;
  return n < 1 ? 1 : n;
}

}  // namespace dpsgd::cuda::detail
