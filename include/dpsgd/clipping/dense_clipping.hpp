// Clipping of dense per-example gradient rows: squared norms, the clipped sum, and both fused.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "dpsgd/clipping/clip_factors.hpp"
#include "dpsgd/clipping/detail/dense_clipping_impl.hpp"
#include "dpsgd/clipping/detail/row_norms.hpp"
#include "dpsgd/core/detail/parallel.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"
#include "dpsgd/core/real_scalar.hpp"

namespace dpsgd {

// squared_norms(i, group) += ||rows.row(i)||^2 for every slot i: not the rounded sum of squares but an
// upper bound on the squared norm of the row's clipped copy as accumulate_clipped_sum forms it (the
// double sum's rounding and the scaling's, detail/rounding_bounds.hpp; within ~1e-7 of the exact
// value for float rows, ~1e-15 for double), so that no example adds more than its clip norm to the
// sum however its values cancel. Overflow-safe. Row norms are computed independently, so the result
// does not depend on the thread count.
template <RealScalar Scalar>
void accumulate_squared_norms(const ConstRowsRef<Scalar>& rows, SquaredNorms& squared_norms, int group = 0) {
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
template <RealScalar Scalar>
void accumulate_clipped_sum(const ConstRowsRef<Scalar>& rows, const Eigen::Ref<const Eigen::MatrixXd>& factors,
                            int group, std::span<Scalar> sum) {
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
