// Binomial pmf and tails by Loader's method, and the capacity search built on them.
#include "dpsgd/sampling/binomial_tail.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "dpsgd/core/error.hpp"
#include "dpsgd/core/validate.hpp"

namespace dpsgd {
namespace {

// stirlerr(n) = log(n!) - log(sqrt(2 pi n) (n/e)^n). The asymptotic series (Loader 2000, eq. 4) is
// accurate to double precision for n > 15; below that lgamma is exact enough.
double stirling_error(double n) {
  if (n <= 15.0) {
    if (n == 0.0) return 0.0;
    return std::lgamma(n + 1.0) - (n + 0.5) * std::log(n) + n - 0.5 * std::log(2.0 * std::numbers::pi);
  }
  const double n2 = n * n;
  return (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - (1.0 / 1680.0) / n2) / n2) / n2) / n;
}

// Deviance term bd0(x, m) = x log(x/m) + m - x, by a series when x is close to m, where the direct
// formula cancels catastrophically (Loader 2000, section 2).
double deviance(double x, double m) {
  if (std::abs(x - m) < 0.1 * (x + m)) {
    const double v = (x - m) / (x + m);
    double sum = (x - m) * v;
    double term = 2.0 * x * v;
    const double v2 = v * v;
    for (int j = 1; j < 1000; ++j) {
      term *= v2;
      const double next = sum + term / (2 * j + 1);
      if (next == sum) return next;
      sum = next;
    }
    return sum;
  }
  return x * std::log(x / m) + m - x;
}

void check_binomial(std::int64_t n, double p) {
  DPSGD_CHECK_ARG(n >= 0, "n must be >= 0, got " << n);
  DPSGD_CHECK_ARG(std::isfinite(p) && p >= 0.0 && p <= 1.0, "p must be in [0, 1], got " << p);
}

}  // namespace

double binomial_log_pmf(std::int64_t n, double p, std::int64_t k) {
  check_binomial(n, p);
  DPSGD_CHECK_ARG(k >= 0 && k <= n, "k must be in [0, n] = [0, " << n << "], got " << k);
  if (p == 0.0) return k == 0 ? 0.0 : -INFINITY;
  if (p == 1.0) return k == n ? 0.0 : -INFINITY;
  const double nd = static_cast<double>(n);
  const double kd = static_cast<double>(k);
  if (k == 0) return nd * std::log1p(-p);
  if (k == n) return nd * std::log(p);
  const double q = 1.0 - p;
  const double log_core = stirling_error(nd) - stirling_error(kd) - stirling_error(nd - kd) - deviance(kd, nd * p) -
                          deviance(nd - kd, nd * q);
  return log_core + 0.5 * std::log(nd / (2.0 * std::numbers::pi * kd * (nd - kd)));
}

double binomial_upper_tail(std::int64_t n, double p, std::int64_t k) {
  check_binomial(n, p);
  if (k < 0) return 1.0;
  if (k >= n) return 0.0;
  if (p == 0.0) return 0.0;
  if (p == 1.0) return 1.0;
  const double odds = p / (1.0 - p);
  const double nd = static_cast<double>(n);
  const auto mode = static_cast<std::int64_t>(std::floor((nd + 1.0) * p));
  // Sum the side of the distribution away from the mode, where terms fall monotonically, and stop
  // when they no longer change the sum. The ratio recursion drifts by ~1 ulp per term, so restart
  // it from the exact pmf every 4096 terms.
  constexpr double kNegligible = 1e-18;
  if (k + 1 >= mode) {
    double sum = 0.0;
    double term = 0.0;
    for (std::int64_t j = k + 1; j <= n; ++j) {
      term = ((j - k - 1) % 4096 == 0) ? std::exp(binomial_log_pmf(n, p, j))
                                       : term * (static_cast<double>(n - j + 1) / static_cast<double>(j)) * odds;
      sum += term;
      if (term <= kNegligible * sum || term == 0.0) break;
    }
    return std::min(sum, 1.0);
  }
  double lower = 0.0;
  double term = 0.0;
  for (std::int64_t j = k; j >= 0; --j) {
    term = ((k - j) % 4096 == 0) ? std::exp(binomial_log_pmf(n, p, j))
                                 : term * (static_cast<double>(j + 1) / static_cast<double>(n - j)) / odds;
    lower += term;
    if (term <= kNegligible * lower || term == 0.0) break;
  }
  return std::clamp(1.0 - lower, 0.0, 1.0);
}

TruncationCapacity capacity_for_truncation_probability(std::int64_t dataset_size, double sampling_rate,
                                                       double target_probability) {
  DPSGD_CHECK_ARG(dataset_size >= 1, "dataset_size must be >= 1, got " << dataset_size);
  validate_sampling_rate(sampling_rate);
  DPSGD_CHECK_ARG(std::isfinite(target_probability) && target_probability > 0.0 && target_probability < 1.0,
                  "target_probability must be in (0, 1), got " << target_probability);
  // The tail is non-increasing in the capacity: bisect for the first capacity meeting the target.
  std::int64_t lo = 0;  // invariant: tail(hi) <= target; every capacity below lo misses it
  std::int64_t hi = dataset_size;
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (binomial_upper_tail(dataset_size, sampling_rate, mid) <= target_probability) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  TruncationCapacity result;
  result.capacity = hi;
  result.truncation_probability = binomial_upper_tail(dataset_size, sampling_rate, hi);
  const double mean = static_cast<double>(dataset_size) * sampling_rate;
  const double sd = std::sqrt(mean * (1.0 - sampling_rate));
  result.standard_deviations = sd > 0.0 ? (static_cast<double>(hi) - mean) / sd : 0.0;
  return result;
}

TruncationCapacity capacity_for_delta_share(std::int64_t dataset_size, double sampling_rate, std::int64_t steps,
                                            double epsilon, double delta, double delta_share) {
  DPSGD_CHECK_ARG(dataset_size >= 1, "dataset_size must be >= 1, got " << dataset_size);
  validate_sampling_rate(sampling_rate);
  DPSGD_CHECK_ARG(steps >= 1, "steps must be >= 1, got " << steps);
  validate_epsilon(epsilon);
  validate_delta(delta);
  DPSGD_CHECK_ARG(std::isfinite(delta_share) && delta_share > 0.0 && delta_share < 1.0,
                  "delta_share must be in (0, 1), got " << delta_share);
  const double per_step =
      std::min(1e-3, delta_share * delta / ((1.0 + std::exp(epsilon)) * static_cast<double>(steps)));
  if (!(per_step > 0.0)) {  // e^epsilon overflowed or the share underflowed: do not truncate
    TruncationCapacity whole;
    whole.capacity = dataset_size;
    return whole;
  }
  return capacity_for_truncation_probability(dataset_size, sampling_rate, per_step);  // never above N
}

}  // namespace dpsgd
