// Statistical tests of PoissonSampler (label: statistical): inclusion frequencies, the batch-size
// distribution, and the uniformity of truncation, each a chi-square test at p < 1e-6 on a fixed
// seed, so a correct sampler fails one with probability below 1e-6 (3e-6 for the file).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dpsgd/sampling/binomial_tail.hpp"
#include "dpsgd/sampling/poisson_sampler.hpp"
#include "support/statistics.hpp"

namespace dpsgd {
namespace {

TEST(PoissonSamplerStatistics, EachExampleIsIncludedWithProbabilityQ) {
  const std::int64_t n = 64;
  const double q = 0.2;
  const int steps = 40000;
  const PoissonSampler sampler(n, q, n, 2026);
  std::vector<double> counts(n, 0.0);
  for (int step = 0; step < steps; ++step) {
    const Batch batch = sampler.sample(static_cast<std::uint64_t>(step));
    for (std::int64_t i = 0; i < batch.real_size; ++i) counts[batch.indices[i]] += 1.0;
  }
  // Each count is Binomial(steps, q) independently: sum of squared standardised deviations is
  // approximately chi-square with n degrees of freedom.
  const double mean = steps * q, var = steps * q * (1 - q);
  double chi2 = 0.0;
  for (double c : counts) chi2 += (c - mean) * (c - mean) / var;
  EXPECT_GT(test::chi_square_p_value(chi2, static_cast<double>(n)), 1e-6) << "chi2 = " << chi2;
}

TEST(PoissonSamplerStatistics, BatchSizeFollowsBinomial) {
  const std::int64_t n = 400;
  const double q = 0.05;
  const int steps = 50000;
  const PoissonSampler sampler(n, q, n, 17);
  std::vector<double> histogram(n + 1, 0.0);
  for (int step = 0; step < steps; ++step) histogram[sampler.sample(static_cast<std::uint64_t>(step)).real_size] += 1.0;
  // Pool the tails into bins with at least 20 expected counts, then a chi-square goodness of fit.
  double chi2 = 0.0;
  int bins = 0;
  double observed = 0.0, expected = 0.0;
  for (std::int64_t k = 0; k <= n; ++k) {
    observed += histogram[k];
    expected += steps * std::exp(binomial_log_pmf(n, q, k));
    const double rest = steps * binomial_upper_tail(n, q, k);
    if (expected >= 20.0 && rest >= 20.0) {
      chi2 += (observed - expected) * (observed - expected) / expected;
      ++bins;
      observed = expected = 0.0;
    }
  }
  chi2 += (observed - expected) * (observed - expected) / expected;
  ++bins;
  EXPECT_GT(bins, 10);
  EXPECT_GT(test::chi_square_p_value(chi2, bins - 1), 1e-6) << "chi2 = " << chi2 << " over " << bins << " bins";
}

TEST(PoissonSamplerStatistics, TruncationKeepsAUniformSubset) {
  // q = 1 draws all 12 examples; capacity 5 must keep each with probability 5/12.
  const std::int64_t n = 12, capacity = 5;
  const int steps = 30000;
  const PoissonSampler sampler(n, 1.0, capacity, 3);
  std::vector<double> counts(n, 0.0);
  for (int step = 0; step < steps; ++step) {
    const Batch batch = sampler.sample(static_cast<std::uint64_t>(step));
    ASSERT_EQ(batch.truncated, n - capacity);
    for (std::int64_t i = 0; i < batch.real_size; ++i) counts[batch.indices[i]] += 1.0;
  }
  const double expected = steps * static_cast<double>(capacity) / n;
  double chi2 = 0.0;
  for (double c : counts) chi2 += (c - expected) * (c - expected) / expected;
  // Counts sum to steps * capacity exactly: n - 1 degrees of freedom (the multinomial-like bound
  // is conservative here since inclusions within a step are negatively correlated).
  EXPECT_GT(test::chi_square_p_value(chi2, static_cast<double>(n - 1)), 1e-6) << "chi2 = " << chi2;
}

}  // namespace
}  // namespace dpsgd
