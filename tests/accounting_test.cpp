// Accounting tests against golden values from Google's dp_accounting (tests/data, made by
// tools/generate_accounting_golden.py), the exact analytic Gaussian, and properties of the method.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>

#include "dpsgd/accounting/accountant.hpp"
#include "dpsgd/accounting/pld.hpp"
#include "dpsgd/accounting/privacy_accountant.hpp"
#include "dpsgd/accounting/rdp.hpp"
#include "dpsgd/core/error.hpp"
#include "dpsgd/sampling/binomial_tail.hpp"

namespace dpsgd {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

const nlohmann::json& golden() {
  static const nlohmann::json data = [] {
    std::ifstream in(DPSGD_TEST_DATA_DIR "/accounting_golden.json");
    if (!in) throw std::runtime_error("missing " DPSGD_TEST_DATA_DIR "/accounting_golden.json");
    return nlohmann::json::parse(in);
  }();
  return data;
}

double one_phase_epsilon(double q, double sigma, std::int64_t steps, double delta, AccountantKind kind) {
  AccountantOptions options;
  options.kind = kind;
  const TrainingPhase phase{q, sigma, steps};
  return compute_epsilon(std::span<const TrainingPhase>(&phase, 1), delta, options);
}

// dpsgd's RDP lies between the exact value (mpmath quadrature, tools/generate_accounting_golden.py)
// and dp_accounting's. At fractional orders dp_accounting sums the series with absolute coefficients,
// up to 2x above the exact value below order 2 (and excludes orders whose series does not settle);
// dpsgd sums the signed series and bounds its rest, so it sits within 1e-5 of the exact value, above it.
TEST(Rdp, LiesBetweenTheExactValueAndDpAccounting) {
  for (const auto& c : golden()["rdp"]) {
    const double q = c["sampling_rate"], sigma = c["noise_multiplier"];
    const auto& orders = c["orders"];
    for (std::size_t k = 0; k < orders.size(); ++k) {
      const double order = orders[k];
      const double got = rdp_poisson_subsampled_gaussian(q, sigma, order);
      const double exact = c["exact_rdp"][k];
      SCOPED_TRACE(::testing::Message() << "q=" << q << " sigma=" << sigma << " order=" << order);
      EXPECT_GE(got, exact * (1.0 - 1e-12));  // an upper bound (mpmath's value rounded to a double)
      EXPECT_LE(got, exact * (1.0 + 1e-5) + 1e-300);
      if (!c["rdp"][k].is_null()) {
        EXPECT_LE(got, std::max(c["rdp"][k].get<double>(), exact) * (1.0 + 1e-7));
      }
    }
  }
}

TEST(Rdp, FullBatchIsTheGaussianMechanism) {
  for (double sigma : {0.5, 1.0, 7.0}) {
    for (double order : {1.5, 2.0, 32.0, 1024.0}) {
      EXPECT_DOUBLE_EQ(rdp_poisson_subsampled_gaussian(1.0, sigma, order), order / (2 * sigma * sigma));
    }
  }
  EXPECT_EQ(rdp_poisson_subsampled_gaussian(0.0, 1.0, 2.0), 0.0);
  EXPECT_TRUE(std::isinf(rdp_poisson_subsampled_gaussian(0.1, 0.0, 2.0)));
}

TEST(Rdp, EpsilonIsBetweenTheExactCurveAndDpAccounting) {
  for (const auto& c : golden()["epsilon"]) {
    const double exact = c["exact_rdp_epsilon"], reference = c["rdp_epsilon"];
    const double got =
        one_phase_epsilon(c["sampling_rate"], c["noise_multiplier"], c["steps"], c["delta"], AccountantKind::kRdp);
    EXPECT_GE(got, exact * (1.0 - 1e-12)) << c.dump();
    EXPECT_LE(got, exact * (1.0 + 1e-6)) << c.dump();
    EXPECT_LE(got, std::max(reference, exact) * (1.0 + 1e-9)) << c.dump();
  }
}

TEST(Rdp, RejectsBadArguments) {
  EXPECT_THROW(rdp_poisson_subsampled_gaussian(1.5, 1.0, 2.0), InvalidArgument);
  EXPECT_THROW(rdp_poisson_subsampled_gaussian(kNaN, 1.0, 2.0), InvalidArgument);
  EXPECT_THROW(rdp_poisson_subsampled_gaussian(0.1, -1.0, 2.0), InvalidArgument);
  EXPECT_THROW(rdp_poisson_subsampled_gaussian(0.1, kInf, 2.0), InvalidArgument);
  EXPECT_THROW(rdp_poisson_subsampled_gaussian(0.1, 1.0, 1.0), InvalidArgument);
  EXPECT_THROW(rdp_poisson_subsampled_gaussian(0.1, 1.0, kNaN), InvalidArgument);
  const std::vector<double> orders{2.0, 3.0}, rdp{0.1, 0.2}, short_rdp{0.1};
  EXPECT_THROW(rdp_to_epsilon(orders, short_rdp, 1e-5), InvalidArgument);
  EXPECT_THROW(rdp_to_epsilon(orders, rdp, 0.0), InvalidArgument);
  EXPECT_THROW(rdp_to_epsilon(orders, rdp, 1.0), InvalidArgument);
  EXPECT_THROW(rdp_to_delta(orders, rdp, -1.0), InvalidArgument);
  EXPECT_THROW(rdp_to_delta(std::vector<double>{}, std::vector<double>{}, 1.0), InvalidArgument);
}

TEST(Pld, EpsilonMatchesDpAccountingAndNeverUndercuts) {
  for (const auto& c : golden()["epsilon"]) {
    const double reference = c["pld_epsilon"];
    // Where dp_accounting's 1e-5 grid is not converged, its 5x finer run brackets the truth from above
    // too; an upper bound below both would be an underestimate.
    const double floor =
        c.contains("pld_epsilon_fine") ? std::min(reference, c["pld_epsilon_fine"].get<double>()) : reference;
    const double got =
        one_phase_epsilon(c["sampling_rate"], c["noise_multiplier"], c["steps"], c["delta"], AccountantKind::kPld);
    EXPECT_NEAR(got, reference, 1e-3 * reference) << c.dump();
    EXPECT_GE(got, floor * (1.0 - 1e-4)) << c.dump();
    EXPECT_LE(got, c["rdp_epsilon"].get<double>() * (1.0 + 1e-9)) << c.dump();
  }
}

TEST(Pld, DeltaMatchesDpAccounting) {
  for (const auto& c : golden()["delta"]) {
    AccountantOptions options;
    const TrainingPhase phase{c["sampling_rate"], c["noise_multiplier"], c["steps"]};
    const double got = compute_delta(std::span<const TrainingPhase>(&phase, 1), c["epsilon"], options);
    const double reference = c["pld_delta"];
    EXPECT_NEAR(got, reference, 2e-3 * reference) << c.dump();
    options.kind = AccountantKind::kRdp;
    const double rdp = compute_delta(std::span<const TrainingPhase>(&phase, 1), c["epsilon"], options);
    const double exact = c["exact_rdp_delta"];
    EXPECT_GE(rdp, exact * (1.0 - 1e-10)) << c.dump();
    EXPECT_LE(rdp, exact * (1.0 + 1e-6)) << c.dump();
  }
}

TEST(Pld, FullBatchMatchesTheExactAnalyticGaussian) {
  for (const auto& c : golden()["analytic_gaussian"]) {
    const double exact = c["epsilon"];
    const double got = one_phase_epsilon(1.0, c["noise_multiplier"], c["steps"], c["delta"], AccountantKind::kPld);
    EXPECT_GE(got, exact) << c.dump();  // an upper bound, also at delta = 1e-10
    EXPECT_LE(got, exact * (1.0 + 5e-4)) << c.dump();
    EXPECT_GE(one_phase_epsilon(1.0, c["noise_multiplier"], c["steps"], c["delta"], AccountantKind::kRdp), exact);
  }
}

TEST(Pld, CalibrationMatchesDpAccountingAndMeetsTheTarget) {
  for (const auto& c : golden()["calibration"]) {
    for (AccountantKind kind : {AccountantKind::kPld, AccountantKind::kRdp}) {
      AccountantOptions options;
      options.kind = kind;
      const double sigma =
          calibrate_noise_multiplier(c["sampling_rate"], c["steps"], c["epsilon"], c["delta"], options);
      EXPECT_LE(one_phase_epsilon(c["sampling_rate"], sigma, c["steps"], c["delta"], kind), c["epsilon"].get<double>());
      // Within 0.1% of the smallest feasible sigma.
      EXPECT_GT(one_phase_epsilon(c["sampling_rate"], sigma * (1 - 1e-3), c["steps"], c["delta"], kind),
                c["epsilon"].get<double>())
          << "not the smallest sigma";
      if (kind == AccountantKind::kPld) {
        EXPECT_NEAR(sigma, c["pld_noise_multiplier"].get<double>(), 5e-3 * sigma) << c.dump();
      }
    }
  }
}

TEST(Pld, StepCalibrationFindsTheLastStepWithinBudget) {
  const std::int64_t steps = calibrate_steps(0.01, 1.0, 1.0, 1e-5);
  ASSERT_GT(steps, 1);
  EXPECT_LE(one_phase_epsilon(0.01, 1.0, steps, 1e-5, AccountantKind::kPld), 1.0);
  EXPECT_GT(one_phase_epsilon(0.01, 1.0, steps + 1, 1e-5, AccountantKind::kPld), 1.0);
  EXPECT_EQ(calibrate_steps(1.0, 0.5, 0.1, 1e-5), 0);
  EXPECT_EQ(calibrate_steps(1e-3, 50.0, 10.0, 1e-5, {}, 1000), 1000);
}

// The query structs and the positional forms are one calibration: the same answers, the same checks.
TEST(Calibration, QueryStructsMatchThePositionalForms) {
  const NoiseCalibration by_query = calibrate_noise(
      {.sampling_rate = 0.01, .steps = 500, .epsilon = 2.0, .delta = 1e-5, .dataset_size = 6000, .capacity = 120});
  const NoiseCalibration positional = calibrate_noise(0.01, 500, 2.0, 1e-5, {}, 6000, 120);
  EXPECT_EQ(by_query.noise_multiplier, positional.noise_multiplier);
  EXPECT_EQ(by_query.answer.value, positional.answer.value);
  EXPECT_LE(by_query.answer.value, 2.0);
  EXPECT_EQ(calibrate_steps({.sampling_rate = 0.01, .noise_multiplier = 1.0, .epsilon = 1.0, .delta = 1e-5}),
            calibrate_steps(0.01, 1.0, 1.0, 1e-5));
  EXPECT_EQ(calibrate_steps(
                {.sampling_rate = 1e-3, .noise_multiplier = 50.0, .epsilon = 10.0, .delta = 1e-5, .max_steps = 1000}),
            1000);
  // Negative controls: each field of the query is checked.
  EXPECT_THROW(calibrate_noise({.sampling_rate = 0.01, .steps = 0, .epsilon = 1.0, .delta = 1e-5}), InvalidArgument);
  EXPECT_THROW(calibrate_noise({.sampling_rate = 0.01, .steps = 10, .epsilon = 1.0, .delta = 1e-301}), InvalidArgument);
  EXPECT_THROW(calibrate_noise({.sampling_rate = 0.01, .steps = 10, .epsilon = 1.0, .delta = 1e-5, .capacity = 5}),
               InvalidArgument);
  AccountantOptions bad;
  bad.kind = static_cast<AccountantKind>(7);
  EXPECT_THROW(bad.validate(), InvalidArgument);
  EXPECT_THROW(calibrate_noise({.sampling_rate = 0.01, .steps = 10, .epsilon = 1.0, .delta = 1e-5, .options = bad}),
               InvalidArgument);
  EXPECT_THROW(
      calibrate_steps({.sampling_rate = 0.01, .noise_multiplier = 1.0, .epsilon = 1.0, .delta = 1e-5, .max_steps = 0}),
      InvalidArgument);
}

// A TrainingPhase is a GaussianPhase with truncation: both brace forms fill the same fields.
TEST(TrainingPhaseRecord, ExtendsTheGaussianPhase) {
  const TrainingPhase plain{0.01, 1.5, 300};
  const TrainingPhase truncated{0.01, 1.5, 300, 6000, 120};
  EXPECT_FALSE(plain.truncated());
  EXPECT_TRUE(truncated.truncated());
  const GaussianPhase& mechanism = truncated.mechanism();
  EXPECT_EQ(mechanism.sampling_rate, 0.01);
  EXPECT_EQ(mechanism.noise_multiplier, 1.5);
  EXPECT_EQ(mechanism.steps, 300);
  const DpStepRecord step{7, 0.01, 1.5, 6000, 120};
  const TrainingPhase one = step.as_phase();
  EXPECT_EQ(one.steps, 1);
  EXPECT_EQ(one.dataset_size, 6000);
  EXPECT_EQ(one.capacity, 120);
}

TEST(Pld, HeterogeneousPhasesComposeBetweenTheirParts) {
  const std::vector<TrainingPhase> both{{0.01, 1.0, 500}, {0.02, 1.5, 300}};
  const double eps_both = compute_epsilon(both, 1e-5);
  const double eps_first = compute_epsilon(std::span<const TrainingPhase>(both.data(), 1), 1e-5);
  const double eps_second = compute_epsilon(std::span<const TrainingPhase>(both.data() + 1, 1), 1e-5);
  EXPECT_GT(eps_both, std::max(eps_first, eps_second));
  EXPECT_LT(eps_both, eps_first + eps_second);
  // Splitting one phase in two must not change the answer.
  const std::vector<TrainingPhase> split{{0.01, 1.0, 200}, {0.01, 1.0, 300}};
  EXPECT_NEAR(compute_epsilon(split, 1e-5), eps_first, 2e-4 * eps_first);
}

TEST(Pld, ConnectTheDotsHitsTheExactCurveAtGridPoints) {
  for (PldDirection direction : {PldDirection::kRemove, PldDirection::kAdd}) {
    const PrivacyLossPmf pmf = subsampled_gaussian_pmf(0.1, 1.0, 1e-3, direction);
    double total = pmf.infinity_mass;
    for (double m : pmf.mass) {
      EXPECT_GE(m, 0.0);
      total += m;
    }
    EXPECT_NEAR(total, 1.0, 1e-8);  // 1 plus the room left for rounding in the construction
    for (double eps : {0.0, 0.05, 0.2, 0.5, 1.0}) {
      const double exact = subsampled_gaussian_delta(0.1, 1.0, eps, direction);
      EXPECT_NEAR(pmf.delta_for_epsilon(eps), exact, 1e-12 + 1e-9 * exact) << eps;
      // Between grid points the discrete curve lies above the exact one (pessimistic).
      EXPECT_GE(pmf.delta_for_epsilon(eps + 4e-4), subsampled_gaussian_delta(0.1, 1.0, eps + 4e-4, direction) - 1e-15);
    }
  }
}

TEST(Pld, FullBatchHockeyStickIsTheGaussianFormula) {
  // delta(eps) = Phi(-eps sigma + 1/(2 sigma)) - e^eps Phi(-eps sigma - 1/(2 sigma)) (Balle & Wang 2018).
  const auto phi = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  for (double sigma : {0.7, 2.0}) {
    for (double eps : {0.1, 1.0, 3.0}) {
      const double expected = phi(-eps * sigma + 0.5 / sigma) - std::exp(eps) * phi(-eps * sigma - 0.5 / sigma);
      for (PldDirection d : {PldDirection::kRemove, PldDirection::kAdd}) {
        EXPECT_NEAR(subsampled_gaussian_delta(1.0, sigma, eps, d), expected, 1e-14 + 1e-10 * expected);
      }
    }
  }
}

TEST(PrivacyLossPmf, QueriesInvertEachOther) {
  PrivacyLossPmf pmf;
  pmf.grid = 0.5;
  pmf.offset = -2;
  pmf.mass = {0.1, 0.2, 0.3, 0.2, 0.1, 0.05};  // losses -1 .. 1.5
  pmf.infinity_mass = 0.05;
  // delta(0.75) = 0.05 + 0.1 (1 - e^-0.25) + 0.05 (1 - e^-0.75)
  EXPECT_NEAR(pmf.delta_for_epsilon(0.75), 0.05 + 0.1 * -std::expm1(-0.25) + 0.05 * -std::expm1(-0.75), 1e-15);
  for (double delta : {0.06, 0.08, 0.1, 0.2}) {
    const double eps = pmf.epsilon_for_delta(delta);
    EXPECT_NEAR(pmf.delta_for_epsilon(eps), delta, 1e-12) << delta;
  }
  EXPECT_TRUE(std::isinf(pmf.epsilon_for_delta(0.01)));  // below the infinity mass
  EXPECT_EQ(pmf.epsilon_for_delta(0.9), 0.0);
}

TEST(Truncation, ChargesTheTruncationProbability) {
  // Capacity far above the mean: eta is negligible and epsilon equals the untruncated one.
  const TrainingPhase loose{0.01, 1.0, 1000, 60000, 2000};
  const TrainingPhase plain{0.01, 1.0, 1000};
  EXPECT_NEAR(compute_epsilon(std::span<const TrainingPhase>(&loose, 1), 1e-5),
              compute_epsilon(std::span<const TrainingPhase>(&plain, 1), 1e-5), 1e-9);
  // A tight capacity: eta = T Pr[Bin(N + 1, q) > B] and delta_base(eps) + (1 + e^eps) eta <= delta.
  const std::int64_t capacity = capacity_for_truncation_probability(60001, 0.01, 1e-10).capacity;
  const TrainingPhase tight{0.01, 1.0, 1000, 60000, capacity};
  const double eta = truncation_probability(std::span<const TrainingPhase>(&tight, 1));
  EXPECT_GT(eta, 1e-8);
  EXPECT_LT(eta, 1e-6);
  const double eps = compute_epsilon(std::span<const TrainingPhase>(&tight, 1), 1e-5);
  EXPECT_GT(eps, compute_epsilon(std::span<const TrainingPhase>(&plain, 1), 1e-5));
  const double total = compute_delta(std::span<const TrainingPhase>(&plain, 1), eps) + (1 + std::exp(eps)) * eta;
  EXPECT_LE(total, 1e-5 * (1 + 1e-3));
  EXPECT_NEAR(compute_delta(std::span<const TrainingPhase>(&tight, 1), eps), total, 1e-12);
  // Truncation so likely that delta cannot absorb it.
  const TrainingPhase hopeless{0.01, 1.0, 1000, 60000, 600};
  EXPECT_TRUE(std::isinf(compute_epsilon(std::span<const TrainingPhase>(&hopeless, 1), 1e-5)));
}

TEST(Accountant, RejectsBadArguments) {
  const TrainingPhase ok{0.01, 1.0, 100};
  const std::span<const TrainingPhase> one(&ok, 1);
  for (double delta : {0.0, 1.0, -1e-5, kNaN, kInf})
    EXPECT_THROW(compute_epsilon(one, delta), InvalidArgument) << delta;
  for (double eps : {0.0, -1.0, kNaN, kInf}) EXPECT_THROW(compute_delta(one, eps), InvalidArgument) << eps;
  for (TrainingPhase bad : {TrainingPhase{0.0, 1.0, 10}, TrainingPhase{1.5, 1.0, 10}, TrainingPhase{kNaN, 1.0, 10},
                            TrainingPhase{0.1, 0.0, 10}, TrainingPhase{0.1, -1.0, 10}, TrainingPhase{0.1, kInf, 10},
                            TrainingPhase{0.1, 1.0, 0}, TrainingPhase{0.1, 1.0, -3},
                            TrainingPhase{0.1, 1.0, 10, 100, 0}, TrainingPhase{0.1, 1.0, 10, -5, -5}}) {
    EXPECT_THROW(compute_epsilon(std::span<const TrainingPhase>(&bad, 1), 1e-5), InvalidArgument);
  }
  EXPECT_THROW(compute_epsilon(std::span<const TrainingPhase>(), 1e-5), InvalidArgument);
  EXPECT_THROW(calibrate_noise_multiplier(0.01, 100, -1.0, 1e-5), InvalidArgument);
  EXPECT_THROW(calibrate_noise_multiplier(0.01, 0, 1.0, 1e-5), InvalidArgument);
  EXPECT_THROW(calibrate_noise_multiplier(2.0, 10, 1.0, 1e-5), InvalidArgument);
  EXPECT_THROW(calibrate_steps(0.01, 1.0, 1.0, 1e-5, {}, 0), InvalidArgument);
  EXPECT_THROW(parse_accountant_kind("moments"), InvalidArgument);
  EXPECT_EQ(parse_accountant_kind("rdp"), AccountantKind::kRdp);
  EXPECT_THROW(subsampled_gaussian_pmf(0.1, 1.0, 0.0, PldDirection::kAdd), InvalidArgument);
  EXPECT_THROW(subsampled_gaussian_pmf(0.1, 1.0, 1e-3, static_cast<PldDirection>(4)), InvalidArgument);
  PldOptions bad_options;
  bad_options.relative_error = 0.0;
  const GaussianPhase g{0.01, 1.0, 10};
  EXPECT_THROW(pld_epsilon(std::span<const GaussianPhase>(&g, 1), 1e-5, bad_options), InvalidArgument);
}

}  // namespace
}  // namespace dpsgd
