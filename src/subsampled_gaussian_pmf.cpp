// One step's PLD of the Poisson-subsampled Gaussian, discretised pessimistically by connect-the-dots.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "dpsgd/accounting/detail/hockey_stick.hpp"
#include "dpsgd/accounting/detail/pld_internals.hpp"
#include "dpsgd/accounting/pld.hpp"
#include "dpsgd/core/error.hpp"

namespace dpsgd {
namespace detail {
namespace {

constexpr Real kUnit = std::numeric_limits<Real>::epsilon() / 2;
constexpr double kDoubleUnit = std::numeric_limits<double>::epsilon() / 2;
// Most grid points one step's PMF may have.
constexpr Real kMaxStepPoints = static_cast<Real>(std::int64_t{1} << 26);

// Privacy loss at noise value x; both directions decrease in x. With l the Gaussian loss,
// log(1 - q + q e^l) is evaluated without overflow for large l and without cancellation for small.
Real mixture_log(Real q, Real l) {
  if (q >= 1.0L) return l;
  if (l > 0.0L) return l + std::log(q + (1.0L - q) * std::exp(-l));
  return std::log1p(q * std::expm1(l));
}

Real subsampled_loss(Real q, Real sigma, Real x, PldDirection direction) {
  const Real s2 = sigma * sigma;
  if (direction == PldDirection::kRemove) return mixture_log(q, (-2.0L * x - 1.0L) / (2.0L * s2));
  return -mixture_log(q, (2.0L * x - 1.0L) / (2.0L * s2));
}

// The smallest z with Pr[N(0,1) > z] <= p (to 1e-6), for p < 1/2.
Real normal_upper_quantile(Real p) {
  const Real log_p = std::log(p);
  Real lo = 0.0L, hi = 1.0L;
  while (log_normal_cdf(-hi) > log_p) hi *= 2.0L;
  while (hi - lo > 1e-6L) {
    const Real mid = 0.5L * (lo + hi);
    (log_normal_cdf(-mid) > log_p ? lo : hi) = mid;
  }
  return hi;
}

}  // namespace

StepRange subsampled_gaussian_range(double sampling_rate, double noise_multiplier, PldDirection direction,
                                    double top_mass, double bottom_mass) {
  const Real q = sampling_rate, sigma = noise_multiplier;
  const Real z = normal_upper_quantile(std::clamp<Real>(bottom_mass, 1e-300L, 0.25L));
  const auto delta_at = [&](Real eps) { return subsampled_gaussian_hockey_stick(q, sigma, eps, direction).upper(); };
  StepRange range;
  if (direction == PldDirection::kRemove) {
    // The noise is (1 - q) N(0, s^2) + q N(-1, s^2); the loss never falls below log(1 - q), and above
    // z sigma (probability <= bottom_mass) it is within that of its limit.
    range.lowest = std::max<Real>(q < 1.0L ? std::log1p(-q) : -std::numeric_limits<Real>::infinity(),
                                  subsampled_loss(q, sigma, z * sigma, direction));
    range.highest = subsampled_loss(q, sigma, -1.0L - z * sigma, direction);
  } else {
    // The noise is N(0, s^2); the loss never exceeds -log(1 - q).
    range.lowest = subsampled_loss(q, sigma, z * sigma, direction);
    range.highest = subsampled_loss(q, sigma, -z * sigma, direction);
    if (q < 1.0L) range.highest = std::min<Real>(range.highest, -std::log1p(-q));
  }
  range.highest = std::max(range.highest, range.lowest);
  // The top point's delta becomes infinity mass: any top is valid, the lowest within budget keeps the
  // grid short. Widen until the budget holds, then bisect down to it.
  Real hi = range.highest;
  Real width = std::max<Real>(1.0L, hi - range.lowest);
  for (int it = 0; it < 200 && delta_at(hi) > top_mass; ++it, width *= 2.0L) hi += width;
  Real lo = range.lowest;
  for (int it = 0; it < 200 && hi - lo > 1e-9L * std::max<Real>(1.0L, std::fabs(hi)); ++it) {
    const Real mid = 0.5L * (lo + hi);
    (delta_at(mid) <= top_mass ? hi : lo) = mid;
  }
  range.highest = std::max(hi, range.lowest);
  return range;
}

PrivacyLossPmf discretise_subsampled_gaussian(double sampling_rate, double noise_multiplier, double grid,
                                              PldDirection direction, const StepRange& range) {
  const Real h = grid;
  // e^h scales the masses; beyond kMaxPmfGrid it would leave long double's range.
  if (!(h <= kMaxPmfGrid))
    throw InvalidArgument("dpsgd: grid " + std::to_string(grid) + " is coarser than the PMF allows");
  const Real span = (range.highest - range.lowest) / h;
  if (!(span < kMaxStepPoints)) {
    std::ostringstream message;
    message << "dpsgd: grid " << grid << " needs " << static_cast<double>(span) << " points for one step (at most "
            << static_cast<double>(kMaxStepPoints) << "); use a coarser grid";
    throw GridTooFine(message.str());
  }
  const auto first = static_cast<std::int64_t>(std::floor(range.lowest / h));
  const auto last = std::max(first + 2, static_cast<std::int64_t>(std::ceil(range.highest / h)));
  const std::int64_t n = last - first + 1;
  const Real q = sampling_rate, sigma = noise_multiplier;

  // Upper bounds on the exact delta at every grid point.
  std::vector<Real> upper(static_cast<std::size_t>(n));
#pragma omp parallel for schedule(static) if (n > 4096)
  for (std::int64_t i = 0; i < n; ++i) {
    upper[static_cast<std::size_t>(i)] =
        subsampled_gaussian_hockey_stick(q, sigma, static_cast<Real>(first + i) * h, direction).upper();
  }
  // Connect-the-dots (Doroshenko et al. 2022) in a scaled form: with u_i = (D_(i+1) - D_i) / (e^h - 1),
  // the mass at eps_i is u_i - e^h u_(i-1) (no e^eps, so no overflow at large losses) and the top
  // point's delta is the infinity mass. The curve of the result passes through D_i up to the rounding
  // of these differences; R_i bounds that rounding summed over the points above i, and the curve is
  // built through D_i + 2 R_i (then rounded to doubles, hence the last factor) so that it stays above
  // the exact delta everywhere.
  const Real expm1_h = std::expm1(h);
  const Real exp_h = std::exp(h);
  std::vector<Real> reconstruction(static_cast<std::size_t>(n), 0.0L);
  Real tail = 0.0L;
  for (std::int64_t i = n - 1; i >= 0; --i) {
    const Real d_i = upper[static_cast<std::size_t>(i)];
    const Real d_next = i + 1 < n ? upper[static_cast<std::size_t>(i + 1)] : 0.0L;
    tail += 8.0L * kUnit * ((d_i + d_next) / expm1_h + 2.0L * std::fabs(d_i - d_next) / expm1_h);
    reconstruction[static_cast<std::size_t>(i)] = tail * (1.0L + exp_h);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    Real& d = upper[static_cast<std::size_t>(i)];
    d = (d + 2.0L * reconstruction[static_cast<std::size_t>(i)]) * (1.0L + 4.0L * kDoubleUnit);
  }
  PrivacyLossPmf pmf;
  pmf.grid = grid;
  pmf.offset = first;
  pmf.mass.assign(static_cast<std::size_t>(n), 0.0);
  // Masses below the smallest double round to 0 (at most half the smallest subnormal each): that
  // much per point goes to infinity, which covers it.
  const double rounding_floor = static_cast<double>(n) * std::numeric_limits<double>::denorm_min();
  pmf.infinity_mass = std::nextafter(static_cast<double>(upper[static_cast<std::size_t>(n - 1)]), 2.0) + rounding_floor;
  Real total = pmf.infinity_mass;
  for (std::int64_t i = n - 1; i >= 1; --i) {
    const Real u_i =
        i + 1 < n ? (upper[static_cast<std::size_t>(i + 1)] - upper[static_cast<std::size_t>(i)]) / expm1_h : 0.0L;
    const Real u_prev = (upper[static_cast<std::size_t>(i)] - upper[static_cast<std::size_t>(i - 1)]) / expm1_h;
    const Real p = std::max(0.0L, u_i - exp_h * u_prev);
    pmf.mass[static_cast<std::size_t>(i)] = static_cast<double>(p);
    total += p;
  }
  // The rest of the probability sits at the lowest point: the chord from (e^eps = 0, delta = 1) to the
  // lowest point, which lies above the exact curve below it by convexity.
  pmf.mass[0] = static_cast<double>(std::max(0.0L, 1.0L - total));
  return pmf;
}

}  // namespace detail

PrivacyLossPmf subsampled_gaussian_pmf(double sampling_rate, double noise_multiplier, double grid,
                                       PldDirection direction, double max_infinity_mass) {
  DPSGD_CHECK_ARG(std::isfinite(sampling_rate) && sampling_rate > 0.0 && sampling_rate <= 1.0,
                  "sampling_rate must be in (0, 1] for a PLD, got " << sampling_rate);
  DPSGD_CHECK_ARG(std::isfinite(noise_multiplier) && noise_multiplier > 0.0,
                  "noise_multiplier must be finite and > 0, got " << noise_multiplier);
  DPSGD_CHECK_ARG(std::isfinite(grid) && grid > 0.0 && grid <= detail::kMaxPmfGrid,
                  "grid must be in (0, " << detail::kMaxPmfGrid << "], got " << grid);
  DPSGD_CHECK_ARG(direction == PldDirection::kRemove || direction == PldDirection::kAdd,
                  "direction must be PldDirection::kRemove or kAdd, got " << static_cast<int>(direction));
  DPSGD_CHECK_ARG(max_infinity_mass >= 0.0 && max_infinity_mass < 1.0,
                  "max_infinity_mass must be in [0, 1), got " << max_infinity_mass);
  const double top_mass = max_infinity_mass > 0.0 ? max_infinity_mass : detail::kDefaultStepTailMass;
  const detail::StepRange range = detail::subsampled_gaussian_range(sampling_rate, noise_multiplier, direction,
                                                                    top_mass, detail::kDefaultStepTailMass);
  return detail::discretise_subsampled_gaussian(sampling_rate, noise_multiplier, grid, direction, range);
}

}  // namespace dpsgd
