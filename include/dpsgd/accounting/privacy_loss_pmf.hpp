// PrivacyLossPmf: a discrete privacy loss distribution on a uniform grid, with its hockey-stick queries.
#pragma once

#include <cstdint>
#include <vector>

namespace dpsgd {

// Mass `mass[j]` sits at privacy loss (offset + j) * grid; `infinity_mass` at +infinity. For a
// pessimistic PLD, delta_for_epsilon upper-bounds the hockey-stick divergence of the mechanism it
// stands for at every epsilon.
struct PrivacyLossPmf {
  double grid = 0.0;
  std::int64_t offset = 0;
  std::vector<double> mass;
  double infinity_mass = 0.0;

  // delta(eps) = infinity_mass + sum_{L > eps} p(L) (1 - e^(eps - L)).
  double delta_for_epsilon(double epsilon) const;
  // The smallest epsilon >= 0 with delta_for_epsilon(epsilon) <= delta; +inf if infinity_mass > delta.
  double epsilon_for_delta(double delta) const;
};

}  // namespace dpsgd
