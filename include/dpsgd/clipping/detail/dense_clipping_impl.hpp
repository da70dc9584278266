// Internal: the shape checks, tile size and fused one-pass path (norms, factors and sum over blocks of
// rows that stay in cache) behind clip_and_accumulate and its parts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/clipping/detail/row_norms.hpp"
#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd::detail {

// Columns per work item of the clipped sum: 16 KiB of floats, so a tile of the output stays in L1
// while the rows stream past it.
inline constexpr Eigen::Index kSumTileColumns = 4096;

template <typename Scalar>
void check_norms_shape(const ConstRowsRef<Scalar>& rows, const SquaredNorms& squared_norms, int group) {
  DPSGD_CHECK_ARG(rows.rows() >= 1, "rows must have at least one row (batch slot), got " << rows.rows());
  DPSGD_CHECK_ARG(squared_norms.rows() == rows.rows(), "squared_norms must have " << rows.rows()
                                                                                  << " rows (one per batch slot), got "
                                                                                  << squared_norms.rows());
  DPSGD_CHECK_ARG(group >= 0 && group < squared_norms.cols(),
                  "group must be in [0, " << squared_norms.cols() << "), got " << group);
}

// The fused path works on blocks of rows of about this many bytes. Two blocks are live at once
// (one being summed, the next being normed), split by columns over the threads: small enough to
// stay in the cores' L2 caches, so each row is read from memory once.
inline constexpr std::int64_t kFusedBlockBytes = std::int64_t{3} << 19;  // 1.5 MiB
// Below this many bytes the matrix stays in cache anyway and the two-pass path is as fast.
inline constexpr std::int64_t kFusedMinBytes = std::int64_t{32} << 20;

template <typename Scalar>
bool use_fused_clip(const ConstRowsRef<Scalar>& rows, const ClipConfig& config) {
  const std::int64_t row_bytes = static_cast<std::int64_t>(rows.cols()) * static_cast<std::int64_t>(sizeof(Scalar));
  // Rows up to 24 MiB: a row larger than a block is its own block, and its tiles come back from
  // the last-level cache instead of L2 (still faster than a second read from memory).
  return config.num_groups() == 1 && row_bytes <= 16 * kFusedBlockBytes &&
         row_bytes * static_cast<std::int64_t>(rows.rows()) >= kFusedMinBytes;
}

// Flat clipping in one sweep over blocks of rows, software-pipelined: in step k each thread, for
// each of its column tiles, takes the squared norms of block k (streaming from memory) and adds the
// clipped rows of block k - 1 (still in its cache, factors known since step k - 1). A row's norm is
// the sum of its fixed-size tile partials in tile order and every output tile sums rows in slot
// order, so the result does not depend on the thread count (it may differ from the two-pass path
// in the last bits of a norm).
template <typename Scalar>
ClipFactors fused_clip_and_accumulate(const ConstRowsRef<Scalar>& rows, std::span<const std::uint8_t> mask,
                                      const ClipConfig& config, std::span<Scalar> sum) {
  DPSGD_CHECK_ARG(static_cast<Eigen::Index>(mask.size()) == rows.rows(),
                  "mask.size() must equal the number of rows " << rows.rows() << ", got " << mask.size());
  const Eigen::Index batch = rows.rows();
  const Eigen::Index width = rows.cols();
  const Eigen::Index tiles = (width + kSumTileColumns - 1) / kSumTileColumns;
  const Eigen::Index row_bytes = width * static_cast<Eigen::Index>(sizeof(Scalar));
  const Eigen::Index block_rows = std::max<Eigen::Index>(1, kFusedBlockBytes / row_bytes);
  const Eigen::Index blocks = (batch + block_rows - 1) / block_rows;
  const auto tile_size = [&](Eigen::Index tile) { return std::min(kSumTileColumns, width - tile * kSumTileColumns); };
  const auto tile_data = [&](Eigen::Index i, Eigen::Index tile) {
    return rows.data() + i * rows.outerStride() + tile * kSumTileColumns;
  };
  ClipFactors result;
  result.factors = Eigen::MatrixXd::Zero(batch, 1);
  result.stats.norms.reserve(static_cast<std::size_t>(batch));
  Eigen::MatrixXd partial(block_rows, tiles);
  SquaredNorms block_norms(block_rows, 1);
  ParallelExceptionTrap trap;
  const bool parallel = worth_parallel(static_cast<long long>(batch) * width) && tiles > 1;
#pragma omp parallel if (parallel)
  for (Eigen::Index step = 0; step <= blocks; ++step) {
    const Eigen::Index norm_start = step * block_rows;  // block `step`, if any
    const Eigen::Index norm_count = step < blocks ? std::min(block_rows, batch - norm_start) : 0;
    const Eigen::Index sum_start = (step - 1) * block_rows;  // block `step - 1`, if any
    const Eigen::Index sum_count = step > 0 ? std::min(block_rows, batch - sum_start) : 0;
#pragma omp for schedule(static)
    for (Eigen::Index tile = 0; tile < tiles; ++tile) {
      const Eigen::Index size = tile_size(tile);
      for (Eigen::Index r = 0; r < norm_count; ++r)
        partial(r, tile) = row_squared_norm(tile_data(norm_start + r, tile), size);
      for (Eigen::Index r = 0; r < sum_count; ++r) {
        const double factor = result.factors(sum_start + r, 0);
        if (factor != 0.0)
          scaled_add_factor(sum.data() + tile * kSumTileColumns, tile_data(sum_start + r, tile), factor, size);
      }
    }
    if (norm_count > 0) {
#pragma omp single
      trap.run([&] {
        for (Eigen::Index r = 0; r < norm_count; ++r) {
          double total = 0.0;
          for (Eigen::Index tile = 0; tile < tiles; ++tile) total += partial(r, tile);
          // A sum of tile norms can still overflow, or be small enough for underflow to matter: redo
          // the whole row the safe way, as row_squared_norm does.
          if (std::isinf(total) || total < kRescueBelow<Scalar>)
            total = rescaled_squared_norm(rows.data() + (norm_start + r) * rows.outerStride(), width);
          block_norms(r, 0) = squared_norm_bound<Scalar>(total, width);
        }
        const ClipFactors block =
            compute_clip_factors(block_norms.topRows(norm_count), mask.subspan(norm_start, norm_count), config);
        result.factors.middleRows(norm_start, norm_count) = block.factors;
        result.stats.norms.insert(result.stats.norms.end(), block.stats.norms.begin(), block.stats.norms.end());
        result.stats.num_examples += block.stats.num_examples;
        result.stats.num_clipped += block.stats.num_clipped;
        result.stats.num_nonfinite += block.stats.num_nonfinite;
      });  // implied barrier: every thread sees the block's factors before summing it
    }
  }
  trap.rethrow();
  return result;
}

}  // namespace dpsgd::detail
