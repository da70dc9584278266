// compute_clip_factors: the clip decision for each example, with non-finite gradients dropped whole.
#include "dpsgd/clipping/clip_factors.hpp"

#include <cmath>
#include <limits>

namespace dpsgd {

ClipFactors compute_clip_factors(const Eigen::Ref<const SquaredNorms>& squared_norms,
                                 std::span<const std::uint8_t> mask, const ClipConfig& config) {
  config.validate();
  const Eigen::Index batch = squared_norms.rows();
  const Eigen::Index groups = squared_norms.cols();
  DPSGD_CHECK_ARG(batch >= 1, "squared_norms must have at least one row (batch slot), got " << batch);
  DPSGD_CHECK_ARG(groups == config.num_groups(),
                  "squared_norms has " << groups << " columns but config has " << config.num_groups() << " groups");
  DPSGD_CHECK_ARG(static_cast<Eigen::Index>(mask.size()) == batch,
                  "mask.size() must equal the batch size " << batch << ", got " << mask.size());

  ClipFactors result;
  result.factors.setZero(batch, groups);
  result.stats.norms.resize(static_cast<std::size_t>(batch));
  for (Eigen::Index i = 0; i < batch; ++i) {
    bool finite = true;
    bool clipped = false;
    double total = 0.0;
    for (Eigen::Index k = 0; k < groups; ++k) {
      const double s = squared_norms(i, k);
      finite = finite && s >= 0.0 && std::isfinite(s);
      clipped = clipped || std::sqrt(s) > config.group_clip_norms[static_cast<std::size_t>(k)];
      total += s;
    }
    result.stats.norms[static_cast<std::size_t>(i)] =
        finite ? std::sqrt(total) : std::numeric_limits<double>::quiet_NaN();
    const std::uint8_t in_batch = mask[static_cast<std::size_t>(i)] != 0 ? 1 : 0;
    if (!in_batch) continue;
    ++result.stats.num_examples;
    // A gradient with NaN or inf in any group is dropped whole: clipping the finite groups alone
    // would still release a function of a corrupted computation.
    if (!finite) {
      ++result.stats.num_nonfinite;
      continue;
    }
    if (clipped) ++result.stats.num_clipped;
    for (Eigen::Index k = 0; k < groups; ++k) {
      result.factors(i, k) = clip_factor(squared_norms(i, k), config.group_clip_norms[static_cast<std::size_t>(k)],
                                         config.method, config.automatic_stability, in_batch);
    }
  }
  return result;
}

}  // namespace dpsgd
