// compute_clip_factors: from per-example, per-group squared norms to clip factors and clipping statistics.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "dpsgd/clipping/clip_config.hpp"

namespace dpsgd {

// One row per batch slot, one column per parameter group. Dense blocks and ghost layers add their
// contributions into the same matrix, so a model may mix both kinds of layer.
using SquaredNorms = Eigen::MatrixXd;

struct ClipStats {
  // Per slot: the L2 norm of the whole per-example gradient before clipping (NaN when non-finite).
  std::vector<double> norms;
  std::int64_t num_examples = 0;   // slots with mask 1
  std::int64_t num_clipped = 0;    // of those, examples with some group norm above its clip norm
  std::int64_t num_nonfinite = 0;  // of those, examples dropped because their gradient had NaN or inf
};

struct ClipFactors {
  Eigen::MatrixXd factors;  // slot x group; 0 for padding and for dropped examples
  ClipStats stats;
};

// Throws InvalidArgument if squared_norms has no rows, its column count differs from
// config.num_groups(), mask.size() differs from its row count, or config is invalid. A negative
// squared norm (impossible for a real norm) counts as non-finite: such an example is dropped.
ClipFactors compute_clip_factors(const Eigen::Ref<const SquaredNorms>& squared_norms,
                                 std::span<const std::uint8_t> mask, const ClipConfig& config);

}  // namespace dpsgd
