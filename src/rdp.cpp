// RDP of the Poisson-subsampled Gaussian (Mironov, Talwar & Zhang 2019) and the RDP-to-DP conversions.
#include "dpsgd/accounting/rdp.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "dpsgd/core/error.hpp"

namespace dpsgd {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double log_add(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  const double hi = std::max(a, b);
  return hi + std::log1p(std::exp(std::min(a, b) - hi));
}

// log |binom(n, k)| for real n via log-gamma (lgamma returns log |Gamma| for negative arguments).
double log_abs_binomial(double n, double k) { return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1); }

// log erfc(x), accurate where erfc underflows: the asymptotic expansion of erfc at +infinity,
// erfc(x) ~ exp(-x^2) / (x sqrt(pi)) * (1 - 1/(2x^2) + 3/(4x^4) - 15/(8x^6) + ...), taken in logs.
double log_erfc(double x) {
  if (x < 25.0) return std::log(std::erfc(x));
  const double inv2 = 1.0 / (x * x);
  const double series =
      1.0 - 0.5 * inv2 + 0.75 * inv2 * inv2 - 1.875 * inv2 * inv2 * inv2 + 6.5625 * inv2 * inv2 * inv2 * inv2;
  return -x * x - std::log(x) - 0.5 * std::log(std::numbers::pi) + std::log(series);
}

// log A_alpha for integer alpha: log sum_i binom(alpha, i) q^i (1-q)^(alpha-i) exp((i^2 - i) / (2 sigma^2)).
double log_a_integer(double q, double sigma, long alpha) {
  double log_a = -kInf;
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  for (long i = 0; i <= alpha; ++i) {
    const double di = static_cast<double>(i);
    const double term = log_abs_binomial(static_cast<double>(alpha), di) + di * log_q +
                        static_cast<double>(alpha - i) * log_1mq + (di * di - di) / (2.0 * sigma * sigma);
    log_a = log_add(log_a, term);
  }
  return log_a;
}

// log A_alpha for fractional alpha: the integral is split at z0 = sigma^2 log(1/q - 1) + 1/2 and each
// side expanded as a binomial series (MTZ 2019, section 3.3). Coefficients enter in absolute value,
// which bounds A_alpha from above. Stops once both series decrease and their terms are e^-30 below
// the total; returns +inf (order unusable) if that never happens.
double log_a_fractional(double q, double sigma, double alpha) {
  double log_a0 = -kInf, log_a1 = -kInf;
  const double z0 = sigma * sigma * std::log(1.0 / q - 1.0) + 0.5;
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  double last_s0 = -kInf, last_s1 = -kInf;
  for (int i = 0; i < 1000; ++i) {
    const double di = i;
    const double j = alpha - di;
    const double log_coef = log_abs_binomial(alpha, di);
    const double log_t0 = log_coef + di * log_q + j * log_1mq;
    const double log_t1 = log_coef + j * log_q + di * log_1mq;
    const double log_e0 = std::log(0.5) + log_erfc((di - z0) / (std::sqrt(2.0) * sigma));
    const double log_e1 = std::log(0.5) + log_erfc((z0 - j) / (std::sqrt(2.0) * sigma));
    const double log_s0 = log_t0 + (di * di - di) / (2.0 * sigma * sigma) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
    log_a0 = log_add(log_a0, log_s0);
    log_a1 = log_add(log_a1, log_s1);
    const double total = log_add(log_a0, log_a1);
    if (log_s0 < last_s0 && log_s1 < last_s1 && std::max(log_s0, log_s1) < total - 30.0) return total;
    last_s0 = log_s0;
    last_s1 = log_s1;
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
  if (std::isinf(alpha) || sigma == 0.0) return kInf;
  if (q == 1.0) return alpha / (2.0 * sigma * sigma);
  const double log_a = (alpha == std::floor(alpha) && alpha < 1e9) ? log_a_integer(q, sigma, static_cast<long>(alpha))
                                                                   : log_a_fractional(q, sigma, alpha);
  return log_a / (alpha - 1.0);
}

std::vector<double> rdp_of_phases(std::span<const GaussianPhase> phases) {
  const auto& orders = default_rdp_orders();
  std::vector<double> rdp(orders.size(), 0.0);
  for (const auto& phase : phases) {
    DPSGD_CHECK_ARG(phase.steps >= 0, "phase steps must be >= 0, got " << phase.steps);
    if (phase.steps == 0) continue;
    for (std::size_t k = 0; k < orders.size(); ++k) {
      rdp[k] += static_cast<double>(phase.steps) *
                rdp_poisson_subsampled_gaussian(phase.sampling_rate, phase.noise_multiplier, orders[k]);
    }
  }
  return rdp;
}

RdpConversion rdp_to_epsilon(std::span<const double> orders, std::span<const double> rdp, double delta) {
  check_curve(orders, rdp);
  DPSGD_CHECK_ARG(std::isfinite(delta) && delta > 0.0 && delta < 1.0, "delta must be in (0, 1), got " << delta);
  RdpConversion best{kInf, orders[0]};
  for (std::size_t k = 0; k < orders.size(); ++k) {
    const double a = orders[k], r = rdp[k];
    double eps;
    if (r < 0.0 || delta * delta + std::expm1(-r) > 0.0) {
      eps = 0.0;  // the KL bound delta <= sqrt(1 - exp(-rdp)) already gives epsilon = 0
    } else if (a > 1.01) {
      eps = r + std::log1p(-1.0 / a) - std::log(delta * a) / (a - 1.0);
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
    const double a = orders[k], r = std::max(0.0, rdp[k]);
    double log_delta = r == 0.0 ? -kInf : 0.5 * std::log1p(-std::exp(-r));
    if (a > 1.01) {
      const double bound = (a - 1.0) * (r - epsilon + std::log1p(-1.0 / a)) - std::log(a);
      log_delta = std::min(log_delta, bound);
    }
    if (log_delta < best_log) {
      best_log = log_delta;
      best_order = a;
    }
  }
  return {std::min(std::exp(best_log), 1.0), best_order};
}

}  // namespace dpsgd
