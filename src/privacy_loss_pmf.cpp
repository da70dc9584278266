// Hockey-stick queries on a discrete privacy loss distribution, summed in long double without overflow.
#include "dpsgd/accounting/privacy_loss_pmf.hpp"

#include <cmath>

#include "dpsgd/accounting/detail/hockey_stick_queries.hpp"
#include "dpsgd/core/error.hpp"

namespace dpsgd {

double PrivacyLossPmf::delta_for_epsilon(double epsilon) const {
  DPSGD_CHECK_ARG(!std::isnan(epsilon), "epsilon must not be NaN");
  return detail::delta_for_epsilon(grid, offset, mass.size(), infinity_mass, epsilon,
                                   [&](std::size_t j) { return static_cast<long double>(mass[j]); });
}

double PrivacyLossPmf::epsilon_for_delta(double delta) const {
  DPSGD_CHECK_ARG(std::isfinite(delta) && delta >= 0.0 && delta <= 1.0, "delta must be in [0, 1], got " << delta);
  return detail::epsilon_for_delta(grid, offset, mass.size(), infinity_mass, delta,
                                   [&](std::size_t j) { return static_cast<long double>(mass[j]); });
}

}  // namespace dpsgd
