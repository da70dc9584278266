// Clipping of dense per-example gradient rows: squared norms, the clipped sum, and both fused.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/clipping/detail/row_norms.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/core/parallel.hpp"

namespace dpsgd {

namespace detail {
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
}  // namespace detail

// squared_norms(i, group) += ||rows.row(i)||^2 for every slot i: not the rounded sum of squares but an
// upper bound on the squared norm of the row's clipped copy as accumulate_clipped_sum forms it (the
// double sum's rounding and the scaling's, detail/rounding_bounds.hpp; within ~1e-7 of the exact
// value for float rows, ~1e-15 for double), so that no example adds more than its clip norm to the
// sum however its values cancel. Overflow-safe. Row norms are computed independently, so the result
// does not depend on the thread count.
template <typename Scalar>
void accumulate_squared_norms(const ConstRowsRef<Scalar>& rows, SquaredNorms& squared_norms, int group = 0) {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>);
  detail::check_norms_shape(rows, squared_norms, group);
  const Eigen::Index batch = rows.rows();
  const Eigen::Index width = rows.cols();
  const auto norm_of = [&](Eigen::Index i) {
    squared_norms(i, group) += detail::squared_norm_bound<Scalar>(
        detail::row_squared_norm(rows.data() + i * rows.outerStride(), width), width);
  };
  if (width == 0) return;
  if (detail::worth_parallel(static_cast<long long>(batch) * width) && batch > 1) {
#pragma omp parallel for schedule(static)
    for (Eigen::Index i = 0; i < batch; ++i) norm_of(i);
  } else {
    for (Eigen::Index i = 0; i < batch; ++i) norm_of(i);
  }
}

// sum += sum_i factors(i, group) * rows.row(i). Rows whose factor is 0 (padding, dropped, or fully
// clipped away) are never read, so NaN in them cannot leak into the sum. The sum runs over rows in
// slot order for each column tile: bit-identical for any thread count.
template <typename Scalar>
void accumulate_clipped_sum(const ConstRowsRef<Scalar>& rows, const Eigen::Ref<const Eigen::MatrixXd>& factors,
                            int group, std::span<Scalar> sum) {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>);
  DPSGD_CHECK_ARG(factors.rows() == rows.rows(),
                  "factors must have " << rows.rows() << " rows (one per batch slot), got " << factors.rows());
  DPSGD_CHECK_ARG(group >= 0 && group < factors.cols(),
                  "group must be in [0, " << factors.cols() << "), got " << group);
  DPSGD_CHECK_ARG(static_cast<Eigen::Index>(sum.size()) == rows.cols(),
                  "sum.size() must equal the row width " << rows.cols() << ", got " << sum.size());
  const Eigen::Index batch = rows.rows();
  const Eigen::Index width = rows.cols();
  std::vector<Eigen::Index> active;
  active.reserve(static_cast<std::size_t>(batch));
  for (Eigen::Index i = 0; i < batch; ++i) {
    if (factors(i, group) != 0.0) active.push_back(i);
  }
  if (active.empty() || width == 0) return;
  const Eigen::Index tiles = (width + detail::kSumTileColumns - 1) / detail::kSumTileColumns;
  const auto sum_tile = [&](Eigen::Index tile) {
    const Eigen::Index begin = tile * detail::kSumTileColumns;
    const Eigen::Index size = std::min(detail::kSumTileColumns, width - begin);
    for (const Eigen::Index i : active) {
      detail::scaled_add_factor(sum.data() + begin, rows.data() + i * rows.outerStride() + begin, factors(i, group),
                                size);
    }
  };
  if (detail::worth_parallel(static_cast<long long>(active.size()) * width) && tiles > 1) {
#pragma omp parallel for schedule(static)
    for (Eigen::Index tile = 0; tile < tiles; ++tile) sum_tile(tile);
  } else {
    for (Eigen::Index tile = 0; tile < tiles; ++tile) sum_tile(tile);
  }
}

namespace detail {
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
}  // namespace detail

// One call for a dense B x P matrix of per-example gradients: norms, factors, and
// sum += sum_i c_i g_i. `group_offsets` (size G + 1, from 0 to P, increasing) splits the columns
// into the groups of a per-layer config; empty means one group over all columns. Throws
// InvalidArgument on mismatched sizes or an invalid config. Flat clipping of a matrix larger than
// the caches runs fused (detail::fused_clip_and_accumulate): one read of each row instead of two.
template <typename Scalar>
ClipFactors clip_and_accumulate(const ConstRowsRef<Scalar>& rows, std::span<const std::uint8_t> mask,
                                const ClipConfig& config, std::span<Scalar> sum,
                                std::span<const std::int64_t> group_offsets = {}) {
  config.validate();
  const Eigen::Index width = rows.cols();
  const std::vector<std::int64_t> offsets = resolve_group_offsets(group_offsets, width, config);
  DPSGD_CHECK_ARG(static_cast<Eigen::Index>(sum.size()) == width,
                  "sum.size() must equal the row width " << width << ", got " << sum.size());
  if (detail::use_fused_clip(rows, config)) return detail::fused_clip_and_accumulate<Scalar>(rows, mask, config, sum);
  SquaredNorms squared_norms = SquaredNorms::Zero(rows.rows(), config.num_groups());
  for (int k = 0; k < config.num_groups(); ++k) {
    accumulate_squared_norms<Scalar>(rows.middleCols(offsets[k], offsets[k + 1] - offsets[k]), squared_norms, k);
  }
  ClipFactors result = compute_clip_factors(squared_norms, mask, config);
  for (int k = 0; k < config.num_groups(); ++k) {
    const Eigen::Index begin = offsets[k];
    const Eigen::Index size = offsets[k + 1] - begin;
    accumulate_clipped_sum<Scalar>(rows.middleCols(begin, size), result.factors, k, sum.subspan(begin, size));
  }
  return result;
}

}  // namespace dpsgd
