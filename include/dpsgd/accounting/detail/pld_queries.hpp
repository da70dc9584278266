// Internal: the PLD epsilon queries with a truncation charge that the accountant and calibration use.
#pragma once

#include <span>

#include "dpsgd/accounting/pld.hpp"

namespace dpsgd::detail {

// The smallest epsilon with delta_PLD(epsilon) + (1 + e^epsilon) * truncation <= delta: epsilon for
// truncated Poisson sampling (see accountant.hpp), solved on the composed PMFs themselves.
PldResult pld_epsilon_with_charge(std::span<const GaussianPhase> phases, double delta, double truncation,
                                  const PldOptions& options);
// The same query's answer on its first grid only: never below what pld_epsilon_with_charge returns
// (which takes the minimum over the grids it tries, the first among them), at a fraction of the cost.
// Calibration searches it: a sigma it accepts is accepted by compute_epsilon too. coarsening > 1
// multiplies that first grid (an upper bound still, cheaper and looser).
PldResult pld_epsilon_first_grid(std::span<const GaussianPhase> phases, double delta, double truncation,
                                 const PldOptions& options, double coarsening = 1.0);

}  // namespace dpsgd::detail
