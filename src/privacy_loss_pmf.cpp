// Hockey-stick queries on a discrete privacy loss distribution, summed in long double.
#include "dpsgd/accounting/privacy_loss_pmf.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "dpsgd/core/error.hpp"

namespace dpsgd {

double PrivacyLossPmf::delta_for_epsilon(double epsilon) const {
  DPSGD_CHECK_ARG(!std::isnan(epsilon), "epsilon must not be NaN");
  long double delta = infinity_mass;
  for (std::size_t j = mass.size(); j-- > 0;) {
    const long double loss = static_cast<long double>(offset + static_cast<std::int64_t>(j)) * grid;
    if (loss <= epsilon) break;
    delta += mass[j] * -std::expm1(static_cast<long double>(epsilon) - loss);
  }
  return static_cast<double>(std::min<long double>(delta, 1.0L));
}

double PrivacyLossPmf::epsilon_for_delta(double delta) const {
  DPSGD_CHECK_ARG(std::isfinite(delta) && delta >= 0.0 && delta <= 1.0, "delta must be in [0, 1], got " << delta);
  if (infinity_mass > delta) return std::numeric_limits<double>::infinity();
  // On [L_(k-1), L_k) the curve is delta(eps) = inf + A_k - e^eps B_k with A_k = sum_{j>=k} p_j and
  // B_k = sum_{j>=k} p_j e^-L_j. Walk down from the top until the crossing falls in the interval.
  long double above = infinity_mass, weighted = 0.0L;
  for (std::size_t k = mass.size(); k-- > 0;) {
    const long double loss = static_cast<long double>(offset + static_cast<std::int64_t>(k)) * grid;
    above += mass[k];
    weighted += mass[k] * std::exp(-loss);
    const long double lower = loss - grid;
    const long double at_lower = k > 0 ? above - std::exp(lower) * weighted : above;
    if (at_lower > delta && weighted > 0.0L) {
      const long double eps = std::log((above - delta) / weighted);
      return std::max(0.0, static_cast<double>(std::min(eps, loss)));
    }
  }
  return 0.0;
}

}  // namespace dpsgd
