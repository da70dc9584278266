// Internal: reducing a list of Gaussian phases to few distinct ones, exactly or by domination.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "dpsgd/accounting/gaussian_phase.hpp"

namespace dpsgd::detail {

struct ReducedPhases {
  std::vector<GaussianPhase> phases;
  // 1 when phases were only merged where (q, sigma) are equal; otherwise the grid ratio r by which q
  // was rounded up and sigma down (each at most a factor r).
  double ratio = 1.0;
};

// Drops phases that release nothing (q = 0 or no steps), merges equal (q, sigma), and while more than
// max_phases distinct ones remain, replaces each phase by a dominating one: q rounded up and sigma
// rounded down to powers of r (r = 1 + 2^-12, squared as often as needed). A larger q and a smaller
// sigma dominate (the first is a post-processing of the second: subsample again, add noise), so
// every accountant answer for the result bounds the original. Equal phases whose step counts would
// overflow when added stay separate.
ReducedPhases reduce_phases(std::span<const GaussianPhase> phases, std::size_t max_phases);

}  // namespace dpsgd::detail
