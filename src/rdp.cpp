// RDP of the Poisson-subsampled Gaussian (Mironov, Talwar & Zhang 2019) and the RDP-to-DP conversions,
// every value rounded up by a bound on its own floating-point error.
#include "dpsgd/accounting/rdp.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numbers>

#include "dpsgd/accounting/detail/phase_reduction.hpp"
#include "dpsgd/accounting/detail/rdp_focused.hpp"
#include "dpsgd/core/error.hpp"

namespace dpsgd {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kUnit = std::numeric_limits<double>::epsilon() / 2;
// Distinct (q, sigma) composed exactly; more are replaced by dominating ones.
constexpr std::size_t kMaxRdpPhases = 256;

// A log-domain sum of positive terms that also tracks a bound on its absolute error.
struct LogSum {
  double value = -kInf;     // log of the sum
  double term_error = 0.0;  // largest absolute error of a term's log
  int terms = 0;

  void add(double log_term, double error) {
    ++terms;
    term_error = std::max(term_error, error);
    if (log_term == -kInf) return;
    if (value == -kInf) {
      value = log_term;
      return;
    }
    const double hi = std::max(value, log_term);
    value = hi + std::log1p(std::exp(std::min(value, log_term) - hi));
  }
  // |computed - exact| <= this: each term's log within term_error, each addition within a few
  // ulps of the running sum (relative), the log itself within an ulp of its value.
  double error() const { return term_error + (4.0 * terms + 4.0) * kUnit * (1.0 + std::fabs(value)); }
};

// log(e^x - 1) for x > 0, without overflow.
double log_expm1(double x) { return x > 30.0 ? x + std::log1p(-std::exp(-x)) : std::log(std::expm1(x)); }

// log A_alpha for integer alpha, as log(1 + S) with
// S = A_alpha - 1 = sum_{i >= 2} binom(alpha, i) q^i (1 - q)^(alpha - i) (e^((i^2 - i) / (2 sigma^2)) - 1):
// the i = 0, 1 terms of the binomial sum cancel the 1 exactly, so every term is positive and there
// is no cancellation, even at q = 1e-300. Returns the value plus a bound on its rounding.
double log_a_integer(double q, double sigma, long alpha) {
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  const double two_s2 = 2.0 * sigma * sigma;
  LogSum sum;
  // log binom(alpha, i) by its recurrence, one log per term, with its rounding accumulated.
  double binomial = std::log(static_cast<double>(alpha)), binomial_error = 2.0 * kUnit * (1.0 + std::fabs(binomial));
  for (long i = 2; i <= alpha; ++i) {
    const double di = static_cast<double>(i);
    const double step = std::log(static_cast<double>(alpha - i + 1) / di);
    binomial += step;
    binomial_error += 4.0 * kUnit * (std::fabs(step) + std::fabs(binomial) + 1.0);
    const double x = (di * di - di) / two_s2;
    if (x == 0.0) continue;  // sigma so large that the exponent underflows: the term is 0
    const double tail = static_cast<double>(alpha - i) * log_1mq;
    const double expm = log_expm1(x);
    const double term = binomial + di * log_q + tail + expm;
    sum.add(term, binomial_error + 4.0 * kUnit * (std::fabs(di * log_q) + std::fabs(tail) + std::fabs(expm) + x + 4.0));
  }
  if (sum.value == -kInf) return 0.0;
  // log(1 + e^s) and its error: d log(1 + S) = dS / (1 + S) <= (relative error of S) * min(S, 1).
  const double s = sum.value;
  const double log_a = s < 0.0 ? std::log1p(std::exp(s)) : s + std::log1p(std::exp(-s));
  const double relative = std::expm1(sum.error());
  return log_a * (1.0 + 4.0 * kUnit) + relative * std::min(std::exp(std::min(s, 700.0)), 1.0) * 1.01;
}

// log A_alpha for fractional alpha: the integral split at z0 = sigma^2 log(1/q - 1) + 1/2 and each side
// expanded as a binomial series (MTZ 2019, section 3.3). Both series converge absolutely, so A is
// their sum with the signed coefficients (dp_accounting takes absolute values, an upper bound that
// can be 2x loose below order 2). Summed in long double, positive and negative terms apart: A is often
// 1 + 1e-10, and its excess over 1 is what counts. The terms decay only polynomially, so the rest of
// the series is bounded rather than ignored: with C = (1 - q)^alpha e^(-z0^2 / (2 sigma^2)) / 2,
// erfc(x) <= e^(-x^2) / (x sqrt(pi)) for x > 0 and |binom(alpha, i)| <= |binom(alpha, k)|
// ((k + 1) / (i + 1))^(alpha + 1) for i >= k > alpha, every term past k > max(alpha, z0, alpha - z0) is
// at most C |binom(alpha, i)| sqrt(2) sigma / (sqrt(pi) (i - c)) in size (c = z0 or alpha - z0), so
// the rest is at most
// C |binom(alpha, k)| sqrt(2) sigma / sqrt(pi) (1 / (k - z0) + 1 / (k - alpha + z0)) (1 + (k + 1) / alpha).
// The partial sum plus that bound plus the rounding is an upper bound after any number of terms; the
// series stops once the bound is 1e-8 of A - 1, after 3000 terms, or as soon as even its lower bound
// exceeds `ceiling` (the chord between integer orders, which then wins). +inf when no bound on the
// rest is available (z0 beyond the terms summed), the ceiling wins, or cancellation leaves nothing;
// the caller then uses the chord.
double log_a_fractional(double q_in, double sigma_in, double alpha_in, double ceiling) {
  using Real = long double;
  constexpr Real kUnitLd = std::numeric_limits<Real>::epsilon() / 2;
  constexpr Real kNegInf = -std::numeric_limits<Real>::infinity();
  constexpr int kMaxTerms = 3000;
  const Real q = q_in, sigma = sigma_in, alpha = alpha_in;
  const Real two_s2 = 2.0L * sigma * sigma;
  const Real z0 = sigma * sigma * std::log(1.0L / q - 1.0L) + 0.5L;
  const Real start_of_tail = std::max({alpha, z0, alpha - z0}) + 1.0L;
  if (!std::isfinite(z0) || !(start_of_tail < kMaxTerms)) return kInf;
  const Real log_q = std::log(q), log_1mq = std::log1p(-q);
  const Real root = std::sqrt(2.0L) * sigma;
  const Real log_half = std::log(0.5L);
  const Real log_c =
      log_half + alpha * log_1mq - z0 * z0 / two_s2 + std::log(root / std::sqrt(std::numbers::pi_v<Real>));
  const auto log_erfc_ld = [](Real x) -> Real {
    if (x < 100.0L) return std::log(std::erfc(x));
    const Real inverse = 1.0L / (2.0L * x * x);
    Real term = 1.0L, series = 1.0L;
    for (int k = 1; k <= 12; ++k) {
      term *= -(2.0L * k - 1.0L) * inverse;
      series += term;
    }
    return -x * x - std::log(x) - 0.5L * std::log(std::numbers::pi_v<Real>) + std::log(series);
  };
  const auto log_add = [](Real& sum, Real log_term) {
    if (sum == kNegInf) {
      sum = log_term;
      return;
    }
    const Real hi = std::max(sum, log_term);
    sum = hi + std::log1p(std::exp(std::min(sum, log_term) - hi));
  };
  Real positive = kNegInf, negative = kNegInf, largest_error = 0.0L;
  // log |binom(alpha, i)| by its recurrence (one log per term); its rounding accumulates. The sign
  // of binom(alpha, i) is + up to ceil(alpha), then alternates.
  Real log_binomial = 0.0L, binomial_error = 0.0L;
  const Real first_negative = std::ceil(alpha) + 1.0L;
  for (int i = 0; i < kMaxTerms; ++i) {
    const Real di = i, j = alpha - di;
    const bool negative_sign = di >= first_negative - 0.5L && static_cast<long>(di - first_negative) % 2 == 0;
    const Real e0 = log_erfc_ld((di - z0) / root), e1 = log_erfc_ld((z0 - j) / root);
    const Real a = di * log_q + j * log_1mq + (di * di - di) / two_s2;
    const Real b = j * log_q + di * log_1mq + (j * j - j) / two_s2;
    Real& sum = negative_sign ? negative : positive;
    log_add(sum, log_binomial + a + log_half + e0);
    log_add(sum, log_binomial + b + log_half + e1);
    // Each log term is a sum of parts rounded relative to their own size (erfc and log within a few
    // ulps each).
    const Real magnitude = std::fabs(di * log_q) + std::fabs(j * log_1mq) + std::fabs(j * log_q) +
                           std::fabs(di * log_1mq) + (di * di + j * j + di + std::fabs(j)) / two_s2 + std::fabs(e0) +
                           std::fabs(e1) + 8.0L;
    largest_error = std::max(largest_error, binomial_error + 16.0L * kUnitLd * magnitude);
    const Real step = std::log(std::fabs(alpha - di) / (di + 1.0L));
    log_binomial += step;
    binomial_error += 4.0L * kUnitLd * (std::fabs(step) + std::fabs(log_binomial) + 1.0L);
    const Real k = di + 1.0L;
    if (k < start_of_tail || (i % 8 != 7 && i + 1 != kMaxTerms)) continue;
    const Real log_rest = log_c + log_binomial + binomial_error + std::log(1.0L / (k - z0) + 1.0L / (k - alpha + z0)) +
                          std::log1p((k + 1.0L) / alpha);
    // A = P - N: each sum within its terms' error and the additions' rounding (relative), so the
    // difference within that relative error of P + N.
    const Real relative = std::expm1(largest_error + (8.0L * i + 16.0L) * kUnitLd * 4.0L);
    const Real p = std::exp(positive), n = negative == kNegInf ? 0.0L : std::exp(negative);
    if (!std::isfinite(p)) return kInf;  // A beyond long double: the chord takes over
    const Real rounding = relative * (p + n);
    const Real excess = p - n - rounding - 1.0L;  // a lower bound on A - 1
    const Real rest = std::exp(log_rest);
    if (std::log1p(std::max(excess, 0.0L) - rest) > ceiling) return kInf;  // the chord is tighter
    if ((excess > 0.0L && rest < 1e-8L * excess) || i + 1 == kMaxTerms) {
      const Real upper = p - n + rounding + rest;
      if (!(upper > 0.0L)) return kInf;
      return static_cast<double>(std::log(upper)) * (1.0 + 4.0 * kUnit) + 4.0 * kUnit +
             std::numeric_limits<double>::denorm_min();
    }
  }
  return kInf;
}

void check_curve(std::span<const double> orders, std::span<const double> rdp) {
  DPSGD_CHECK_ARG(!orders.empty(), "orders must not be empty");
  DPSGD_CHECK_ARG(orders.size() == rdp.size(),
                  "orders.size() = " << orders.size() << " must equal rdp.size() = " << rdp.size());
  for (std::size_t k = 0; k < orders.size(); ++k) {
    DPSGD_CHECK_ARG(std::isfinite(orders[k]) && orders[k] >= 1.0,
                    "orders[" << k << "] must be finite and >= 1, got " << orders[k]);
    // +inf is a valid RDP value (no bound at that order); NaN and negative values are not.
    DPSGD_CHECK_ARG(rdp[k] >= 0.0, "rdp[" << k << "] must be >= 0 (or +inf), got " << rdp[k]);
  }
}

// Rounds x up by a few ulps: the conversions below round each operation once.
double up(double x, double ulps = 8.0) {
  return x + ulps * kUnit * std::fabs(x) + std::numeric_limits<double>::denorm_min();
}

// log A at a fractional order: the chord between the neighbouring integer orders ((alpha - 1) D_alpha
// = log E[(p/q)^alpha] is convex in alpha, with log A_1 = 0), or the series where it is tighter.
template <typename IntegerLogA>
double log_a_between(double q, double sigma, double alpha, bool series, IntegerLogA&& integer_log_a) {
  const double below = std::floor(alpha), theta = alpha - below;
  const double chord = up((below > 1.0 ? (1.0 - theta) * integer_log_a(static_cast<long>(below)) : 0.0) +
                          theta * integer_log_a(static_cast<long>(below) + 1));
  return series ? std::min(chord, log_a_fractional(q, sigma, alpha, chord)) : chord;
}

// RDP of one (q, sigma) at every default order; fractional orders in [focus_low, focus_high] by the
// series, the others by the chord (an upper bound, cheaper by two orders of magnitude).
std::vector<double> rdp_curve(double q, double sigma, double focus_low, double focus_high) {
  const auto& orders = default_rdp_orders();
  std::vector<double> curve(orders.size(), 0.0);
  if (q == 0.0) return curve;
  std::map<long, double> integer_cache;
  const auto integer_log_a = [&](long alpha) {
    const auto found = integer_cache.find(alpha);
    if (found != integer_cache.end()) return found->second;
    return integer_cache[alpha] = log_a_integer(q, sigma, alpha);
  };
  for (std::size_t k = 0; k < orders.size(); ++k) {
    const double alpha = orders[k];
    if (sigma == 0.0) {
      curve[k] = kInf;
      continue;
    }
    if (q == 1.0) {
      curve[k] = alpha / (2.0 * sigma * sigma);
      continue;
    }
    const double log_a = alpha == std::floor(alpha)
                             ? integer_log_a(static_cast<long>(alpha))
                             : log_a_between(q, sigma, alpha, alpha >= focus_low && alpha <= focus_high, integer_log_a);
    curve[k] = std::min(up(alpha / (2.0 * sigma * sigma)), up(log_a / (alpha - 1.0)));
  }
  return curve;
}

}  // namespace

const std::vector<double>& default_rdp_orders() {
  static const std::vector<double> orders = [] {
    std::vector<double> o;
    for (int x = 1; x < 100; ++x) o.push_back(1.0 + x / 10.0);
    for (int a = 11; a < 64; ++a) o.push_back(a);
    for (double a : {128.0, 256.0, 512.0, 1024.0}) o.push_back(a);
    return o;
  }();
  return orders;
}

double rdp_poisson_subsampled_gaussian(double q, double sigma, double alpha) {
  DPSGD_CHECK_ARG(std::isfinite(q) && q >= 0.0 && q <= 1.0, "sampling_rate must be in [0, 1], got " << q);
  DPSGD_CHECK_ARG(std::isfinite(sigma) && sigma >= 0.0, "noise_multiplier must be finite and >= 0, got " << sigma);
  DPSGD_CHECK_ARG(std::isfinite(alpha) && alpha > 1.0, "order must be finite and > 1, got " << alpha);
  if (q == 0.0) return 0.0;
  if (sigma == 0.0) return kInf;
  // Without subsampling the Gaussian mechanism has RDP alpha / (2 sigma^2); subsampling never adds.
  const double full = up(alpha / (2.0 * sigma * sigma));
  if (q == 1.0) return alpha / (2.0 * sigma * sigma);
  const bool integer = alpha == std::floor(alpha) && alpha < 1e6;
  double log_a;
  if (integer) {
    log_a = log_a_integer(q, sigma, static_cast<long>(alpha));
  } else {
    log_a = log_a_between(q, sigma, alpha, true, [&](long a) { return log_a_integer(q, sigma, a); });
  }
  return std::min(full, up(log_a / (alpha - 1.0)));
}

std::vector<double> rdp_of_phases(std::span<const GaussianPhase> phases) {
  return detail::rdp_of_phases_focused(phases, 1.0, kInf);
}

namespace detail {

std::vector<double> rdp_of_phases_focused(std::span<const GaussianPhase> phases, double focus_low, double focus_high) {
  for (const auto& phase : phases) DPSGD_CHECK_ARG(phase.steps >= 0, "phase steps must be >= 0, got " << phase.steps);
  const detail::ReducedPhases reduced = detail::reduce_phases(phases, kMaxRdpPhases);
  const auto& orders = default_rdp_orders();
  std::vector<double> rdp(orders.size(), 0.0);
  for (const auto& phase : reduced.phases) {
    const std::vector<double> curve = rdp_curve(phase.sampling_rate, phase.noise_multiplier, focus_low, focus_high);
    for (std::size_t k = 0; k < orders.size(); ++k) rdp[k] = up(rdp[k] + static_cast<double>(phase.steps) * curve[k]);
  }
  return rdp;
}

}  // namespace detail

RdpConversion rdp_to_epsilon(std::span<const double> orders, std::span<const double> rdp, double delta) {
  check_curve(orders, rdp);
  DPSGD_CHECK_ARG(std::isfinite(delta) && delta > 0.0 && delta < 1.0, "delta must be in (0, 1), got " << delta);
  RdpConversion best{kInf, orders[0]};
  for (std::size_t k = 0; k < orders.size(); ++k) {
    const double a = orders[k], r = rdp[k];
    double eps;
    if (delta * delta > -std::expm1(-r) * (1.0 + 1e-12)) {
      eps = 0.0;  // the KL bound delta <= sqrt(1 - exp(-rdp)) already gives epsilon = 0
    } else if (a > 1.01 && std::isfinite(r)) {
      const double log_order = std::log1p(-1.0 / a);
      const double log_term = (std::log(delta) + std::log(a)) / (a - 1.0);
      // Each of the few operations rounds once, relative to the magnitudes of the parts.
      const double rounding = 16.0 * kUnit * (std::fabs(r) + std::fabs(log_order) + std::fabs(log_term) + 1.0);
      eps = std::max(0.0, r + log_order - log_term + rounding);
    } else {
      eps = kInf;
    }
    if (eps < best.value) best = {eps, a};
  }
  best.value = std::max(0.0, best.value);
  return best;
}

RdpConversion rdp_to_delta(std::span<const double> orders, std::span<const double> rdp, double epsilon) {
  check_curve(orders, rdp);
  DPSGD_CHECK_ARG(std::isfinite(epsilon) && epsilon >= 0.0, "epsilon must be finite and >= 0, got " << epsilon);
  double best_log = kInf;
  double best_order = orders[0];
  for (std::size_t k = 0; k < orders.size(); ++k) {
    const double a = orders[k], r = rdp[k];
    if (!std::isfinite(r)) continue;
    double log_delta =
        r == 0.0 ? -kInf : 0.5 * std::log(-std::expm1(-r)) + 16.0 * kUnit * (1.0 + std::fabs(std::log(r)));
    if (a > 1.01) {
      const double bound = (a - 1.0) * (r - epsilon + std::log1p(-1.0 / a)) - std::log(a);
      log_delta = std::min(log_delta, bound + 16.0 * kUnit * (a * (r + epsilon + 1.0) + std::log(a)));
    }
    if (log_delta < best_log) {
      best_log = log_delta;
      best_order = a;
    }
  }
  if (best_log == kInf) return {1.0, best_order};
  return {std::min(up(std::exp(best_log)), 1.0), best_order};
}

}  // namespace dpsgd
