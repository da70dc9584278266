// Internal: the hockey-stick queries over non-negative masses on a uniform loss grid, shared by
// PrivacyLossPmf and the composition (which computes its masses on the fly, only as far down from the
// top as a query walks).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace dpsgd::detail {

// delta(eps) = infinity + sum over L_j > eps of mass(j) (1 - e^(eps - L_j)), L_j = (offset + j) grid,
// summed in long double from the top; capped at 1.
template <typename Mass>
double delta_for_epsilon(double grid, std::int64_t offset, std::size_t size, double infinity, double epsilon,
                         Mass&& mass) {
  long double delta = infinity;
  for (std::size_t j = size; j-- > 0;) {
    const long double loss = static_cast<long double>(offset + static_cast<std::int64_t>(j)) * grid;
    if (loss <= epsilon) break;
    delta += mass(j) * -std::expm1(static_cast<long double>(epsilon) - loss);
    if (delta >= 1.0L) return 1.0;
  }
  return static_cast<double>(std::min<long double>(delta, 1.0L));
}

// The smallest epsilon >= 0 with delta_for_epsilon(epsilon) <= delta; +inf if infinity > delta. On
// (L_(k-1), L_k] the curve is A_k - e^(eps - L_k) W_k with A_k = infinity + sum_{j>=k} m_j and
// W_k = sum_{j>=k} m_j e^(L_k - L_j) = m_k + e^-grid W_(k+1): scaled to the interval, so no
// exponential of a loss is ever formed. Walks down from the top until the crossing falls inside.
template <typename Mass>
double epsilon_for_delta(double grid, std::int64_t offset, std::size_t size, double infinity, double delta,
                         Mass&& mass) {
  if (infinity > delta) return std::numeric_limits<double>::infinity();
  const long double step_down = std::exp(-static_cast<long double>(grid));
  long double above = infinity, weighted = 0.0L;
  for (std::size_t k = size; k-- > 0;) {
    const long double loss = static_cast<long double>(offset + static_cast<std::int64_t>(k)) * grid;
    const long double m = mass(k);
    above += m;
    weighted = m + step_down * weighted;
    // delta at the interval's lower end, L_k - grid (for k = 0: the curve continues below L_0).
    const long double at_lower = k > 0 ? above - step_down * weighted : above;
    if (at_lower > delta && weighted > 0.0L) {
      const long double eps = loss + std::log((above - delta) / weighted);
      return std::max(0.0, static_cast<double>(std::min(eps, loss)));
    }
  }
  return 0.0;
}

}  // namespace dpsgd::detail
