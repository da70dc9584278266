// Internal: argument checks, per-example token groups and the rounding bound of embedding ghost clipping.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "dpsgd/clipping/detail/rounding_bounds.hpp"
#include "dpsgd/clipping/detail/row_norms.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/core/matrix_types.hpp"

namespace dpsgd::detail {

struct EmbeddingShape {
  std::int64_t batch = 0;
  std::int64_t positions = 0;  // T, per example
  std::int64_t width = 0;      // d, the embedding dimension
};

// Throws InvalidArgument naming the argument that does not fit, and the first unmasked token out of
// [0, vocab_size) with its index.
template <typename Scalar>
EmbeddingShape check_embedding_arguments(std::span<const std::int32_t> tokens, const ConstRowsRef<Scalar>& output_grads,
                                         std::int64_t batch, std::int64_t vocab_size,
                                         std::span<const std::uint8_t> position_mask) {
  DPSGD_CHECK_ARG(batch >= 1, "batch must be >= 1, got " << batch);
  DPSGD_CHECK_ARG(vocab_size >= 1 && vocab_size <= std::int64_t{std::numeric_limits<std::int32_t>::max()} + 1,
                  "vocab_size must be in [1, 2^31], got " << vocab_size);
  const auto count = static_cast<std::int64_t>(tokens.size());
  DPSGD_CHECK_ARG(count > 0 && count % batch == 0,
                  "tokens.size() = " << count << " must be a positive multiple of batch = " << batch);
  DPSGD_CHECK_ARG(output_grads.rows() == count,
                  "output_grads must have tokens.size() = " << count << " rows, got " << output_grads.rows());
  DPSGD_CHECK_ARG(output_grads.cols() >= 1, "output_grads must have at least one column, got 0");
  DPSGD_CHECK_ARG(
      position_mask.empty() || static_cast<std::int64_t>(position_mask.size()) == count,
      "position_mask must be empty or have tokens.size() = " << count << " entries, got " << position_mask.size());
  for (std::int64_t s = 0; s < count; ++s) {
    if (!position_mask.empty() && position_mask[static_cast<std::size_t>(s)] == 0) continue;
    const std::int32_t t = tokens[static_cast<std::size_t>(s)];
    DPSGD_CHECK_ARG(t >= 0 && t < vocab_size,
                    "tokens[" << s << "] must be in [0, vocab_size = " << vocab_size << "), got " << t);
  }
  return {batch, count / batch, output_grads.cols()};
}

// One example's unmasked positions grouped by token: (token, position) pairs sorted by token, then
// by position, so that each group's sum is formed in the same order by the norm and the gradient.
class EmbeddingGroups {
 public:
  void collect(std::span<const std::int32_t> tokens, std::span<const std::uint8_t> position_mask,
               const EmbeddingShape& shape, std::int64_t example) {
    pairs_.clear();
    starts_.clear();
    const std::int64_t first = example * shape.positions;
    for (std::int64_t s = first; s < first + shape.positions; ++s) {
      if (!position_mask.empty() && position_mask[static_cast<std::size_t>(s)] == 0) continue;
      pairs_.emplace_back(tokens[static_cast<std::size_t>(s)], s);
    }
    std::sort(pairs_.begin(), pairs_.end());
    for (std::size_t k = 0; k < pairs_.size(); ++k) {
      if (k == 0 || pairs_[k].first != pairs_[k - 1].first) starts_.push_back(k);
    }
    starts_.push_back(pairs_.size());
  }

  std::size_t size() const { return starts_.empty() ? 0 : starts_.size() - 1; }
  std::int32_t token(std::size_t k) const { return pairs_[starts_[k]].first; }

  // out = sum of the group's output-gradient rows, in double, in position order.
  template <typename Scalar>
  void sum(std::size_t k, const ConstRowsRef<Scalar>& output_grads, const EmbeddingShape& shape,
           std::vector<double>& out) const {
    std::fill(out.begin(), out.end(), 0.0);
    for (std::size_t p = starts_[k]; p < starts_[k + 1]; ++p) {
      const Scalar* row = output_grads.data() + pairs_[p].second * output_grads.outerStride();
      for (std::int64_t j = 0; j < shape.width; ++j) out[static_cast<std::size_t>(j)] += static_cast<double>(row[j]);
    }
  }

 private:
  std::vector<std::pair<std::int32_t, std::int64_t>> pairs_;
  std::vector<std::size_t> starts_;
};

// x = c s in double, rounded once to Scalar, toward zero where it would be subnormal in Scalar (a
// subnormal keeps only an absolute precision, which could round a tiny value up past c |s| (1 + u))
// and to the largest finite Scalar beyond it (only a clip norm above FLT_MAX gets there). Smaller in
// magnitude is always safe: the bound is on how much an example can add.
template <typename Scalar>
Scalar scaled_toward_zero(double c, double s) {
  const double x = c * s;
  const double magnitude = std::fabs(x);
  if (!(magnitude >= static_cast<double>(std::numeric_limits<Scalar>::min()))) return Scalar{0};
  if (magnitude > static_cast<double>(std::numeric_limits<Scalar>::max())) {
    return std::copysign(std::numeric_limits<Scalar>::max(), static_cast<Scalar>(x > 0.0 ? 1.0 : -1.0));
  }
  return static_cast<Scalar>(x);
}

// An upper bound on the squared norm of what the example adds: with s_v its group sums as formed in
// double (what is added is derived from s_v itself, so their own rounding needs no allowance), each
// added entry is fl_Scalar(fl_double(c s_vj)), then one Scalar addition: at most c |s_vj| (1 + u_d)
// (1 + u)^2. The sum of ||s_v||^2 is bounded per row (row_squared_norm_bound) and over the groups
// (gamma of their count in double). Non-finite when an unmasked output gradient is (or a double sum
// overflows): the example is then dropped. `sum` is scratch space (resized to d), the caller's so that
// a batch allocates it once.
template <typename Scalar>
double embedding_norm_bound(const EmbeddingGroups& groups, const ConstRowsRef<Scalar>& output_grads,
                            const EmbeddingShape& shape, std::vector<double>& sum) {
  sum.resize(static_cast<std::size_t>(shape.width));
  double total = 0.0;
  for (std::size_t k = 0; k < groups.size(); ++k) {
    groups.sum(k, output_grads, shape, sum);
    const double squared = row_squared_norm(sum.data(), shape.width);
    if (!std::isfinite(squared)) return std::numeric_limits<double>::quiet_NaN();
    total += row_squared_norm_bound<double>(squared, shape.width);
  }
  const double unit = std::is_same_v<Scalar, float> ? kFloatUnit : kDoubleUnit;
  return total * (1.0 + rounding_gamma(static_cast<double>(groups.size()) + 1.0, kDoubleUnit)) *
         rounding_growth(kDoubleUnit, 4) * rounding_growth(unit, 4) * kFactorMargin;
}

}  // namespace dpsgd::detail
