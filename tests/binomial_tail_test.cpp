// Tests of the exact binomial pmf and tail, and of the capacity chosen for a truncation target.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "dpsgd/core/error.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace dpsgd {
namespace {

// Reference pmf in long double (64-bit mantissa): independent of Loader's formula.
long double reference_log_pmf(std::int64_t n, long double p, std::int64_t k) {
  return std::lgamma(static_cast<long double>(n) + 1) - std::lgamma(static_cast<long double>(k) + 1) -
         std::lgamma(static_cast<long double>(n - k) + 1) + k * std::log(p) + (n - k) * std::log1p(-p);
}

TEST(BinomialPmf, MatchesDirectFormulaForSmallN) {
  for (double p : {0.01, 0.3, 0.5, 0.99}) {
    for (std::int64_t k = 0; k <= 20; ++k) {
      const double expected = static_cast<double>(reference_log_pmf(20, p, k));
      EXPECT_NEAR(binomial_log_pmf(20, p, k), expected, 1e-12 * std::max(1.0, std::abs(expected))) << p << " " << k;
    }
  }
}

TEST(BinomialPmf, AccurateForABillionTrials) {
  const std::int64_t n = 1'000'000'000;
  for (std::int64_t k : {900, 1000, 1100, 1200}) {
    const double expected = static_cast<double>(reference_log_pmf(n, 1e-6L, k));
    // lgammal of 1e9 carries ~1e-8 absolute error in the reference itself.
    EXPECT_NEAR(binomial_log_pmf(n, 1e-6, k), expected, 1e-7) << k;
  }
}

TEST(BinomialPmf, SumsToOne) {
  double total = 0.0;
  for (std::int64_t k = 0; k <= 1000; ++k) total += std::exp(binomial_log_pmf(1000, 0.37, k));
  EXPECT_NEAR(total, 1.0, 1e-12);
}

TEST(BinomialUpperTail, MatchesBruteForceSums) {
  for (auto [n, p] : {std::pair<std::int64_t, double>{1000, 0.05}, {1000, 0.5}, {50, 0.9}, {100000, 0.001}}) {
    for (std::int64_t k : {std::int64_t{0}, n / 20, n / 10, n / 2, n - 1}) {
      long double brute = 0.0L;
      for (std::int64_t j = k + 1; j <= n; ++j) brute += std::exp(reference_log_pmf(n, p, j));
      const double got = binomial_upper_tail(n, p, k);
      EXPECT_NEAR(got, static_cast<double>(brute), 1e-9 * static_cast<double>(brute) + 1e-15)
          << "n=" << n << " p=" << p << " k=" << k;
    }
  }
}

TEST(BinomialUpperTail, EdgeCases) {
  EXPECT_EQ(binomial_upper_tail(10, 0.5, -1), 1.0);
  EXPECT_EQ(binomial_upper_tail(10, 0.5, 10), 0.0);
  EXPECT_EQ(binomial_upper_tail(10, 0.0, 0), 0.0);
  EXPECT_EQ(binomial_upper_tail(10, 1.0, 9), 1.0);
  EXPECT_NEAR(binomial_upper_tail(1, 0.25, 0), 0.25, 1e-16);
  EXPECT_NEAR(binomial_upper_tail(10, 0.5, 9), std::ldexp(1.0, -10), 1e-18);
}

TEST(BinomialUpperTail, RejectsBadArguments) {
  EXPECT_THROW(binomial_upper_tail(-1, 0.5, 0), InvalidArgument);
  EXPECT_THROW(binomial_upper_tail(10, -0.1, 0), InvalidArgument);
  EXPECT_THROW(binomial_upper_tail(10, 1.1, 0), InvalidArgument);
  EXPECT_THROW(binomial_upper_tail(10, std::numeric_limits<double>::quiet_NaN(), 0), InvalidArgument);
  EXPECT_THROW(binomial_log_pmf(10, 0.5, 11), InvalidArgument);
  EXPECT_THROW(binomial_log_pmf(10, 0.5, -1), InvalidArgument);
}

TEST(TruncationCapacity, IsTheSmallestCapacityMeetingTheTarget) {
  for (auto [n, q, target] : {std::tuple<std::int64_t, double, double>{60000, 256.0 / 60000, 1e-6},
                              {1'000'000'000, 1e-6, 1e-9},
                              {100, 0.5, 0.01},
                              {1, 0.5, 0.1}}) {
    const TruncationCapacity plan = capacity_for_truncation_probability(n, q, target);
    EXPECT_LE(plan.truncation_probability, target);
    EXPECT_DOUBLE_EQ(plan.truncation_probability, binomial_upper_tail(n, q, plan.capacity));
    if (plan.capacity > 0) {
      EXPECT_GT(binomial_upper_tail(n, q, plan.capacity - 1), target);
    }
  }
  // Expected 1000 with standard deviation 31.6: the capacity sits about 5.6 sigma out for 1e-9, a
  // little beyond the normal approximation's 6.0 - skew; the exact tail decides.
  const TruncationCapacity big = capacity_for_truncation_probability(1'000'000'000, 1e-6, 1e-9);
  EXPECT_GT(big.standard_deviations, 5.0);
  EXPECT_LT(big.standard_deviations, 7.0);
  EXPECT_EQ(capacity_for_truncation_probability(10, 1.0, 0.5).capacity, 10);
}

TEST(TruncationCapacity, RejectsBadArguments) {
  EXPECT_THROW(capacity_for_truncation_probability(0, 0.5, 0.1), InvalidArgument);
  EXPECT_THROW(capacity_for_truncation_probability(10, 0.0, 0.1), InvalidArgument);
  EXPECT_THROW(capacity_for_truncation_probability(10, 1.5, 0.1), InvalidArgument);
  EXPECT_THROW(capacity_for_truncation_probability(10, 0.5, 0.0), InvalidArgument);
  EXPECT_THROW(capacity_for_truncation_probability(10, 0.5, 1.0), InvalidArgument);
  EXPECT_THROW(capacity_for_truncation_probability(10, 0.5, std::numeric_limits<double>::quiet_NaN()), InvalidArgument);
}

// The library's default capacity: the truncation charge (1 + e^eps) T Pr[overflow] stays within the
// share of delta asked for, and one slot fewer would exceed it (unless the 1e-3 cap decided).
TEST(TruncationCapacity, DeltaShareKeepsTheChargeWithinItsShare) {
  for (auto [n, q, steps, epsilon, delta] :
       {std::tuple<std::int64_t, double, std::int64_t, double, double>{60000, 2048.0 / 60000, 821, 3.0, 1e-5},
        {1'000'000, 1e-3, 100000, 8.0, 1e-9},
        {500, 0.1, 10, 1.0, 1e-3}}) {
    const TruncationCapacity plan = capacity_for_delta_share(n, q, steps, epsilon, delta);
    const double charge = (1.0 + std::exp(epsilon)) * static_cast<double>(steps);
    EXPECT_LE(charge * plan.truncation_probability, 0.01 * delta * (1 + 1e-12)) << n;
    EXPECT_GT(charge * binomial_upper_tail(n, q, plan.capacity - 1), 0.01 * delta) << n;  // the smallest such
    EXPECT_LE(plan.capacity, n);
  }
  // e^800 overflows: the share cannot be represented, so nothing is truncated.
  EXPECT_EQ(capacity_for_delta_share(1000, 0.01, 10, 800.0, 1e-5).capacity, 1000);
  EXPECT_THROW(capacity_for_delta_share(1000, 0.01, 0, 1.0, 1e-5), InvalidArgument);
  EXPECT_THROW(capacity_for_delta_share(1000, 0.01, 10, 1.0, 1e-5, 1.0), InvalidArgument);
  EXPECT_THROW(capacity_for_delta_share(1000, 0.01, 10, std::numeric_limits<double>::quiet_NaN(), 1e-5),
               InvalidArgument);
}

}  // namespace
}  // namespace dpsgd
