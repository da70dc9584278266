// Test support: distribution functions for chi-square and Kolmogorov-Smirnov tests of samplers.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace dpsgd::test {

// Regularised upper incomplete gamma Q(a, x), by the series for x < a + 1 and Lentz's continued
// fraction otherwise (the standard split, e.g. Press et al., Numerical Recipes, section 6.2).
inline double upper_incomplete_gamma(double a, double x) {
  if (x <= 0.0) return 1.0;
  const double log_prefix = -x + a * std::log(x) - std::lgamma(a);
  if (x < a + 1.0) {
    double term = 1.0 / a, sum = term;
    for (int n = 1; n < 100000; ++n) {
      term *= x / (a + n);
      sum += term;
      if (std::abs(term) < std::abs(sum) * 1e-16) break;
    }
    return 1.0 - sum * std::exp(log_prefix);
  }
  const double tiny = 1e-300;
  double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
  for (int i = 1; i < 100000; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double delta = d * c;
    h *= delta;
    if (std::abs(delta - 1.0) < 1e-16) break;
  }
  return std::exp(log_prefix) * h;
}

// Pr[chi^2_dof >= statistic].
inline double chi_square_p_value(double statistic, double dof) {
  return upper_incomplete_gamma(0.5 * dof, 0.5 * statistic);
}

inline double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// Asymptotic p-value of the one-sample Kolmogorov-Smirnov statistic D over n samples
// (Kolmogorov's limiting distribution, with Stephens' finite-n correction of lambda).
inline double kolmogorov_smirnov_p_value(double d, double n) {
  const double sqrt_n = std::sqrt(n);
  const double lambda = (sqrt_n + 0.12 + 0.11 / sqrt_n) * d;
  double sum = 0.0;
  for (int k = 1; k < 200; ++k) {
    const double term = std::exp(-2.0 * k * k * lambda * lambda);
    sum += (k % 2 == 1 ? 2.0 : -2.0) * term;
    if (term < 1e-18) break;
  }
  return std::clamp(sum, 0.0, 1.0);
}

// KS statistic of `samples` against the standard normal CDF (sorts its argument).
inline double ks_statistic_standard_normal(std::vector<double>& samples) {
  std::sort(samples.begin(), samples.end());
  const double n = static_cast<double>(samples.size());
  double d = 0.0;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const double f = normal_cdf(samples[i]);
    d = std::max({d, f - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - f});
  }
  return d;
}

}  // namespace dpsgd::test
