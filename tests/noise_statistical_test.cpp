// Statistical tests of the Gaussian noise stream (label: statistical). Each check is a 5-sigma or
// p < 1e-6 test on a fixed seed: the chance that a correct generator fails any one of them is
// below 1e-6, so the suite's false-failure probability is below 2e-5 (and, seeds being fixed, a
// failure reproduces exactly).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dpsgd/noise/gaussian_noise.hpp"
#include "support/statistics.hpp"

namespace dpsgd {
namespace {

constexpr std::size_t kSamples = std::size_t{1} << 22;  // 4.2 million

std::vector<double> unit_noise(NoiseKey key, NoiseMode mode, std::size_t n = kSamples) {
  std::vector<double> v(n, 0.0);
  add_gaussian_noise<double>(v, 1.0, key, mode);
  return v;
}

double mean_of(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const double ma = mean_of(a), mb = mean_of(b);
  double sab = 0.0, saa = 0.0, sbb = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

class NoiseStatistics : public ::testing::TestWithParam<NoiseMode> {};

TEST_P(NoiseStatistics, MeanAndVarianceMatchStandardNormal) {
  const auto v = unit_noise(NoiseKey{20261122, 1, 0}, GetParam());
  const double n = static_cast<double>(v.size());
  const double mean = mean_of(v);
  double var = 0.0;
  for (double x : v) var += (x - mean) * (x - mean);
  var /= n - 1.0;
  EXPECT_LT(std::abs(mean), 5.0 / std::sqrt(n));
  EXPECT_LT(std::abs(var - 1.0), 5.0 * std::sqrt(2.0 / n));  // Var(s^2) = 2 / n for a normal
}

TEST_P(NoiseStatistics, TailFrequenciesMatchStandardNormal) {
  const auto v = unit_noise(NoiseKey{777, 2, 0}, GetParam());
  const double n = static_cast<double>(v.size());
  for (double threshold : {1.0, 2.0, 3.0, 4.0}) {
    const double p = 2.0 * (1.0 - test::normal_cdf(threshold));
    double count = 0.0;
    for (double x : v) count += std::abs(x) > threshold ? 1.0 : 0.0;
    const double sd = std::sqrt(n * p * (1.0 - p));
    EXPECT_LT(std::abs(count - n * p), 5.0 * sd) << "tail beyond " << threshold;
  }
}

TEST_P(NoiseStatistics, KolmogorovSmirnovAgainstStandardNormal) {
  auto v = unit_noise(NoiseKey{31337, 3, 0}, GetParam());
  const double d = test::ks_statistic_standard_normal(v);
  const double p = test::kolmogorov_smirnov_p_value(d, static_cast<double>(v.size()));
  EXPECT_GT(p, 1e-6) << "KS statistic " << d;
}

TEST_P(NoiseStatistics, IndependentAcrossStepsStreamsAndPairs) {
  const auto base = unit_noise(NoiseKey{5, 10, 0}, GetParam());
  const auto next_step = unit_noise(NoiseKey{5, 11, 0}, GetParam());
  const auto other_stream = unit_noise(NoiseKey{5, 10, 1}, GetParam());
  const double bound = 5.0 / std::sqrt(static_cast<double>(kSamples));
  EXPECT_LT(std::abs(correlation(base, next_step)), bound);
  EXPECT_LT(std::abs(correlation(base, other_stream)), bound);
  // The two outputs of one Box-Muller transform, and neighbouring blocks.
  std::vector<double> even, odd;
  for (std::size_t i = 0; i + 1 < base.size(); i += 2) {
    even.push_back(base[i]);
    odd.push_back(base[i + 1]);
  }
  EXPECT_LT(std::abs(correlation(even, odd)), 5.0 / std::sqrt(static_cast<double>(even.size())));
  std::vector<double> lag_a(even.begin(), even.end() - 1), lag_b(even.begin() + 1, even.end());
  EXPECT_LT(std::abs(correlation(lag_a, lag_b)), 5.0 / std::sqrt(static_cast<double>(lag_a.size())));
  // Squares too: a dependence through the shared radius would show here, not in the plain correlation.
  std::vector<double> even_sq, odd_sq;
  for (std::size_t i = 0; i < even.size(); ++i) {
    even_sq.push_back(even[i] * even[i]);
    odd_sq.push_back(odd[i] * odd[i]);
  }
  EXPECT_LT(std::abs(correlation(even_sq, odd_sq)), 5.0 / std::sqrt(static_cast<double>(even.size())));
}

INSTANTIATE_TEST_SUITE_P(Modes, NoiseStatistics, ::testing::Values(NoiseMode::kStandard, NoiseMode::kSecure),
                         [](const auto& param_info) {
                           return param_info.param == NoiseMode::kStandard ? "Standard" : "Secure";
                         });

}  // namespace
}  // namespace dpsgd
