// Hostile input at every public entry point: for each numeric argument, each invalid class (NaN,
// +-infinity, negative, zero where it is invalid, out of range) and each structural one (mismatched
// sizes, empty inputs) must throw dpsgd::InvalidArgument -- never abort, never continue on NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "dpsgd/accounting/rdp.hpp"
#include "dpsgd/data/idx.hpp"
#include "dpsgd/dpsgd.hpp"
#include "dpsgd/nn/activation.hpp"
#include "dpsgd/nn/conv2d.hpp"
#include "dpsgd/nn/linear.hpp"
#include "dpsgd/nn/pooling.hpp"

namespace dpsgd {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Values that no probability, rate or positive scale accepts.
const std::vector<double> kNonFinite{kNaN, kInf, -kInf};

// Runs `call(v)` for every bad value and expects InvalidArgument naming the argument.
void expect_rejects(const std::string& what, const std::vector<double>& bad, const std::function<void(double)>& call) {
  for (const double v : bad) {
    try {
      call(v);
      ADD_FAILURE() << what << " accepted " << v;
    } catch (const InvalidArgument&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << " = " << v << " threw something other than InvalidArgument: " << e.what();
    }
  }
}

std::vector<double> with(std::vector<double> base, std::initializer_list<double> more) {
  base.insert(base.end(), more);
  return base;
}

TEST(HostileInput, Accountant) {
  const auto epsilon_of = [](double q, double sigma, std::int64_t steps, double delta) {
    const TrainingPhase phase{q, sigma, steps};
    compute_epsilon(std::span<const TrainingPhase>(&phase, 1), delta);
  };
  expect_rejects("sampling_rate", with(kNonFinite, {-0.1, 0.0, 1.5}), [&](double q) { epsilon_of(q, 1.0, 10, 1e-5); });
  expect_rejects("noise_multiplier", with(kNonFinite, {-1.0, 0.0}), [&](double s) { epsilon_of(0.01, s, 10, 1e-5); });
  expect_rejects("steps", {-1.0, 0.0}, [&](double t) { epsilon_of(0.01, 1.0, static_cast<std::int64_t>(t), 1e-5); });
  expect_rejects("delta", with(kNonFinite, {-1e-5, 0.0, 1.0, 1.5}), [&](double d) { epsilon_of(0.01, 1.0, 10, d); });
  EXPECT_THROW(compute_epsilon({}, 1e-5), InvalidArgument);  // empty
  const TrainingPhase good{0.01, 1.0, 10};
  const std::span<const TrainingPhase> one(&good, 1);
  expect_rejects("epsilon", {kNaN, -kInf, -1.0}, [&](double e) { compute_delta(one, e); });
  expect_rejects("dataset_size/capacity", {-1.0, 0.0}, [&](double which) {
    // negative, or only one of the two set (a capacity above the data set is valid: it never truncates)
    const TrainingPhase p = which < 0 ? TrainingPhase{0.01, 1.0, 10, -5, 3} : TrainingPhase{0.01, 1.0, 10, 100, 0};
    compute_epsilon(std::span<const TrainingPhase>(&p, 1), 1e-5);
  });
  expect_rejects("pld.relative_error", with(kNonFinite, {-1.0, 0.0}), [&](double v) {
    AccountantOptions o;
    o.pld.relative_error = v;
    compute_epsilon(one, 1e-5, o);
  });
  expect_rejects("pld.min_grid", with(kNonFinite, {-1.0, 0.0}), [&](double v) {
    AccountantOptions o;
    o.pld.min_grid = v;
    compute_epsilon(one, 1e-5, o);
  });
  expect_rejects("pld.max_points", {-1.0, 0.0}, [&](double v) {
    AccountantOptions o;
    o.pld.max_points = static_cast<std::int64_t>(v);
    compute_epsilon(one, 1e-5, o);
  });
  expect_rejects("pld.fixed_grid", {kNaN, kInf, -1.0}, [&](double v) {
    AccountantOptions o;
    o.pld.fixed_grid = v;
    compute_epsilon(one, 1e-5, o);
  });
  expect_rejects("kind", {7.0, -1.0}, [&](double v) {
    AccountantOptions o;
    o.kind = static_cast<AccountantKind>(static_cast<int>(v));
    compute_epsilon(one, 1e-5, o);
  });
  expect_rejects("calibrate epsilon", with(kNonFinite, {-1.0, 0.0}),
                 [&](double e) { calibrate_noise_multiplier(0.01, 100, e, 1e-5); });
  expect_rejects("calibrate delta", with(kNonFinite, {0.0, 1.0}),
                 [&](double d) { calibrate_noise_multiplier(0.01, 100, 1.0, d); });
  expect_rejects("calibrate steps", {-1.0, 0.0},
                 [&](double t) { calibrate_noise_multiplier(0.01, static_cast<std::int64_t>(t), 1.0, 1e-5); });
  expect_rejects("calibrate sampling_rate", with(kNonFinite, {0.0, 2.0}),
                 [&](double q) { calibrate_noise_multiplier(q, 100, 1.0, 1e-5); });
  expect_rejects("calibrate_steps noise_multiplier", with(kNonFinite, {-1.0, 0.0}),
                 [&](double s) { calibrate_steps(0.01, s, 1.0, 1e-5); });
  expect_rejects("calibrate_steps max_steps", {-1.0, 0.0},
                 [&](double m) { calibrate_steps(0.01, 1.0, 1.0, 1e-5, {}, static_cast<std::int64_t>(m)); });
  expect_rejects("rdp order", with(kNonFinite, {-1.0, 0.5, 1.0}),
                 [&](double a) { rdp_poisson_subsampled_gaussian(0.01, 1.0, a); });
  const std::vector<double> orders{2.0, 4.0}, rdp{0.1, 0.2};
  expect_rejects("rdp_to_epsilon delta", with(kNonFinite, {0.0, 1.0}),
                 [&](double d) { rdp_to_epsilon(orders, rdp, d); });
  expect_rejects("rdp values", {kNaN, -kInf, -1.0}, [&](double v) {  // +inf is valid: no bound at that order
    const std::vector<double> bad{0.1, v};
    rdp_to_epsilon(orders, bad, 1e-5);
  });
  EXPECT_THROW(rdp_to_epsilon(orders, std::vector<double>{0.1}, 1e-5), InvalidArgument);  // mismatched
  EXPECT_THROW(rdp_to_epsilon({}, {}, 1e-5), InvalidArgument);                            // empty
  expect_rejects("direction", {2.0, -1.0}, [&](double d) {
    subsampled_gaussian_delta(0.01, 1.0, 1.0, static_cast<PldDirection>(static_cast<int>(d)));
  });
  PrivacyLedger ledger;
  expect_rejects("ledger record sampling_rate", with(kNonFinite, {0.0, 1.5}), [&](double q) {
    ledger.record({0, q, 1.0, 0, 0});
  });
  expect_rejects("ledger record noise_multiplier", with(kNonFinite, {-1.0}), [&](double s) {
    ledger.record({0, 0.01, s, 0, 0});
  });
  ledger.record({0, 0.01, 1.0, 0, 0});
  expect_rejects("ledger epsilon delta", with(kNonFinite, {0.0, 1.0}), [&](double d) { ledger.epsilon(d); });
  expect_rejects("ledger delta epsilon", {kNaN, -1.0}, [&](double e) { ledger.delta(e); });
  EXPECT_THROW(ledger.record({0, 0.01, 1.0, 0, 0}), InvalidArgument);  // a step reused
}

TEST(HostileInput, SamplingAndNoise) {
  expect_rejects("binomial p", with(kNonFinite, {-0.1, 1.5}), [](double p) { binomial_log_pmf(10, p, 3); });
  expect_rejects("binomial n, k", {-1.0, 11.0}, [](double v) {
    if (v < 0)
      binomial_log_pmf(-1, 0.5, 0);
    else
      binomial_log_pmf(10, 0.5, static_cast<std::int64_t>(v));
  });
  expect_rejects("upper tail p", with(kNonFinite, {-0.1, 1.5}), [](double p) { binomial_upper_tail(10, p, 3); });
  expect_rejects("truncation target", with(kNonFinite, {-1.0, 0.0, 1.0}),
                 [](double t) { capacity_for_truncation_probability(1000, 0.01, t); });
  expect_rejects("truncation dataset_size", {-1.0, 0.0},
                 [](double n) { capacity_for_truncation_probability(static_cast<std::int64_t>(n), 0.01, 1e-6); });
  expect_rejects("sampler sampling_rate", with(kNonFinite, {-0.1, 0.0, 1.5}),
                 [](double q) { PoissonSampler(100, q, 10, 1); });
  expect_rejects("sampler dataset_size", {-1.0, 0.0},
                 [](double n) { PoissonSampler(static_cast<std::int64_t>(n), 0.1, 10, 1); });
  expect_rejects("sampler capacity", {-1.0, 0.0},
                 [](double b) { PoissonSampler(100, 0.1, static_cast<std::int64_t>(b), 1); });
  std::vector<float> values(8);
  expect_rejects("noise stddev", with(kNonFinite, {-1.0}), [&](double s) {
    add_gaussian_noise<float>(values, s, NoiseKey{1, 0, 0});
  });
  expect_rejects("noise mode", {2.0, -1.0}, [&](double m) {
    add_gaussian_noise<float>(values, 1.0, NoiseKey{1, 0, 0}, static_cast<NoiseMode>(static_cast<int>(m)));
  });
  expect_rejects("noise first_coordinate", {std::ldexp(1.0, 40)}, [&](double f) {
    add_gaussian_noise<float>(values, 1.0, NoiseKey{1, 0, 0}, NoiseMode::kStandard, static_cast<std::uint64_t>(f));
  });
  const PoissonSampler sampler(10, 0.5, 4, 1);
  const Batch batch = sampler.sample(0);
  RowMajorMatrix<float> data(10, 3), inputs(4, 3), wrong(3, 3);
  std::vector<std::int32_t> labels(10), out(4), short_labels(9);
  EXPECT_THROW(gather_batch<float>(batch, data, labels, wrong, out), InvalidArgument);         // capacity mismatch
  EXPECT_THROW(gather_batch<float>(batch, data, short_labels, inputs, out), InvalidArgument);  // labels mismatch
}

TEST(HostileInput, Clipping) {
  const RowMajorMatrix<double> rows = RowMajorMatrix<double>::Ones(4, 6);
  const std::vector<std::uint8_t> mask(4, 1);
  std::vector<double> sum(6);
  expect_rejects("clip norm", with(kNonFinite, {-1.0, 0.0}),
                 [&](double c) { clip_and_accumulate<double>(rows, mask, ClipConfig::flat(c), sum); });
  expect_rejects("automatic stability", with(kNonFinite, {-1.0, 0.0}), [&](double g) {
    ClipConfig config = ClipConfig::flat(1.0, ClipMethod::kAutomatic);
    config.automatic_stability = g;
    clip_and_accumulate<double>(rows, mask, config, sum);
  });
  expect_rejects("clip method", {2.0, -1.0}, [&](double m) {
    clip_and_accumulate<double>(rows, mask, ClipConfig::flat(1.0, static_cast<ClipMethod>(static_cast<int>(m))), sum);
  });
  EXPECT_THROW(clip_and_accumulate<double>(rows, mask, ClipConfig::per_group({}), sum), InvalidArgument);  // empty
  EXPECT_THROW(clip_and_accumulate<double>(rows, std::vector<std::uint8_t>(3, 1), ClipConfig::flat(1.0), sum),
               InvalidArgument);  // mask size
  std::vector<double> short_sum(5);
  EXPECT_THROW(clip_and_accumulate<double>(rows, mask, ClipConfig::flat(1.0), short_sum), InvalidArgument);
  const std::vector<std::int64_t> bad_offsets{0, 4, 4, 6};
  EXPECT_THROW(clip_and_accumulate<double>(rows, mask, ClipConfig::per_group({1, 1, 1}), sum, bad_offsets),
               InvalidArgument);  // not increasing
  const RowMajorMatrix<double> none(0, 6);
  EXPECT_THROW(clip_and_accumulate<double>(none, {}, ClipConfig::flat(1.0), sum), InvalidArgument);  // empty batch
  EXPECT_THROW(compute_clip_factors(SquaredNorms::Zero(4, 2), mask, ClipConfig::flat(1.0)), InvalidArgument);
  SquaredNorms norms = SquaredNorms::Zero(4, 1);
  EXPECT_THROW(accumulate_linear_squared_norms<double>(rows, rows.topRows(3), 4, true, norms), InvalidArgument);
  expect_rejects("ghost batch", {-1.0, 0.0, 3.0}, [&](double b) {
    accumulate_linear_squared_norms<double>(rows, rows, static_cast<std::int64_t>(b), true, norms);
  });
}

TEST(HostileInput, OptimisersAndTheStepDriver) {
  expect_rejects("sgd learning_rate", with(kNonFinite, {-1.0, 0.0}), [](double lr) { Sgd<float> o(lr); });
  expect_rejects("momentum", with(kNonFinite, {-0.1, 1.0, 1.5}), [](double m) { Momentum<float> o(0.1, m); });
  expect_rejects("adam beta1", with(kNonFinite, {-0.1, 1.0}), [](double b) { Adam<float> o(0.1, b); });
  expect_rejects("adam beta2", with(kNonFinite, {-0.1, 1.0}), [](double b) { Adam<float> o(0.1, 0.9, b); });
  expect_rejects("adam epsilon", with(kNonFinite, {-1.0, 0.0}), [](double e) { Adam<float> o(0.1, 0.9, 0.999, e); });
  const auto driver = [](DpSgdConfig config) { DpSgd<float> dp(config, std::make_unique<Sgd<float>>(0.1), 1); };
  expect_rejects("noise_multiplier", with(kNonFinite, {-1.0}), [&](double s) {
    DpSgdConfig c;
    c.noise_multiplier = s;
    driver(c);
  });
  expect_rejects("expected_batch_size", with(kNonFinite, {-1.0, 0.0}), [&](double b) {
    DpSgdConfig c;
    c.expected_batch_size = b;
    driver(c);
  });
  expect_rejects("sampling_rate", with(kNonFinite, {0.0, 1.5}), [&](double q) {
    DpSgdConfig c;
    c.sampling_rate = q;
    driver(c);
  });
  DpSgdConfig config;
  DpSgd<float> dp(config, std::make_unique<Sgd<float>>(0.1), 1);
  std::vector<float> params(3), gradient(3), short_gradient(2);
  EXPECT_THROW(dp.step(params, short_gradient), InvalidArgument);
  expect_rejects("gradient entry", {kNaN, kInf, -kInf}, [&](double g) {
    gradient[1] = static_cast<float>(g);
    dp.step(params, gradient);
  });
  EXPECT_THROW(DpSgd<float>(config, nullptr, 1), InvalidArgument);
}

TEST(HostileInput, LayersAndData) {
  using namespace nn;
  expect_rejects("linear features", {-1.0, 0.0}, [](double f) { Linear<float>(static_cast<std::int64_t>(f), 3); });
  expect_rejects("conv kernel", {-1.0, 0.0, 29.0}, [](double k) {
    Conv2d<float>(ImageShape{28, 28, 1}, 4, static_cast<std::int64_t>(k), 1, 0);
  });
  expect_rejects("conv stride", {-1.0, 0.0}, [](double s) {
    Conv2d<float>(ImageShape{28, 28, 1}, 4, 3, static_cast<std::int64_t>(s), 0);
  });
  expect_rejects("pool kernel", {-1.0, 0.0, 29.0}, [](double k) {
    Pool2d<float>(ImageShape{28, 28, 1}, static_cast<std::int64_t>(k), 2, PoolKind::kMax);
  });
  expect_rejects("activation kind", {7.0},
                 [](double k) { Activation<float>(static_cast<ActivationKind>(static_cast<int>(k))); });
  expect_rejects("num_classes", {-1.0, 0.0, 1.0},
                 [](double n) { read_idx_images("/nonexistent/images", "/nonexistent/labels", static_cast<int>(n)); });
}

}  // namespace
}  // namespace dpsgd
