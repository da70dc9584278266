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

// squared_norms(i, group) += ||rows.row(i)||^2 for every slot i, in double, overflow-safe. Row norms
// are computed independently, so the result does not depend on the thread count.
template <typename Scalar>
void accumulate_squared_norms(const ConstRowsRef<Scalar>& rows, SquaredNorms& squared_norms, int group = 0) {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>);
  detail::check_norms_shape(rows, squared_norms, group);
  const Eigen::Index batch = rows.rows();
  const Eigen::Index width = rows.cols();
  const auto norm_of = [&](Eigen::Index i) {
    squared_norms(i, group) += detail::row_squared_norm(rows.data() + i * rows.outerStride(), width);
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
    Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>> out(sum.data() + begin, size);
    for (const Eigen::Index i : active) {
      out += static_cast<Scalar>(factors(i, group)) * Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>(
                                                          rows.data() + i * rows.outerStride() + begin, size);
    }
  };
  if (detail::worth_parallel(static_cast<long long>(active.size()) * width) && tiles > 1) {
#pragma omp parallel for schedule(static)
    for (Eigen::Index tile = 0; tile < tiles; ++tile) sum_tile(tile);
  } else {
    for (Eigen::Index tile = 0; tile < tiles; ++tile) sum_tile(tile);
  }
}

// One call for a dense B x P matrix of per-example gradients: norms, factors, and
// sum += sum_i c_i g_i. `group_offsets` (size G + 1, from 0 to P, increasing) splits the columns
// into the groups of a per-layer config; empty means one group over all columns. Throws
// InvalidArgument on mismatched sizes or an invalid config.
template <typename Scalar>
ClipFactors clip_and_accumulate(const ConstRowsRef<Scalar>& rows, std::span<const std::uint8_t> mask,
                                const ClipConfig& config, std::span<Scalar> sum,
                                std::span<const std::int64_t> group_offsets = {}) {
  config.validate();
  const Eigen::Index width = rows.cols();
  const std::vector<std::int64_t> offsets = resolve_group_offsets(group_offsets, width, config);
  DPSGD_CHECK_ARG(static_cast<Eigen::Index>(sum.size()) == width,
                  "sum.size() must equal the row width " << width << ", got " << sum.size());
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
